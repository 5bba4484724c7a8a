#!/usr/bin/python3
"""Runs a command and prints "elapsed_s user_s sys_s maxrss_kb" for it, with
microsecond resolution (GNU time prints only hundredths of a second).
usage: measure.py OUTFILE CMD..."""
import os
import resource
import subprocess
import sys
import time

out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.monotonic()
p = subprocess.Popen(cmd)
_, status, ru = os.wait4(p.pid, 0)
elapsed = time.monotonic() - t0
with open(out, "w") as f:
    f.write(f"{elapsed:.6f} {ru.ru_utime:.6f} {ru.ru_stime:.6f} {ru.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status))
