"""`twin db backup` and `twin db restore`, run for real: the sample community with time
series over many chunks is dumped, its database dropped, and restored into a fresh one."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from twin.errors import TwinError
from twin.lifecycle import Retention
from twin.services.backup import backup, restore
from twin.store import migrations
from twin.store.connection import connect
from twin.store.lifecycle import run_job

TWIN = str(Path(sys.executable).parent / "twin")


def _twin(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([TWIN, *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert (done.returncode == 0) == ok, done.stderr
    return done


def _counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows of every table of the public schema, and chunks of every hypertable."""
    tables = [t for (t,) in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
    counts = {t: conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
                              ).fetchone()[0] for t in tables}
    for table, chunks, interval in conn.execute(
            """SELECT h.hypertable_name, h.num_chunks, d.time_interval
                 FROM timescaledb_information.hypertables h
                 JOIN timescaledb_information.dimensions d USING (hypertable_schema,
                                                                   hypertable_name)"""):
        counts[f"{table} chunks of {interval}"] = chunks
    return counts


def _time_series(conn: psycopg.Connection) -> None:
    """Readings of 40 devices every 10 minutes for 4 days and 100 days ago, events and staff
    positions, and the lifecycle job's rollups of them."""
    conn.execute(
        """INSERT INTO reading (time, device_id, metric, value)
           SELECT t, d.id, 'v', random() * 100
             FROM (SELECT id FROM device ORDER BY id LIMIT 40) d,
                  generate_series(now() - interval '4 days', now(), interval '10 minutes') t""")
    conn.execute(
        """INSERT INTO reading (time, device_id, metric, value_text)
           SELECT now() - interval '100 days' + k * interval '1 minute', 'fan-1', 'state', 'on'
             FROM generate_series(1, 30) k""")
    conn.execute(
        """INSERT INTO event (time, device_id, event_id, kind, attrs)
           SELECT now() - k * interval '7 minutes', d.id, 'e' || k, 'access', '{"k": 1}'
             FROM (SELECT id FROM device WHERE type = 'access_gate' LIMIT 3) d,
                  generate_series(1, 500) k""")
    conn.execute(
        """INSERT INTO staff_position (time, staff_id, geom)
           SELECT now() - k * interval '30 seconds', s.id, ST_SetSRID(ST_MakePoint(114.41, 30.49),
                                                                      4326)
             FROM (SELECT id FROM staff LIMIT 5) s, generate_series(1, 400) k""")
    run_job(conn, Retention(readings=timedelta(days=3), rollups=timedelta(days=30)))
    conn.commit()


def test_backup_drop_restore_gives_back_every_row(twin_db_url: str, pg, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env |= {"TWIN_DATABASE_URL": twin_db_url, "COLUMNS": "200"}
    with connect(twin_db_url) as conn:
        _time_series(conn)
        before = _counts(conn)
    assert before["reading"] > 10_000 and before["reading_hourly"] > 1_000
    assert before["resident"] > 7_000 and before["lifecycle_state"] == 1
    assert before["reading chunks of 6:00:00"] >= 12

    dump = tmp_path / "backups" / "twin.dump"
    out = _twin(env, "db", "backup", str(dump)).stdout
    assert f"into {dump}" in out and dump.stat().st_size > 100_000
    assert not dump.with_name("twin.dump.partial").exists()

    pg.drop_database(urlsplit(twin_db_url).path.lstrip("/"))
    out = _twin(env, "db", "restore", str(dump)).stdout
    assert f"restored {dump}" in out and "(replaced)" not in out

    with connect(twin_db_url) as conn:
        assert _counts(conn) == before
        assert conn.execute("SHOW timescaledb.restoring").fetchone() == ("off",)
        # A working twin: the schema is current, and a reading opens a chunk of its own.
        conn.execute("INSERT INTO reading (time, device_id, metric, value) "
                     "VALUES (now() + interval '2 days', 'co-1', 'co', 1)")
        conn.commit()
        assert _counts(conn)["reading chunks of 6:00:00"] == before[
            "reading chunks of 6:00:00"] + 1
        migrations.require_current(conn)

    # Over a database holding data only when asked.
    refused = _twin(env, "db", "restore", str(dump), ok=False)
    assert "holds" in refused.stderr and "pass --replace" in refused.stderr
    out = _twin(env, "db", "restore", str(dump), "--replace").stdout
    assert "(replaced)" in out
    with connect(twin_db_url) as conn:
        assert _counts(conn) == before


def test_backup_and_restore_say_what_is_wrong(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(TwinError, match="is a directory: name the backup file"):
        backup(db_url, tmp_path)
    with pytest.raises(TwinError, match="there is no backup file"):
        restore(db_url, tmp_path / "none")
    junk = tmp_path / "junk.dump"
    junk.write_text("not a dump")
    with pytest.raises(TwinError, match="is not a backup written by `twin db backup`"):
        restore(db_url, junk)
    with pytest.raises(TwinError, match="pg_dump failed: .*does not exist"):
        backup(db_url.rsplit("/", 1)[0] + "/no_such_database", tmp_path / "x.dump")
    assert not (tmp_path / "x.dump").exists() and not (tmp_path / "x.dump.partial").exists()
