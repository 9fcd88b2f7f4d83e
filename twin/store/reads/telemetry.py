"""Readings and events over time, bucketed in the database so a month costs the same few
hundred points as an hour."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from twin.errors import TwinError
from twin.store.reads.scope import Scope, ids, named

#: Width of a history chart's buckets for a range: about 60 to 360 points per line.
HISTORY_BUCKETS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "30d": (timedelta(days=30), timedelta(hours=4)),
}

#: The large screen's trend lines: (device type, metric).
KEY_TRENDS: tuple[tuple[str, str], ...] = (
    ("air_quality_sensor", "pm25"), ("co_sensor", "co"), ("air_quality_sensor", "noise"),
)


def device_history(conn: psycopg.Connection, device_id: str, metric: str, range_key: str, *,
                   now: datetime) -> list[tuple[datetime, float, float, float]]:
    """(bucket, mean, min, max) of one device's metric over a range of HISTORY_BUCKETS."""
    if range_key not in HISTORY_BUCKETS:
        raise TwinError(f"unknown range {range_key!r}; expected one of {sorted(HISTORY_BUCKETS)}")
    span, width = HISTORY_BUCKETS[range_key]
    rows = conn.execute(
        """SELECT time_bucket(%(w)s, time) AS b, avg(value), min(value), max(value)
           FROM reading WHERE device_id = %(d)s AND metric = %(m)s AND value IS NOT NULL
             AND time > %(since)s AND time <= %(now)s
           GROUP BY b ORDER BY b""",
        {"w": width, "d": device_id, "m": metric, "since": now - span, "now": now},
    ).fetchall()
    return [(b, float(a), float(lo), float(hi)) for b, a, lo, hi in rows]


def events_per_hour(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
                    hours: int = 24) -> list[tuple[datetime, str, int]]:
    """(hour, domain, events) over the last `hours`, from the event hypertable."""
    rows = conn.execute(
        """SELECT time_bucket('1 hour', e.time) AS hour, t.domain, count(*)
           FROM event e JOIN device d ON d.id = e.device_id JOIN device_type t ON t.code = d.type
           WHERE e.time > %(since)s AND e.time <= %(now)s
             AND (%(c)s::text[] IS NULL OR d.community_id = ANY(%(c)s))
           GROUP BY 1, 2 ORDER BY 1, 2""",
        {"c": named(community_id), "since": now - timedelta(hours=hours), "now": now},
    ).fetchall()
    return [(h, d, int(n)) for h, d, n in rows]


def key_trends(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
               hours: int = 24) -> list[tuple[datetime, str, float]]:
    """(15-minute bucket, "type.metric", mean over the scope's devices) for KEY_TRENDS."""
    out = []
    for device_type, metric in KEY_TRENDS:
        rows = conn.execute(
            """SELECT time_bucket('15 minutes', r.time), avg(r.value) FROM reading r
               WHERE r.metric = %(m)s AND r.time > %(since)s AND r.time <= %(now)s
                 AND r.device_id IN (SELECT id FROM device
                                     WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s))
                                       AND type = %(t)s)
               GROUP BY 1 ORDER BY 1""",
            {"m": metric, "t": device_type, "c": ids(community_id),
             "since": now - timedelta(hours=hours), "now": now},
        ).fetchall()
        out += [(b, f"{device_type}.{metric}", float(v)) for b, v in rows if v is not None]
    return out
