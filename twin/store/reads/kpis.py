"""The large screen's counts: devices online, open alarms by severity, orders, response."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from twin.alarms import SEVERITIES
from twin.store.reads.scope import Scope, named
from twin.work_orders import OPEN_STATES


def device_counts(conn: psycopg.Connection, community_id: Scope) -> dict[str, int]:
    """Devices, devices that have reported, EV chargers and free ones: the tiles' slow part.

    Counting 500,000 states takes a few hundred ms, so a caller shares one answer between
    its screens for a few seconds."""
    row = conn.execute(
        """
        SELECT
          (SELECT count(*) FROM device WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))),
          (SELECT count(*) FROM device_state s WHERE %(c)s::text[] IS NULL OR EXISTS (
              SELECT 1 FROM device d WHERE d.id = s.device_id AND d.community_id = ANY(%(c)s))),
          (SELECT count(*) FROM device d JOIN device_state s ON s.device_id = d.id
            WHERE (%(c)s::text[] IS NULL OR d.community_id = ANY(%(c)s)) AND d.type = 'ev_charger'
              AND s.online AND s.metrics->'status'->>'v' = 'idle'),
          (SELECT count(*) FROM device WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
              AND type = 'ev_charger')
        """,
        {"c": named(community_id)},
    ).fetchone()
    assert row is not None
    return dict(zip(("devices", "reporting", "ev_free", "ev_total"), map(int, row), strict=True))


def kpis(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
         devices: dict[str, int] | None = None) -> dict[str, Any]:
    """Every tile in one round trip; `devices` from `device_counts` (read now when not given).

    Devices online = devices that have reported less those offline now, which a partial
    index counts in a few milliseconds."""
    devices = devices or device_counts(conn, community_id)
    day_start = now.astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
    row = conn.execute(
        """
        SELECT
          (SELECT count(*) FROM device_state s WHERE s.online IS NOT TRUE
             AND (%(c)s::text[] IS NULL OR EXISTS (SELECT 1 FROM device d
                  WHERE d.id = s.device_id AND d.community_id = ANY(%(c)s)))),
          (SELECT coalesce(jsonb_object_agg(severity, n), '{}') FROM (
              SELECT severity, count(*) AS n FROM alarm
              WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s)) AND state <> 'cleared'
              GROUP BY severity) a),
          (SELECT count(*) FROM work_order WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
             AND state = ANY(%(open)s)),
          (SELECT count(*) FROM work_order WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
             AND state = ANY(%(open)s) AND due_at < %(now)s),
          (SELECT avg(extract(epoch FROM coalesce(arrived_at, accepted_at) - created_at)) / 60
             FROM work_order WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
             AND created_at >= %(day)s AND coalesce(arrived_at, accepted_at) IS NOT NULL),
          (SELECT count(*) FROM alarm a JOIN resident r ON r.id = a.resident_id
            WHERE (%(c)s::text[] IS NULL OR a.community_id = ANY(%(c)s)) AND a.state <> 'cleared'
              AND cardinality(r.care_flags) > 0)
        """,
        {"c": named(community_id), "open": sorted(OPEN_STATES), "now": now, "day": day_start},
    ).fetchone()
    assert row is not None
    (offline, by_sev, orders_open, overdue, response, care) = row
    return {
        "devices": devices["devices"], "online": max(0, devices["reporting"] - int(offline)),
        "alarms": {s: int(by_sev.get(s, 0)) for s in SEVERITIES},
        "orders_open": int(orders_open), "orders_overdue": int(overdue),
        "response_min": None if response is None else round(float(response), 1),
        "ev_free": devices["ev_free"], "ev_total": devices["ev_total"], "care_alerts": int(care),
    }
