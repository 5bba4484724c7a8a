#!/usr/bin/env bash
# Benchmarks: the module's Poller and luv drivers (Lua 5.4 and LuaJIT), a C
# baseline (libcurl multi socket + epoll) and pycurl, against nginx on
# loopback. Repetitions are interleaved; medians are reported, with the
# ratio of transfers/s to the C baseline measured in the same run, client
# CPU (user+sys) µs per transfer, peak RSS, and instructions per transfer
# (callgrind, bench/instructions.sh: steadier than wall time on small
# machines) with their ratio to C's.
#   bench/run.sh [REPS]          (default 5)
#   WORKLOADS="tiny100" bench/run.sh 3
#   INSTR="tiny100 big20" bench/run.sh   (workloads that get instruction
#                                         counts; default tiny100, "" none)
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${1:-5}
scripts/deps.sh >/dev/null
for p in python3-pycurl time; do
  dpkg -s "$p" >/dev/null 2>&1 || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null; }
done
scripts/build.sh lua54 luajit
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
tmp=$(mktemp -d)
trap 'scripts/nginx.sh stop "$tmp/nginx" >/dev/null; rm -rf "$tmp"' EXIT
# nginx on the last core, the client on the first: less noise on small machines
last=$(( $(nproc) - 1 ))
taskset -c "$last" scripts/nginx.sh start "$tmp/nginx" >/dev/null
. "$tmp/nginx/env"
cc -O2 -o "$tmp/baseline" bench/c/baseline.c -lcurl

declare -A W=(
  [tiny10]="$NGINX_HTTP/100b 20000 10"
  [tiny100]="$NGINX_HTTP/100b 20000 100"
  [tiny1000]="$NGINX_HTTP/100b 20000 1000"
  [big20]="$NGINX_HTTP/1m 2000 20"
)
workloads=${WORKLOADS:-"tiny10 tiny100 tiny1000 big20"}
drivers=("c" "poller-5.4" "poller-gen-5.4" "poller-buffer-5.4" "poller-lua-5.4" "luv-5.4" "luv-fd-5.4" "loop-luv-5.4"
  "loop-cqueues-5.4")
# the luv driver of the peer comparison (issue 10), when it is next to the repository
same=../shared/bench/luv_same_shape.lua
[ -f "$same" ] && drivers+=("luv-same-5.4")
drivers+=("poller-jit" "luv-jit" "pycurl")
instr_workloads=${INSTR-tiny100}
# bench/instructions.sh's name for each driver
declare -A IDRIVER=([c]=c [poller-5.4]=poller [poller-gen-5.4]=poller-gen [poller-buffer-5.4]=poller-buffer
  [poller-lua-5.4]=poller-lua [luv-5.4]=luv [luv-fd-5.4]=luv-fd [loop-luv-5.4]=loop-luv
  [loop-cqueues-5.4]=loop-cqueues [luv-same-5.4]=luv-same
  [poller-jit]=poller-jit [luv-jit]=luv-jit [pycurl]=pycurl)

run_driver() { # driver url n c -> "elapsed user sys maxrss_kb"
  local d=$1; shift
  local cmd
  case $d in
    c) cmd=("$tmp/baseline" "$@") ;;
    poller-5.4) cmd=(lua5.4 bench/drivers/poller.lua "$@" build/lua54) ;;
    poller-gen-5.4) cmd=(lua5.4 bench/drivers/poller.lua "$@" build/lua54 generational) ;;
    poller-lua-5.4) cmd=(lua5.4 bench/drivers/poller_lua.lua "$@" build/lua54) ;;
    poller-buffer-5.4) cmd=(lua5.4 bench/drivers/poller_buffer.lua "$@" build/lua54) ;;
    luv-5.4) cmd=(lua5.4 bench/drivers/luv.lua "$@" build/lua54) ;;
    luv-fd-5.4) cmd=(lua5.4 bench/drivers/luv_fd.lua "$@" build/lua54) ;;
    loop-luv-5.4) cmd=(lua5.4 bench/drivers/loop.lua "$@" build/lua54 luv) ;;
    loop-cqueues-5.4) cmd=(lua5.4 bench/drivers/loop.lua "$@" build/lua54 cqueues) ;;
    luv-same-5.4) cmd=(env LUA_CPATH="build/lua54/?.so;;" lua5.4 "$same" "$@") ;;
    poller-jit) cmd=(luajit bench/drivers/poller.lua "$@" build/luajit) ;;
    luv-jit) cmd=(luajit bench/drivers/luv.lua "$@" build/luajit) ;;
    pycurl) cmd=(/usr/bin/python3 bench/drivers/pycurl_driver.py "$@") ;;
  esac
  bench/measure.py "$tmp/time" taskset -c 0 "${cmd[@]}" > "$tmp/out" 2>&1 || { echo "FAIL $d: $(cat "$tmp/out")" >&2; echo "0 0 0 0"; return; }
  cat "$tmp/time"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

# instructions per transfer of each driver for workload `url n c`: fills
# INSTR_K (driver -> "123.4") from bench/instructions.sh (N2 = n / 4, N1 =
# N2 / 10: start-up cancels out)
declare -A INSTR_K
count_instructions() { # url n c
  INSTR_K=()
  local n2=$(( $2 / 4 )) ids=()
  for d in "${drivers[@]}"; do ids+=("${IDRIVER[$d]}"); done
  local table
  table=$(NGINX_ENV="$tmp/nginx/env" URLPATH="/${1##*/}" N1=$(( n2 / 10 )) N2=$n2 C=$3 \
          bench/instructions.sh "${ids[@]}") || return 0
  for d in "${drivers[@]}"; do
    INSTR_K[$d]=$(awk -F'|' -v id="${IDRIVER[$d]}" '{ gsub(/ /, "", $2); gsub(/[ k]/, "", $3) } $2 == id { print $3 }' <<< "$table")
  done
}

echo "| workload | driver | transfers/s | ratio to C | CPU µs/transfer | extra CPU µs vs C | peak RSS MiB | instructions/transfer | × C |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for w in $workloads; do
  read -r url n c <<< "${W[$w]}"
  for d in "${drivers[@]}"; do : > "$tmp/$d.rate"; : > "$tmp/$d.cpu"; : > "$tmp/$d.rss"; done
  for _ in $(seq "$reps"); do
    for d in "${drivers[@]}"; do
      read -r e u s m <<< "$(run_driver "$d" "$url" "$n" "$c")"
      awk -v n="$n" -v e="$e" 'BEGIN { if (e > 0) print n / e; else print 0 }' >> "$tmp/$d.rate"
      awk -v n="$n" -v u="$u" -v s="$s" 'BEGIN { print (u + s) * 1e6 / n }' >> "$tmp/$d.cpu"
      echo "$m" >> "$tmp/$d.rss"
    done
  done
  c_rate=$(median < "$tmp/c.rate"); c_cpu=$(median < "$tmp/c.cpu")
  INSTR_K=()
  case " $instr_workloads " in *" $w "*) count_instructions "$url" "$n" "$c" ;; esac
  for d in "${drivers[@]}"; do
    rate=$(median < "$tmp/$d.rate"); cpu=$(median < "$tmp/$d.cpu"); rss=$(sort -g "$tmp/$d.rss" | tail -n1)
    awk -v w="$w ($n × ${url##*/}, $c at once)" -v d="$d" -v r="$rate" -v cr="$c_rate" -v cpu="$cpu" -v ccpu="$c_cpu" -v rss="$rss" \
        -v ik="${INSTR_K[$d]:-}" -v ck="${INSTR_K[c]:-}" \
      'BEGIN { printf "| %s | %s | %.0f | %.2f | %.1f | %+.1f | %.1f | %s | %s |\n", w, d, r, (cr > 0 ? r / cr : 0), cpu, cpu - ccpu, rss / 1024,
               (ik != "" ? ik "k" : "–"), (ik != "" && ck > 0 ? sprintf("%.2f", ik / ck) : "–") }'
  done
done
