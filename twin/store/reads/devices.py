"""Devices as the control room lists them: those that need attention, a building's devices
with their latest state, and where one device is. One device's state as a domain type is
`twin.store.queries.device_state`."""

from __future__ import annotations

from typing import Any, NamedTuple

import psycopg

from twin.alarms import SEVERITIES
from twin.errors import TwinError
from twin.store.reads.scope import Scope, named

#: Devices needing attention drawn at most (alarming first, then offline).
ATTENTION_LIMIT = 1500


class PlacedDevice(NamedTuple):
    """A device and where it is: building, floor, unit, point and grid."""

    id: str
    building_id: str | None
    floor: int | None
    unit_id: str | None
    lon: float
    lat: float
    grid_id: str | None


def attention_devices(conn: psycopg.Connection, community_id: Scope, *,
                      limit: int = ATTENTION_LIMIT) -> list[dict[str, Any]]:
    """Devices with an open alarm (worst first), then offline devices; at most `limit`."""
    rows = conn.execute(
        """
        WITH alarming AS (
            SELECT device_id, min(array_position(%(order)s::text[], severity)) AS rank
            FROM alarm WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
              AND state <> 'cleared' AND device_id IS NOT NULL
            GROUP BY device_id
        ), offline AS (
            SELECT s.device_id FROM device_state s WHERE s.online IS NOT TRUE
              AND (%(c)s::text[] IS NULL OR EXISTS (SELECT 1 FROM device d
                   WHERE d.id = s.device_id AND d.community_id = ANY(%(c)s)))
        ), picked AS (
            SELECT device_id, rank FROM alarming
            UNION ALL
            SELECT o.device_id, 99 FROM offline o
            WHERE NOT EXISTS (SELECT 1 FROM alarming a WHERE a.device_id = o.device_id)
        )
        SELECT d.id, d.type, d.name, d.building_id, d.floor, ST_X(d.geom), ST_Y(d.geom), p.rank
        FROM picked p JOIN device d ON d.id = p.device_id
        ORDER BY p.rank, d.id
        LIMIT %(n)s
        """,
        {"c": named(community_id), "order": list(SEVERITIES), "n": limit},
    ).fetchall()
    return [
        {"id": i, "type": t, "name": n, "building": b, "floor": f, "lon": x, "lat": y,
         "state": "alarm" if rank != 99 else "offline",
         "severity": SEVERITIES[rank - 1] if rank != 99 else None}
        for i, t, n, b, f, x, y, rank in rows
    ]


def building_devices(conn: psycopg.Connection, building_id: str) -> list[dict[str, Any]]:
    """A building's devices with their latest state, and the worst alarm open on each."""
    rows = conn.execute(
        """SELECT d.id, d.type, d.name, d.floor, d.unit_id, s.online, s.last_seen,
                  coalesce(s.metrics, '{}'::jsonb),
                  (SELECT min(array_position(%s::text[], a.severity)) FROM alarm a
                    WHERE a.device_id = d.id AND a.state <> 'cleared')
           FROM device d LEFT JOIN device_state s ON s.device_id = d.id
           WHERE d.building_id = %s ORDER BY d.floor NULLS FIRST, d.type, d.id""",
        (list(SEVERITIES), building_id),
    ).fetchall()
    return [
        {"id": i, "type": t, "name": n, "floor": f, "unit_id": u, "online": on,
         "last_seen": seen, "metrics": {k: v.get("v") for k, v in (m or {}).items()},
         "severity": SEVERITIES[s - 1] if s else None}
        for i, t, n, f, u, on, seen, m, s in rows
    ]


def device_grid_id(conn: psycopg.Connection, device_id: str) -> str | None:
    """The grid of the building a device is in (None outside buildings): what scopes it."""
    row = conn.execute(
        """SELECT b.grid_id FROM device d LEFT JOIN building b ON b.id = d.building_id
           WHERE d.id = %s""", (device_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no device {device_id!r} in the twin")
    return row[0]


def first_device(conn: psycopg.Connection, community_id: str, device_type: str, *,
                 above_floor: int | None = None, indoors: bool = False,
                 building_id: str | None = None) -> PlacedDevice | None:
    """The first device of a type (by id), optionally above a floor, in any building or in
    one: where a demo raises its alarms."""
    row = conn.execute(
        """SELECT d.id, d.building_id, d.floor, d.unit_id, ST_X(d.geom), ST_Y(d.geom),
                  b.grid_id
           FROM device d LEFT JOIN building b ON b.id = d.building_id
           WHERE d.community_id = %(c)s AND d.type = %(t)s
             AND (%(floor)s::int IS NULL OR d.floor > %(floor)s)
             AND (NOT %(indoors)s OR d.building_id IS NOT NULL)
             AND (%(b)s::text IS NULL OR d.building_id = %(b)s)
           ORDER BY d.id LIMIT 1""",
        {"c": community_id, "t": device_type, "floor": above_floor, "indoors": indoors,
         "b": building_id},
    ).fetchone()
    return None if row is None else PlacedDevice(*row)
