"""Opening connections and pools, with failures stated in one sentence."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import ConnectionPool

from twin.errors import MissingComponentError, UnreachableError

INSTALL_HINT = "run scripts/install-system.sh as root, or use the timescale/timescaledb-ha image"

R = TypeVar("R")


def connect(url: str, *, autocommit: bool = False, timeout: float = 5.0) -> psycopg.Connection:
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=max(1, int(timeout)))
    except psycopg.OperationalError as e:
        raise UnreachableError(_unreachable_message(url, e)) from e


def open_pool(url: str, *, min_size: int = 1, max_size: int = 10,
              statement_timeout_s: float | None = None) -> ConnectionPool:
    """A pool opened once per process; fails now, not on first use, if the server is down.

    With `statement_timeout_s`, a statement on its connections is cancelled (QueryCanceled)
    after that long, unless a block asks for longer (`statement_timeout`)."""
    connect(url).close()
    configure = None if statement_timeout_s is None else \
        functools.partial(_set_statement_timeout, _ms(statement_timeout_s))
    pool = ConnectionPool(url, min_size=min_size, max_size=max_size, open=True,
                          configure=configure)
    pool.wait(timeout=10)
    return pool


@contextmanager
def statement_timeout(conn: psycopg.Connection, seconds: float) -> Iterator[psycopg.Connection]:
    """One transaction on `conn` whose statements may each run up to `seconds` (SET LOCAL:
    after it, the connection's own limit holds again)."""
    with conn.transaction():
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (_ms(seconds),))
        yield conn


def _set_statement_timeout(ms: str, conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (ms,))
    conn.commit()


def _ms(seconds: float) -> str:
    if seconds <= 0:
        raise ValueError(f"a statement timeout must be positive, not {seconds} s")
    return str(max(1, round(seconds * 1000)))


@contextmanager
def snapshot(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One read-only, repeatable-read transaction: reads inside it all see the same moment
    (a screen's KPIs, feed and map agree with each other)."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield conn


def check_extensions(conn: psycopg.Connection) -> None:
    """Fail in one sentence when PostGIS or TimescaleDB cannot be created here."""
    available = {
        row[0]
        for row in conn.execute(
            "SELECT name FROM pg_available_extensions WHERE name = ANY(%s)",
            (["postgis", "timescaledb"],),
        )
    }
    for ext in ("timescaledb", "postgis"):
        if ext not in available:
            raise MissingComponentError(
                f"the {ext} extension is not installed in this PostgreSQL: {INSTALL_HINT}"
            )
    preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()
    if preload is None or "timescaledb" not in preload[0]:
        raise MissingComponentError(
            "the timescaledb extension is installed but not preloaded in this PostgreSQL: add "
            "shared_preload_libraries = 'timescaledb' to postgresql.conf and restart it"
        )


def one_row(cursor: psycopg.Cursor[R], what: str) -> R:
    """The row a statement always returns: an aggregate, an INSERT or UPDATE ... RETURNING.

    ``what`` names the statement; no row at all is a bug, and the error says where.
    """
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError(f"{what} returned no row")
    return row


def describe(url: str) -> str:
    """host:port/database, without credentials, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    return f"{host}:{port}{parts.path or ''}"


def _unreachable_message(url: str, error: psycopg.OperationalError) -> str:
    detail = str(error).strip().splitlines()
    reason = detail[-1] if detail else "no answer"
    for line in detail:
        if "Connection refused" in line:
            reason = "connection refused"
            break
        if "timeout" in line.lower():
            reason = "timed out"
            break
        if "does not exist" in line:
            reason = line.split("FATAL:")[-1].strip()
            break
        if "password authentication failed" in line or "no password supplied" in line:
            return (f"PostgreSQL at {describe(url)} refused the login: "
                    f"{line.split('FATAL:')[-1].split('fe_sendauth:')[-1].strip()}")
    return f"cannot reach PostgreSQL at {describe(url)}: {reason}"


def ping(conn: psycopg.Connection) -> None:
    """Raise unless the server answers a statement (the health checks)."""
    conn.execute("SELECT 1").fetchone()


def connection_limit(conn: psycopg.Connection) -> int:
    """How many connections the server takes in all, less those kept for superusers."""
    row = conn.execute("SELECT current_setting('max_connections')::int - "
                       "current_setting('superuser_reserved_connections')::int").fetchone()
    assert row is not None
    return int(row[0])
