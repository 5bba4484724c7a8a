#!/usr/bin/env bash
# Installs what building and testing need on Debian 12 (skipped when present).
set -euo pipefail
pkgs=(lua5.1 lua5.2 lua5.3 lua5.4 luajit liblua5.1-0-dev liblua5.2-dev liblua5.3-dev
      liblua5.4-dev libluajit-5.1-dev luarocks lua-busted lua-luv lua-cqueues
      libcurl4-openssl-dev pkg-config nginx-light openssl valgrind python3 python3-brotli
      python3-pyftpdlib openssh-server curl gcc)
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
