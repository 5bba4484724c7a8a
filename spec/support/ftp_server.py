#!/usr/bin/env python3
"""Loopback FTP fixture for the specs (pyftpdlib, anonymous, read-only).

Usage: ftp_server.py ROOT [PID]. Serves directory ROOT to anonymous users on
an ephemeral 127.0.0.1 port (passive data ports ephemeral too), prints
"PORT <n>" on its first line, and exits when process PID (default: its
parent) is gone, or on SIGTERM.
"""
import logging
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifeline  # noqa: E402

try:
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer
except ImportError as e:  # the spec marks its FTP cases pending on this
    print("NO-PYFTPDLIB %s" % e, flush=True)
    sys.exit(3)


def main():
    root = sys.argv[1]
    watched = int(sys.argv[2]) if len(sys.argv) > 2 else os.getppid()

    logging.basicConfig(level=logging.CRITICAL)
    auth = DummyAuthorizer()
    auth.add_anonymous(root, perm="elr")

    class Handler(FTPHandler):
        authorizer = auth
        banner = "spec ftp fixture"
        passive_ports = None  # any free port
        masquerade_address = None

        def log(self, *a, **k):
            pass

        def logline(self, *a, **k):
            pass

        def logerror(self, *a, **k):
            pass

    server = FTPServer(("127.0.0.1", 0), Handler)
    server.max_cons = 64
    print("PORT %d" % server.address[1], flush=True)

    lifeline.watch(watched)
    server.serve_forever(handle_exit=True)


if __name__ == "__main__":
    main()
