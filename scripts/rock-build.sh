#!/bin/sh
# The rockspecs' build command: scripts/rock-build.sh LUA [VENDORED]
# Checks what the build needs and says in one line what is missing and how
# to get it (instead of a cargo or compiler log), then runs `cargo build`
# with the feature for the interpreter LUA (lua51 lua52 lua53 lua54 luajit)
# and leaves the module in .rock/curl.so for luarocks to install.
# VENDORED=1, or CURL_VENDORED=1 in the environment (`CURL_VENDORED=1
# luarocks install ...`), builds on the bundled libcurl 8.22 (feature
# `vendored`) instead of the system libcurl.
# A source rock carries the crates (vendor/, .cargo/config.toml), so the
# build needs no network; a checkout fetches them from crates.io.
set -eu
cd "$(dirname "$0")/.."
min_rust=1.88.0

fail() {
  echo "lua-curl-socket: $*" >&2
  exit 1
}

lua=${1:-}
[ -n "$lua" ] || fail "usage: scripts/rock-build.sh LUA (the interpreter to build for)"
command -v "$lua" >/dev/null 2>&1 || [ -x "$lua" ] ||
  fail "the Lua interpreter '$lua' was not found (luarocks passes it as LUA=...)"
feature=$("$lua" -e 'if type(jit) == "table" then print("luajit") else print("lua" .. (_VERSION:match("%d+%.%d+") or "?"):gsub("%.", "")) end' 2>/dev/null) ||
  fail "could not run '$lua' to ask its version"
case "$feature" in
lua51 | lua52 | lua53 | lua54 | luajit) ;;
*) fail "'$lua' is $("$lua" -v 2>&1 | head -n1); supported: Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT 2.x" ;;
esac

command -v cargo >/dev/null 2>&1 && command -v rustc >/dev/null 2>&1 ||
  fail "cargo and rustc (Rust >= $min_rust) are needed to build this native module; install them with https://rustup.rs (Debian 12's own cargo is too old)"
rust=$(rustc --version 2>/dev/null | awk '{print $2}')
[ "$(printf '%s\n%s\n' "$rust" "$min_rust" | sort -V | head -n1)" = "$min_rust" ] ||
  fail "rustc $rust is too old: mlua 0.12 needs Rust >= $min_rust (rustup update)"

command -v "${CC:-cc}" >/dev/null 2>&1 ||
  fail "a C compiler (${CC:-cc}) is needed to read libcurl's headers (Debian: apt install gcc)"

# libcurl's headers: pkg-config first, then the usual include directory
have_curl=
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libcurl 2>/dev/null; then
  have_curl=1
elif echo '#include <curl/curl.h>' | "${CC:-cc}" -E - >/dev/null 2>&1; then
  have_curl=1
fi
[ -n "$have_curl" ] || case "${2:-}${CURL_VENDORED:-}" in *1* | *yes* | *true* | *on*) ;; *) false ;; esac ||
  fail "libcurl's development files were not found (Debian/Ubuntu: apt install libcurl4-openssl-dev pkg-config; Fedora: dnf install libcurl-devel; macOS: brew install curl pkg-config)"

offline=
[ -d vendor ] && [ -f .cargo/config.toml ] && offline=--offline

vendored=${2:-}
case "$vendored" in 1 | yes | true | on) ;; *) vendored=${CURL_VENDORED:-} ;; esac
features=$feature suffix=
case "$vendored" in
1 | yes | true | on)
  features="$feature,vendored" suffix=-vendored
  command -v pkg-config >/dev/null 2>&1 && pkg-config --exists openssl 2>/dev/null ||
    fail "the bundled libcurl needs OpenSSL's development files (Debian/Ubuntu: apt install libssl-dev pkg-config; Fedora: dnf install openssl-devel)"
  ;;
esac

target=${CARGO_TARGET_DIR:-target/$feature$suffix}
cargo build --release --locked $offline --features "$features" --target-dir "$target" ||
  fail "cargo build failed for $features (the log is above)"
mkdir -p .rock
cp "$target/release/liblcurlsock.so" .rock/curl.so
