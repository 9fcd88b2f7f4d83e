"""Where staff are: position fixes from badges, phones and the simulator.

Every fix is a row of the ``staff_position`` hypertable, idempotent on
``(staff_id, time)``, and the newest fix of each staff member is kept on
``staff.position`` / ``staff.position_at`` (newer wins, so a late or
redelivered fix never moves anyone back). Both writes run in the caller's
transaction: ingest's flush, or the phone page's request.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import psycopg

Source = Literal["badge", "phone"]


@dataclass(frozen=True, slots=True)
class Fix:
    """One position of one staff member, EPSG:4326."""

    staff_id: str
    time: datetime
    lon: float
    lat: float
    accuracy_m: float | None = None
    floor: int | None = None
    source: Source = "badge"
    #: The badge that sent it; None from a phone.
    device_id: str | None = None
    received_at: datetime | None = None


def badge_holders(conn: psycopg.Connection, badge_ids: Iterable[str]) -> dict[str, str]:
    """Badge device id -> the staff member it is issued to; badges issued to nobody are absent."""
    ids = sorted(set(badge_ids))
    if not ids:
        return {}
    rows = conn.execute("SELECT badge_id, id FROM staff WHERE badge_id = ANY(%s)",
                        (ids,)).fetchall()
    return dict(rows)


def record_fixes(conn: psycopg.Connection, fixes: Sequence[Fix]) -> int:
    """Store ``fixes`` and move each staff member's latest position forward; rows added.

    A fix already stored (same staff member and time) adds nothing; a fix older
    than the staff member's ``position_at`` is kept in the history only.
    """
    if not fixes:
        return 0
    columns = [list(c) for c in zip(*((f.time, f.staff_id, f.lon, f.lat, f.accuracy_m, f.floor,
                                        f.source, f.device_id, f.received_at) for f in fixes))]
    with conn.cursor() as cur:
        cur.execute(
            """
            INSERT INTO staff_position (time, staff_id, geom, accuracy_m, floor, source,
                                        device_id, received_at)
            SELECT t, s, ST_SetSRID(ST_MakePoint(x, y), 4326), a, f, src, d, coalesce(r, now())
              FROM unnest(%s::timestamptz[], %s::text[], %s::float8[], %s::float8[],
                          %s::float4[], %s::int2[], %s::text[], %s::text[], %s::timestamptz[])
                   AS u(t, s, x, y, a, f, src, d, r)
            ON CONFLICT (staff_id, time) DO NOTHING
            """,
            columns,
        )
        added = cur.rowcount
        # Newest fix per staff member; ids sorted so concurrent writers lock in one order.
        cur.execute(
            """
            UPDATE staff AS st SET position = ST_SetSRID(ST_MakePoint(n.x, n.y), 4326),
                                   position_at = n.t
              FROM (SELECT DISTINCT ON (s) s, t, x, y
                      FROM unnest(%s::text[], %s::timestamptz[], %s::float8[], %s::float8[])
                           AS u(s, t, x, y)
                     ORDER BY s, t DESC) AS n
             WHERE st.id = n.s AND (st.position_at IS NULL OR st.position_at < n.t)
            """,
            (columns[1], columns[0], columns[2], columns[3]),
        )
    return added


def latest_fix(conn: psycopg.Connection, staff_id: str) -> tuple[float, float, datetime] | None:
    """(lon, lat, time) of the staff member's newest fix, or None when nobody knows."""
    row = conn.execute(
        "SELECT ST_X(position), ST_Y(position), position_at FROM staff "
        "WHERE id = %s AND position IS NOT NULL", (staff_id,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def staff_on_record(conn: psycopg.Connection, staff_id: str) -> tuple[str, str] | None:
    """(community_id, shift) of a staff member, or None when there is no such staff member."""
    row = conn.execute("SELECT community_id, shift FROM staff WHERE id = %s",
                       (staff_id,)).fetchone()
    return None if row is None else (row[0], row[1])
