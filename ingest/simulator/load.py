"""Reading one community from the twin's database into the frames a simulation needs.

The one place where the simulator meets the database: named, parameterised
queries, each returning a frame with the twin's column names.
"""

from __future__ import annotations

import pandas as pd
import psycopg

from ingest.simulator.world import Community
from twin.errors import TwinError
from twin.store.graph import walk_routing_graph
from twin.store.reads.scope import one_community
from twin.walkgraph import WalkGraph


def load_community(conn: psycopg.Connection, community_id: str | None) -> Community:
    """The frames a simulation needs, of one community of the twin (None: the only one)."""
    community_id = one_community(conn, community_id)
    devices = community_devices(conn, community_id)
    if devices.empty:
        raise TwinError(f"community {community_id} has no devices")
    return Community(devices=devices, residents=community_residents(conn, community_id),
                     facilities=community_facilities(conn, community_id),
                     buildings=community_buildings(conn, community_id),
                     staff=community_staff(conn, community_id),
                     walkway=_walkway(conn, community_id))


def community_devices(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, """
        SELECT id, community_id, type, building_id, floor, unit_id, facility_id
          FROM device WHERE community_id = %s ORDER BY id
    """, community_id)


def community_residents(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, """
        SELECT r.id, r.unit_id, u.building_id, r.care_flags, r.age_band
          FROM resident r
          JOIN unit u ON u.id = r.unit_id
          JOIN building b ON b.id = u.building_id
         WHERE b.community_id = %s
         ORDER BY r.id
    """, community_id)


def community_facilities(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, """
        SELECT id, kind, name, building_id FROM facility WHERE community_id = %s ORDER BY id
    """, community_id)


def community_staff(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    """The staff with their badges and where their posts are (EPSG:4326)."""
    return _frame(conn, """
        SELECT s.id, s.role, s.shift, s.badge_id, ST_X(f.geom) AS post_lon,
               ST_Y(f.geom) AS post_lat
          FROM staff s LEFT JOIN facility f ON f.id = s.post_id
         WHERE s.community_id = %s
         ORDER BY s.id
    """, community_id)


def community_buildings(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, "SELECT id, name FROM building WHERE community_id = %s ORDER BY id",
                  community_id)


def _walkway(conn: psycopg.Connection, community_id: str) -> WalkGraph | None:
    """The walkways staff patrol on; None for a community imported without any."""
    edge = conn.execute("SELECT 1 FROM walk_edge WHERE community_id = %s LIMIT 1",
                        (community_id,)).fetchone()
    return walk_routing_graph(conn, community_id) if edge is not None else None


def _frame(conn: psycopg.Connection, sql: str, *params: object) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        assert cur.description is not None, "a query that returns rows"
        columns = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)
