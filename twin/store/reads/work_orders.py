"""Work orders as the control room reads them in bulk: the board, routes on the map, a
grid worker's tasks. One order with its history, and filtered lists of orders, are
`twin.store.operations.get_work_order` / `work_orders`."""

from __future__ import annotations

from typing import Any

import psycopg
import shapely

from twin.store.reads.scope import Scope, ids
from twin.work_orders import OPEN_STATES, order_code

#: The board's columns, in lifecycle order.
BOARD_STATES = ("created", "assigned", "accepted", "arrived", "escalated")
#: Most urgent first.
PRIORITY_ORDER = ("urgent", "high", "normal", "low")


def active_routes(conn: psycopg.Connection, community_id: Scope, *, limit: int = 300
                  ) -> list[dict[str, Any]]:
    """Routes of open work orders that have one (assigned, accepted, on the way)."""
    rows = conn.execute(
        """SELECT id, created_at, title, state, priority, ST_AsBinary(route), text_key,
                  text_params, grid_id FROM work_order
           WHERE community_id = ANY(%s) AND state = ANY(%s) AND route IS NOT NULL
           ORDER BY id DESC LIMIT %s""",
        (ids(community_id), sorted(OPEN_STATES), limit),
    ).fetchall()
    return [
        {"id": i, "code": f"WO-{at:%Y%m%d}-{i}", "title": t, "state": s, "priority": p,
         "path": list(shapely.from_wkb(g).coords), "text_key": k, "text_params": tp,
         "grid_id": grid}
        for i, at, t, s, p, g, k, tp, grid in rows
    ]


def order_board(conn: psycopg.Connection, community_id: Scope, *, limit: int = 10
                ) -> dict[str, Any]:
    """Open work orders counted by state, and the most urgent, newest of them."""
    counts: dict[str, int] = dict(conn.execute(
        """SELECT state, count(*) FROM work_order
           WHERE community_id = ANY(%s) AND state = ANY(%s) GROUP BY state""",
        (ids(community_id), sorted(OPEN_STATES)),
    ).fetchall())
    rows = conn.execute(
        """SELECT w.id, w.created_at, w.title, w.state, w.priority, s.name, w.due_at,
                  w.text_key, w.text_params, w.grid_id
           FROM work_order w LEFT JOIN staff s ON s.id = w.assignee_id
           WHERE w.community_id = ANY(%s) AND w.state = ANY(%s)
           ORDER BY array_position(%s::text[], w.priority), w.created_at DESC LIMIT %s""",
        (ids(community_id), sorted(OPEN_STATES), list(PRIORITY_ORDER), limit),
    ).fetchall()
    return {
        "counts": {s: int(counts.get(s, 0)) for s in BOARD_STATES},
        "orders": [{"id": i, "code": f"WO-{at:%Y%m%d}-{i}", "title": t, "state": s,
                    "priority": p, "assignee": who, "due_at": due, "text_key": k,
                    "text_params": tp, "grid_id": grid}
                   for i, at, t, s, p, who, due, k, tp, grid in rows],
    }


def staff_tasks(conn: psycopg.Connection, staff_id: str) -> list[dict[str, Any]]:
    """A staff member's open orders, nearest first from their last known position (without
    one, oldest first)."""
    rows = conn.execute(
        """
        SELECT w.id, w.created_at, w.title, w.state, w.priority, w.building_id, b.name,
               u.number, w.description,
               ST_Distance(w.geom::geography, s.position::geography) AS distance,
               ST_X(w.geom), ST_Y(w.geom), w.text_key, w.text_params, w.grid_id, w.rule_id,
               c.timezone
        FROM work_order w
        JOIN staff s ON s.id = %(me)s
        JOIN community c ON c.id = w.community_id
        LEFT JOIN building b ON b.id = w.building_id
        LEFT JOIN unit u ON u.id = w.unit_id
        WHERE w.assignee_id = %(me)s AND w.state = ANY(%(open)s)
        ORDER BY distance NULLS LAST, w.created_at
        """,
        {"me": staff_id, "open": sorted(OPEN_STATES)},
    ).fetchall()
    return [
        {"id": i, "code": order_code(i, at, tz), "title": t, "state": s, "priority": p,
         "building_id": b, "building": bn or "", "unit": un or "", "description": d or "",
         "distance_m": None if dist is None else float(dist), "lon": x, "lat": y,
         "text_key": k, "text_params": tp, "grid_id": grid, "rule_id": rule}
        for i, at, t, s, p, b, bn, un, d, dist, x, y, k, tp, grid, rule, tz in rows
    ]


def photo_count(conn: psycopg.Connection, order_id: int) -> int:
    """How many photos an order has, without reading them
    (`twin.store.operations.work_order_photos` reads them)."""
    row = conn.execute("SELECT count(*) FROM work_order_photo WHERE work_order_id = %s",
                       (order_id,)).fetchone()
    assert row is not None
    return int(row[0])


def in_hand(conn: psycopg.Connection, community_id: str) -> list[dict[str, Any]]:
    """Orders a staff member holds (assigned, accepted, arrived), with when each last
    moved and the dispatcher's walking time: what a staff member's phone acts on."""
    rows = conn.execute(
        """SELECT id, state, assignee_id, updated_at, eta_s, kind, due_at FROM work_order
           WHERE community_id = %s AND assignee_id IS NOT NULL
             AND state IN ('assigned', 'accepted', 'arrived')
           ORDER BY id""", (community_id,)).fetchall()
    return [{"id": r[0], "state": r[1], "assignee_id": r[2], "updated_at": r[3],
             "eta_s": r[4], "kind": r[5], "due_at": r[6]} for r in rows]
