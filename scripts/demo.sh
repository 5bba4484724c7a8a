#!/usr/bin/env bash
# The demo: a local nginx serving test files, and examples/download.lua
# fetching 2,000 of them (100 B to 1 MiB) 100 at a time through
# multi:SocketAction and curl.Poller, with a progress line and a summary.
#   LUA=luajit scripts/demo.sh   to use another interpreter
set -euo pipefail
cd "$(dirname "$0")/.."
lua=${LUA:-lua5.4}
case "$lua" in
  *luajit*) feature=luajit ;;
  *) feature=lua$(echo "$lua" | tr -dc '0-9') ;;
esac
scripts/deps.sh
scripts/build.sh "$feature"
tmp=$(mktemp -d)
trap 'scripts/nginx.sh stop "$tmp/nginx"; rm -rf "$tmp"' EXIT
scripts/nginx.sh start "$tmp/nginx"
. "$tmp/nginx/env"
for i in $(seq 500); do
  echo "$NGINX_HTTP/100b"; echo "$NGINX_HTTP/1k"; echo "$NGINX_HTTP/16k"
  [ $((i % 5)) = 0 ] && echo "$NGINX_HTTP/1m"
  [ $((i % 5)) = 0 ] || echo "$NGINX_HTTP/1k"
done > "$tmp/urls.txt"
echo "demo: $(wc -l < "$tmp/urls.txt") downloads from $NGINX_HTTP with $lua"
"$lua" examples/download.lua -j 100 -i "$tmp/urls.txt"
