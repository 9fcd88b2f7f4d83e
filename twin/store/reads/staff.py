"""Staff as the control room shows them: on shift on the map, by name, and whom an order
may be assigned to. Staff as the dispatcher sees them is `twin.store.graph.dispatch_staff`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from twin.dispatch import SHIFTS, on_shift
from twin.store.reads.scope import Scope, ids, named


def staff_positions(conn: psycopg.Connection, community_id: Scope, *, now: datetime
                    ) -> list[dict[str, Any]]:
    """Staff on shift now (the dispatcher's shifts) with a known position; an off-shift
    position is only where somebody went home from."""
    working = {shift: on_shift(shift, now) for shift in SHIFTS}
    rows = conn.execute(
        """SELECT id, name, role, shift, ST_X(position), ST_Y(position) FROM staff
           WHERE community_id = ANY(%s) AND position IS NOT NULL ORDER BY id""",
        (ids(community_id),),
    ).fetchall()
    return [{"id": i, "name": n, "role": r, "lon": x, "lat": y}
            for i, n, r, shift, x, y in rows if working.get(shift, True)]


def staff_names(conn: psycopg.Connection, community_id: Scope) -> dict[str, str]:
    """{staff id: name} of the scope's staff."""
    return dict(conn.execute("SELECT id, name FROM staff WHERE community_id = ANY(%s)",
                             (ids(community_id),)).fetchall())


def staff_choices(conn: psycopg.Connection, community_id: Scope, *, role: str | None = None,
                  near: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Staff an order may be assigned to, nearest first to `near` when it is given."""
    lon, lat = near if near else (None, None)
    rows = conn.execute(
        """SELECT s.id, s.name, s.role, s.grid_id,
                  CASE WHEN %(lon)s::float8 IS NULL OR s.position IS NULL THEN NULL
                       ELSE ST_Distance(s.position::geography,
                              ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) END
           FROM staff s WHERE (%(c)s::text[] IS NULL OR s.community_id = ANY(%(c)s))
             AND (%(role)s::text IS NULL OR s.role = %(role)s)
           ORDER BY 5 NULLS LAST, s.id""",
        {"c": named(community_id), "role": role, "lon": lon, "lat": lat},
    ).fetchall()
    return [{"id": i, "name": n, "role": r, "grid": g, "distance_m": d}
            for i, n, r, g, d in rows]


def staff_exists(conn: psycopg.Connection, staff_id: str) -> bool:
    return conn.execute("SELECT 1 FROM staff WHERE id = %s", (staff_id,)).fetchone() is not None


def staff_position(conn: psycopg.Connection, staff_id: str) -> tuple[float, float] | None:
    """(lon, lat) where a staff member was last seen, or None if nobody knows."""
    row = conn.execute("SELECT ST_X(position), ST_Y(position) FROM staff WHERE id = %s",
                       (staff_id,)).fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])
