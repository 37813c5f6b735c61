"""The import graph of the project's own modules: no cycle, and every arrow points down DESIGN.md's layout table.

Layers, top to bottom: `nas` ← `predictors` ← `hw_profiles` ← `supernet` (a module imports only its own layer and
those below). Inside `nas`: the library (`nas.search`, `nas.export`, `nas.experiment`) imports neither the service
(`nas.service`) nor the web app (`nas.api`), and the service does not import the web app. Imports inside functions
count: a lazy import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("supernet", "hw_profiles", "predictors", "nas")
LAYER = {name: i for i, name in enumerate(PACKAGES)}
LIBRARY = ("nas.search", "nas.export", "nas.experiment")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (a name imported from a module maps to that module)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import sub` imports the submodule pkg.sub where one exists
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for target in targets:
                dep = _resolve(target, modules)
                if dep is not None and dep != mod:
                    graph[mod].add(dep)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _within(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


def upward_arrows(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            top, dep_top = mod.split(".")[0], dep.split(".")[0]
            if LAYER[dep_top] > LAYER[top]:
                bad.append(f"{mod} -> {dep}")
            elif any(_within(mod, lib) for lib in LIBRARY) and (_within(dep, "nas.service") or _within(dep, "nas.api")):
                bad.append(f"{mod} -> {dep}")
            elif _within(mod, "nas.service") and _within(dep, "nas.api"):
                bad.append(f"{mod} -> {dep}")
    return bad


def test_graph_sees_the_project():
    graph = import_graph()
    assert {"supernet.space", "nas.service.worker", "nas.search", "predictors.api"} <= set(graph)
    assert "nas.service.store" in graph["nas.service.worker"]  # `from nas.service.store import ...`
    assert "supernet.errors" in graph["supernet.space"]


def test_no_upward_arrow():
    assert upward_arrows(import_graph()) == []


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_checks_catch_an_upward_arrow_and_a_cycle():
    graph = {"supernet.a": {"nas.b"}, "nas.b": {"supernet.a"}, "nas.export.c": {"nas.api.d"}, "nas.api.d": set()}
    assert _cycles(graph) == [["nas.b", "supernet.a"]]
    assert upward_arrows(graph) == ["nas.export.c -> nas.api.d", "supernet.a -> nas.b"]
