"""The import graph of src/unflat (every import, function-level ones included, read with ``ast``): no cycles, and
the core (engine, data, render, geometry, nets, losses, metrics) imports no method, no CLI and no application
module; nothing but ``python -m unflat`` imports the CLI."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
CORE = ("engine", "data", "render", "geometry", "nets", "losses", "metrics")
# What the core may not reach: methods compose the core, and these modules compose methods.
ABOVE_CORE = ("unflat.methods", "unflat.cli", "unflat.runs", "unflat.evaluate", "unflat.demo", "unflat.bench")
ENTRY_POINT = "unflat.__main__"


def module_files() -> dict[str, Path]:
    modules = {}
    for path in sorted((SRC / "unflat").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the unflat modules it imports (``from pkg import name`` counts as pkg.name when that is a module)."""
    modules = module_files()

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.split(".")[0] == "unflat"}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parents = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parents + ([base] if base else []))
                if base.split(".")[0] != "unflat":
                    continue
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    targets.add(full if full in modules else known(base))
        graph[module] = {t for t in targets if t is not None and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "unflat.engine.trainer" in graph and "unflat.methods.base" in graph
    assert "unflat.cli" in graph[ENTRY_POINT]
    # cli imports the registry inside cmd_train only: a function-level import must be seen
    assert "unflat.methods.registry" in graph["unflat.cli"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_core_imports_no_method_cli_or_application_module():
    graph = import_graph()
    bad = [f"{module} -> {target}" for module, targets in sorted(graph.items())
           if module.split(".")[1:2] and module.split(".")[1] in CORE
           for target in sorted(targets) if any(target == a or target.startswith(a + ".") for a in ABOVE_CORE)]
    assert not bad, "the core reaches above itself:\n" + "\n".join(bad)


def test_nothing_but_the_entry_point_imports_the_cli():
    graph = import_graph()
    importers = sorted(m for m, targets in graph.items() if "unflat.cli" in targets and m != ENTRY_POINT)
    assert not importers, f"imports unflat.cli: {importers}"
