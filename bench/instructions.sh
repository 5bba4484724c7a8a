#!/usr/bin/env bash
# Instructions per transfer (callgrind), steadier than wall time on small
# machines: each driver runs N1 and N2 tiny GETs (100-byte body, C at once)
# against nginx on loopback; the difference divided by N2 - N1 removes
# start-up. Reports the total and the share of this module, libcurl, libc
# and the Lua VM per transfer.
#   bench/instructions.sh [DRIVER...]   (default: c poller poller-lua luv)
#   BUILD=build/lua54 N1=500 N2=5000 C=100 URLPATH=/100b bench/instructions.sh poller
# Drivers: c, poller, poller-gen (generational GC), poller-buffer, poller-lua,
# luv, luv-fd (luv on the Poller's one descriptor), loop-luv (the
# curl.loop.luv helper), loop-cqueues (curl.loop.cqueues), luv-same (../shared/bench/luv_same_shape.lua when
# present), poller-jit, luv-jit, pycurl; floor-poller and floor-same: the
# poller and luv-same drivers on bench/floor/floor.c, the leanest binding
# that still checks its arguments and pcalls its callbacks (what no binding
# gets under), floor-bare-poller and floor-bare-same without even that.
# NGINX_ENV=file: use that running nginx (bench/run.sh's) instead of
# starting one.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build/lua54}
n1=${N1:-500}; n2=${N2:-5000}; conc=${C:-100}
drivers=("$@"); [ ${#drivers[@]} -gt 0 ] || drivers=(c poller poller-lua luv)
ulimit -n 65536 2>/dev/null || true
tmp=$(mktemp -d)
# The client on the first core, nginx on the last (bench/run.sh pins its
# nginx there too): unpinned, the two share a core at times, and the
# responses' timing, so the number of socket events per transfer and with
# it every count, moved by up to 20% between runs; pinned, by under 1%.
last=$(( $(nproc) - 1 ))
pin=(taskset -c 0)
if [ -n "${NGINX_ENV:-}" ]; then
  trap 'rm -rf "$tmp"' EXIT
  . "$NGINX_ENV"
else
  trap 'scripts/nginx.sh stop "$tmp/nginx" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
  taskset -c "$last" scripts/nginx.sh start "$tmp/nginx" >/dev/null
  . "$tmp/nginx/env"
fi
url="$NGINX_HTTP${URLPATH:-/100b}"
cc -O2 -g -o "$tmp/baseline" bench/c/baseline.c -lcurl
case " ${drivers[*]} " in
  *" floor-"*)
    for v in safe bare; do
      mkdir -p "$tmp/floor-$v"
      def=(); [ $v = bare ] && def=(-DFLOOR_BARE)
      cc -O2 -g -shared -fPIC "${def[@]}" $(pkg-config --cflags lua5.4) \
        -o "$tmp/floor-$v/curl.so" bench/floor/floor.c -lcurl
    done ;;
esac

cmd_for() { # driver n -> command line
  local jbuild=${build%/*}/luajit
  case $1 in
    c) echo "$tmp/baseline $url $2 $conc" ;;
    poller) echo "lua5.4 bench/drivers/poller.lua $url $2 $conc $build" ;;
    poller-gen) echo "lua5.4 bench/drivers/poller.lua $url $2 $conc $build generational" ;;
    poller-buffer) echo "lua5.4 bench/drivers/poller_buffer.lua $url $2 $conc $build" ;;
    pycurl) echo "/usr/bin/python3 bench/drivers/pycurl_driver.py $url $2 $conc" ;;
    poller-lua) echo "lua5.4 bench/drivers/poller_lua.lua $url $2 $conc $build" ;;
    luv) echo "lua5.4 bench/drivers/luv.lua $url $2 $conc $build" ;;
    luv-fd) echo "lua5.4 bench/drivers/luv_fd.lua $url $2 $conc $build" ;;
    loop-luv) echo "lua5.4 bench/drivers/loop.lua $url $2 $conc $build luv" ;;
    loop-cqueues) echo "lua5.4 bench/drivers/loop.lua $url $2 $conc $build cqueues" ;;
    luv-same|floor-same|floor-bare-same) echo "lua5.4 ../shared/bench/luv_same_shape.lua $url $2 $conc" ;;
    floor-poller) echo "lua5.4 bench/drivers/poller.lua $url $2 $conc $tmp/floor-safe" ;;
    floor-bare-poller) echo "lua5.4 bench/drivers/poller.lua $url $2 $conc $tmp/floor-bare" ;;
    poller-jit) echo "luajit bench/drivers/poller.lua $url $2 $conc $jbuild" ;;
    luv-jit) echo "luajit bench/drivers/luv.lua $url $2 $conc $jbuild" ;;
    *) echo "unknown driver $1" >&2; exit 2 ;;
  esac
}

# count N -> "total module libcurl libc lua" (instructions)
count() {
  local out="$tmp/cg.$1.$2"
  # shellcheck disable=SC2046
  # LUA_CPATH: for the drivers that take no build argument (luv-same)
  local cpath="$build/?.so;;"
  case $1 in
    floor-same) cpath="$tmp/floor-safe/?.so;;" ;;
    floor-bare-same) cpath="$tmp/floor-bare/?.so;;" ;;
  esac
  LUA_CPATH="$cpath" "${pin[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
    $(cmd_for "$1" "$2") >/dev/null 2>&1
  bench/cgobjects.py "$out"
}

printf "| driver | instructions/transfer | module | libcurl | libc | Lua VM |\n|---|---:|---:|---:|---:|---:|\n"
for d in "${drivers[@]}"; do
  read -r t1 m1 c1 l1 v1 <<< "$(count "$d" "$n1")"
  read -r t2 m2 c2 l2 v2 <<< "$(count "$d" "$n2")"
  k=$((n2 - n1))
  printf "| %s | %.1fk | %.1fk | %.1fk | %.1fk | %.1fk |\n" "$d" \
    "$(echo "($t2-$t1)/$k/1000" | bc -l)" "$(echo "($m2-$m1)/$k/1000" | bc -l)" \
    "$(echo "($c2-$c1)/$k/1000" | bc -l)" "$(echo "($l2-$l1)/$k/1000" | bc -l)" \
    "$(echo "($v2-$v1)/$k/1000" | bc -l)"
done
