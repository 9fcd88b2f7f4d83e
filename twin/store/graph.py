"""The single boundary between walkway rows in the database and the twin's graph.

``walk_routing_graph`` gives the compiled :class:`twin.walkgraph.WalkGraph`
that dispatch and what-if walk over, and ``dispatch_staff`` the staff the
dispatcher chooses from.
"""

from __future__ import annotations

import psycopg
from shapely.geometry import Point

from twin.dispatch import StaffMember
from twin.errors import TwinError
from twin.walkgraph import WalkGraph, from_rows


def walk_routing_graph(conn: psycopg.Connection, community_id: str) -> WalkGraph:
    """The community's walkway network compiled for routing, in its local metric CRS.

    Built from plain rows (no networkx graph in between), so a district-sized
    network loads in seconds. Build it once and keep it.
    """
    row = conn.execute("SELECT local_srid FROM community WHERE id = %s", (community_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no community {community_id!r}")
    (srid,) = row
    nodes = conn.execute(
        """SELECT id, kind, ref_id, ST_X(ST_Transform(geom, %(srid)s)),
                  ST_Y(ST_Transform(geom, %(srid)s))
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
    try:
        return from_rows(nodes, edges, crs=srid)
    except ValueError as e:
        raise TwinError(f"community {community_id!r}: {e}") from e


def dispatch_staff(conn: psycopg.Connection, community_id: str) -> list[StaffMember]:
    """Every staff member of the community with their newest fix and their post, for dispatch."""
    rows = conn.execute(
        """SELECT s.id, s.role, s.shift, s.skills, ST_X(s.position), ST_Y(s.position),
                  s.position_at, s.grid_id, s.post_id, ST_X(f.geom), ST_Y(f.geom)
           FROM staff s LEFT JOIN facility f ON f.id = s.post_id
           WHERE s.community_id = %s ORDER BY s.id""",
        (community_id,),
    ).fetchall()
    return [
        StaffMember(id=sid, role=role, shift=shift, skills=frozenset(skills or ()),
                    position=Point(x, y) if x is not None else None, position_at=at,
                    grid_id=grid, post_id=post_id,
                    post=Point(px, py) if px is not None else None)
        for sid, role, shift, skills, x, y, at, grid, post_id, px, py in rows
    ]
