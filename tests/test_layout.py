"""The layout's seams, checked on the source (DESIGN.md): no import cycles between the
library's modules (``TYPE_CHECKING`` and function-level imports count), and no SQL
built outside ``notice/store/``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "notice"


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """``module -> notice modules it imports`` (a package's import counts for the
    package's ``__init__``, ``from pkg import mod`` for ``pkg.mod``)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                # "from pkg import mod" imports the module; "from mod import name" the module
                subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in modules]
                targets = subs if len(subs) == len(node.names) else [mod, *subs]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_library_modules():
    assert cycles(import_graph()) == []


# statements built with SQLAlchemy Core or run as text
_SQL = re.compile(
    r"\bsa\.(select|update|delete|insert|exists)\(|\b(postgresql|sqlite)\.insert\("
    r"|(session|conn|connection|cur|cursor|engine)(\(\))?\.execute\(|exec_driver_sql\("
    r"|(?<!_where=)sa\.text\("
)


def test_sql_is_built_only_in_the_store():
    offenders = []
    for name, path in _modules().items():
        if name == "notice.store" or name.startswith("notice.store."):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if _SQL.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []
