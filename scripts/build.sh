#!/usr/bin/env bash
# Builds the module once per interpreter: build/<feature>/curl.so
# (features: lua51 lua52 lua53 lua54 luajit; default all five, or "$@").
set -euo pipefail
cd "$(dirname "$0")/.."
features=("$@")
[ ${#features[@]} -gt 0 ] || features=(lua51 lua52 lua53 lua54 luajit)
for f in "${features[@]}"; do
  cargo build --quiet --release --locked --features "$f" --target-dir "target/$f"
  mkdir -p "build/$f"
  # copy then rename: a Lua process using the old file keeps its mapping
  cp "target/$f/release/liblcurlsock.so" "build/$f/.curl.so.new"
  mv -f "build/$f/.curl.so.new" "build/$f/curl.so"
done
