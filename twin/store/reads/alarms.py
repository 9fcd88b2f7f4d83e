"""Open alarms as the control room reads them in bulk: worst per building, the newest,
those on cameras, and counts by domain. One alarm with its history is
`twin.store.operations.get_alarm` / `alarm_history`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import psycopg

from twin.alarms import SEVERITIES
from twin.store.reads.scope import Scope, ids, named

#: Device types whose open alarms pulse on the map as incidents.
CAMERA_TYPES = ("ai_camera",)


def building_severity(conn: psycopg.Connection, community_id: Scope) -> dict[str, str]:
    """{building: worst open alarm's severity}, for buildings with an open alarm only."""
    rows = conn.execute(
        """SELECT building_id, min(array_position(%(order)s::text[], severity))
           FROM alarm WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
             AND state <> 'cleared' AND building_id IS NOT NULL
           GROUP BY building_id""",
        {"c": named(community_id), "order": list(SEVERITIES)},
    ).fetchall()
    return {b: SEVERITIES[rank - 1] for b, rank in rows}


def alarm_feed(conn: psycopg.Connection, community_id: Scope, *, limit: int = 14
               ) -> list[dict[str, Any]]:
    """The newest open alarms, with where they are (titles rendered by the caller from
    ``text_key`` and ``text_params``, `twin.texts`)."""
    rows = conn.execute(
        """SELECT a.id, a.severity, a.domain, a.title, a.state, a.count, a.last_at,
                  a.building_id, b.name, a.floor, a.type, a.text_key, a.text_params, b.grid_id
           FROM alarm a LEFT JOIN building b ON b.id = a.building_id
           WHERE (%(c)s::text[] IS NULL OR a.community_id = ANY(%(c)s)) AND a.state <> 'cleared'
           ORDER BY a.last_at DESC, a.id DESC LIMIT %(n)s""",
        {"c": named(community_id), "n": limit},
    ).fetchall()
    keys = ("id", "severity", "domain", "title", "state", "count", "last_at", "building_id",
            "building", "floor", "type", "text_key", "text_params", "grid_id")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def camera_incidents(conn: psycopg.Connection, community_id: Scope, *, limit: int = 200
                     ) -> list[dict[str, Any]]:
    """Open alarms raised on cameras, where they are: what pulses on the map."""
    rows = conn.execute(
        """SELECT a.id, a.title, ST_X(coalesce(a.geom, d.geom)), ST_Y(coalesce(a.geom, d.geom)),
                  a.text_key, a.text_params
           FROM alarm a JOIN device d ON d.id = a.device_id
           WHERE a.community_id = ANY(%s) AND a.state <> 'cleared' AND d.type = ANY(%s)
           ORDER BY a.id DESC LIMIT %s""",
        (ids(community_id), list(CAMERA_TYPES), limit),
    ).fetchall()
    return [{"id": i, "title": t, "lon": x, "lat": y, "text_key": k, "text_params": p}
            for i, t, x, y, k, p in rows]


def alarms_by_domain(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
                     days: int = 30) -> dict[str, int]:
    """Alarms raised in the last `days`, counted by domain (a planner's aggregate)."""
    rows = conn.execute(
        """SELECT domain, count(*) FROM alarm WHERE community_id = ANY(%s) AND raised_at > %s
           GROUP BY 1""", (ids(community_id), now - timedelta(days=days))).fetchall()
    return {d: int(n) for d, n in rows}
