#!/usr/bin/env python3
"""Import graph of the crate's top-level modules (src/X.rs or src/X/), from
the `crate::X` paths in each file; prints the modules in dependency order
(each imports only from those above it) and every import cycle. Exits 1
if there is a cycle.   usage: scripts/imports.py [SRC_DIR]"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")
mods = {}
for name in sorted(os.listdir(src)):
    path = os.path.join(src, name)
    if name.endswith(".rs") and name != "lib.rs":
        mods[name[:-3]] = [path]
    elif os.path.isdir(path):
        mods[name] = [os.path.join(dp, f) for dp, _, fs in os.walk(path) for f in fs if f.endswith(".rs")]
mods["lib"] = [os.path.join(src, "lib.rs")]

edges = {m: set() for m in mods}
for m, files in mods.items():
    for f in files:
        text = open(f).read()
        text = re.sub(r"//[^\n]*", "", text)  # comments (doc links name modules)
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            for part in group.split(","):
                dep = part.strip().split("::")[0]
                if dep in mods and dep != m:
                    edges[m].add(dep)
        for dep in re.findall(r"crate::(\w+)", text):
            if dep in mods and dep != m:
                edges[m].add(dep)
    if m == "lib":
        edges[m] |= {d for d in mods if d != "lib"}

# strongly connected components (Tarjan)
index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
def visit(v):
    index[v] = low[v] = counter[0]; counter[0] += 1
    stack.append(v); on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v:
                break
        sccs.append(sorted(comp))
sys.setrecursionlimit(10000)
for v in sorted(mods):
    if v not in index:
        visit(v)
cycles = [c for c in sccs if len(c) > 1]
# Tarjan emits components in reverse topological order: dependencies first
order = [c[0] for c in sccs if len(c) == 1]
for m in order:
    deps = ", ".join(sorted(edges[m])) if m != "lib" else "(everything)"
    print(f"{m:10} <- {deps}")
for c in cycles:
    print("CYCLE: " + " <-> ".join(c))
print(f"{len(mods)} modules, {sum(len(e) for e in edges.values())} imports, {len(cycles)} cycles")
sys.exit(1 if cycles else 0)
