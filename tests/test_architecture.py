"""The structure the code keeps: layers point one way, no import cycle, short functions."""

import ast
import os
import pathlib

from helpers import ROOT

PACKAGE = pathlib.Path(ROOT) / "slowfast"
BOTTOM_LAYERS = ("slowfast.utils", "slowfast.config")
BOTTOM_MAY_IMPORT = ("slowfast.utils", "slowfast.config", "slowfast.errors", "slowfast.paths")


def module_name(path: pathlib.Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name[: -len(".__init__")] if name.endswith(".__init__") else name


def imports_of(path: pathlib.Path, modules: set) -> set:
    """Project modules imported anywhere in the file (function-local imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("slowfast"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("slowfast"))
    return found & modules


def import_graph() -> dict:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = imports_of(path, set(files))
        for d in list(deps):  # importing a.b.c runs a.b's __init__ too
            parts = d.split(".")
            deps.update(".".join(parts[:i]) for i in range(2, len(parts)) if not name.startswith(".".join(parts[:i]) + "."))
        graph[name] = deps - {name}
    return graph


def test_utils_and_config_import_nothing_above_them():
    upward = [(m, d) for m, deps in import_graph().items() if m.startswith(BOTTOM_LAYERS)
              for d in deps if not d.startswith(BOTTOM_MAY_IMPORT)]
    assert upward == []


def first_cycle(graph: dict) -> list:
    """A cycle of `graph` (node -> set of nodes) as [a, b, ..., a], or [] when there is none."""
    state: dict = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, trail + [nxt])
                if found:
                    return found
        state[node] = "done"
        return []

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return []


def test_the_cycle_finder_finds_a_cycle_and_only_a_cycle():
    assert first_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert first_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_module_import_cycle():
    assert first_cycle(import_graph()) == []


def package_graph() -> dict:
    """Arrows between the top-level parts of the package (slowfast.clip, slowfast.models, slowfast.text, ...)."""
    def top(module: str) -> str:
        return ".".join(module.split(".")[:2])

    edges: dict = {}
    for module, deps in import_graph().items():
        edges.setdefault(top(module), set()).update(top(d) for d in deps if top(d) != top(module))
    return edges


def test_top_level_packages_import_each_other_in_one_direction_only():
    edges = package_graph()
    both_ways = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    assert both_ways == []
    assert "slowfast.clip" in edges and not edges["slowfast.clip"] & {"slowfast.models", "slowfast.text"}


def test_no_cycle_between_top_level_packages():
    assert first_cycle(package_graph()) == []


def test_no_function_in_the_package_is_over_60_lines():
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                long.append(f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name}")
    assert long == []
