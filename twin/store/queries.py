"""Named queries the rest of the system asks of the twin.

Each function holds its SQL next to it, always parameterised, and returns
domain types from twin.model; geometry comes back as WKB and becomes shapely.
"""

from __future__ import annotations

from typing import Any

import psycopg
import shapely

from twin.errors import TwinError
from twin.model import (
    Building,
    BuildingContents,
    Device,
    DeviceState,
    FamilyContact,
    NearbyDevice,
    Resident,
)
from twin.store.connection import one_row

_DEVICE_COLUMNS = """
    d.id, d.type, d.name, ST_AsBinary(d.geom), d.building_id, d.floor, d.unit_id, d.facility_id
"""


def building(conn: psycopg.Connection, building_id: str) -> Building:
    row = conn.execute(
        """
        SELECT id, community_id, grid_id, name, usage, floors, units_per_floor, height_m,
               ST_AsBinary(footprint)
        FROM building WHERE id = %s
        """,
        (building_id,),
    ).fetchone()
    if row is None:
        raise TwinError(f"there is no building {building_id!r} in the twin")
    id_, community_id, grid_id, name, usage, floors, units_per_floor, height_m, footprint = row
    return Building(id_, community_id, grid_id, name, usage, floors, units_per_floor, height_m,
                    footprint=shapely.from_wkb(footprint))


def building_contents(conn: psycopg.Connection, building_id: str) -> BuildingContents:
    """Everything in building B: entrances, units, residents, devices and facilities."""
    b = building(conn, building_id)
    entrances, units, occupied, residents, cared = one_row(conn.execute(
        """
        SELECT
            (SELECT count(*) FROM entrance WHERE building_id = %(b)s),
            (SELECT count(*) FROM unit WHERE building_id = %(b)s),
            (SELECT count(*) FROM unit WHERE building_id = %(b)s AND occupancy <> 'vacant'),
            (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
              WHERE u.building_id = %(b)s),
            (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
              WHERE u.building_id = %(b)s AND cardinality(r.care_flags) > 0)
        """,
        {"b": building_id},
    ), "counting a building's contents")
    devices: dict[str, int] = dict(conn.execute(
        "SELECT type, count(*) FROM device WHERE building_id = %s GROUP BY type ORDER BY type",
        (building_id,),
    ).fetchall())
    facilities: dict[str, int] = dict(conn.execute(
        "SELECT kind, count(*) FROM facility WHERE building_id = %s GROUP BY kind ORDER BY kind",
        (building_id,),
    ).fetchall())
    return BuildingContents(b, entrances, units, occupied, residents, cared,
                            devices_by_type=devices, facilities_by_kind=facilities)


def devices_within(
    conn: psycopg.Connection,
    lon: float,
    lat: float,
    radius_m: float,
    *,
    device_type: str | None = None,
) -> list[NearbyDevice]:
    """Devices (of type T) within radius_m metres of a point, nearest first."""
    rows = conn.execute(
        f"""
        WITH here AS (SELECT ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography AS g)
        SELECT {_DEVICE_COLUMNS}, ST_Distance(d.geom::geography, here.g) AS distance
        FROM device d, here
        WHERE ST_DWithin(d.geom::geography, here.g, %(r)s)
          AND (%(type)s::text IS NULL OR d.type = %(type)s::text)
        ORDER BY distance, d.id
        """,
        {"lon": lon, "lat": lat, "r": radius_m, "type": device_type},
    ).fetchall()
    return [NearbyDevice(_device(row), float(row[8])) for row in rows]


def latest_state_in_grid(conn: psycopg.Connection, grid_id: str) -> list[DeviceState]:
    """Latest state of every device in grid G (inside the grid's area)."""
    rows = conn.execute(
        f"""
        SELECT {_DEVICE_COLUMNS}, s.online, s.last_seen, coalesce(s.metrics, '{{}}'::jsonb)
        FROM grid g
        JOIN device d ON d.community_id = g.community_id AND ST_Intersects(d.geom, g.area)
        LEFT JOIN device_state s ON s.device_id = d.id
        WHERE g.id = %s
        ORDER BY d.id
        """,
        (grid_id,),
    ).fetchall()
    return [DeviceState(_device(row), row[8], row[9], row[10]) for row in rows]


def device_state(conn: psycopg.Connection, device_id: str) -> DeviceState:
    """One device's latest state: a single primary-key lookup."""
    row = conn.execute(
        f"""
        SELECT {_DEVICE_COLUMNS}, s.online, s.last_seen, coalesce(s.metrics, '{{}}'::jsonb)
        FROM device d LEFT JOIN device_state s ON s.device_id = d.id
        WHERE d.id = %s
        """,
        (device_id,),
    ).fetchone()
    if row is None:
        raise TwinError(f"there is no device {device_id!r} in the twin")
    return DeviceState(_device(row), row[8], row[9], row[10])


def care_residents(
    conn: psycopg.Connection,
    *,
    unit_id: str | None = None,
    building_id: str | None = None,
    flag: str | None = None,
) -> list[Resident]:
    """Residents with special-care flags in unit U (or building B), optionally one flag."""
    if unit_id is None and building_id is None:
        raise TwinError("care_residents needs a unit_id or a building_id")
    rows = conn.execute(
        """
        SELECT r.id, r.unit_id, r.name, r.phone, r.gender, r.age_band, r.care_flags,
               r.family_contacts
        FROM resident r JOIN unit u ON u.id = r.unit_id
        WHERE (%(u)s::text IS NULL OR r.unit_id = %(u)s::text)
          AND (%(b)s::text IS NULL OR u.building_id = %(b)s::text)
          AND cardinality(r.care_flags) > 0
          AND (%(f)s::text IS NULL OR %(f)s::text = ANY(r.care_flags))
        ORDER BY r.id
        """,
        {"u": unit_id, "b": building_id, "f": flag},
    ).fetchall()
    return [
        Resident(
            id_, unit, name, phone, gender, age_band,
            care_flags=tuple(flags),
            family_contacts=tuple(FamilyContact(**c) for c in contacts),
        )
        for id_, unit, name, phone, gender, age_band, flags, contacts in rows
    ]


def community_summary(conn: psycopg.Connection, community_id: str) -> dict[str, int]:
    """Row counts of one community, table by table, for the demo and `twin info`."""
    row = one_row(conn.execute(
        """
        SELECT
            (SELECT count(*) FROM grid WHERE community_id = %(c)s),
            (SELECT count(*) FROM building WHERE community_id = %(c)s),
            (SELECT count(*) FROM unit u JOIN building b ON b.id = u.building_id
              WHERE b.community_id = %(c)s),
            (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
              JOIN building b ON b.id = u.building_id WHERE b.community_id = %(c)s),
            (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
              JOIN building b ON b.id = u.building_id
              WHERE b.community_id = %(c)s AND cardinality(r.care_flags) > 0),
            (SELECT count(*) FROM facility WHERE community_id = %(c)s),
            (SELECT count(*) FROM device WHERE community_id = %(c)s),
            (SELECT count(DISTINCT type) FROM device WHERE community_id = %(c)s),
            (SELECT count(*) FROM staff WHERE community_id = %(c)s),
            (SELECT count(*) FROM walk_node WHERE community_id = %(c)s),
            (SELECT count(*) FROM walk_edge WHERE community_id = %(c)s)
        """,
        {"c": community_id},
    ), "counting a community's rows")
    keys = ("grids", "buildings", "units", "residents", "care_residents", "facilities",
            "devices", "device_types", "staff", "walk_nodes", "walk_edges")
    return dict(zip(keys, (int(v) for v in row), strict=True))


def communities(conn: psycopg.Connection) -> list[tuple[str, str, str]]:
    """(id, name, city) of every community in the twin."""
    return [tuple(r) for r in conn.execute("SELECT id, name, city FROM community ORDER BY id")]


def _device(row: tuple[Any, ...]) -> Device:
    return Device(
        id=row[0], type=row[1], name=row[2], location=shapely.from_wkb(row[3]),
        building_id=row[4], floor=row[5], unit_id=row[6], facility_id=row[7],
    )
