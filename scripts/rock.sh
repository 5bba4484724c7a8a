#!/usr/bin/env bash
# make rock: packs lua-curl-socket-VERSION-1.src.rock (VERSION from
# Cargo.toml) in the repository root, in the shape `luarocks pack` gives a
# git rockspec: the release rockspec plus the source tree in a directory
# named after the repository. The tree is the checkout's tracked files as
# they are on disk, plus the Rust crates of Cargo.lock (`cargo vendor`), so
# `luarocks install ./lua-curl-socket-VERSION-1.src.rock` needs no network.
# Before packing it checks that the version agrees everywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

fail() { echo "make rock: $*" >&2; exit 1; }

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$version" ] || fail "no version in Cargo.toml"
name=lua-curl-socket
rockspec=rockspec/$name-$version-1.rockspec
[ -f "$rockspec" ] || fail "$rockspec is missing (Cargo.toml says $version)"

grep -q "^M._VERSION = \"$version\"" src/curl.lua ||
  fail "src/curl.lua's _VERSION is not $version (Cargo.toml)"
grep -q "^## $version\b" CHANGELOG.md || fail "CHANGELOG.md has no '## $version' section"
# the release and scm rockspecs agree on everything but version and source
lua5.4 - "$rockspec" rockspec/$name-scm-1.rockspec "$version" <<'EOF' || exit 1
local function load(p)
  local env = {}
  local chunk = assert(loadfile(p, "t", env))
  chunk()
  return env
end
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end
local rel, scm, v = load(arg[1]), load(arg[2]), arg[3]
local function check(ok, msg)
  if not ok then io.stderr:write("make rock: ", msg, "\n"); os.exit(1) end
end
check(rel.version == v .. "-1", arg[1] .. ": version is not " .. v .. "-1")
check(rel.source.tag == "v" .. v, arg[1] .. ": source.tag is not v" .. v)
for _, k in ipairs { "package", "rockspec_format", "description", "dependencies", "build", "test" } do
  check(same(rel[k], scm[k]), arg[1] .. " and " .. arg[2] .. " differ in '" .. k .. "'")
end
EOF

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
src=$tmp/$name # luarocks looks for the sources in the directory named after the git URL
mkdir -p "$src/.cargo"
git ls-files -z | tar --null -T - -c | tar -x -C "$src"
cargo vendor --quiet --locked "$src/vendor" >/dev/null ||
  fail "cargo vendor failed (it needs the crates of Cargo.lock once: cargo fetch)"
printf '[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "vendor"\n' \
  >"$src/.cargo/config.toml"
rm -rf "$src/.rock" "$src/target" "$src/build"
cp "$rockspec" "$tmp/"
out=$root/$name-$version-1.src.rock
rm -f "$out"
(cd "$tmp" && zip -qr -X "$out" "$(basename "$rockspec")" "$name")
echo "$(basename "$out") ($(du -k "$out" | cut -f1) KiB)"
