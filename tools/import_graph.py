"""The import graph of the ``mgr`` package, read from the source (no import runs).

Every ``import`` and ``from ... import`` counts, at module level and inside
functions (a deferred import still ties the two modules together), except
those under ``if TYPE_CHECKING:``, which never run. Relative imports are
resolved against the importing module's package; ``from pkg import name``
is an edge to ``pkg.name`` when that is a module, else to ``pkg`` (its
``__init__``, whose own imports are its edges).

Usage::

    python tools/import_graph.py            # cycles and layer violations; exit 1 if any
    python tools/import_graph.py --edges    # also every edge, "a -> b"

The layers (lowest first) are :data:`LAYERS`; a module may import its own
layer or lower ones. ``tests/test_import_graph.py`` runs the check.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "mgr"

#: (name, module prefixes), lowest layer first. The most specific prefix wins.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "mgr.errors",
            "mgr.options",
            "mgr.fileio",
            "mgr.batch",
            "mgr.skeletons",
            "mgr.classes",
            "mgr.protocols",
            "mgr.metrics",
            "mgr.distributed",
        ),
    ),
    ("data", ("mgr.data",)),
    (
        "training",
        (
            "mgr.callbacks",
            "mgr.datamodules",
            "mgr.models",
            "mgr.predictions",
        ),
    ),
    (
        "applications",
        (
            "mgr.features",
            "mgr.fusion",
            "mgr.pseudo_label",
            "mgr.detect",
            "mgr.recognize",
            "mgr.check",
            "mgr.annotate",
        ),
    ),
    ("command line", ("mgr.cli", "mgr.__main__", "mgr")),
]


def module_name(path: Path, root: Path = ROOT) -> str:
    """``mgr/data/__init__.py`` -> ``mgr.data``; ``mgr/cli.py`` -> ``mgr.cli``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of ``package`` under ``root``: dotted name -> file."""
    return {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}


def _type_checking_lines(tree: ast.AST) -> set[int]:
    """Line numbers of the statements under ``if TYPE_CHECKING:`` (never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    lines.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    return lines


def imports_of(name: str, path: Path, modules: Iterable[str]) -> set[str]:
    """The ``mgr`` modules that module ``name`` (file ``path``) imports."""
    known = set(modules)
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    found: set[str] = set()

    def resolve(target: str) -> str | None:
        # the longest known prefix: `mgr.data.readers.smg.load` -> `mgr.data.readers.smg`
        while target and target not in known:
            target = target.rpartition(".")[0]
        return target or None

    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    hit = resolve(alias.name)
                    if hit:
                        found.add(hit)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if source.split(".")[0] != PACKAGE:
                continue
            for alias in node.names:
                full = f"{source}.{alias.name}"
                hit = full if full in known else resolve(source)
                if hit:
                    found.add(hit)
    found.discard(name)
    return found


def import_graph(root: Path = ROOT, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module of ``package``."""
    modules = find_modules(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the most specific prefix matching ``module``."""
    best, best_len = None, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    if best is None:
        raise KeyError(f"{module} is in no layer of tools/import_graph.py LAYERS")
    return best


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Edges from a module to a module of a higher layer, as ``"a (layer) -> b (layer)"``."""
    bad = []
    for a in sorted(graph):
        for b in sorted(graph[a]):
            la, lb = layer_of(a), layer_of(b)
            if lb > la:
                bad.append(f"{a} ({LAYERS[la][0]}) -> {b} ({LAYERS[lb][0]})")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Print the cycles and layer violations; exit status 1 if there are any."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=ROOT, help="folder holding the mgr package")
    p.add_argument("--edges", action="store_true", help="also print every edge")
    a = p.parse_args(argv)
    graph = import_graph(a.root)
    if a.edges:
        for src in sorted(graph):
            for dst in sorted(graph[src]):
                print(f"{src} -> {dst}")
    found = cycles(graph)
    bad = layer_violations(graph)
    edges = sum(len(v) for v in graph.values())
    print(f"{len(graph)} modules, {edges} imports, {len(found)} cycle(s), {len(bad)} violation(s)")
    for component in found:
        print("cycle: " + " <-> ".join(component))
    for line in bad:
        print("layer: " + line)
    return 1 if found or bad else 0


if __name__ == "__main__":
    sys.exit(main())
