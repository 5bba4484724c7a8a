#!/usr/bin/env python3
"""Self instruction counts of a callgrind output file, summed per object
(shared library or executable): prints "total module libcurl libc lua"."""
import re
import sys

names = {}
per_obj = {}
cur = None
skip_next = False
with open(sys.argv[1], errors="replace") as f:
    for line in f:
        if line.startswith("ob="):
            m = re.match(r"ob=\((\d+)\)(?: (.*))?", line.strip())
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                cur = m.group(1)
            else:
                cur = line[3:].strip()
                names.setdefault(cur, cur)
            continue
        if line.startswith("cob="):
            m = re.match(r"cob=\((\d+)\) (.*)", line.strip())
            if m:
                names[m.group(1)] = m.group(2)
            continue
        if line.startswith("calls="):
            skip_next = True
            continue
        if line and (line[0].isdigit() or line[0] in "+-*"):
            parts = line.split()
            if skip_next:
                skip_next = False
                continue
            if len(parts) >= 2 and cur is not None:
                per_obj[cur] = per_obj.get(cur, 0) + int(parts[1])
total = sum(per_obj.values())
groups = {"module": 0, "libcurl": 0, "libc": 0, "lua": 0}
for ob, n in per_obj.items():
    base = names.get(ob, ob).rsplit("/", 1)[-1]
    if base.startswith("libcurl"):
        groups["libcurl"] += n
    elif base in ("curl.so",) or "lcurlsock" in base:
        groups["module"] += n
    elif base.startswith("libc.so") or base.startswith("libc-"):
        groups["libc"] += n
    elif "lua" in base:
        groups["lua"] += n
print(total, groups["module"], groups["libcurl"], groups["libc"], groups["lua"])
