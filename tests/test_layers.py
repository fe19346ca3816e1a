"""The layering rules of docs/architecture.rst, read from the source (imports at any depth,
lazy ones included): no import circle between modules, no private name imported from
another module, and io/ imports nothing from models/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pycroscopy_bevae"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(modules: dict[str, Path]) -> tuple[dict[str, set[str]], list[str]]:
    """Module -> the package modules it imports; and every private name imported across."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    private = []
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("pycroscopy_bevae"):
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                dest = sub if sub in modules else target
                if dest in modules and dest != mod:
                    graph[mod].add(dest)
                if alias.name.startswith("_") and not alias.name.startswith("__") \
                        and sub not in modules:
                    private.append(f"{mod} imports {alias.name} from {target}")
    return graph, private


def _cycles(graph: dict[str, set[str]], nodes: set[str]) -> list[list[str]]:
    """Import circles among ``nodes`` (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v] & nodes:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_no_private_cross_import_and_io_knows_no_models():
    modules = _modules()
    graph, private = _imports(modules)
    plain = {m for m, p in modules.items() if p.name != "__init__.py"}  # re-exports aside
    assert _cycles(graph, plain) == []
    assert private == []
    io_to_models = sorted(f"{m} -> {d}" for m in graph for d in graph[m]
                          if m.startswith("pycroscopy_bevae.io") and
                          d.startswith("pycroscopy_bevae.models"))
    assert io_to_models == []


def test_the_check_sees_a_circle_and_a_private_import():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph, set(graph)) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}, {"a", "b"}) == []
