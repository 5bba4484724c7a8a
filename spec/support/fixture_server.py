#!/usr/bin/env python3
"""Scripted HTTP fixture server for the specs (loopback only).

Usage: fixture_server.py [HOST [PID]]. Prints "PORT <n>" on its first line,
then serves until process PID (default: its parent) is gone, or SIGTERM. Endpoints:

  /size/N            N bytes (deterministic pattern), Content-Length
  /delay/MS[/N]      wait MS milliseconds, then N bytes (default 2)
  /chunked/N[/K]     N bytes as K chunks (Transfer-Encoding: chunked)
  /status/CODE       that status, body "status CODE"
  /redirect/N        302 to /redirect/N-1; /redirect/0 answers "done"
  /307               307 to /echo (a body must be sent again)
  /setcookie/N/V     sets cookie N=V
  /multiheader       two Set-Cookie, two X-Multi and a padded X-Spaced header
  /hsts              sets Strict-Transport-Security (meaningful over TLS only)
  /close[/N]         headers announcing N+100 bytes, N bytes, then close
  /reset             closes the connection before any response
  /echo              JSON {method, path, query, headers, body} of the request
  /flaky/K/N/WHAT[/S] the first N requests for key K fail, later ones answer
                     200 "ok K <tries>": WHAT is a status code (with
                     Retry-After: S when given) or "reset" (connection reset)
  /slow/N/MS         N bytes in 8 parts, MS ms apart
  /gzip/N, /br/N     N bytes, Content-Encoding gzip / br (when asked for)
  /basic/U/P         needs HTTP Basic auth as U:P
  /digest/U/P        needs HTTP Digest auth (MD5, qop=auth) as U:P

Faults (spec/faults_spec.lua, fuzz/fuzz.lua):
  /resetmid/N        headers announcing N+1000 bytes, N bytes, then a TCP RST
  /faults            "garbage=P silent=P refused=P": the fault ports below
  garbage port       sends random bytes (first bytes NUL, 0xFF) on accept, no HTTP
  silent port        accepts and never answers (keeps the socket open)
  refused port       bound, never listening: connections are refused
  https:// to this server's own port or to the garbage port fails the TLS
  handshake (plain text / garbage instead of a ServerHello).
"""
import base64
import gzip
import hashlib
import json
import os
import selectors
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifeline  # noqa: E402


def pattern(n):
    base = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    reps = n // len(base) + 1
    return (base * reps)[:n]


FLAKY = {}
FLAKY_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fixture/1"

    def log_message(self, *args):
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            return self.rfile.read(n)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                line = self.rfile.readline().strip()
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def send(self, code, data, ctype="application/octet-stream", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        req_body = self.body()
        head = parts[0] if parts else ""
        try:
            if head == "size":
                self.send(200, pattern(int(parts[1])))
            elif head == "delay":
                time.sleep(int(parts[1]) / 1000.0)
                n = int(parts[2]) if len(parts) > 2 else 2
                self.send(200, pattern(n))
            elif head == "chunked":
                n = int(parts[1])
                k = int(parts[2]) if len(parts) > 2 else 4
                data = pattern(n)
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                step = max(1, (n + k - 1) // k)
                for i in range(0, n, step):
                    piece = data[i:i + step]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
            elif head == "status":
                code = int(parts[1])
                self.send(code, b"status %d" % code, "text/plain")
            elif head == "redirect":
                n = int(parts[1])
                if n <= 0:
                    self.send(200, b"done", "text/plain")
                else:
                    self.send(302, b"", extra={"Location": "/redirect/%d" % (n - 1)})
            elif head in ("gzip", "br"):
                data = pattern(int(parts[1]))
                accepted = self.headers.get("Accept-Encoding", "")
                if head in accepted:
                    if head == "gzip":
                        body = gzip.compress(data, mtime=0)
                    else:
                        import brotli
                        body = brotli.compress(data)
                    self.send(200, body, "text/plain", extra={"Content-Encoding": head, "Vary": "Accept-Encoding"})
                else:
                    self.send(200, data, "text/plain", extra={"Vary": "Accept-Encoding"})
            elif head == "basic":
                want = "Basic " + base64.b64encode(("%s:%s" % (parts[1], parts[2])).encode()).decode()
                if self.headers.get("Authorization") == want:
                    self.send(200, b"welcome " + parts[1].encode(), "text/plain")
                else:
                    self.send(401, b"who are you?", "text/plain", extra={"WWW-Authenticate": 'Basic realm="fixture"'})
            elif head == "digest":
                self.digest(parts[1], parts[2])
            elif head == "multiheader":
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                for h, v in (("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
                             ("X-Multi", "one"), ("X-Multi", "two"), ("X-Spaced", "  padded  ")):
                    self.send_header(h, v)
                self.end_headers()
                self.wfile.write(b"ok")
            elif head == "setcookie":
                self.send(200, b"ok", "text/plain", extra={"Set-Cookie": "%s=%s; Path=/" % (parts[1], parts[2])})
            elif head == "307":
                self.send(307, b"", extra={"Location": "/echo"})
            elif head == "close":
                n = int(parts[1]) if len(parts) > 1 else 10
                self.send_response(200)
                self.send_header("Content-Length", str(n + 100))
                self.end_headers()
                self.wfile.write(pattern(n))
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            elif head == "resetmid":
                n = int(parts[1]) if len(parts) > 1 else 1000
                self.send_response(200)
                self.send_header("Content-Length", str(n + 1000))
                self.end_headers()
                self.wfile.write(pattern(n))
                self.wfile.flush()
                time.sleep(0.05)  # let the client read what was sent
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
            elif head == "flaky":
                key, n, what = parts[1], int(parts[2]), parts[3]
                with FLAKY_LOCK:
                    FLAKY[key] = FLAKY.get(key, 0) + 1
                    tries = FLAKY[key]
                if tries > n:
                    self.send(200, b"ok %s %d" % (key.encode(), tries), "text/plain")
                elif what == "reset":
                    self.close_connection = True
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                else:
                    extra = {"Retry-After": parts[4]} if len(parts) > 4 else None
                    self.send(int(what), b"try %d" % tries, "text/plain", extra)
            elif head == "faults":
                self.send(200, ("garbage=%d silent=%d refused=%d" % FAULT_PORTS).encode(), "text/plain")
            elif head == "reset":
                self.close_connection = True
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                self.connection.close()
            elif head == "echo":
                info = {
                    "method": self.command,
                    "path": url.path,
                    "query": url.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": req_body.decode("latin-1"),
                }
                self.send(200, json.dumps(info, sort_keys=True).encode(), "application/json")
            elif head == "slow":
                n, ms = int(parts[1]), int(parts[2])
                data = pattern(n)
                self.send_response(200)
                self.send_header("Content-Length", str(n))
                self.end_headers()
                step = max(1, (n + 7) // 8)
                for i in range(0, n, step):
                    self.wfile.write(data[i:i + step])
                    self.wfile.flush()
                    time.sleep(ms / 1000.0)
            else:
                self.send(404, b"not found", "text/plain")
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def digest(self, user, pw):
        realm, nonce = "fixture", "abc123nonce"
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Digest "):
            fields = {}
            for item in auth[7:].split(","):
                k, _, v = item.strip().partition("=")
                fields[k] = v.strip('"')
            h = lambda s: hashlib.md5(s.encode()).hexdigest()
            ha1 = h("%s:%s:%s" % (user, realm, pw))
            ha2 = h("%s:%s" % (self.command, fields.get("uri", "")))
            expect = h("%s:%s:%s:%s:%s:%s" % (ha1, fields.get("nonce"), fields.get("nc"), fields.get("cnonce"), fields.get("qop"), ha2))
            if fields.get("username") == user and fields.get("response") == expect:
                self.send(200, b"digest ok " + user.encode(), "text/plain")
                return
        challenge = 'Digest realm="%s", nonce="%s", qop="auth", algorithm=MD5' % (realm, nonce)
        self.send(401, b"digest needed", "text/plain", extra={"WWW-Authenticate": challenge})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


FAULT_PORTS = (0, 0, 0)


def fault_servers(host):
    """Starts the garbage, silent and refused ports on `host`; returns them."""
    sel = selectors.DefaultSelector()
    opened = {}  # socket -> time accepted

    def listener(kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, 0))
        s.listen(512)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, kind)
        return s.getsockname()[1]

    garbage = listener("garbage")
    silent = listener("silent")
    # bound but not listening: nothing else can take the port, and a
    # connection to it is refused
    refused_sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    refused_sock.bind((host, 0))
    refused = refused_sock.getsockname()[1]

    def close(c):
        try:
            sel.unregister(c)
        except (KeyError, ValueError):
            pass
        opened.pop(c, None)
        try:
            c.close()
        except OSError:
            pass

    def loop():
        keep = refused_sock  # noqa: F841 (the refused port stays bound)
        while True:
            for key, _ in sel.select(timeout=1.0):
                kind = key.data
                if kind in ("garbage", "silent"):
                    try:
                        c, _ = key.fileobj.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    if kind == "garbage":
                        # (the second byte is no TLS version: random bytes
                        # that read as a record header of a known version
                        # and a length past what was sent left a TLS client
                        # waiting for the rest until its timeout, now and
                        # then; found as a CI flake)
                        try:
                            c.send(b"\x00\xff" + os.urandom(2046))
                        except OSError:
                            pass
                    opened[c] = time.time()
                    sel.register(c, selectors.EVENT_READ, "conn")
                else:  # a held connection: read and drop, close on EOF
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        data = b""
                    if not data:
                        close(key.fileobj)
            now = time.time()
            for c, t in list(opened.items()):
                if now - t > 300 or len(opened) > 4000:
                    close(c)

    threading.Thread(target=loop, daemon=True).start()
    return garbage, silent, refused


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    srv = Server((host, 0), Handler)
    global FAULT_PORTS
    FAULT_PORTS = fault_servers(host)
    print("PORT %d" % srv.server_address[1], flush=True)
    watched = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()

    lifeline.watch(watched)
    srv.serve_forever()


if __name__ == "__main__":
    main()
