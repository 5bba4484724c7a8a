#!/usr/bin/env python3
"""Scripted RTSP fixture for the specs (loopback only).

Usage: rtsp_server.py [HOST [PID]]. Prints "PORT <n>" on its first line,
then serves until process PID (default: its parent) is gone, or SIGTERM.

Every response echoes the request's CSeq. Requests (by method and the path
of the request URI):

  OPTIONS *                 200, Public: the methods below
  DESCRIBE /media/...       200, an SDP body (application/sdp)
  SETUP /media/...          200, Session: <new id>, Transport echoed
  PLAY /media/K             200 (Session echoed), then K interleaved frames
                            1..K, in the same send as the response
  OPTIONS /push/SESSION/N   200 on this connection; then the next N frames
                            of SESSION are sent on SESSION's connection (for
                            CURL_RTSPREQ_RECEIVE)
  TEARDOWN /media/...       200, ends the session
  anything else             501

Frame i (numbered per session from 1) is `$`, channel (i-1) % 2, a 16-bit
big-endian length, and payload(i) = b"frame <i>|" followed by i*3000 bytes
(i*37 + j) % 256, j = 0, 1, ... (so frames get larger than libcurl's
16 KiB receive buffer).
"""
import os
import socket
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifeline  # noqa: E402

SDP = (b"v=0\r\n"
       b"o=- 1 1 IN IP4 127.0.0.1\r\n"
       b"s=spec fixture\r\n"
       b"m=video 0 RTP/AVP 96\r\n"
       b"a=rtpmap:96 H264/90000\r\n")


def payload(i):
    return b"frame %d|" % i + bytes((i * 37 + j) % 256 for j in range(i * 3000))


def frame(i):
    p = payload(i)
    return b"$" + struct.pack(">BH", (i - 1) % 2, len(p)) + p


class Session:
    def __init__(self, sid, conn, lock):
        self.sid, self.conn, self.lock, self.sent = sid, conn, lock, 0

    def frames(self, n):
        out = b"".join(frame(self.sent + k) for k in range(1, n + 1))
        self.sent += n
        return out


sessions = {}
sessions_lock = threading.Lock()
next_id = [12345678]


def read_request(f):
    line = f.readline()
    if not line:
        return None
    line = line.strip()
    while line == b"":  # tolerate blank lines between requests
        line = f.readline()
        if not line:
            return None
        line = line.strip()
    headers = {}
    while True:
        h = f.readline()
        if not h or h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length") or 0)
    body = f.read(n) if n else b""
    parts = line.decode("latin-1").split()
    return parts, headers, body


def serve(conn):
    lock = threading.Lock()
    f = conn.makefile("rb")
    mine = []

    def send(data):
        with lock:
            conn.sendall(data)

    try:
        while True:
            req = read_request(f)
            if req is None:
                break
            parts, headers, _ = req
            method = parts[0] if parts else ""
            uri = parts[1] if len(parts) > 1 else ""
            path = urlsplit(uri).path if "://" in uri else uri
            cseq = headers.get("cseq", "0")
            head = "RTSP/1.0 %s\r\nCSeq: %s\r\n"
            extra, body, after = "", b"", b""
            status = "200 OK"
            if method == "OPTIONS" and path.startswith("/push/"):
                _, _, sid, n = path.split("/")[:4]
                with sessions_lock:
                    s = sessions.get(sid)
                if s is None:
                    status = "454 Session Not Found"
                else:
                    data = s.frames(int(n))
                    with s.lock:
                        s.conn.sendall(data)
            elif method == "OPTIONS":
                extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
            elif method == "DESCRIBE":
                extra = "Content-Type: application/sdp\r\nContent-Base: %s/\r\n" % uri
                body = SDP
            elif method == "SETUP":
                with sessions_lock:
                    sid = str(next_id[0])
                    next_id[0] += 1
                    s = Session(sid, conn, lock)
                    sessions[sid] = s
                    mine.append(sid)
                extra = "Session: %s;timeout=60\r\nTransport: %s\r\n" % (
                    sid, headers.get("transport", ""))
            elif method == "PLAY":
                sid = headers.get("session", "").split(";")[0]
                with sessions_lock:
                    s = sessions.get(sid)
                if s is None:
                    status = "454 Session Not Found"
                else:
                    extra = "Session: %s\r\nRange: npt=0.000-\r\n" % sid
                    k = path.rstrip("/").split("/")[-1]
                    after = s.frames(int(k) if k.isdigit() else 0)
            elif method == "TEARDOWN":
                sid = headers.get("session", "").split(";")[0]
                with sessions_lock:
                    sessions.pop(sid, None)
                extra = "Session: %s\r\n" % sid
            else:
                status = "501 Not Implemented"
            msg = (head % (status, cseq) + extra +
                   "Content-Length: %d\r\n\r\n" % len(body)).encode("latin-1")
            send(msg + body + after)
    except (OSError, ValueError):
        pass
    finally:
        with sessions_lock:
            for sid in mine:
                sessions.pop(sid, None)
        try:
            conn.close()
        except OSError:
            pass


def main():
    host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
    watched = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, 0))
    srv.listen(32)
    print("PORT %d" % srv.getsockname()[1], flush=True)

    lifeline.watch(watched)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
