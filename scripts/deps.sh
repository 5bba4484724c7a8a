#!/usr/bin/env bash
# Installs what building and testing need on Debian 12 (skipped when present).
set -euo pipefail
pkgs=(lua5.1 lua5.2 lua5.3 lua5.4 luajit liblua5.1-0-dev liblua5.2-dev liblua5.3-dev
      liblua5.4-dev libluajit-5.1-dev luarocks lua-busted lua-luv lua-cqueues
      libcurl4-openssl-dev libssl-dev zlib1g-dev pkg-config nginx-light openssl valgrind python3 python3-brotli
      python3-pyftpdlib python3-websockets lua-dkjson openssh-server curl gcc)
if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  # Not Debian-like: say what is needed, check what the build itself needs.
  echo "deps: not a Debian-like system (no dpkg/apt-get); install these yourself:" >&2
  echo "  build: Rust >= 1.88 (https://rustup.rs), a C compiler, pkg-config, libcurl's" >&2
  echo "         development files, Lua 5.1-5.4 and/or LuaJIT with their headers" >&2
  echo "  tests: luarocks, busted, luv, cqueues, nginx, openssl, valgrind, python3 with" >&2
  echo "         brotli and pyftpdlib, sshd, the curl tool" >&2
  need=()
  for c in cargo rustc cc pkg-config; do command -v "$c" >/dev/null 2>&1 || need+=("$c"); done
  pkg-config --exists libcurl 2>/dev/null || need+=("libcurl development files (pkg-config libcurl)")
  if [ ${#need[@]} -gt 0 ]; then
    printf 'deps: missing for the build: %s\n' "$(IFS=,; echo "${need[*]}" | sed 's/,/, /g')" >&2
    exit 1
  fi
  exit 0
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "deps: cargo not found; install Rust >= 1.88 (https://rustup.rs) and retry" >&2
  exit 1
fi
ver=$(rustc --version | awk '{print $2}')
if [ "$(printf '%s\n1.88.0\n' "$ver" | sort -V | head -n1)" != "1.88.0" ]; then
  echo "deps: rustc $ver is too old; mlua 0.12 needs >= 1.88 (rustup update)" >&2
  exit 1
fi
