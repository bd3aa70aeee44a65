"""The project's import graph: layers only point down, no cycles (lazy imports included), no private names.

Run it as a script to print the graph (``python tests/test_import_graph.py``); pytest fails on any
upward import, cycle or private-name import, naming the module, the line and the rule.

Layers, lowest first (DESIGN.md, "Layout and layering"); a module may import its own layer or lower:

=====  ==============================  ======================================================
rank   modules                         may import
=====  ==============================  ======================================================
0      ``janus_env``                   numpy, numba, pandas, gymnasium, pettingzoo
1      ``wrappers``                    ``janus_env``
2      ``replay``, ``envs_registry``   ``janus_env``, ``wrappers`` (not each other)
3      ``agents`` (the models)         ``replay``, ``wrappers``, ``janus_env``
4      ``agents.app`` (application)    everything above
5      ``train``, ``evaluate``,        the application layer (and the registry, for ids)
       ``serve``
=====  ==============================  ======================================================

Every ``import``/``from … import`` counts wherever it stands (inside a function too), and so does
``importlib.import_module("…")`` with a literal name. A name starting with one underscore may only be
imported inside its own module; a private module (``janus_env._numba_cache``) only from its own package.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("janus_env", "wrappers", "replay", "envs_registry", "agents")
SCRIPTS = ("train", "evaluate", "serve")
APP = "agents.app"


class Edge(NamedTuple):
    source: str
    target: str
    line: int
    names: tuple[str, ...]


def layer(module: str) -> tuple[int, str]:
    """(rank, layer name) of a project module."""
    top = module.split(".")[0]
    if top in SCRIPTS:
        return 5, "cli"
    if module == APP or module.startswith(APP + "."):
        return 4, "app"
    return {"janus_env": (0, "janus_env"), "wrappers": (1, "wrappers"), "replay": (2, "replay"),
            "envs_registry": (2, "envs_registry"), "agents": (3, "agents")}[top]


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    for script in SCRIPTS:
        if (ROOT / f"{script}.py").is_file():
            found[script] = ROOT / f"{script}.py"
    return found


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    """The project module an import names (``a.b.c`` may be module ``a.b`` with attribute ``c``)."""
    parts = target.split(".")
    while parts:
        name = ".".join(parts)
        if name in known:
            return name
        parts.pop()
    return None


def edges() -> list[Edge]:
    known = modules()
    found = []
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[tuple[str, tuple[str, ...]]] = []
            if isinstance(node, ast.Import):
                targets = [(alias.name, ()) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                names = tuple(alias.name for alias in node.names)
                sub = [f"{base}.{n}" for n in names if f"{base}.{n}" in known]
                targets = [(t, ()) for t in sub] + [(base, tuple(n for n in names if f"{base}.{n}" not in known))]
            elif (isinstance(node, ast.Call)
                  and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
                  and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                targets = [(node.args[0].value, ())]
            for target, names in targets:
                resolved = _resolve(target, known)
                if resolved is not None and resolved != name:
                    found.append(Edge(name, resolved, node.lineno, names))
    return found


def problems(all_edges: list[Edge]) -> list[str]:
    out = []
    for e in all_edges:
        (rs, ls), (rt, lt) = layer(e.source), layer(e.target)
        if rt > rs or (rs == rt == 2 and ls != lt):
            out.append(f"{e.source}:{e.line} imports {e.target}: {ls} may not import {lt} (upward)")
        if rs == 5 and lt not in ("app", "envs_registry", "cli") and not e.target.startswith("janus_env.samples"):
            out.append(f"{e.source}:{e.line} imports {e.target}: a CLI calls the application layer only")
        private = [n for n in e.names if n.startswith("_") and not n.startswith("__")]
        if private:
            out.append(f"{e.source}:{e.line} imports private {private} from {e.target}")
        package, _, last = e.target.rpartition(".")
        inside = e.source == package or e.source.startswith(package + ".")
        if last.startswith("_") and not last.startswith("__") and not inside:
            out.append(f"{e.source}:{e.line} imports the private module {e.target} from outside its package")
    graph = defaultdict(set)
    for e in all_edges:
        graph[e.source].add(e.target)
    out += [f"import cycle: {' -> '.join(c)}" for c in cycles(graph)]
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component with more than one module (Tarjan)."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
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
                comps.append(sorted(comp) + [sorted(comp)[0]])

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return comps


def test_layers_point_down_without_cycles_or_private_names() -> None:
    found = problems(edges())
    assert not found, "\n".join(found)


def test_checker_catches_what_it_claims() -> None:
    bad = [Edge("janus_env.book", "wrappers.rules", 3, ()), Edge("wrappers.shield", "janus_env.book", 4, ("_slot_of",)),
           Edge("replay.swr", "envs_registry", 5, ()), Edge("agents.gaf", "agents.app.cli", 6, ()),
           Edge("agents.app.cli", "agents.gaf", 7, ()), Edge("wrappers.gaf", "janus_env._numba_cache", 8, ()),
           Edge("janus_env", "janus_env._numba_cache", 9, ())]
    found = problems(bad)
    assert any("janus_env may not import wrappers" in p for p in found)
    assert any("private ['_slot_of']" in p for p in found)
    assert any("replay may not import envs_registry" in p for p in found)
    assert any("agents may not import app" in p for p in found)
    assert any(p.startswith("import cycle: agents.app.cli -> agents.gaf") for p in found)
    assert any("private module janus_env._numba_cache" in p and p.startswith("wrappers.gaf") for p in found)
    assert not any(p.startswith("janus_env:9") for p in found)  # a package's own __init__ is inside it


if __name__ == "__main__":
    graph_edges = edges()
    by_layer = defaultdict(set)
    for e in graph_edges:
        by_layer[(layer(e.source)[1], layer(e.target)[1])].add(e.source)
    print("layer -> layer: importing modules")
    rank = {"janus_env": 0, "wrappers": 1, "replay": 2, "envs_registry": 2, "agents": 3, "app": 4, "cli": 5}
    for (a, b), sources in sorted(by_layer.items(), key=lambda kv: (rank[kv[0][0]], -rank[kv[0][1]])):
        print(f"  {a:>13} -> {b:<13} {len(sources):3d}  {', '.join(sorted(sources))}")
    found = problems(graph_edges)
    print(f"\n{len(found)} problem(s)" + (":\n  " + "\n  ".join(found) if found else ""))
    sys.exit(1 if found else 0)
