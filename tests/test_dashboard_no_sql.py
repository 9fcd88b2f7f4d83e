"""The control room runs no SQL of its own: its reads are `twin.store.reads`, its writes
`twin.store`. This walks every module under dashboard/ and fails on a database call or an
SQL string, so a page that starts querying on its own is caught at once. (That the store
imports no adapter is import-linter's contract, run by tests/test_architecture.py.)
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"
#: Modules allowed to talk to the database directly (paths relative to dashboard/). None:
#: even logins and sessions are written by twin.store.users.
ALLOWED: frozenset[str] = frozenset()
#: psycopg's ways of sending a statement. `copy` counts only with an argument (a COPY
#: statement); `dict.copy()` and `frame.copy()` take none.
DB_CALLS = frozenset({"execute", "executemany", "cursor", "copy"})
SQL = re.compile(
    r"^\s*\(?\s*(SELECT\s.+\sFROM\s|SELECT\s+\d|INSERT\s+INTO\s|UPDATE\s+\w+\s+SET\s|"
    r"DELETE\s+FROM\s|WITH\s+\w+\s+AS\s*\(|COPY\s+\w+|SET\s+TRANSACTION\s|"
    r"(CREATE|ALTER|DROP|TRUNCATE)\s+(TABLE|INDEX|VIEW|SCHEMA)\s)",
    re.DOTALL,
)


def offences(source: str, name: str = "<module>") -> list[str]:
    """Each database call and SQL string in a module's source, as "name:line: what"."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else \
                func.id if isinstance(func, ast.Name) else None
            if called in DB_CALLS and (called != "copy" or node.args or node.keywords):
                found.append(f"{name}:{node.lineno}: calls {called}()")
        elif (text := _text(node)) is not None and SQL.match(text):
            found.append(f"{name}:{node.lineno}: SQL {text.strip()[:40]!r}")
    return found


def _text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each {field} as "x"."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    return None


def _modules() -> list[Path]:
    return sorted(p for p in DASHBOARD.rglob("*.py") if "node_modules" not in p.parts)


def test_no_dashboard_module_runs_sql() -> None:
    found = []
    for path in _modules():
        name = path.relative_to(DASHBOARD).as_posix()
        if name not in ALLOWED:
            found += offences(path.read_text(encoding="utf-8"), name)
    assert not found, "SQL in the dashboard; move it to twin/store/reads:\n" + "\n".join(found)


def test_the_walk_covers_the_pages() -> None:
    names = {p.relative_to(DASHBOARD).as_posix() for p in _modules()}
    assert {"pages/large_screen.py", "pages/building.py", "pages/work_orders.py",
            "pages/worker.py", "pages/planner.py", "app.py", "auth.py", "whatif.py"} <= names


@pytest.mark.parametrize("source", [
    'conn.execute("SELECT 1")',
    "rows = cur.executemany(q, params)",
    "with conn.cursor() as cur: pass",
    'cur.copy("COPY reading FROM STDIN")',
    'q = """\n  SELECT id, name FROM building WHERE id = %s"""',
    "q = 'INSERT INTO audit_log (a) VALUES (%s)'",
    "q = f'UPDATE app_user SET lang = {x}'",
    "q = f'SELECT {columns} FROM app_user WHERE name = %s'",
    "q = '(SELECT b.id FROM building b) UNION ALL (SELECT 1)'",
    "q = 'WITH alarming AS (SELECT 1)'",
    "q = 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ'",
])
def test_it_catches_sql(source: str) -> None:
    assert offences(source)


@pytest.mark.parametrize("source", [
    "state = frame.copy()",
    "d = dict(a=1).copy()",
    "label = 'Select a staff member'",
    "label = '选择 SELECT'",
    "with c.pool.connection() as conn: rows = reads.unit_grid(conn, b)",
])
def test_it_lets_the_rest_be(source: str) -> None:
    assert not offences(source)
