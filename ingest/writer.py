"""Writing decoded rows to TimescaleDB: one transaction per flush, idempotent.

Readings and events are COPYed (binary) straight into their hypertables.
If that collides with a row already stored (a message the broker redelivered
after a crash), the COPY is rolled back to a savepoint and the rows go through
a session-local staging table and INSERT ... ON CONFLICT DO NOTHING instead,
so redelivery adds no second row and the common case pays for no staging.
Latest state arrives already coalesced per device and is merged per metric,
newer value wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import psycopg
from psycopg.types.json import Jsonb

from ingest.contract import fmt_time
from ingest.decode import Decoded
from twin.store.positions import Fix, badge_holders, record_fixes

_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS in_reading (LIKE reading) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS in_event (LIKE event) ON COMMIT DELETE ROWS;
"""
_READING_TYPES = ["timestamptz", "text", "text", "float8", "text", "timestamptz"]
_EVENT_TYPES = ["timestamptz", "text", "text", "text", "text", "float4", "text", "text", "text",
                "float8", "jsonb", "timestamptz"]
_DEAD_TYPES = ["timestamptz", "text", "bytea", "text", "text", "int4"]


@dataclass(frozen=True, slots=True)
class Written:
    readings: int
    events: int
    states: int
    acks: int
    #: staff_position rows added (fixes of issued badges)
    positions: int
    #: dead letters written, by reason (the decoder's and the writer's own)
    dead: dict[str, int]


def prepare(conn: psycopg.Connection) -> None:
    """Create this session's staging tables (once per autocommit connection)."""
    conn.execute(_STAGING)


def write(conn: psycopg.Connection, rows: Decoded) -> Written:
    """Write everything in ``rows`` in one transaction; returns rows actually added.

    ``rows`` is not changed, so a write that failed can simply be tried again.
    """
    with conn.transaction():
        readings = _move(conn, "reading", rows.readings, _READING_TYPES,
                         "time, device_id, metric, value, value_text, received_at")
        events = _move(conn, "event", [_with_jsonb_attrs(r) for r in rows.events], _EVENT_TYPES,
                       "time, device_id, event_id, kind, class, confidence, method, direction, "
                       "subject_id, value, attrs, received_at")
        states = _merge_state(conn, rows)
        acks, unmatched = _record_acks(conn, rows)
        positions, unissued = _record_positions(conn, rows)
        dead = rows.dead + unmatched + unissued
        reasons = write_dead_letters(conn, dead)
    return Written(readings, events, states, acks, positions, reasons)


def write_dead_letters(conn: psycopg.Connection, dead: list[tuple], *,
                       consumer: str = "ingest") -> dict[str, int]:
    """Store dead letters (received_at, topic, payload, reason, detail, item); count by reason."""
    if dead:
        with conn.cursor() as cur, cur.copy(
            "COPY dead_letter (received_at, topic, payload, reason, detail, item, consumer) "
            "FROM STDIN (FORMAT binary)"
        ) as copy:
            copy.set_types([*_DEAD_TYPES, "text"])
            for row in dead:
                copy.write_row((*row, consumer))
    reasons: dict[str, int] = {}
    for row in dead:
        reasons[row[3]] = reasons.get(row[3], 0) + 1
    return reasons


def _with_jsonb_attrs(row: tuple) -> tuple:
    """The event row with its attrs (JSON text from the decoder) sent as a JSON object.

    A plain str in a jsonb column of a binary COPY is dumped as a JSON
    *string* ("{\\"session\\": ...}"), which ``attrs->>'session'`` cannot read;
    wrapped, the text goes through as it is.
    """
    return (*row[:10], Jsonb(row[10], dumps=_as_is), row[11])


def _as_is(text: str) -> str:
    return text


def _move(conn: psycopg.Connection, table: str, rows: list[tuple], types: list[str],
          columns: str) -> int:
    if not rows:
        return 0
    try:
        with conn.transaction():  # a savepoint inside write()'s transaction
            _copy(conn, table, rows, types, columns)
        return len(rows)
    except psycopg.errors.UniqueViolation:
        pass
    with conn.cursor() as cur:
        _copy(conn, f"in_{table}", rows, types, columns)
        cur.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM in_{table} "
                    "ON CONFLICT DO NOTHING")
        return cur.rowcount


def _copy(conn: psycopg.Connection, table: str, rows: list[tuple], types: list[str],
          columns: str) -> None:
    with conn.cursor() as cur, cur.copy(
        f"COPY {table} ({columns}) FROM STDIN (FORMAT binary)"
    ) as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _merge_state(conn: psycopg.Connection, rows: Decoded) -> int:
    devices = sorted(rows.last_seen.keys() | rows.statuses.keys())
    if not devices:
        return 0
    online, status_at, last_seen, metrics = [], [], [], []
    for device_id in devices:
        status = rows.statuses.get(device_id)
        online.append(None if status is None else status[0])
        status_at.append(None if status is None else status[1])
        last_seen.append(rows.last_seen.get(device_id))
        latest = rows.latest.get(device_id, {})
        metrics.append(orjson.dumps(
            {m: {"t": fmt_time(t), "v": v} for m, (t, v) in latest.items()}).decode())
    # Sorted ids: concurrent ingest processes lock rows in the same order.
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO device_state AS s (device_id, online, status_at, last_seen, metrics)
            SELECT d, o, st, ls, m::jsonb
            FROM unnest(%s::text[], %s::bool[], %s::timestamptz[], %s::timestamptz[], %s::text[])
                 AS u(d, o, st, ls, m)
            ON CONFLICT (device_id) DO UPDATE SET
                online = CASE
                    WHEN EXCLUDED.status_at IS NOT NULL
                         AND (s.status_at IS NULL OR EXCLUDED.status_at >= s.status_at)
                    THEN EXCLUDED.online ELSE s.online END,
                status_at = greatest(s.status_at, EXCLUDED.status_at),
                last_seen = greatest(s.last_seen, EXCLUDED.last_seen),
                metrics = merge_latest(s.metrics, EXCLUDED.metrics)
            """,
            (devices, online, status_at, last_seen, metrics),
        )
        return cur.rowcount


def _record_positions(conn: psycopg.Connection, rows: Decoded) -> tuple[int, list[tuple]]:
    """Store badge fixes for the staff members the badges are issued to now; a fix of a
    badge issued to nobody comes back as a dead letter."""
    if not rows.positions:
        return 0, []
    holder = badge_holders(conn, (p[1] for p in rows.positions))
    fixes = [Fix(staff_id=holder[device_id], time=ts, lon=lon, lat=lat, accuracy_m=accuracy,
                 floor=floor, source="badge", device_id=device_id, received_at=received_at)
             for ts, device_id, lon, lat, accuracy, floor, received_at, *_ in rows.positions
             if device_id in holder]
    unissued = [
        (received_at, topic, payload, "unissued_badge",
         f"badge {device_id} is not issued to any staff member", None)
        for _, device_id, *_, received_at, topic, payload in rows.positions
        if device_id not in holder
    ]
    return record_fixes(conn, fixes), unissued


def _record_acks(conn: psycopg.Connection, rows: Decoded) -> tuple[int, list[tuple]]:
    """Record acknowledgements; those of commands never sent come back as dead letters."""
    if not rows.acks:
        return 0, []
    ids, devices, oks, details, times = (list(c) for c in zip(*(a[:5] for a in rows.acks)))
    with conn.cursor() as cur:
        cur.execute(
            """
            UPDATE device_command c
               SET acked_at = u.t, ok = u.ok, detail = u.detail
              FROM unnest(%s::text[], %s::text[], %s::bool[], %s::text[], %s::timestamptz[])
                   AS u(id, device_id, ok, detail, t)
             WHERE c.id = u.id AND c.device_id = u.device_id
               AND (c.acked_at IS NULL OR c.acked_at <= u.t)
            RETURNING c.id
            """,
            (ids, devices, oks, details, times),
        )
        matched = {r[0] for r in cur.fetchall()}
        known = {r[0] for r in cur.execute(
            "SELECT id FROM device_command WHERE id = ANY(%s)", (ids,))}
    unmatched = [
        (received_at, topic, payload, "unknown_command",
         f"{device_id} acknowledged {command_id!r}, which was never sent", None)
        for command_id, device_id, *_, received_at, topic, payload in rows.acks
        if command_id not in known
    ]
    return len(matched), unmatched
