#!/usr/bin/env bash
# Builds the module once per interpreter: build/<feature>/curl.so
# (features: lua51 lua52 lua53 lua54 luajit; default all five, or "$@").
# --vendored: against the libcurl 8.22 that curl-sys carries (cargo feature
# `vendored`), into build/vendored/<feature>/curl.so.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="" out=build suffix=""
if [ "${1:-}" = --vendored ]; then
  shift
  extra=",vendored" out=build/vendored suffix=-vendored
fi
features=("$@")
[ ${#features[@]} -gt 0 ] || features=(lua51 lua52 lua53 lua54 luajit)
for f in "${features[@]}"; do
  cargo build --quiet --release --locked --features "$f$extra" --target-dir "target/$f$suffix"
  mkdir -p "$out/$f"
  # copy then rename: a Lua process using the old file keeps its mapping
  cp "target/$f$suffix/release/liblcurlsock.so" "$out/$f/.curl.so.new"
  mv -f "$out/$f/.curl.so.new" "$out/$f/curl.so"
done
