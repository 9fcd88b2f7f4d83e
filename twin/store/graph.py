"""The single boundary between walkway rows in the database and the twin's graphs.

``walk_graph`` gives the networkx graph (for analysis and tests);
``walk_routing_graph`` gives the compiled graph the dispatcher routes over,
and ``dispatch_staff`` the staff it chooses from.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import psycopg
import shapely
from shapely.geometry import Point

from twin.dispatch import StaffMember
from twin.errors import TwinError
from twin.walkgraph import WalkGraph, build_walk_graph


def walk_graph(conn: psycopg.Connection, community_id: str) -> nx.Graph:
    """The community's walkway network: nodes carry kind/ref_id/lon/lat, edges length_m."""
    graph = nx.Graph(community_id=community_id)
    nodes = conn.execute(
        "SELECT id, kind, ref_id, ST_X(geom), ST_Y(geom) FROM walk_node WHERE community_id = %s",
        (community_id,),
    ).fetchall()
    graph.add_nodes_from(
        (node_id, {"kind": kind, "ref_id": ref, "lon": x, "lat": y})
        for node_id, kind, ref, x, y in nodes
    )
    edges = conn.execute(
        "SELECT source, target, id, kind, length_m FROM walk_edge WHERE community_id = %s",
        (community_id,),
    ).fetchall()
    graph.add_edges_from(
        (s, t, {"id": eid, "kind": kind, "length_m": float(length)})
        for s, t, eid, kind, length in edges
    )
    return graph


def walk_routing_graph(conn: psycopg.Connection, community_id: str) -> WalkGraph:
    """The community's walkway network compiled for routing, in its local metric CRS.

    Built from plain column arrays (no networkx graph in between), so a
    district-sized network loads in seconds. Build it once and keep it.
    """
    row = conn.execute("SELECT local_srid FROM community WHERE id = %s", (community_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no community {community_id!r}")
    (srid,) = row
    nodes = conn.execute(
        """SELECT id, ST_X(ST_Transform(geom, %(srid)s)), ST_Y(ST_Transform(geom, %(srid)s))
           FROM walk_node WHERE community_id = %(c)s ORDER BY id""",
        {"srid": srid, "c": community_id},
    ).fetchall()
    edges = conn.execute(
        """SELECT id, source, target, kind, length_m, ST_AsBinary(ST_Transform(geom, %(srid)s))
           FROM walk_edge WHERE community_id = %(c)s ORDER BY id""",
        {"srid": srid, "c": community_id},
    ).fetchall()
    if not edges:
        raise TwinError(f"community {community_id!r} has no walkway edges to route over")
    node_ids = np.array([r[0] for r in nodes], dtype=object)
    index = pd.Index(node_ids)
    ends = index.get_indexer(np.array([(r[1], r[2]) for r in edges], dtype=object).ravel())
    if (ends < 0).any():
        raise TwinError(f"community {community_id!r}: a walkway edge ends at a node of "
                        "another community")
    ends = ends.reshape(-1, 2)
    return build_walk_graph(
        node_ids,
        np.array([r[1] for r in nodes], dtype=np.float64),
        np.array([r[2] for r in nodes], dtype=np.float64),
        ends[:, 0], ends[:, 1],
        np.array([r[4] for r in edges], dtype=np.float64),
        crs=srid,
        edge_ids=[r[0] for r in edges],
        edge_kind=[r[3] for r in edges],
        edge_lines=shapely.from_wkb([bytes(r[5]) for r in edges]),
    )


def dispatch_staff(conn: psycopg.Connection, community_id: str) -> list[StaffMember]:
    """Every staff member of the community with their last known position, for dispatch."""
    rows = conn.execute(
        """SELECT id, role, shift, skills, ST_X(position), ST_Y(position), position_at, grid_id
           FROM staff WHERE community_id = %s ORDER BY id""",
        (community_id,),
    ).fetchall()
    return [
        StaffMember(id=sid, role=role, shift=shift, skills=frozenset(skills or ()),
                    position=Point(x, y) if x is not None else None, position_at=at,
                    grid_id=grid)
        for sid, role, shift, skills, x, y, at, grid in rows
    ]
