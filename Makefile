# make demo   concurrent downloads from a local nginx, driven by SocketAction
# make test   the whole suite (all five interpreters, valgrind, luarocks)
# make build  build/<lua51|lua52|lua53|lua54|luajit>/curl.so
.PHONY: build test demo clean

build:
	scripts/deps.sh
	scripts/build.sh

test:
	scripts/test.sh

demo:
	scripts/demo.sh

clean:
	rm -rf build target .rock
