"""What every benchmark needs: a database to measure against, and the same-run baseline."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

from twin.services.postgres import EmbeddedPostgres
from twin.store import migrations
from twin.store.connection import connect


@contextmanager
def bench_database() -> Iterator[str]:
    """``TWIN_BENCH_DATABASE_URL`` if set, else a fresh embedded cluster, migrated."""
    if os.environ.get("TWIN_BENCH_DATABASE_URL"):
        url = os.environ["TWIN_BENCH_DATABASE_URL"]
        with connect(url) as conn:
            migrations.upgrade(conn)
        yield url
        return
    root = Path(tempfile.mkdtemp(prefix="twin-bench-"))
    root.chmod(0o755)
    server = EmbeddedPostgres(root / "pg")
    try:
        url = server.start()
        with connect(url) as conn:
            migrations.upgrade(conn)
        yield url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def raw_copy_rate(url: str, *, rows: int = 1_000_000) -> float:
    """Rows/s of a bare psycopg binary COPY of narrow (time, text, float) rows.

    Into an ordinary (WAL-logged, index-free) table, as the twin's own tables are
    logged: a TEMP table skips the WAL and would overstate the baseline.
    """
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    data = [(start + timedelta(seconds=i), f"dev-{i % 1000}", float(i)) for i in range(rows)]
    with connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_raw_copy")
        conn.execute("CREATE TABLE bench_raw_copy (t timestamptz, d text, v float8)")
        began = time.perf_counter()
        with conn.cursor() as cur, cur.copy(
            "COPY bench_raw_copy (t, d, v) FROM STDIN (FORMAT binary)"
        ) as copy:
            copy.set_types(["timestamptz", "text", "float8"])
            for row in data:
                copy.write_row(row)
        conn.commit()
        rate = rows / (time.perf_counter() - began)
        conn.execute("DROP TABLE bench_raw_copy")
        conn.commit()
        return rate


def count_rows(conn: psycopg.Connection, table: str) -> int:
    return conn.execute(
        psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
    ).fetchone()[0]
