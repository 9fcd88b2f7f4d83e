"""The static geometry a map is drawn from: the twin's own, so no tiles are needed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import psycopg
import shapely

from twin.store.reads.scope import Scope, ids

#: At most this many devices are drawn one by one; above it only the devices that need
#: attention are (aggregate first).
FULL_DEVICES_LIMIT = 5000
#: Walkway kinds drawn on the base map.
WALK_KINDS = ("road", "footway", "ramp", "steps")


@dataclass(frozen=True)
class MapFrames:
    boundary: gpd.GeoDataFrame
    green: gpd.GeoDataFrame
    grids: gpd.GeoDataFrame
    walkways: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    devices: gpd.GeoDataFrame | None
    device_count: int


def map_frames(conn: psycopg.Connection, community_id: Scope, *,
               full_devices_limit: int = FULL_DEVICES_LIMIT,
               walkway_buildings_limit: int = 1000) -> MapFrames:
    """The geometry of the base map, simplified by 2e-6° (about 0.2 m) in SQL.

    Devices are included up to `full_devices_limit`; walkways while there are at most
    `walkway_buildings_limit` buildings (a district's 28,000 walkway edges would be most
    of the first load and unreadable at that zoom anyway)."""
    scope = ids(community_id)
    counts = conn.execute(
        """SELECT (SELECT count(*) FROM building WHERE community_id = ANY(%(c)s)),
                  (SELECT count(*) FROM device WHERE community_id = ANY(%(c)s))""",
        {"c": scope}).fetchone()
    assert counts is not None
    building_count, device_count = counts
    walk_kinds = list(WALK_KINDS) if building_count <= walkway_buildings_limit else []
    devices = None
    if device_count <= full_devices_limit:
        devices = _frame(conn, """
            SELECT id, type, floor, building_id, ST_AsBinary(geom) FROM device
            WHERE community_id = ANY(%s) ORDER BY id""", (scope,),
            ["id", "type", "floor", "building_id"])
    return MapFrames(
        boundary=_frame(conn, """SELECT id, ST_AsBinary(boundary) FROM community
                                 WHERE id = ANY(%s) ORDER BY id""", (scope,), ["id"]),
        green=_frame(conn, """SELECT id, ST_AsBinary(area) FROM facility
                              WHERE community_id = ANY(%s) AND area IS NOT NULL
                                AND kind IN ('green_area', 'playground') ORDER BY id""",
                     (scope,), ["id"]),
        grids=_frame(conn, "SELECT id, ST_AsBinary(area) FROM grid WHERE community_id = ANY(%s) "
                           "ORDER BY id", (scope,), ["id"]),
        walkways=_frame(conn, """SELECT id, kind,
                                        ST_AsBinary(ST_SimplifyPreserveTopology(geom, 2e-6))
                                 FROM walk_edge WHERE community_id = ANY(%s) AND kind = ANY(%s)
                                 ORDER BY id""", (scope, walk_kinds), ["id", "kind"]),
        buildings=_frame(conn, """SELECT id, name, floors, height_m, grid_id,
                                         ST_AsBinary(ST_SimplifyPreserveTopology(footprint, 2e-6))
                                  FROM building WHERE community_id = ANY(%s) ORDER BY id""",
                         (scope,), ["id", "name", "floors", "height_m", "grid_id"]),
        devices=devices,
        device_count=int(device_count),
    )


def walkway_lines(conn: psycopg.Connection, community_id: str) -> dict[str, shapely.LineString]:
    """Every walkway edge of a community, unsimplified: what a planner clicks to close."""
    rows = conn.execute("SELECT id, ST_AsBinary(geom) FROM walk_edge WHERE community_id = %s",
                        (community_id,)).fetchall()
    return {edge: shapely.from_wkb(bytes(geom)) for edge, geom in rows}


def _frame(conn: psycopg.Connection, query: str, params: tuple[Any, ...], columns: list[str]
           ) -> gpd.GeoDataFrame:
    """Rows whose last column is WKB, as a GeoDataFrame in EPSG:4326."""
    rows = conn.execute(query, params).fetchall()
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    geometry = shapely.from_wkb([r[len(columns)] for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=list(geometry), crs="EPSG:4326")
