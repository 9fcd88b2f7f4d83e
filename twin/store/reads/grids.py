"""Grids: which there are, who looks after one, and what is in each (counts only)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg

from twin.errors import TwinError
from twin.store.reads.scope import Scope, ids, named


class GridOwner(NamedTuple):
    """The community a grid is in and the staff member who looks after it."""

    community_id: str
    grid_worker_id: str | None


def grid_ids(conn: psycopg.Connection, community_id: Scope | None = None) -> list[str]:
    """The grids of the scope (None: of every community), in id order."""
    rows = conn.execute(
        "SELECT id FROM grid WHERE %(c)s::text[] IS NULL OR community_id = ANY(%(c)s) "
        "ORDER BY id", {"c": None if community_id is None else ids(community_id)}).fetchall()
    return [r[0] for r in rows]


def grid_owner(conn: psycopg.Connection, grid_id: str) -> GridOwner:
    row = conn.execute("SELECT community_id, grid_worker_id FROM grid WHERE id = %s",
                       (grid_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no grid {grid_id!r} in the twin")
    return GridOwner(*row)


def grid_aggregates(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
                    days: int = 30) -> list[dict[str, Any]]:
    """Per grid: buildings, units, occupancy, care residents, devices, and alarms and orders
    in the last `days`. Counts only: nothing here names a person."""
    rows = conn.execute(
        """
        SELECT g.id, g.name,
          (SELECT count(*) FROM building b WHERE b.grid_id = g.id),
          (SELECT count(*) FROM unit u JOIN building b ON b.id = u.building_id
            WHERE b.grid_id = g.id),
          (SELECT count(*) FROM unit u JOIN building b ON b.id = u.building_id
            WHERE b.grid_id = g.id AND u.occupancy <> 'vacant'),
          (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
             JOIN building b ON b.id = u.building_id
            WHERE b.grid_id = g.id AND cardinality(r.care_flags) > 0),
          (SELECT count(*) FROM device d JOIN building b ON b.id = d.building_id
            WHERE b.grid_id = g.id),
          (SELECT count(*) FROM alarm a JOIN building b ON b.id = a.building_id
            WHERE b.grid_id = g.id AND a.raised_at > %(since)s),
          (SELECT count(*) FROM work_order w WHERE w.grid_id = g.id AND w.created_at > %(since)s)
        FROM grid g WHERE (%(c)s::text[] IS NULL OR g.community_id = ANY(%(c)s)) ORDER BY g.id
        """,
        {"c": named(community_id), "since": now - timedelta(days=days)},
    ).fetchall()
    return [
        {"grid_id": i, "grid": n, "buildings": int(b), "units": int(u),
         "occupancy": round(100.0 * o / u, 1) if u else 0.0, "care": int(c), "devices": int(d),
         "alarms_30d": int(a), "orders_30d": int(w)}
        for i, n, b, u, o, c, d, a, w in rows
    ]
