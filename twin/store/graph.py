"""The single boundary between walkway rows in the database and a networkx graph."""

from __future__ import annotations

import networkx as nx
import psycopg


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
