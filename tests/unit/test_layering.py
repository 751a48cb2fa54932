"""Where writes and queries live (docs/architecture.md §7), checked from the source:

* one unit of work: nothing commits or rolls back but app.core.unit_of_work, and no helper
  takes a `commit` flag (callers nest units instead);
* views call services: channel modules neither touch the session nor build queries nor use a
  repository.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_import_graph import CHANNEL_MODULES, ROOT, imports, modules

UNIT_OF_WORK = "app.core.unit_of_work"


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def test_only_the_unit_of_work_commits_or_rolls_back():
    found = []
    for module, path in modules().items():
        if module == UNIT_OF_WORK:
            continue
        for node in ast.walk(_tree(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"commit", "rollback"}
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}()")
    assert found == []


def test_no_helper_takes_a_commit_flag():
    found = []
    for _module, path in modules().items():
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                arguments = node.args.args + node.args.kwonlyargs
                if any(argument.arg == "commit" for argument in arguments):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert found == []


def test_views_neither_query_nor_touch_the_session():
    found = []
    for module, path in modules().items():
        if not _within(module, CHANNEL_MODULES):
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr == "session" and ast.unparse(node.value) == "db":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} db.session")
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {node.module}")
    found += [
        f"{edge.source}:{edge.line} -> {edge.target}"
        for edge in imports()
        if _within(edge.source, CHANNEL_MODULES) and edge.target.endswith(".repository")
    ]
    assert found == []


def test_the_checks_see_a_violation():
    source = "def save(user, commit=True):\n    db.session.commit()\n"
    tree = ast.parse(source)
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "commit"]
    flags = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.args.args[-1].arg == "commit"]
    assert calls and flags
