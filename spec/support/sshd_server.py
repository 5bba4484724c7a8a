#!/usr/bin/env python3
"""Loopback SSH/SFTP fixture for the specs: a private OpenSSH sshd.

Usage: sshd_server.py [PID]. Makes a temporary directory with an ed25519
host key, a client key pair allowed to log in as the current user, and an
sshd_config; listens on an ephemeral 127.0.0.1 port and runs one
`sshd -i -e -f CONFIG` (inetd mode) per accepted connection, so the port is
never guessed. Prints

    DIR <the temporary directory>
    PORT <n>

then serves until process PID (default: its parent) is gone, or SIGTERM, and
removes the directory. In DIR: host_ed25519(.pub), client_ed25519(.pub),
sshd.log (sshd's stderr) and files/hello.txt. When sshd cannot be used it
prints "NO-SSHD <reason>" instead and exits with status 3.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lifeline  # noqa: E402


def fail(reason):
    print("NO-SSHD %s" % reason, flush=True)
    sys.exit(3)


def find_sshd():
    for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd", shutil.which("sshd")):
        if p and os.access(p, os.X_OK):
            return p
    return None


def main():
    watched = int(sys.argv[1]) if len(sys.argv) > 1 else os.getppid()
    sshd = find_sshd()
    if not sshd:
        fail("sshd not installed (Debian package openssh-server)")
    keygen = shutil.which("ssh-keygen")
    if not keygen:
        fail("ssh-keygen not installed (Debian package openssh-client)")
    # sshd's privilege separation needs its empty directory.
    try:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    except OSError as e:
        fail("cannot create /run/sshd: %s" % e)

    d = tempfile.mkdtemp(prefix="spec-sshd-")
    os.chmod(d, 0o755)
    for name in ("host_ed25519", "client_ed25519"):
        r = subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", name,
                            "-f", os.path.join(d, name)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            shutil.rmtree(d, ignore_errors=True)
            fail("ssh-keygen failed: %s" % r.stderr.decode(errors="replace").strip())
    shutil.copy(os.path.join(d, "client_ed25519.pub"), os.path.join(d, "authorized_keys"))
    os.makedirs(os.path.join(d, "files"))
    with open(os.path.join(d, "files", "hello.txt"), "w") as f:
        f.write("hello over sftp\n")

    cfg = os.path.join(d, "sshd_config")
    with open(cfg, "w") as f:
        f.write("\n".join([
            "HostKey %s/host_ed25519" % d,
            "PidFile none",
            "AuthorizedKeysFile %s/authorized_keys" % d,
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "Subsystem sftp internal-sftp",
            "LogLevel ERROR",
            "",
        ]))

    # Check the configuration before announcing the port.
    r = subprocess.run([sshd, "-t", "-f", cfg], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT)
    if r.returncode != 0:
        shutil.rmtree(d, ignore_errors=True)
        fail("sshd -t: %s" % r.stdout.decode(errors="replace").strip())

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    print("DIR %s" % d, flush=True)
    print("PORT %d" % srv.getsockname()[1], flush=True)

    children = []
    log = open(os.path.join(d, "sshd.log"), "ab")

    def finish(*_):
        for p in children:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        shutil.rmtree(d, ignore_errors=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)

    def reap():
        children[:] = [p for p in children if p.poll() is None]

    lifeline.watch(watched, on_exit=finish, every=reap)

    while True:
        conn, _ = srv.accept()
        try:
            p = subprocess.Popen([sshd, "-i", "-e", "-f", cfg], stdin=conn, stdout=conn,
                                 stderr=log, close_fds=True)
            children.append(p)
        except OSError as e:
            log.write(("spawn failed: %s\n" % e).encode())
            log.flush()
        finally:
            conn.close()


if __name__ == "__main__":
    main()
