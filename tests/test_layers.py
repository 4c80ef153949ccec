"""The package's shape: no import cycles, and no module importing from a layer above its own.

Imports inside functions count too: a lazy import is still a dependency. Imports under
``if TYPE_CHECKING:`` do not: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src" / "cnnlab"

# Bottom up. A module may import from its own layer and the layers below it.
LAYERS = [
    {"errors", "limits", "shapes", "atomic", "console"},  # plain helpers
    {"safeload", "layers"},
    {"models"},  # registry and families
    {"analysis", "data"},
    {"checkpoint"},  # the checkpoint file format
    {"runs"},  # the run folder
    {"sources", "catalog"},  # which network a name means; the zoo's table
    {"train", "scratch", "export"},
    {"tour"},  # the calculator's tour (the picture tour quotes its stops)
    {"viz"},
    {"experiments"},  # the papers' experiments: runs, then tables and plots
    {"lab"},  # the queries: one document per question
    {"web"},
    {"cli", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _graph() -> dict[str, set[str]]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(("cnnlab", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("cnnlab"):
                # "from package import submodule" depends on the submodule, not on the package's __init__
                names = [f"{node.module}.{a.name}" for a in node.names]
                targets = [n for n in names if n in modules] or [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only, never imported at run time)."""
    nodes, todo = [], [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return nodes


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_module_has_a_layer() -> None:
    tops = {_top(m) for m in _graph()} - {""}
    assert tops <= set(RANK), f"give these a layer in LAYERS: {sorted(tops - set(RANK))}"


def test_no_module_imports_from_a_layer_above() -> None:
    upward = sorted(f"{m} -> {d}" for m, deps in _graph().items() for d in deps
                    if _top(m) and _top(d) and RANK[_top(d)] > RANK[_top(m)])
    assert upward == []


def test_no_import_cycles() -> None:
    graph = _graph()
    # The package itself (cnnlab/__init__.py) only re-exports lazily; its edges are not dependencies.
    graph = {m: {d for d in deps if d != "cnnlab"} for m, deps in graph.items() if m != "cnnlab"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == []
