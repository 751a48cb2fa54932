"""The import graph of app/ and tasks/: no cycles, no function-local project imports without a
reason, and domain packages never import a channel (docs/architecture.md, "Where code lives").

Read from the source with `ast` (nothing is imported): an edge is a module-level
`import`/`from ... import` of a project module; imports under `if TYPE_CHECKING:` are not
edges (they never run). `from pkg import name` counts as an edge to `pkg.name` when that is a
module, else to `pkg`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "tasks")
DOMAIN_PACKAGES = (
    "app.users",
    "app.rbac",
    "app.jobs",
    "app.uploads",
    "app.flags",
    "app.audit",
    "app.storage",
    "app.exports",
    "app.notifications",
)
CHANNEL_MODULES = (
    "app.admin",
    "app.api",
    "app.account",
    "app.files",
    "app.auth.routes",
    "app.main",
    "app.health.routes",
    "app.mail.routes",
)


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    in_function: bool
    commented: bool


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _resolve(name: str) -> str | None:
    while name and name not in modules():
        name = name.rpartition(".")[0]
    return name or None


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.split(".")[0] in PACKAGES and (target := _resolve(alias.name)):
                yield target
        return
    base = node.module or ""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    if base.split(".")[0] not in PACKAGES:
        return
    for alias in node.names:
        full = f"{base}.{alias.name}"
        target = full if full in modules() else _resolve(base)
        if target:
            yield target


def _walk(node: ast.AST, module: str, path: Path, lines: list[str], in_function: bool, type_checking: bool):
    for child in ast.iter_child_nodes(node):
        function = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        checking = type_checking or (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test))
        if isinstance(child, ast.Import | ast.ImportFrom) and not type_checking:
            text = "\n".join(lines[child.lineno - 1 : child.end_lineno])
            before = lines[child.lineno - 2].strip() if child.lineno > 1 else ""
            commented = "#" in text or before.startswith("#")
            for target in _targets(child, module, path.name == "__init__.py"):
                if target != module:
                    yield Import(module, target, child.lineno, in_function, commented)
        yield from _walk(child, module, path, lines, function, checking)


@cache
def imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for module, path in modules().items():
        source = path.read_text()
        found.extend(_walk(ast.parse(source), module, path, source.splitlines(), False, False))
    return tuple(found)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for neighbour in graph.get(node, ()):
            if neighbour not in index:
                connect(neighbour)
                low[node] = min(low[node], low[neighbour])
            elif neighbour in on_stack:
                low[node] = min(low[node], index[neighbour])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_checker_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_project_modules():
    graph: dict[str, set[str]] = {}
    for edge in imports():
        if not edge.in_function:
            graph.setdefault(edge.source, set()).add(edge.target)
    assert len(graph) > 80  # the walk really read the project
    assert _cycles(graph) == []


def test_function_local_project_imports_say_why():
    unexplained = [f"{i.source}:{i.line} -> {i.target}" for i in imports() if i.in_function and not i.commented]
    assert unexplained == []


def test_domain_packages_never_import_a_channel():
    def within(module: str, prefixes: tuple[str, ...]) -> bool:
        return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)

    crossings = [
        f"{i.source}:{i.line} -> {i.target}"
        for i in imports()
        if within(i.source, DOMAIN_PACKAGES) and within(i.target, CHANNEL_MODULES)
    ]
    assert crossings == []
