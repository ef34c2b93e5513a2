#!/usr/bin/env python3
"""The `use` graph between the product crate's top-level modules, and its circles.

Reads src/ (a module's own file `src/m.rs` and everything under `src/m/`), collects every
`crate::a::…` path — in `use` lines and inline — and draws an edge m → a for each top-level
module `a` that `m` names, tests (`#[cfg(test)]` files under `tests`) left out. Prints the
edges, then every strongly connected component of more than one module: a circle.

  python3 .ci/module_graph.py            edges and circles; exit 1 if there is a circle
  python3 .ci/module_graph.py --dot      the graph in Graphviz's dot language
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
ROOT_FILES = {"lib.rs", "main.rs"}
PATH = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")
USE_GROUP = re.compile(r"\buse\s+crate::\{([^;]*)\}", re.S)


def strip_tests(text):
    """Drops `#[cfg(test)] mod tests { … }` blocks and comments."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def module_of(path):
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        return None if rel.name in ROOT_FILES else rel.stem
    return rel.parts[0]


def is_test_file(path):
    rel = path.relative_to(SRC)
    return "tests" in [p.removesuffix(".rs") for p in rel.parts[1:]]


def graph():
    modules = {module_of(p) for p in SRC.rglob("*.rs")} - {None}
    edges = {m: set() for m in modules}
    for p in SRC.rglob("*.rs"):
        m = module_of(p)
        if m is None or is_test_file(p):
            continue
        text = strip_tests(p.read_text())
        names = set(PATH.findall(text))
        for group in USE_GROUP.findall(text):
            names |= {re.split(r"\W", g.strip())[0] for g in group.split(",") if g.strip()}
        for n in names:
            if n in modules and n != m:
                edges[m].add(n)
    return edges


def circles(edges):
    """Tarjan's strongly connected components, keeping those of two or more modules."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    edges = graph()
    if "--dot" in sys.argv:
        print("digraph portcullis {\n  rankdir=LR;")
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f'  "{m}" -> "{t}";')
        print("}")
        return
    for m in sorted(edges):
        print(f"{m:<12} -> {', '.join(sorted(edges[m])) or '(leaf)'}")
    found = circles(edges)
    print()
    if not found:
        print("no circles")
        return
    for c in found:
        print("circle:", " <-> ".join(c))
    sys.exit(1)


if __name__ == "__main__":
    main()
