"""A building as the control room shows it: its summary, its units floor by floor, a
look-up of buildings and households, footprints. The building as a domain type, and its
contents counted, are `twin.store.queries.building` / `building_contents`."""

from __future__ import annotations

from typing import Any

import psycopg
import shapely

from twin.alarms import SEVERITIES
from twin.errors import TwinError


def building_summary(conn: psycopg.Connection, building_id: str) -> dict[str, Any]:
    """Name, size, grid, usage and centre of a building."""
    row = conn.execute(
        """SELECT b.id, b.name, b.floors, b.units_per_floor, b.height_m, b.grid_id, g.name,
                  b.usage, ST_X(ST_Centroid(b.footprint)), ST_Y(ST_Centroid(b.footprint)),
                  b.community_id
           FROM building b LEFT JOIN grid g ON g.id = b.grid_id WHERE b.id = %s""",
        (building_id,),
    ).fetchone()
    if row is None:
        raise TwinError(f"there is no building {building_id!r} in the twin")
    keys = ("id", "name", "floors", "units_per_floor", "height_m", "grid_id", "grid", "usage",
            "lon", "lat", "community_id")
    return dict(zip(keys, row, strict=True))


def unit_grid(conn: psycopg.Connection, building_id: str) -> list[dict[str, Any]]:
    """Every unit, top floor first, with its occupancy, residents, special-care residents and
    open alarms (counts only)."""
    rows = conn.execute(
        """
        SELECT u.id, u.floor, u.number, u.occupancy,
               count(r.id) AS residents,
               count(r.id) FILTER (WHERE cardinality(r.care_flags) > 0) AS care,
               (SELECT count(*) FROM alarm a WHERE a.unit_id = u.id AND a.state <> 'cleared'),
               (SELECT min(array_position(%s::text[], a.severity)) FROM alarm a
                 WHERE a.unit_id = u.id AND a.state <> 'cleared')
        FROM unit u LEFT JOIN resident r ON r.unit_id = u.id
        WHERE u.building_id = %s
        GROUP BY u.id ORDER BY u.floor DESC, u.number
        """,
        (list(SEVERITIES), building_id),
    ).fetchall()
    return [
        {"id": i, "floor": f, "number": n, "occupancy": o, "residents": int(r), "care": int(c),
         "alarms": int(a), "severity": SEVERITIES[s - 1] if s else None}
        for i, f, n, o, r, c, a, s in rows
    ]


def unit_building(conn: psycopg.Connection, unit_id: str) -> str:
    """The building a unit is in."""
    row = conn.execute("SELECT building_id FROM unit WHERE id = %s", (unit_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no unit {unit_id!r} in the twin")
    return row[0]


def lookup(conn: psycopg.Connection, query: str, *, grid_id: str | None = None,
           limit: int = 20) -> list[dict[str, Any]]:
    """Buildings and households matching "1栋", "1203" or "1栋 1203", in one grid or all."""
    words = query.split()
    if not words:
        return []
    building_word = words[0] if len(words) > 1 else None
    unit_word = words[-1]
    rows = conn.execute(
        """
        (SELECT 'building' AS kind, b.id, b.name, NULL::text AS unit_id, NULL::text AS number,
                b.grid_id
         FROM building b
         WHERE (%(grid)s::text IS NULL OR b.grid_id = %(grid)s)
           AND %(bw)s::text IS NULL AND (b.name ILIKE %(q)s OR b.id ILIKE %(q)s)
         ORDER BY b.name LIMIT %(n)s)
        UNION ALL
        (SELECT 'unit', b.id, b.name, u.id, u.number, b.grid_id
         FROM unit u JOIN building b ON b.id = u.building_id
         WHERE (%(grid)s::text IS NULL OR b.grid_id = %(grid)s)
           AND u.number = %(uw)s
           AND (%(bw)s::text IS NULL OR b.name ILIKE %(bq)s)
         ORDER BY b.name LIMIT %(n)s)
        """,
        {"grid": grid_id, "q": f"%{query.strip()}%", "bw": building_word,
         "bq": f"%{building_word}%" if building_word else None, "uw": unit_word, "n": limit},
    ).fetchall()
    return [{"kind": k, "building_id": b, "building": bn, "unit_id": u, "unit": n, "grid": g}
            for k, b, bn, u, n, g in rows]


def footprints(conn: psycopg.Connection, building_ids: list[str]) -> dict[str, shapely.Geometry]:
    """The footprints of the named buildings (unsimplified), for an export."""
    rows = conn.execute("SELECT id, ST_AsBinary(footprint) FROM building WHERE id = ANY(%s)",
                        (building_ids,)).fetchall()
    return {b: shapely.from_wkb(bytes(g)) for b, g in rows}
