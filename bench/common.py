"""What every benchmark needs: scratch servers to measure against, and the raw COPY baseline."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from psycopg import sql

from twin.services.postgres import EmbeddedPostgres
from twin.store import migrations
from twin.store.connection import connect

#: The narrowest row worth measuring: (time, device, value).
NARROW_COLUMNS = (("t", "timestamptz"), ("d", "text"), ("v", "float8"))


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory the ``postgres`` user can reach, removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="twin-bench-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def bench_database() -> Iterator[str]:
    """``TWIN_BENCH_DATABASE_URL`` if set (a scratch database: benchmarks write to it),
    else a fresh embedded cluster with durable settings; migrated either way."""
    if os.environ.get("TWIN_BENCH_DATABASE_URL"):
        url = os.environ["TWIN_BENCH_DATABASE_URL"]
        with connect(url) as conn:
            migrations.upgrade(conn)
        yield url
        return
    with scratch_dir() as root:
        server = EmbeddedPostgres(root / "pg")
        try:
            url = server.start()
            with connect(url) as conn:
                migrations.upgrade(conn)
            yield url
        finally:
            server.stop()


def narrow_rows(n: int) -> list[tuple]:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return [(start + timedelta(seconds=i), f"dev-{i % 1000}", float(i)) for i in range(n)]


def raw_copy_rate(url: str, rows: Sequence[tuple], columns: Sequence[tuple[str, str]]) -> float:
    """Rows/s of a bare psycopg binary COPY of ``rows`` into a plain table of ``columns``.

    An ordinary table (WAL-logged, no keys, no indexes, not a hypertable), as the
    twin's own tables are logged: a TEMP table skips the WAL and would overstate
    the baseline.
    """
    table = sql.Identifier("bench_raw_copy")
    with connect(url) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        conn.execute(sql.SQL("CREATE TABLE {} ({})").format(table, sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind))
            for name, kind in columns)))
        rate = _timed_copy(conn, table, rows, columns)
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
        conn.commit()
        return rate


def copy_rate_into(url: str, table: str, rows: Sequence[tuple],
                   columns: Sequence[tuple[str, str]]) -> float:
    """Rows/s of a bare binary COPY of ``rows`` into the twin's own ``table``, emptied after.

    The same rows into the same hypertable with its keys: what the database
    itself can absorb, so that a ratio to it measures only what the service
    adds on top (broker, decoding, batching).
    """
    with connect(url) as conn:
        rate = _timed_copy(conn, sql.Identifier(table), rows, columns)
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        conn.commit()
        return rate


def _timed_copy(conn, table: sql.Identifier, rows: Sequence[tuple],
                columns: Sequence[tuple[str, str]]) -> float:
    """Rows/s of one binary COPY of ``rows`` into ``table``, committed."""
    names = sql.SQL(", ").join(sql.Identifier(name) for name, _ in columns)
    began = time.perf_counter()
    with conn.cursor() as cur, cur.copy(
        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(table, names)
    ) as copy:
        copy.set_types([kind for _, kind in columns])
        for row in rows:
            copy.write_row(row)
    conn.commit()
    return len(rows) / (time.perf_counter() - began)
