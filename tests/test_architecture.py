"""The house rules the code is held to: no import circles (counting imports inside functions, which only hide a
circle until the function runs), and the command line's entry file only imports the command."""

from __future__ import annotations

import ast

from fundform.paths import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "fundform"


def import_graph() -> dict[str, set[str]]:
    mods = {}
    for f in PACKAGE.rglob("*.py"):
        name = ".".join(f.relative_to(PROJECT_ROOT).with_suffix("").parts)
        mods[name.removesuffix(".__init__")] = f
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fundform"):
                graph[m] |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in mods}
                graph[m] |= {node.module} & set(mods)
            elif isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names if a.name in mods}
    for m in graph:  # the package's __init__ only names the API lazily; a module importing itself is no circle
        graph[m] -= {"fundform", m}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(u: str) -> None:
        state[u] = 1
        stack.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == 1:
                found.append(stack[stack.index(v):] + [v])
            elif v not in state:
                visit(v)
        stack.pop()
        state[u] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


def test_the_import_graph_has_no_circle():
    graph = import_graph()
    assert len(graph) > 30 and graph["fundform.levels"] >= {"fundform.pipeline", "fundform.geography"}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_top_level_cli_only_imports_the_command():
    tree = ast.parse((PROJECT_ROOT / "cli.py").read_text())
    defs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    assert defs == []
    assert any(isinstance(n, ast.ImportFrom) and n.module == "fundform.cli" for n in tree.body)
