"""Residents' reports as kept: named queries over ``report`` (migration 0025), whose photo
is its work order's first (``work_order_photo``). The rules of a report are
`twin.reports`; who may read or write one is asked by the service (`dashboard.reports`)
before it comes here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from shapely.geometry import Point

from twin.reports import TEXTS_OWNER, Catalogue, Snapped, Where
from twin.store.connection import one_row
from twin.store.operations import Photo
from twin.work_orders import BUSY_STATES, OPEN_STATES, order_code

#: The queue's three columns, by the state of the order a report became.
NEW_STATES = ("created", "escalated")
DONE_STATES = ("resolved", "closed", "cancelled")


def status_of(order_state: str | None) -> str:
    """'new', 'in_progress' or 'done': where a report stands, from its order's state."""
    if order_state is None or order_state in NEW_STATES:
        return "new"
    return "in_progress" if order_state in BUSY_STATES else "done"


def store_texts(conn: psycopg.Connection, catalogue: Catalogue) -> None:
    """The catalogue's order titles (reports' and hand-made orders'), by key, where the
    renderer reads templates."""
    conn.cursor().executemany(
        """INSERT INTO rule_text (key, rule_id, texts) VALUES (%s, %s, %s)
           ON CONFLICT (key) DO UPDATE SET texts = excluded.texts""",
        [(key, TEXTS_OWNER, Jsonb(texts)) for key, texts in catalogue.texts().items()])


def open_orders_of_alarm(conn: psycopg.Connection, alarm_id: int) -> list[int]:
    """The orders an alarm opened that are not yet closed (what its clearing settles)."""
    return [int(oid) for (oid,) in conn.execute(
        "SELECT id FROM work_order WHERE alarm_id = %s AND state = ANY(%s) ORDER BY id",
        (alarm_id, sorted(OPEN_STATES | {"resolved"}))).fetchall()]


def building_point(conn: psycopg.Connection, building_id: str) -> Point | None:
    """A point inside a building's footprint (where a hand-made order for it stands)."""
    row = conn.execute("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(footprint) p "
                       "FROM building WHERE id = %s) x", (building_id,)).fetchone()
    return None if row is None else Point(row[0], row[1])


def lock_and_count(conn: psycopg.Connection, resident_id: str, since: datetime) -> int:
    """The resident's reports since ``since``, counted under a lock held to the end of the
    transaction, so that two reports sent at once cannot both pass the allowance."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtext('report:' || %s))", (resident_id,))
    (n,) = one_row(conn.execute(
        "SELECT count(*) FROM report WHERE resident_id = %s AND created_at > %s",
        (resident_id, since)), "counting reports")
    return int(n)


def unit_place(conn: psycopg.Connection, unit_id: str) -> Where | None:
    """Where a unit is: its building's first entrance (where one walks to), else a point on
    its footprint."""
    row = conn.execute(
        """SELECT b.community_id, b.id, b.grid_id,
                  ST_X(coalesce(e.geom, ST_PointOnSurface(b.footprint))),
                  ST_Y(coalesce(e.geom, ST_PointOnSurface(b.footprint)))
           FROM unit u JOIN building b ON b.id = u.building_id
           LEFT JOIN LATERAL (SELECT geom FROM entrance WHERE building_id = b.id
                              ORDER BY id LIMIT 1) e ON true
           WHERE u.id = %s""", (unit_id,)).fetchone()
    if row is None:
        return None
    community, building, grid, x, y = row
    return Where(community, Point(x, y), "unit", building, grid, unit_id)


def map_place(conn: psycopg.Connection, community_id: str, point: Point, *,
              max_m: float) -> Where | None:
    """A point picked on the map, with the building it falls in or is nearest to (within
    ``max_m``), and that building's grid; None when no building of the community is near."""
    row = conn.execute(
        """SELECT id, grid_id FROM building
           WHERE community_id = %(c)s
             AND ST_DWithin(footprint::geography, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)
                            ::geography, %(m)s)
           ORDER BY footprint <-> ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326), id
           LIMIT 1""", {"c": community_id, "x": point.x, "y": point.y, "m": max_m}).fetchone()
    if row is None:
        return None
    return Where(community_id, point, "map", row[0], row[1])


def insert_report(conn: psycopg.Connection, *, resident_id: str, category: str, text: str,
                  where: Where, snapped: Snapped, at: datetime) -> int:
    (report_id,) = one_row(conn.execute(
        """INSERT INTO report (community_id, resident_id, category, text, place_source, geom,
                               snapped, snap_m, walk_edge_id, building_id, unit_id, grid_id,
                               created_at)
           VALUES (%s, %s, %s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326),
                   ST_SetSRID(ST_MakePoint(%s, %s), 4326), %s, %s, %s, %s, %s, %s)
           RETURNING id""",
        (where.community_id, resident_id, category, text, where.source, where.point.x,
         where.point.y, snapped.point.x, snapped.point.y, snapped.offset_m, snapped.edge_id,
         where.building_id, where.unit_id, where.grid_id, at)), "keeping a report")
    return int(report_id)


def link_order(conn: psycopg.Connection, report_id: int, order_id: int, *,
               photo: Photo | None, at: datetime) -> None:
    """The report became this order; its photo is the order's first (on its 'created' step),
    where the staff see an order's photos."""
    conn.execute("UPDATE report SET work_order_id = %s WHERE id = %s", (order_id, report_id))
    if photo is not None:
        conn.execute(
            """INSERT INTO work_order_photo (work_order_id, event_id, content_type, data, taken_at)
               SELECT %s, (SELECT id FROM work_order_event WHERE work_order_id = %s
                           AND action = 'created' ORDER BY id LIMIT 1), %s, %s, %s""",
            (order_id, order_id, photo.content_type, photo.data, at))


@dataclass(frozen=True, slots=True)
class ReportRow:
    id: int
    community_id: str
    resident_id: str
    category: str
    text: str
    place_source: str
    lon: float
    lat: float
    snap_m: float
    building_id: str | None
    building: str | None
    unit: str | None
    grid_id: str | None
    created_at: datetime
    order_id: int | None
    order_code: str | None
    order_state: str | None
    assignee_id: str | None
    assignee_role: str | None
    order_role: str | None
    tier: str | None
    rating: int | None
    rating_comment: str
    rated_at: datetime | None
    has_photo: bool

    @property
    def status(self) -> str:
        return status_of(self.order_state)


_COLUMNS = """
    r.id, r.community_id, r.resident_id, r.category, r.text, r.place_source, ST_X(r.geom),
    ST_Y(r.geom), r.snap_m, r.building_id, b.name, u.number, r.grid_id, r.created_at,
    w.id, w.created_at, c.timezone, w.state, w.assignee_id, s.role, w.role, w.tier,
    r.rating, r.rating_comment, r.rated_at,
    EXISTS (SELECT 1 FROM work_order_photo p JOIN work_order_event e ON e.id = p.event_id
            WHERE p.work_order_id = r.work_order_id AND e.action = 'created')
"""
_FROM = """
    FROM report r
    JOIN community c ON c.id = r.community_id
    LEFT JOIN building b ON b.id = r.building_id
    LEFT JOIN unit u ON u.id = r.unit_id
    LEFT JOIN work_order w ON w.id = r.work_order_id
    LEFT JOIN staff s ON s.id = w.assignee_id
"""


def get_report(conn: psycopg.Connection, report_id: int) -> ReportRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE r.id = %s", (report_id,)).fetchone()
    return None if row is None else _row(row)


def reports_of(conn: psycopg.Connection, resident_id: str, *, limit: int = 50
               ) -> list[ReportRow]:
    """One resident's reports, newest first."""
    rows = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE r.resident_id = %s "
                        "ORDER BY r.created_at DESC, r.id DESC LIMIT %s",
                        (resident_id, limit)).fetchall()
    return [_row(r) for r in rows]


def queue(conn: psycopg.Connection, community_ids: list[str], *, limit: int = 200
          ) -> list[ReportRow]:
    """The communities' reports, newest first (the operators' queue)."""
    rows = conn.execute(f"SELECT {_COLUMNS} {_FROM} WHERE r.community_id = ANY(%s) "
                        "ORDER BY r.created_at DESC, r.id DESC LIMIT %s",
                        (community_ids, limit)).fetchall()
    return [_row(r) for r in rows]


def report_photo(conn: psycopg.Connection, report_id: int) -> Photo | None:
    """The photo the resident sent with the report (their order's first)."""
    row = conn.execute(
        """SELECT p.content_type, p.data FROM report r
           JOIN work_order_photo p ON p.work_order_id = r.work_order_id
           JOIN work_order_event e ON e.id = p.event_id AND e.action = 'created'
           WHERE r.id = %s ORDER BY p.id LIMIT 1""", (report_id,)).fetchone()
    return None if row is None else Photo(row[0], bytes(row[1]))


def rate(conn: psycopg.Connection, report_id: int, *, stars: int, comment: str,
         at: datetime) -> bool:
    """Keep a rating once; False if the report was rated meanwhile."""
    done = conn.execute(
        """UPDATE report SET rating = %s, rating_comment = %s, rated_at = %s
           WHERE id = %s AND rating IS NULL""", (stars, comment, at, report_id))
    return done.rowcount == 1


def _row(row: tuple[Any, ...]) -> ReportRow:
    (rid, community, resident, category, text, source, x, y, snap_m, building_id, building,
     unit, grid, created, order_id, order_at, tz, state, assignee, assignee_role, order_role,
     tier, rating, comment, rated_at, has_photo) = row
    return ReportRow(
        id=rid, community_id=community, resident_id=resident, category=category, text=text,
        place_source=source, lon=x, lat=y, snap_m=snap_m, building_id=building_id,
        building=building, unit=unit, grid_id=grid, created_at=created, order_id=order_id,
        order_code=order_code(order_id, order_at, tz) if order_id is not None else None,
        order_state=state, assignee_id=assignee, assignee_role=assignee_role,
        order_role=order_role, tier=tier, rating=rating, rating_comment=comment,
        rated_at=rated_at, has_photo=bool(has_photo))


def targets(conn: psycopg.Connection, community_ids: list[str]) -> list[tuple[str, str, str]]:
    """(kind, id, name) of what a notice or a hand-made order may name: the communities,
    their grids and their buildings."""
    return [(k, i, n) for k, i, n in conn.execute(
        """SELECT 'community', id, name FROM community WHERE id = ANY(%(c)s)
           UNION ALL SELECT 'grid', id, name FROM grid WHERE community_id = ANY(%(c)s)
           UNION ALL SELECT 'building', id, name FROM building WHERE community_id = ANY(%(c)s)
           ORDER BY 1 DESC, 2""", {"c": community_ids}).fetchall()]
