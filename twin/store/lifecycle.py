"""Keeping the time series: hourly rollups, retention and compression, on either edition.

:func:`keep` is the one entry point: it reads which edition the server runs
(``SHOW timescaledb.license``) and either sets the server's own policies
(:func:`policy_plan`, timescale edition) or runs the project's job once
(:func:`run_job`, apache edition). What is kept for how long is a
:class:`twin.lifecycle.Retention`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from twin.errors import TwinError
from twin.lifecycle import HOUR, Keeper, Retention, choose_path, islands
from twin.store.connection import one_row

#: The rollup this module keeps.
ROLLUP = "reading_hourly"
#: Readings received up to this long before the job's last mark are looked at again:
#: ingest stamps received_at when a message arrives and commits it a little later, and a
#: device's clock may run up to five minutes ahead (ingest.contract.MAX_CLOCK_SKEW_S).
OVERLAP = HOUR
# Any constant: one job at a time per database.
_LOCK_KEY = 0x6C696665


@dataclass(frozen=True, slots=True)
class ServerState:
    """What decides the path: the edition, and what migration 0017 made of the rollup."""

    licence: str
    rollup_is_aggregate: bool
    #: whether compression is switched on for ``reading`` and for the rollup
    compression_enabled: bool
    rollup_compression_enabled: bool = False


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of the timescale edition's plan, with its parameters."""

    sql: str
    params: tuple[object, ...] = ()


@dataclass(frozen=True, slots=True)
class JobReport:
    """What one run of the project's job did."""

    #: hours of readings (re)computed into the rollup
    hours: int
    #: rollup rows written or changed
    rollup_rows: int
    #: readings that arrived for hours already dropped: added to their rollups, then removed
    late_readings: int
    #: hypertable -> chunks dropped
    dropped: dict[str, int]
    #: the raw readings' cutoff: chunks wholly before it were dropped
    cutoff: datetime
    seconds: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :func:`keep` did: the path and why, and the job's report or the statements set."""

    path: Keeper
    reason: str
    licence: str
    report: JobReport | None = None
    statements: list[Statement] = field(default_factory=list)


def server_state(conn: psycopg.Connection) -> ServerState:
    licence = one_row(conn.execute("SELECT current_setting('timescaledb.license')"),
                      "the licence")[0]
    aggregate, rollup_compressed, compressed = one_row(conn.execute(
        """SELECT count(a.*) > 0, coalesce(bool_or(a.compression_enabled), false),
                  coalesce((SELECT compression_enabled FROM timescaledb_information.hypertables
                             WHERE hypertable_schema = current_schema()
                               AND hypertable_name = 'reading'), false)
             FROM timescaledb_information.continuous_aggregates a
            WHERE a.view_schema = current_schema() AND a.view_name = %s""",
        (ROLLUP,)), "the rollup's kind")
    return ServerState(licence, bool(aggregate), bool(compressed), bool(rollup_compressed))


def keep(conn: psycopg.Connection, retention: Retention, *, now: datetime | None = None,
         dry_run: bool = False) -> Outcome:
    """Keep the time series as ``retention`` says, the way this server's edition allows.

    On the apache edition this runs the job once (schedule it: ``twin db lifecycle
    --every 1h`` or a systemd timer). On the timescale edition it (re)sets the
    server's policies, which then run on the server's own schedule. ``dry_run``
    rolls the job back, or leaves the statements unexecuted.
    """
    state = server_state(conn)
    try:
        path, reason = choose_path(state.licence, rollup_is_aggregate=state.rollup_is_aggregate)
    except ValueError as e:
        raise TwinError(str(e)) from e
    if path == "policies":
        statements = policy_plan(retention, state)
        if not dry_run:
            with conn.transaction():
                for s in statements:
                    conn.execute(s.sql, s.params)
        return Outcome(path, reason, state.licence, statements=statements)
    return Outcome(path, reason, state.licence,
                   report=run_job(conn, retention, now=now, dry_run=dry_run))


# --- the timescale edition: the server's policies ----------------------------------------

def policy_plan(retention: Retention, state: ServerState) -> list[Statement]:
    """The statements that make the timescale edition keep the data as ``retention`` says.

    Each policy is removed and added again, so that a changed retention takes effect
    and running it twice changes nothing. Compression is switched on only once
    (its settings cannot change while chunks are compressed).
    """
    out: list[Statement] = []

    def retain(table: str, kept: timedelta | None) -> None:
        out.append(Statement("SELECT remove_retention_policy(%s, if_exists => true)", (table,)))
        if kept is not None:
            out.append(Statement("SELECT add_retention_policy(%s, drop_after => %s)",
                                 (table, kept)))

    out.append(Statement("SELECT remove_continuous_aggregate_policy(%s, if_exists => true)",
                         (ROLLUP,)))
    out.append(Statement(
        "SELECT add_continuous_aggregate_policy(%s, start_offset => %s, end_offset => %s, "
        "schedule_interval => %s)", (ROLLUP, retention.refresh_window, HOUR, HOUR)))
    retain("reading", retention.readings)
    retain(ROLLUP, retention.rollups)
    retain("event", retention.events)
    retain("staff_position", retention.positions)
    # Segments of one device's metric in time order: what the charts read, and the columns
    # of the unique key, which a compressed hypertable's segments and order must cover.
    if not state.compression_enabled:
        out.append(Statement(
            "ALTER TABLE reading SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'device_id, metric', "
            "timescaledb.compress_orderby = 'time DESC')"))
    out.append(Statement("SELECT remove_compression_policy('reading', if_exists => true)"))
    out.append(Statement("SELECT add_compression_policy('reading', compress_after => %s)",
                         (retention.compress_age,)))
    # Two years of hourly rollups of a district weigh more than 90 days of its raw
    # readings (docs/operations.md): compress them once the refresh window is past them.
    if not state.rollup_compression_enabled:
        out.append(Statement(f"ALTER MATERIALIZED VIEW {ROLLUP} SET (timescaledb.compress)"))
    out.append(Statement("SELECT remove_compression_policy(%s, if_exists => true)", (ROLLUP,)))
    out.append(Statement("SELECT add_compression_policy(%s, compress_after => %s)",
                         (ROLLUP, retention.readings)))
    return out


# --- the apache edition: the project's job -----------------------------------------------

def run_job(conn: psycopg.Connection, retention: Retention, *, now: datetime | None = None,
            dry_run: bool = False) -> JobReport:
    """Roll changed, complete hours of readings up into ``reading_hourly``, then drop the
    chunks past their retention.

    Only hours with readings received since the last run (less :data:`OVERLAP`) are
    recomputed, and only whole hours before ``now``. Readings that arrive for an hour
    whose raw chunk was already dropped are added to that hour's rollup and removed.

    The work is committed a step at a time (any transaction of ``conn`` is committed
    first): the late readings, each run of up to a day of changed hours, then the drop
    with the job's new mark. A first run over months of readings is thus many short
    transactions, not one long one. A run that stops half-way leaves the mark where it
    was, and the next run redoes the hours (a rollup row that would not change is not
    written). ``dry_run`` does everything in one transaction and rolls it back.
    """
    began = time.perf_counter()
    if dry_run:
        with conn.transaction(force_rollback=True):
            return _run_alone(conn, retention, now, step=conn.transaction, began=began)
    conn.commit()
    return _run_alone(conn, retention, now, step=_committed(conn), began=began)


def _committed(conn: psycopg.Connection) -> Callable[[], AbstractContextManager[object]]:
    @contextmanager
    def step() -> Iterator[None]:
        with conn.transaction():
            yield
    return step


def _run_alone(conn: psycopg.Connection, retention: Retention, now: datetime | None, *,
               step: Callable[[], AbstractContextManager[object]], began: float) -> JobReport:
    """The job under a session lock: one run at a time per database."""
    with step():
        locked = one_row(conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)),
                         "the job's lock")[0]
    if not locked:
        raise TwinError("another `twin db lifecycle` is running on this database")
    try:
        return _run(conn, retention, now, step=step, began=began)
    finally:
        if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
            conn.rollback()
        with step():
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))


def _run(conn: psycopg.Connection, retention: Retention, now: datetime | None, *,
         step: Callable[[], AbstractContextManager[object]], began: float) -> JobReport:
    with step():
        started = one_row(conn.execute("SELECT now()"), "now")[0]
        now = now or started
        complete_before = one_row(conn.execute(
            "SELECT time_bucket(interval '1 hour', %s::timestamptz)", (now,)), "the hour")[0]
        found = conn.execute("SELECT marked_at, raw_from FROM lifecycle_state WHERE rollup = %s",
                             (ROLLUP,)).fetchone()
        marked_at, raw_from = found if found else (None, None)
        late = _add_late_readings(conn, raw_from)
        _summarize_received(conn)
        hours = _changed_hours(conn, since=None if marked_at is None else marked_at - OVERLAP,
                               before=complete_before, raw_from=raw_from)
    rollup_rows = 0
    for lo, hi in islands(hours):
        with step():
            rollup_rows += _refresh(conn, lo, hi)

    cutoff = now - retention.readings
    with step():
        # Nothing may be written to the chunks about to go from here to their drop. What
        # reached them since their hours were rolled up above arrived during this run:
        # late readings once more, then the hours of readings received since it began.
        doomed = _chunks_before(conn, "reading", cutoff)
        if doomed:
            conn.execute(sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                sql.SQL(", ").join(sql.Identifier(schema, name) for schema, name, _ in doomed)))
            newest_end = max(end for _, _, end in doomed)
            late += _add_late_readings(conn, raw_from)
            for lo, hi in islands(_changed_hours(conn, since=started - OVERLAP,
                                                 before=min(complete_before, newest_end),
                                                 raw_from=raw_from)):
                rollup_rows += _refresh(conn, lo, hi)
            raw_from = newest_end if raw_from is None else max(raw_from, newest_end)
        dropped = {"reading": _drop(conn, "reading", cutoff),
                   ROLLUP: _drop(conn, ROLLUP, now - retention.rollups)}
        if retention.events is not None:
            dropped["event"] = _drop(conn, "event", now - retention.events)
        if retention.positions is not None:
            dropped["staff_position"] = _drop(conn, "staff_position", now - retention.positions)
        conn.execute(
            """INSERT INTO lifecycle_state (rollup, marked_at, raw_from, ran_at)
               VALUES (%(r)s, %(m)s, %(f)s, %(now)s)
               ON CONFLICT (rollup) DO UPDATE
                  SET marked_at = EXCLUDED.marked_at, raw_from = EXCLUDED.raw_from,
                      ran_at = EXCLUDED.ran_at""",
            {"r": ROLLUP, "m": complete_before, "f": raw_from, "now": now})
    return JobReport(hours=len(hours), rollup_rows=rollup_rows, late_readings=late,
                     dropped=dropped, cutoff=cutoff, seconds=time.perf_counter() - began)


def _chunks_before(conn: psycopg.Connection, table: str,
                   cutoff: datetime) -> list[tuple[str, str, datetime]]:
    """(schema, name, range end) of the chunks that ``drop_chunks(table, cutoff)`` drops."""
    return [(s, n, e) for s, n, e in conn.execute(
        """SELECT c.chunk_schema, c.chunk_name, c.range_end
             FROM show_chunks(%s, older_than => %s) AS s(chunk)
             JOIN pg_class k ON k.oid = s.chunk
             JOIN pg_namespace n ON n.oid = k.relnamespace
             JOIN timescaledb_information.chunks c
               ON c.chunk_schema = n.nspname AND c.chunk_name = k.relname""",
        (table, cutoff))]


def _summarize_received(conn: psycopg.Connection) -> None:
    """Bring the BRIN index on received_at up to date in every chunk of ``reading``.

    Autovacuum summarizes only whole ranges of 128 pages; the last, partial range
    of a chunk stays unsummarized, and an unsummarized range is read whatever it
    holds. Summarized here, a chunk that received nothing since the last run costs
    the job a few index pages.
    """
    conn.execute(
        """SELECT brin_summarize_new_values(i.indexrelid)
             FROM show_chunks('reading') AS s(chunk)
             JOIN pg_index i ON i.indrelid = s.chunk
             JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_am a ON a.oid = c.relam
            WHERE a.amname = 'brin'""")


def _changed_hours(conn: psycopg.Connection, *, since: datetime | None, before: datetime,
                   raw_from: datetime | None) -> list[datetime]:
    """Whole hours before ``before`` holding readings received from ``since`` on (all
    hours when None), not before ``raw_from``."""
    where = [sql.SQL("time < {}").format(sql.Placeholder("before"))]
    if since is not None:
        where.append(sql.SQL("received_at >= {}").format(sql.Placeholder("since")))
    if raw_from is not None:
        where.append(sql.SQL("time >= {}").format(sql.Placeholder("raw_from")))
    query = sql.SQL("SELECT DISTINCT time_bucket(interval '1 hour', time) FROM reading "
                    "WHERE {} ORDER BY 1").format(sql.SQL(" AND ").join(where))
    return [b for (b,) in conn.execute(query, {"before": before, "since": since,
                                               "raw_from": raw_from})]


# The whole hours [lo, hi) recomputed from the raw readings; a row that would not change
# is not written again.
_REFRESH = """
INSERT INTO reading_hourly AS h (bucket, device_id, metric, samples, sum_value, min_value,
                                 max_value)
SELECT time_bucket(interval '1 hour', time), device_id, metric,
       count(*), sum(value), min(value), max(value)
  FROM reading
 WHERE time >= %(lo)s AND time < %(hi)s AND value IS NOT NULL
 GROUP BY 1, 2, 3
ON CONFLICT (device_id, metric, bucket) DO UPDATE
   SET samples = EXCLUDED.samples, sum_value = EXCLUDED.sum_value,
       min_value = EXCLUDED.min_value, max_value = EXCLUDED.max_value
 WHERE (h.samples, h.sum_value, h.min_value, h.max_value)
       IS DISTINCT FROM (EXCLUDED.samples, EXCLUDED.sum_value, EXCLUDED.min_value,
                         EXCLUDED.max_value)
"""


def _refresh(conn: psycopg.Connection, lo: datetime, hi: datetime) -> int:
    return conn.execute(_REFRESH, {"lo": lo, "hi": hi}).rowcount


def _add_late_readings(conn: psycopg.Connection, raw_from: datetime | None) -> int:
    """Readings of hours already dropped, which arrived since: added to those hours'
    rollups (which their dropped readings made) and removed, so they count once."""
    if raw_from is None:
        return 0
    row = one_row(conn.execute(
        """WITH moved AS (
               DELETE FROM reading WHERE time < %(raw_from)s
               RETURNING time, device_id, metric, value
           ), added AS (
               INSERT INTO reading_hourly AS h (bucket, device_id, metric, samples, sum_value,
                                                min_value, max_value)
               SELECT time_bucket(interval '1 hour', time), device_id, metric,
                      count(*), sum(value), min(value), max(value)
                 FROM moved WHERE value IS NOT NULL
                GROUP BY 1, 2, 3
               ON CONFLICT (device_id, metric, bucket) DO UPDATE
                  SET samples = h.samples + EXCLUDED.samples,
                      sum_value = h.sum_value + EXCLUDED.sum_value,
                      min_value = least(h.min_value, EXCLUDED.min_value),
                      max_value = greatest(h.max_value, EXCLUDED.max_value)
               RETURNING 1
           )
           SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM added)""",
        {"raw_from": raw_from}), "the late readings")
    return int(row[0])


def _drop(conn: psycopg.Connection, table: str, older_than: datetime) -> int:
    return len(conn.execute("SELECT drop_chunks(%s, older_than => %s)",
                            (table, older_than)).fetchall())
