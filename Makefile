# make demo   concurrent downloads from a local nginx, driven by SocketAction
# make test   the whole suite (all five interpreters, valgrind, luarocks)
# make build  build/<lua51|lua52|lua53|lua54|luajit>/curl.so
# make rock   lua-curl-socket-<version>-1.src.rock: installs with luarocks, no network
# make fuzz   the API-sequence fuzzer (fuzz/fuzz.lua via scripts/fuzz.sh):
#             make fuzz [SEED=n] [CALLS=n] [INTERP=lua5.4|all|lua5.1,luajit] [VALGRIND=1] [FUZZ_AVOID=all|none|a,b]
#             without SEED: fresh random seeds until CALLS operations in all
.PHONY: build test demo clean fuzz rock

build:
	scripts/deps.sh
	scripts/build.sh

test:
	scripts/test.sh

demo:
	scripts/demo.sh

rock:
	scripts/rock.sh

clean:
	rm -rf build target .rock *.src.rock

fuzz:
	$(if $(FUZZ_AVOID),FUZZ_AVOID=$(FUZZ_AVOID)) scripts/fuzz.sh $(if $(SEED),--seed $(SEED)) $(if $(CALLS),--calls $(CALLS)) $(if $(INTERP),--interp $(INTERP)) $(if $(VALGRIND),--valgrind)
