"""The data lifecycle: chunk intervals, the apache edition's own job run for real on old
chunks, and the timescale edition's plan (which this machine's apache build can only check
by name: each statement must fail for the licence, not for a wrong function or argument)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from twin.errors import TwinError
from twin.lifecycle import (
    CHUNK_STEPS,
    DAY,
    HOUR,
    Retention,
    Volume,
    choose_path,
    chunk_intervals,
    islands,
)
from twin.store import lifecycle
from twin.store.lifecycle import ROLLUP, ServerState, keep, policy_plan, run_job, server_state
from twin.store.migrations import discover

ROOT = Path(__file__).resolve().parent.parent
TWIN = str(Path(sys.executable).parent / "twin")
GIB = 2**30


# --- chunk intervals ------------------------------------------------------------------------

def test_the_busy_table_gives_way_and_the_chunks_being_written_fit() -> None:
    busy = Volume("reading", rows_per_s=1500, bytes_per_row=190)    # 22.9 GiB a day
    quiet = Volume("event", rows_per_s=30, bytes_per_row=360)       # 0.9 GiB a day
    chosen = chunk_intervals([busy, quiet], memory_bytes=64 * GIB)
    # 12 hours of readings (11.5 GiB) and a week of events (6.1 GiB) exceed 16 GiB; the
    # readings, the larger chunk, step down to 8 hours (7.6 GiB).
    assert chosen == {"reading": 8 * HOUR, "event": 7 * DAY}
    assert busy.chunk_bytes(chosen["reading"]) + quiet.chunk_bytes(chosen["event"]) <= 16 * GIB
    # With twice the memory both get longer chunks; with plenty, the longest allowed.
    roomier = chunk_intervals([busy, quiet], memory_bytes=128 * GIB)
    assert roomier["reading"] > chosen["reading"] and roomier["event"] >= chosen["event"]
    assert chunk_intervals([quiet], memory_bytes=1024 * GIB) == {"event": 7 * DAY}
    assert set(chosen.values()) <= set(CHUNK_STEPS)


def test_a_server_too_small_for_one_hour_chunks_is_told_so() -> None:
    flood = Volume("reading", rows_per_s=1_000_000, bytes_per_row=200)
    with pytest.raises(ValueError, match="even one-hour chunks of reading .* more memory"):
        chunk_intervals([flood], memory_bytes=4 * GIB)


def test_every_chunk_step_is_whole_hours() -> None:
    assert all(step % HOUR == timedelta(0) for step in CHUNK_STEPS)


def test_migration_0017_sets_the_intervals_the_measured_figures_give(
        conn: psycopg.Connection) -> None:
    """bench/lifecycle.py measured the district's rows/s and bytes/row; the migration must
    set what chunk_intervals chooses from them (rerun the benchmark, then a new migration)."""
    measured = json.loads((ROOT / "bench" / "results" / "lifecycle.json").read_text())
    figures = measured["figures"]
    volumes = [Volume(table, t["rows_per_s"], t["bytes_per_row"])
               for table, t in figures["tables"].items()]
    expected = chunk_intervals(volumes, memory_bytes=figures["memory_gib"] * GIB)
    stored = dict(conn.execute(
        "SELECT hypertable_name, time_interval FROM timescaledb_information.dimensions"))
    assert stored == expected


# --- retention and the choice of path ----------------------------------------------------

def test_retention_is_checked_on_the_way_in() -> None:
    assert Retention().readings == 90 * DAY and Retention().rollups == 730 * DAY
    assert Retention().refresh_window == 89 * DAY
    with pytest.raises(ValueError, match="rollups must be kept at least as long"):
        Retention(readings=90 * DAY, rollups=30 * DAY)
    with pytest.raises(ValueError, match="at least 2 days"):
        Retention(readings=HOUR)
    with pytest.raises(ValueError, match="compress_after"):
        Retention(compress_after=90 * DAY)
    assert Retention().compress_age == 7 * DAY
    assert Retention(readings=4 * DAY).compress_age == 2 * DAY
    assert Retention.in_days(readings=30, rollups=365, events=0).events is None
    assert Retention.in_days(readings=30, rollups=365, positions=14).positions == 14 * DAY


def test_the_licence_and_the_rollup_decide_the_path() -> None:
    assert choose_path("apache", rollup_is_aggregate=False)[0] == "job"
    assert choose_path("timescale", rollup_is_aggregate=True)[0] == "policies"
    path, why = choose_path("timescale", rollup_is_aggregate=False)
    assert path == "job" and "plain table" in why
    with pytest.raises(ValueError, match="apache edition cannot refresh"):
        choose_path("apache", rollup_is_aggregate=True)
    with pytest.raises(ValueError, match="unknown timescaledb.license 'community'"):
        choose_path("community", rollup_is_aggregate=False)


def test_islands_are_runs_of_consecutive_hours_of_at_most_a_day() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    hours = [t0 + k * HOUR for k in (0, 1, 2, 5, 6, 9)]
    assert islands(reversed(hours)) == [(t0, t0 + 3 * HOUR), (t0 + 5 * HOUR, t0 + 7 * HOUR),
                                        (t0 + 9 * HOUR, t0 + 10 * HOUR)]
    long_run = [t0 + k * HOUR for k in range(50)]
    assert islands(long_run) == [(t0, t0 + 24 * HOUR), (t0 + 24 * HOUR, t0 + 48 * HOUR),
                                 (t0 + 48 * HOUR, t0 + 50 * HOUR)]
    assert islands([]) == []


# --- the apache edition: the project's job, for real ---------------------------------------

def _now(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT time_bucket('1 hour', now()) + interval '30 minutes'"
                        ).fetchone()[0]


def _insert(conn: psycopg.Connection, rows: list[tuple[datetime, str, str, float | None]]
            ) -> None:
    conn.cursor().executemany(
        "INSERT INTO reading (time, device_id, metric, value, value_text) "
        "VALUES (%s, %s, %s, %s, CASE WHEN %s::float8 IS NULL THEN 'on' END)",
        [(t, d, m, v, v) for t, d, m, v in rows])


def _hour(conn: psycopg.Connection, bucket: datetime, device: str = "co-1",
          metric: str = "co") -> tuple | None:
    return conn.execute(
        "SELECT samples, sum_value, min_value, max_value FROM reading_hourly "
        "WHERE bucket = %s AND device_id = %s AND metric = %s", (bucket, device, metric)
    ).fetchone()


def _chunks(conn: psycopg.Connection, table: str) -> list[tuple[datetime, datetime]]:
    return conn.execute(
        "SELECT range_start, range_end FROM timescaledb_information.chunks "
        "WHERE hypertable_name = %s ORDER BY 1", (table,)).fetchall()


def test_the_job_rolls_up_old_chunks_drops_them_and_keeps_recent_readings(
        conn: psycopg.Connection) -> None:
    now = _now(conn)                        # half past the current hour
    hour = now - timedelta(minutes=30)      # the current hour: not complete
    old = hour - 100 * DAY                  # past the 90 days
    older = hour - 95 * DAY
    recent = hour - 10 * DAY
    # Three readings an hour in two old hours, two metrics and a text metric; recent ones.
    _insert(conn, [(old + timedelta(minutes=m), "co-1", "co", v)
                   for m, v in ((0, 3.0), (20, 9.0), (40, 6.0))]
               + [(old + timedelta(minutes=5), "co-2", "co", 4.0),
                  (old + timedelta(minutes=7), "fan-1", "state", None),
                  (older + timedelta(minutes=1), "co-1", "co", 2.5)]
               + [(recent + timedelta(minutes=m), "co-1", "co", 5.0) for m in (0, 30)]
               + [(hour - HOUR + timedelta(minutes=10), "co-1", "co", 7.0),
                  (hour + timedelta(minutes=10), "co-1", "co", 8.0)])
    conn.commit()
    assert _chunks(conn, "reading")[0][1] <= now - 90 * DAY  # old chunks exist

    outcome = keep(conn, Retention(), now=now)
    conn.commit()
    assert outcome.path == "job" and outcome.licence == "apache"
    report = outcome.report
    assert report is not None
    # Old hours, the recent hour and the last complete hour were rolled up; not this hour.
    assert report.hours == 4 and report.rollup_rows == 5
    assert report.dropped["reading"] == 2 and report.dropped[ROLLUP] == 0
    assert _hour(conn, old) == (3, 18.0, 3.0, 9.0)
    assert _hour(conn, old, "co-2") == (1, 4.0, 4.0, 4.0)
    assert _hour(conn, older) == (1, 2.5, 2.5, 2.5)
    assert _hour(conn, old, "fan-1", "state") is None      # text readings have no rollup
    assert _hour(conn, recent) == (2, 10.0, 5.0, 5.0)
    assert _hour(conn, hour - HOUR) == (1, 7.0, 7.0, 7.0)
    assert _hour(conn, hour) is None
    # The old chunks are gone, the recent readings kept.
    assert all(end > now - 90 * DAY for _, end in _chunks(conn, "reading"))
    assert conn.execute("SELECT count(*) FROM reading WHERE time < %s",
                        (now - 90 * DAY,)).fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (4,)
    marked_at, raw_from = conn.execute(
        "SELECT marked_at, raw_from FROM lifecycle_state WHERE rollup = %s", (ROLLUP,)
    ).fetchone()
    assert marked_at == hour and older < raw_from <= now - 90 * DAY

    # Idempotent: a second run at the same moment looks at the hours of the readings
    # received within the overlap again, and changes nothing.
    again = run_job(conn, Retention(), now=now)
    conn.commit()
    assert (again.rollup_rows, again.late_readings) == (0, 0)
    assert set(again.dropped.values()) == {0}

    # An hour later the current hour is complete and rolled up; nothing else changes.
    later = run_job(conn, Retention(), now=now + HOUR)
    conn.commit()
    assert _hour(conn, hour) == (1, 8.0, 8.0, 8.0)
    assert later.rollup_rows == 1


def test_late_readings_count_once_in_hours_already_dropped_or_rolled_up(
        conn: psycopg.Connection) -> None:
    now = _now(conn)
    hour = now - timedelta(minutes=30)
    old, recent = hour - 100 * DAY, hour - 10 * DAY
    _insert(conn, [(old, "co-1", "co", 3.0), (recent, "co-1", "co", 5.0)])
    conn.commit()
    run_job(conn, Retention(), now=now)
    conn.commit()
    assert conn.execute("SELECT count(*) FROM reading WHERE time < %s",
                        (now - 90 * DAY,)).fetchone() == (0,)

    # A device's buffer arrives: a reading for the dropped hour and one for the recent hour.
    _insert(conn, [(old + timedelta(minutes=40), "co-1", "co", 11.0),
                   (recent + timedelta(minutes=40), "co-1", "co", 1.0)])
    conn.commit()
    report = run_job(conn, Retention(), now=now)
    conn.commit()
    assert report.late_readings == 1
    assert _hour(conn, old) == (2, 14.0, 3.0, 11.0)          # added to what was dropped
    assert _hour(conn, recent) == (2, 6.0, 1.0, 5.0)         # recomputed from the raw hour
    assert conn.execute("SELECT count(*) FROM reading WHERE time < %s",
                        (now - 90 * DAY,)).fetchone() == (0,)
    # Counted once: the next runs change nothing.
    for _ in range(2):
        quiet = run_job(conn, Retention(), now=now)
        conn.commit()
        assert (quiet.late_readings, quiet.rollup_rows) == (0, 0)
    assert _hour(conn, old) == (2, 14.0, 3.0, 11.0)


def test_a_run_stopped_before_its_drop_keeps_its_rollups_and_the_next_run_finishes(
        conn: psycopg.Connection, db_url: str) -> None:
    """The job commits a step at a time: hours rolled up before a failure stay rolled up,
    the mark stays where it was, and the next run drops what the failed one could not."""
    now = _now(conn)
    old = now - timedelta(minutes=30) - 100 * DAY
    _insert(conn, [(old, "co-1", "co", 3.0), (old + timedelta(minutes=5), "co-1", "co", 5.0)])
    conn.commit()
    conn.execute("SET lock_timeout = '300ms'")
    conn.commit()
    with psycopg.connect(db_url) as ingest:
        # A late reading of that hour is being written into its chunk, not yet committed:
        # the job cannot lock the chunk for its drop.
        ingest.execute("INSERT INTO reading (time, device_id, metric, value) "
                       "VALUES (%s, 'co-1', 'co', 4.0)", (old + timedelta(minutes=10),))
        with pytest.raises(psycopg.errors.LockNotAvailable):
            run_job(conn, Retention(), now=now)
        assert _hour(conn, old) == (2, 8.0, 3.0, 5.0)             # committed before the drop
        assert conn.execute("SELECT count(*) FROM lifecycle_state").fetchone() == (0,)
        conn.commit()
        ingest.commit()

    report = run_job(conn, Retention(), now=now)
    conn.commit()
    assert report.dropped["reading"] == 1 and report.rollup_rows == 1
    assert _hour(conn, old) == (3, 12.0, 3.0, 5.0)                # with the late reading
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (0,)
    assert conn.execute("SELECT marked_at FROM lifecycle_state").fetchone() == (
        now - timedelta(minutes=30),)


def test_rollups_events_and_positions_past_their_retention_are_dropped(
        conn: psycopg.Connection) -> None:
    now = _now(conn)
    conn.execute("INSERT INTO reading_hourly VALUES (%s, 'co-1', 'co', 1, 2, 2, 2), "
                 "(%s, 'co-1', 'co', 1, 3, 3, 3)", (now - 800 * DAY, now - 100 * DAY))
    conn.execute("INSERT INTO event (time, device_id, event_id, kind) VALUES "
                 "(%s, 'gate-1', 'e1', 'access'), (%s, 'gate-1', 'e2', 'access')",
                 (now - 60 * DAY, now - DAY))
    conn.execute("INSERT INTO staff_position (time, staff_id, geom) VALUES "
                 "(%s, 's1', 'SRID=4326;POINT(114.4 30.5)'), "
                 "(%s, 's1', 'SRID=4326;POINT(114.4 30.5)')", (now - 60 * DAY, now - DAY))
    conn.commit()
    keep_all = run_job(conn, Retention(), now=now)
    conn.commit()
    assert keep_all.dropped[ROLLUP] == 1 and "event" not in keep_all.dropped
    assert conn.execute("SELECT count(*) FROM reading_hourly").fetchone() == (1,)

    run_job(conn, Retention(events=30 * DAY, positions=30 * DAY), now=now)
    conn.commit()
    assert conn.execute("SELECT count(*) FROM event").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM staff_position").fetchone() == (1,)


def test_a_dry_run_changes_nothing_and_one_job_runs_at_a_time(
        conn: psycopg.Connection, db_url: str) -> None:
    now = _now(conn)
    _insert(conn, [(now - 100 * DAY, "co-1", "co", 3.0)])
    conn.commit()
    dry = keep(conn, Retention(), now=now, dry_run=True)
    conn.commit()
    assert dry.report is not None and dry.report.dropped["reading"] == 1
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM reading_hourly").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM lifecycle_state").fetchone() == (0,)

    with psycopg.connect(db_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lifecycle._LOCK_KEY,))
        with pytest.raises(TwinError, match="another `twin db lifecycle` is running"):
            run_job(conn, Retention(), now=now)
        conn.rollback()


def test_finding_the_changed_hours_reads_only_what_was_received_since_the_mark(
        conn: psycopg.Connection) -> None:
    """Two days of readings received long ago, and a few late ones in an old chunk: after a
    run of the job (which summarizes the BRIN index on received_at), looking for the hours
    changed since reads a small part of the table, not all of it."""
    conn.execute(
        """INSERT INTO reading (time, device_id, metric, value, received_at)
           SELECT t, 'm-' || (k % 300), 'energy', k, t + interval '1 minute'
             FROM generate_series(1, 200000) k,
                  LATERAL (SELECT now() - interval '50 hours' + k * interval '0.8 s' AS t) x""")
    conn.commit()
    run_job(conn, Retention())
    conn.commit()
    late = _now(conn) - timedelta(hours=40)                   # half past an hour
    _insert(conn, [(late + timedelta(minutes=k), "m-1", "late", 1.0) for k in range(5)])
    conn.commit()
    conn.execute("ANALYZE reading")
    lifecycle._summarize_received(conn)  # the job's first step
    plan = conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "
        "SELECT DISTINCT time_bucket(interval '1 hour', time) FROM reading "
        "WHERE time < now() AND received_at >= now() - interval '10 minutes'").fetchone()[0]
    pages = conn.execute("SELECT sum(relpages) FROM pg_class c JOIN show_chunks('reading') s "
                         "ON c.oid = s").fetchone()[0]
    conn.rollback()
    top = plan[0]["Plan"]
    assert top["Actual Rows"] == 1                            # the one late hour
    read = top["Shared Hit Blocks"] + top["Shared Read Blocks"]
    assert read < pages / 4, (read, pages, json.dumps(plan, indent=1))


# --- the timescale edition: the plan ----------------------------------------------------------

def test_the_timescale_plan_sets_policies_an_aggregate_and_compression() -> None:
    plan = policy_plan(Retention(positions=30 * DAY),
                       ServerState("timescale", rollup_is_aggregate=True,
                                   compression_enabled=False))
    steps = [(s.sql.split("(")[0].removeprefix("SELECT "), s.params) for s in plan]
    assert steps == [
        ("remove_continuous_aggregate_policy", (ROLLUP,)),
        ("add_continuous_aggregate_policy", (ROLLUP, 89 * DAY, HOUR, HOUR)),
        ("remove_retention_policy", ("reading",)),
        ("add_retention_policy", ("reading", 90 * DAY)),
        ("remove_retention_policy", (ROLLUP,)),
        ("add_retention_policy", (ROLLUP, 730 * DAY)),
        ("remove_retention_policy", ("event",)),            # events kept for ever
        ("remove_retention_policy", ("staff_position",)),
        ("add_retention_policy", ("staff_position", 30 * DAY)),
        ("ALTER TABLE reading SET ", ()),
        ("remove_compression_policy", ()),
        ("add_compression_policy", (7 * DAY,)),
        ("ALTER MATERIALIZED VIEW reading_hourly SET ", ()),
        ("remove_compression_policy", (ROLLUP,)),
        ("add_compression_policy", (ROLLUP, 90 * DAY)),
    ]
    # Once compression is on, its settings are left alone; the policies are set again.
    again = policy_plan(Retention(), ServerState("timescale", True, True, True))
    assert not any(s.sql.startswith("ALTER") for s in again)
    assert len(again) == len(plan) - 3


def test_each_timescale_statement_names_real_functions_and_arguments(
        conn: psycopg.Connection) -> None:
    """The apache build has every function of the plan and refuses each for its licence; a
    misspelt function or argument would fail with 'does not exist' instead."""
    plan = policy_plan(Retention(events=180 * DAY),
                       ServerState("timescale", True, compression_enabled=False))
    for statement in plan:
        with pytest.raises(psycopg.Error) as refused, conn.transaction():
            conn.execute(statement.sql, statement.params)
        message = str(refused.value)
        if statement.sql.startswith("ALTER MATERIALIZED VIEW"):
            assert '"reading_hourly" is not a materialized view' in message  # a table here
        else:
            assert 'under the current "apache" license' in message, (statement.sql, message)
    conn.rollback()


def test_migration_0017_makes_the_rollup_a_continuous_aggregate_under_the_timescale_licence(
        conn: psycopg.Connection) -> None:
    """Its continuous aggregate is parsed and checked against ``reading`` up to the licence."""
    sql = next(m.sql for m in discover() if m.version == 17)
    view = re.search(r"\$cagg\$(.*?)\$cagg\$", sql, re.DOTALL)
    assert view is not None
    statement = view.group(1).replace("VIEW reading_hourly", "VIEW reading_hourly_check")
    with pytest.raises(psycopg.errors.FeatureNotSupported, match="apache"):
        conn.execute(statement)
    conn.rollback()
    assert server_state(conn) == ServerState("apache", rollup_is_aggregate=False,
                                             compression_enabled=False)


# --- the command ---------------------------------------------------------------------------

def _env(db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    return env | {"TWIN_DATABASE_URL": db_url, "COLUMNS": "200"}


def test_twin_db_lifecycle_runs_once_or_every_so_often(conn: psycopg.Connection,
                                                       db_url: str) -> None:
    _insert(conn, [(datetime.now(UTC) - 100 * DAY, "co-1", "co", 3.0),
                   (datetime.now(UTC) - 2 * HOUR, "co-1", "co", 4.0)])
    conn.commit()
    env = _env(db_url)
    dry = subprocess.run([TWIN, "db", "lifecycle", "--dry-run"], env=env, capture_output=True,
                         text=True, check=True, timeout=120).stdout
    assert "timescaledb.license = apache" in dry and "would roll up 2 hours" in dry
    assert conn.execute("SELECT count(*) FROM reading_hourly").fetchone() == (0,)
    conn.rollback()

    refused = subprocess.run([TWIN, "db", "lifecycle", "--readings-days", "30"],
                             env=env | {"TWIN_KEEP_ROLLUPS_DAYS": "7"}, capture_output=True,
                             text=True, timeout=120, check=False)
    assert refused.returncode == 1
    assert "rollups must be kept at least as long as the raw readings" in refused.stderr

    loop = subprocess.Popen([TWIN, "db", "lifecycle", "--every", "1s"],
                            env=env | {"PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        runs = 0
        while runs < 2 and time.monotonic() < deadline:
            line = loop.stdout.readline() if loop.stdout else ""
            runs += line.startswith("rolled up")
    finally:
        loop.send_signal(signal.SIGINT)
        out, err = loop.communicate(timeout=30)
    assert runs == 2, err
    assert loop.returncode == 0 and "stopped" in out
    assert conn.execute("SELECT count(*) FROM reading").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM reading_hourly").fetchone() == (2,)
