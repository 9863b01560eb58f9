"""The import graph of workbench, collectors and probes has no cycle, and export's worker stays light.

Why read the source with `ast` instead of importing it: a cycle that happens to resolve in today's
import order still breaks the first time someone imports the modules in another order (a worker
process, a test run alone), and it means two modules cannot be understood one without the other. The
graph is what runs at import time: module-level imports, class bodies, and `if TYPE_CHECKING:` blocks
(they hide a cycle from the interpreter, not from the reader or mypy); imports inside function bodies
are deferred on purpose and left out. Importing `a.b.c` runs `a/__init__` and `a/b/__init__` first, so
it counts as importing those packages as well, except from inside them: for `a.b.x`, `a.b` is already
running, so its `import a.b.c` adds only `a.b.c`, while `from a.b import name` adds `a.b` itself.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import deque
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("workbench", "collectors", "probes")


def _module_names() -> dict[str, Path]:
    """Every module of the three packages by dotted name (a package by its `__init__.py`)."""
    out: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported: not those inside functions or lambdas."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            continue
        stack.extend(ast.iter_child_nodes(node))


def _with_parents(name: str) -> list[str]:
    """`a.b.c` -> [a, a.b, a.b.c]: importing a module runs each enclosing package's `__init__` first."""
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _encloses(package: str, module: str) -> bool:
    """True when `module` lives inside `package`: its `__init__` already ran (or is running) before
    `module` did, so reaching it again on the way to a sibling runs nothing. Naming the package itself
    (`from package import name`) still counts: that reads names its `__init__` may not have bound yet."""
    return module.startswith(package + ".")


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports at import time."""
    modules = _module_names()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        targets: set[str] = set()
        for node in _import_time_nodes(tree.body):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # `from pkg import sub` imports the submodule when `sub` is one; only names that are not
            # submodules are read from `pkg`'s own `__init__`
            subs = {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules}
            targets.update(subs)
            if len(subs) < len(node.names):
                targets.add(base)
        for target in targets:
            graph[name].update(
                m
                for m in _with_parents(target)
                if m in modules and m != name and (m == target or not _encloses(m, name))
            )
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (the graph is a few hundred modules, recursion would do too)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module, shortest first, to name in the failure."""
    members = set(component)
    start = component[0]
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle through {start}")  # a component of two or more always has one


def import_cycles() -> list[list[str]]:
    graph = import_graph()
    return [_shortest_cycle(graph, component) for component in _strongly_connected(graph)]


def test_the_graph_sees_imports_the_way_python_runs_them() -> None:
    graph = import_graph()
    # a submodule import counts for its package; a deferred import in a function does not
    assert {"workbench.store", "workbench.store.connection", "workbench.store.verify"} <= graph[
        "workbench.export.bundle"
    ]
    assert "workbench.export.report" not in graph["workbench.export.bundle"]
    # `from collectors.conventions import sdk` names a submodule
    assert "collectors.conventions.sdk" in graph["collectors.normalize"]


def test_tarjan_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _strongly_connected(graph) == [["a", "b", "c"]]
    assert _shortest_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    cycles = import_cycles()
    assert not cycles, "import cycles (each: one module importing the next at import time):\n" + "\n".join(
        " -> ".join(cycle) for cycle in cycles
    )


def test_a_verify_worker_process_loads_neither_the_writer_nor_redaction_nor_the_report() -> None:
    """What a verify worker imports, in a fresh interpreter: the line check and its few helpers only."""
    probe = (
        "import sys, workbench.export.verify_workers; "
        "print('\\n'.join(m for m in sys.modules if m.startswith('workbench')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "workbench.export.verify_workers" in loaded
    heavy = {
        "workbench.export.bundle",
        "workbench.export.bundle_files",
        "workbench.export.bundle_select",
        "workbench.export.redact",
        "workbench.export.report",
        "workbench.sensitive",
        "workbench.store.connection",
    }
    assert not heavy & set(loaded), sorted(heavy & set(loaded))


def test_importing_a_package_does_not_import_its_submodules() -> None:
    """Lazy package fronts: `import workbench.export` (or policies, or conventions) costs nothing until a
    name is used, and the names callers use still resolve."""
    probe = (
        "import sys, workbench.export, workbench.policies, collectors.conventions; "
        "before = sorted(m for m in sys.modules if m.startswith(('workbench.', 'collectors.'))); "
        "from workbench.export import ExportOptions, export_bundle, verify_bundle, signing; "
        "from workbench.policies import Rule; "
        "assert export_bundle.__module__ == 'workbench.export.bundle'; "
        "assert Rule.__module__ == 'workbench.policies.rules'; "
        "print('\\n'.join(before))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert sorted(loaded) == ["collectors.conventions", "workbench.export", "workbench.policies"]
