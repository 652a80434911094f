"""braas_globus's own imports form no cycle.

Every module under ``braas_globus/`` is parsed with ``ast`` (nothing is imported), and each
``import braas_globus.x`` / ``from .x import y`` becomes an edge to the module it names:
``from .pkg import name`` points at ``pkg.name`` where that is a module, else at ``pkg``.
Imports at module level and inside functions both count: a function-level import is the
same dependency, only deferred, and deferring one is how a cycle hides. Imports under
``if TYPE_CHECKING:`` do not count: they never run. Importing ``a.b`` also runs ``a``'s
``__init__``, but that is not counted as an edge: a package initialised first is no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import braas_globus

PACKAGE = Path(braas_globus.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        elif isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)  # the body never runs
            continue
        todo.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports."""
    files = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
                continue
            if node.level:
                parts = here.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] +
                                ([node.module] if node.module else []))
            else:
                base = node.module or ""
            edges.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base
                         for alias in node.names)
        graph[name] = {edge for edge in edges if edge in files and edge != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path, on_path, stack = [start], {start}, [iter(sorted(graph[start]))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                stack.pop()
            elif step in on_path:
                return path[path.index(step):] + [step]
            elif step not in done:
                path.append(step)
                on_path.add(step)
                stack.append(iter(sorted(graph[step])))
    return None


def tangles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The groups of modules that import each other, directly or round about (the strongly
    connected components with more than one module)."""
    reach = {name: _reachable(graph, name) for name in graph}
    groups = {frozenset({name} | {other for other in reach[name] if name in reach[other]})
              for name in graph if name in reach[name]}
    return sorted(groups, key=sorted)


def _reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(graph[name])
    return seen


# Cycles known and accepted for now (none): a new one fails test_no_import_cycles.
KNOWN: set[frozenset[str]] = set()


def test_the_graph_sees_both_kinds_of_import():
    graph = import_graph()
    assert "braas_globus.cli.common" in graph["braas_globus.cli.jobs"]  # module level
    assert "braas_globus.dispatch.globus" in graph["braas_globus.dispatch"]  # in a function
    assert "braas_globus.store" not in graph["braas_globus.views"]  # under TYPE_CHECKING
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = import_graph()
    new = [group for group in tangles(graph) if group not in KNOWN]
    cycles = [find_cycle({name: graph[name] & group for name in group}) for group in new]
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c or []) for c in cycles)


def test_the_known_cycles_are_still_there():
    """When one is gone, take it off KNOWN, so that it cannot come back unseen."""
    assert set(tangles(import_graph())) >= KNOWN
