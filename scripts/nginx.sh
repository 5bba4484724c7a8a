#!/usr/bin/env bash
# A private nginx on loopback for tests, the demo and benchmarks.
#   scripts/nginx.sh start DIR   make DIR (config, test CA + server cert, files),
#                                start nginx, write DIR/env (shell assignments)
#   scripts/nginx.sh stop DIR    stop exactly that nginx (by its pid file)
# DIR/env sets NGINX_HTTP (http://127.0.0.1:PORT), NGINX_HTTPS
# (https://localhost:PORT, HTTP/2 enabled) and NGINX_CA (the CA file).
set -euo pipefail
cmd=${1:?usage: nginx.sh start|stop DIR}
dir=${2:?usage: nginx.sh start|stop DIR}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

case "$cmd" in
stop)
  if [ -f "$dir/nginx.pid" ]; then
    nginx -p "$dir" -c "$dir/nginx.conf" -s stop 2>/dev/null || kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$dir/nginx.pid" ] || break; sleep 0.1; done
  fi
  exit 0
  ;;
start) ;;
*) echo "usage: nginx.sh start|stop DIR" >&2; exit 2 ;;
esac

mkdir -p "$dir/www" "$dir/tmp" "$dir/logs"
dir=$(cd "$dir" && pwd)

# Files served (deterministic content).
printf '<html>push</html>\n' > "$dir/www/push.html"
if [ ! -f "$dir/www/1m" ]; then
  python3 - "$dir/www" <<'PY'
import sys, os
d = sys.argv[1]
base = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
for name, n in (("100b", 100), ("1k", 1024), ("16k", 16384), ("1m", 1 << 20), ("10m", 10 << 20)):
    with open(os.path.join(d, name), "wb") as f:
        f.write((base * (n // len(base) + 1))[:n])
PY
fi

# Test CA and a server certificate for localhost / 127.0.0.1 / ::1.
if [ ! -f "$dir/server.crt" ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=lua-curl-socket test CA" \
    -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\n' > "$dir/ext.cnf"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/ext.cnf" -out "$dir/server.crt" >/dev/null 2>&1
fi

# as many descriptors as this shell may have (10,000-connection runs)
nofile=$(ulimit -Hn)
[ "$nofile" = unlimited ] && nofile=70000
[ "$nofile" -gt 70000 ] && nofile=70000
ulimit -n "$nofile" 2>/dev/null || true
conns=$((nofile - 100))
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"

for attempt in 1 2 3 4 5; do
  http=$(free_port); https=$(free_port)
  cat > "$dir/nginx.conf" <<EOF
$user_line
worker_processes 1;
daemon on;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
worker_rlimit_nofile $nofile;
events { worker_connections $conns; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  types { text/plain txt; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$http reuseport backlog=4096;
    root $dir/www;
    location / { }
  }
  server {
    listen 127.0.0.1:$https ssl http2;
    server_name localhost;
    ssl_certificate $dir/server.crt;
    ssl_certificate_key $dir/server.key;
    root $dir/www;
    location / { }
    # HTTP/2 server push (CURLMOPT_PUSHFUNCTION specs)
    location = /push.html { http2_push /1k; http2_push /100b; }
    location = /push2.html { alias $dir/www/push.html; http2_push_preload on; add_header Link "</16k>; rel=preload" always; }
    # HSTS (CURLOPT_HSTS* specs)
    location /hsts/ { alias $dir/www/; add_header Strict-Transport-Security "max-age=3600; includeSubDomains" always; }
  }
}
EOF
  if nginx -p "$dir" -c "$dir/nginx.conf" 2>"$dir/start.err"; then
    cat > "$dir/env" <<EOF
NGINX_HTTP=http://127.0.0.1:$http
NGINX_HTTPS=https://localhost:$https
NGINX_CA=$dir/ca.crt
NGINX_ROOT=$dir/www
EOF
    for _ in $(seq 50); do [ -f "$dir/nginx.pid" ] && break; sleep 0.1; done
    exit 0
  fi
  grep -q "Address already in use" "$dir/start.err" || { cat "$dir/start.err" >&2; exit 1; }
done
echo "nginx: no free port after 5 attempts" >&2
exit 1
