#!/usr/bin/env bash
# Runs the API-sequence fuzzer (fuzz/fuzz.lua) against private loopback
# servers (nginx + the fixture server with its fault ports), one process per
# seed under `timeout`, and reports findings: crashes (a signal or an
# abnormal exit), hangs (the timeout), valgrind errors, contract violations
# (fuzz.lua exit 2) and fuzzer bugs (exit 3). For each finding it prints the
# replay command and the seed's last operations. Ends with
#   fuzz: N seeds, M calls (C module calls), K findings
# (M counts the fuzzer's operations, C the calls into the module they made,
# callbacks included; seeds that crash count their operations up to the
# crash but not their module calls)
# and exits non-zero on any finding.
#
#   scripts/fuzz.sh [options]
#     --seed N          replay one seed (CALLS operations)
#     --seeds 1,2,3     a fixed list of seeds, CALLS operations each (the suite's mode)
#     (neither)         fresh random seeds, PER_SEED operations each, until CALLS in all
#                       (or until --time seconds have passed)
#     --calls N         operations per listed seed / in all (default 3000 / 20000)
#     --per-seed N      operations per random seed (default 2000)
#     --time S          random seeds until S seconds have passed
#     --interp LIST     lua5.1,lua5.2,lua5.3,lua5.4,luajit or "all" (default lua5.4);
#                       each listed seed runs on each; random seeds rotate
#     --valgrind        under valgrind (valgrind.supp, --error-exitcode)
#     --jobs N          processes at once (default: the number of CPUs)
#     --last N          operations shown per finding (default 40)
#     --timeout S       per process (default from CALLS; more under valgrind)
#     --out DIR         keep logs of findings there (default: a new /tmp/fuzz-out.*)
#     --no-netns        do not run in a private network namespace
#     --keep            keep the logs of seeds without findings too
# Environment: FUZZ_AVOID=all|none|name,... (passed to fuzz.lua), FUZZ_CORES=1
# (keep core files of crashed seeds), CURL_BUILD=build/vendored (fuzz the
# bundled-libcurl build), FUZZ_SLOW_MS=N (report operations slower than N ms),
# FUZZ_GDB=1 (each process under gdb: a backtrace in gdb.txt for any fatal
# signal), FUZZ_REENTRY=0 (no finalizer or hook operations), and for
# `make fuzz`: SEED, CALLS, INTERP, VALGRIND=1.
#
# Unless --no-netns, the script re-runs itself in a new network namespace
# (unshare -n) with only loopback up, when the machine allows it, so nothing
# a fuzzed option names can reach beyond this machine.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

seed="" seeds="" calls="" per_seed=2000 time_limit="" interp="lua5.4" valgrind=0 jobs="" last=40
timeout_s="" out="" netns=1 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seed) seed=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    --per-seed) per_seed=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --interp) interp=$2; shift 2 ;;
    --valgrind) valgrind=1; shift ;;
    --jobs) jobs=$2; shift 2 ;;
    --last) last=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --no-netns) netns=0; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) echo "fuzz.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$interp" = all ] && interp="lua5.1,lua5.2,lua5.3,lua5.4,luajit"
IFS=',' read -r -a interps <<< "$interp"
[ -n "$jobs" ] || jobs=$(nproc 2>/dev/null || echo 2)

if [ "$netns" = 1 ] && [ -z "${FUZZ_IN_NETNS:-}" ]; then
  if unshare -n true 2>/dev/null; then
    args=()
    [ -n "$seed" ] && args+=(--seed "$seed")
    [ -n "$seeds" ] && args+=(--seeds "$seeds")
    [ -n "$calls" ] && args+=(--calls "$calls")
    [ -n "$time_limit" ] && args+=(--time "$time_limit")
    [ -n "$timeout_s" ] && args+=(--timeout "$timeout_s")
    [ -n "$out" ] && args+=(--out "$out")
    [ "$valgrind" = 1 ] && args+=(--valgrind)
    [ "$keep" = 1 ] && args+=(--keep)
    exec unshare -n env FUZZ_IN_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" \
      --per-seed "$per_seed" --interp "$interp" --jobs "$jobs" --last "$last" "${args[@]}"
  fi
  echo "fuzz.sh: no network namespace here (unshare -n failed); running in the host's" >&2
fi
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY ftp_proxy FTP_PROXY

# CURL_BUILD: the directory of per-interpreter builds (build/vendored for
# the bundled libcurl), default build
build=${CURL_BUILD:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
export CURL_BUILD="$build"
feature() { case "$1" in luajit) echo luajit ;; lua5.*) echo "lua5${1#lua5.}" ;; *) echo "?" ;; esac; }
for L in "${interps[@]}"; do
  command -v "$L" >/dev/null || { echo "fuzz.sh: no interpreter $L" >&2; exit 2; }
  [ -f "$build/$(feature "$L")/curl.so" ] || { echo "fuzz.sh: $build/$(feature "$L")/curl.so missing (scripts/build.sh $(feature "$L"))" >&2; exit 2; }
done

ulimit -n 4096 2>/dev/null || true
# FUZZ_CORES=1: crashed seeds leave a core file in their tmp/ (for gdb, with
# kernel.core_pattern "core"), and so do hung ones: the timeout ends them
# with SIGABRT instead of SIGTERM, so the core shows where they hung
# (still reported as a hang); otherwise no cores
stop_signal=TERM
if [ -n "${FUZZ_CORES:-}" ]; then
  ulimit -c unlimited 2>/dev/null || true
  stop_signal=ABRT
else
  ulimit -c 0 2>/dev/null || true
fi

[ -n "$out" ] || out=$(mktemp -d /tmp/fuzz-out.XXXXXX)
mkdir -p "$out"
srv=$(mktemp -d)
cleanup() {
  scripts/nginx.sh stop "$srv/nginx" >/dev/null 2>&1
  [ -n "${fixture_pid:-}" ] && kill "$fixture_pid" 2>/dev/null
  [ -n "${ws_pid:-}" ] && kill "$ws_pid" 2>/dev/null
  rm -rf "$srv"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
/usr/bin/python3 spec/support/fixture_server.py 127.0.0.1 $$ > "$srv/fixture.out" 2>&1 &
fixture_pid=$!
for _ in $(seq 100); do grep -q PORT "$srv/fixture.out" 2>/dev/null && break; sleep 0.05; done
port=$(awk '/PORT/ {print $2}' "$srv/fixture.out")
[ -n "$port" ] || { echo "fuzz.sh: fixture server did not start"; cat "$srv/fixture.out"; exit 2; }
export CURL_TEST_FIXTURE="http://127.0.0.1:$port"
# the WebSocket server (python3-websockets), when it can start
/usr/bin/python3 spec/support/ws_server.py 127.0.0.1 $$ > "$srv/ws.out" 2>&1 &
ws_pid=$!
for _ in $(seq 100); do grep -q 'PORT\|NO-' "$srv/ws.out" 2>/dev/null && break; sleep 0.05; done
wsport=$(awk '/PORT/ {print $2}' "$srv/ws.out")
[ -n "$wsport" ] && export CURL_TEST_WS="ws://127.0.0.1:$wsport"
scripts/nginx.sh start "$srv/nginx" >/dev/null || { echo "fuzz.sh: nginx did not start"; exit 2; }
set -a; . "$srv/nginx/env"; set +a
export CURL_REPO="$root"
export FUZZ_AVOID="${FUZZ_AVOID:-none}"

# timeout per process
per_calls=${calls:-3000}
[ -z "$seed" ] && [ -z "$seeds" ] && per_calls=$per_seed
if [ -z "$timeout_s" ]; then
  timeout_s=$((60 + per_calls / 25))
  [ "$valgrind" = 1 ] && timeout_s=$((timeout_s * 25))
fi

vg=()
if [ "$valgrind" = 1 ]; then
  vg=(valgrind --quiet --error-exitcode=99 --suppressions="$root/valgrind.supp" --keep-debuginfo=yes
      --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite)
fi

nseeds=0 ncalls=0 nmod=0 nfind=0
signame() { kill -l "$1" 2>/dev/null || echo "$1"; }

# run_one INTERP SEED CALLS: one process; leaves $dir/result "rc ops"
run_one() {
  local L=$1 s=$2 n=$3
  local dir="$out/$L-$s"
  rm -rf "$dir"; mkdir -p "$dir/tmp"
  local cmd=("$L" "$root/fuzz/fuzz.lua" "$s" "$n" "$dir/log")
  if [ "$valgrind" = 1 ]; then cmd=("${vg[@]}" --log-file="$dir/valgrind.txt" "${cmd[@]}"); fi
  # FUZZ_GDB=1: under gdb, which stops on any fatal signal (SIGPIPE, which
  # leaves no core, included) and writes the backtrace to $dir/gdb.txt
  if [ -n "${FUZZ_GDB:-}" ]; then
    cmd=(gdb -q -batch -ex "set logging file $dir/gdb.txt" -ex "set logging redirect on"
         -ex "set logging enabled on" -x "$root/fuzz/gdb_signal.py" --args "${cmd[@]}")
  fi
  ( cd "$dir/tmp" && FUZZ_TMP="$dir/tmp" exec timeout -s "$stop_signal" -k 10 "$timeout_s" "${cmd[@]}" </dev/null >/dev/null 2>"$dir/stderr" )
  local rc=$?
  local ops
  ops=$(sed -n 's/.*FUZZ DONE .* ops=\([0-9]*\).*/\1/p' "$dir/stderr" | tail -n1)
  [ -n "$ops" ] || ops=$(tail -n1 "$dir/log" 2>/dev/null | awk '{print $1+0}')
  echo "$rc ${ops:-0}" > "$dir/result"
}

# report INTERP SEED CALLS: reads the result, prints a finding if any
report() {
  local L=$1 s=$2 n=$3
  local dir="$out/$L-$s"
  local rc ops
  read -r rc ops < "$dir/result"
  mod=$(sed -n 's/.*FUZZ DONE .* calls=\([0-9]*\).*/\1/p' "$dir/stderr" | tail -n1)
  nseeds=$((nseeds + 1)); ncalls=$((ncalls + ops)); nmod=$((nmod + ${mod:-0}))
  local kind=""
  case "$rc" in
    0) if [ "$valgrind" = 1 ] && [ -s "$dir/valgrind.txt" ]; then kind="valgrind errors (exit 0)"; fi ;;
    2) kind="contract violation" ;;
    3) kind="fuzzer bug" ;;
    99) kind="valgrind errors" ;;
    124|137) kind="hang (no end after ${timeout_s}s)" ;;
    *) if [ "$rc" -gt 128 ] && [ "$rc" -le 192 ]; then kind="crash (SIG$(signame $((rc - 128))))"; else kind="abnormal exit $rc"; fi ;;
  esac
  if [ -z "$kind" ]; then
    echo "ok   $L seed $s: $ops ops$(sed -n 's/.*FUZZ DONE .*seconds=\([0-9.]*\) ops.s=\([0-9]*\).*/ in \1s (\2 ops\/s)/p' "$dir/stderr")"
    [ "$keep" = 1 ] || rm -rf "$dir"
    return
  fi
  nfind=$((nfind + 1))
  local vgflag=""; [ "$valgrind" = 1 ] && vgflag=" VALGRIND=1"
  echo
  echo "== FINDING: $kind -- $L seed $s, at op $ops of $n"
  local cb=""
  [ "$build" = "$root/build" ] || cb="CURL_BUILD=$build "
  echo "   replay: ${cb}FUZZ_AVOID=$FUZZ_AVOID make fuzz SEED=$s CALLS=$n INTERP=$L$vgflag"
  echo "   logs:   $dir"
  echo "   -- stderr (its FUZZ lines and errors, last 25):"
  tr '\r' '\n' < "$dir/stderr" | grep -aE 'FUZZ|^  |rror|free|corrupt|ssert|panic|abort|Abort|fault|Uncaught|SIG|stack|\[C\]|\.lua:' \
    | grep -avE '^\*|^  [ 0-9]+[0-9k]|Dload|^ +[0-9]+ +[0-9]' | tail -n 25 | sed 's/^/   | /'
  local core
  for core in "$dir"/tmp/core*; do
    [ -f "$core" ] && echo "   core:   $core"
  done
  if [ -s "$dir/valgrind.txt" ]; then
    echo "   -- valgrind (first 30 lines):"
    head -n 30 "$dir/valgrind.txt" | sed 's/^/   | /'
  fi
  echo "   -- the failing seed reduced to its last $last operations:"
  tail -n "$last" "$dir/log" 2>/dev/null | sed 's/^/   | /'
  echo
}

# the plan: lines "INTERP SEED CALLS"
plan=()
if [ -n "$seed" ]; then
  for L in "${interps[@]}"; do plan+=("$L $seed ${calls:-3000}"); done
elif [ -n "$seeds" ]; then
  IFS=',' read -r -a list <<< "$seeds"
  for s in "${list[@]}"; do for L in "${interps[@]}"; do plan+=("$L $s ${calls:-3000}"); done; done
fi

echo "fuzz: $([ -n "${FUZZ_IN_NETNS:-}" ] && echo "private network namespace; ")servers $NGINX_HTTP $NGINX_HTTPS $CURL_TEST_FIXTURE; avoid=$FUZZ_AVOID; out=$out; timeout ${timeout_s}s$([ "$valgrind" = 1 ] && echo '; valgrind')"
start=$(date +%s)
running=0
declare -A pending=()
launch() {
  local L=$1 s=$2 n=$3
  echo "run  $L seed $s ($n ops)"
  run_one "$L" "$s" "$n" &
  pending[$!]="$L $s $n"
  running=$((running + 1))
}
reap() { # waits for one job, reports it
  local pid
  wait -n -p pid 2>/dev/null || true
  if [ -z "${pid:-}" ] || [ -z "${pending[$pid]:-}" ]; then
    # bash without wait -p: find a finished job
    for p in "${!pending[@]}"; do kill -0 "$p" 2>/dev/null || { pid=$p; break; }; done
  fi
  [ -n "${pid:-}" ] && [ -n "${pending[$pid]:-}" ] || return
  report ${pending[$pid]}
  unset "pending[$pid]"
  running=$((running - 1))
}

if [ ${#plan[@]} -gt 0 ]; then
  for item in "${plan[@]}"; do
    while [ "$running" -ge "$jobs" ]; do reap; done
    launch $item
  done
else
  total=${calls:-20000}
  planned=0 i=0
  while :; do
    if [ -n "$time_limit" ]; then
      [ $(( $(date +%s) - start )) -ge "$time_limit" ] && break
    else
      [ "$planned" -ge "$total" ] && break
    fi
    while [ "$running" -ge "$jobs" ]; do reap; done
    s=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
    s=$((s % 2147483647 + 1))
    L=${interps[$((i % ${#interps[@]}))]}
    n=$per_seed
    [ -z "$time_limit" ] && [ $((total - planned)) -lt "$n" ] && n=$((total - planned))
    launch "$L" "$s" "$n"
    planned=$((planned + n)); i=$((i + 1))
  done
fi
while [ "$running" -gt 0 ]; do reap; done

echo "fuzz: $nseeds seeds, $ncalls calls ($nmod module calls), $nfind findings ($(( $(date +%s) - start ))s)"
[ "$nfind" = 0 ] && [ "$keep" = 0 ] && rmdir "$out" 2>/dev/null
[ "$nfind" = 0 ]
