"""What the control room asks of the twin: one named query per question, SQL beside it.

The pages' callbacks call these and nothing else touches the database. Every
large-screen query is an aggregate or is bounded (per building, open alarms,
devices that need attention, at most N rows), so the page costs the same at
34 buildings and at 5,000. Scope checks (a grid worker's grid, a planner's
aggregates-only view) are made here, before any row is read, with the
checks of `dashboard.auth`; the audit log of unmasked residents is written
here too, in the same transaction as the read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import geopandas as gpd
import psycopg
import shapely

from dashboard import audit
from dashboard.auth import User, require_grid, sees_residents_whole
from twin.alarms import SEVERITIES
from twin.errors import TwinError
from twin.privacy import mask_name, mask_phone
from twin.work_orders import OPEN_STATES, WorkOrder

#: At most this many devices are drawn one by one on the large screen; above it
#: only the devices that need attention are (aggregate first).
FULL_DEVICES_LIMIT = 5000
#: Devices needing attention drawn at most (alarming first, then offline).
ATTENTION_LIMIT = 1500
CAMERA_TYPES = ("ai_camera",)
AGE_BANDS = ("0-6", "7-17", "18-59", "60-79", "80+")

#: Width of a history chart's buckets for a range: about 60 to 360 points per line.
HISTORY_BUCKETS: dict[str, tuple[timedelta, timedelta]] = {
    "1h": (timedelta(hours=1), timedelta(minutes=1)),
    "6h": (timedelta(hours=6), timedelta(minutes=5)),
    "24h": (timedelta(hours=24), timedelta(minutes=15)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
    "30d": (timedelta(days=30), timedelta(hours=4)),
}


#: One community's id, or several (a district): every query below takes either.
Scope = str | Sequence[str]


class Everywhere(list):
    """Every community in the twin (a district's view). Queries with named parameters
    drop their community filter for it, so the planner never scans to match them all."""


def communities_of(conn: psycopg.Connection, wanted: str | None = None) -> list[str]:
    """The communities the dashboard shows: the one named, or every one loaded (a district)."""
    rows = [r[0] for r in conn.execute("SELECT id FROM community ORDER BY id")]
    if not rows:
        raise TwinError("the twin is empty: run `twin load` first")
    if wanted is not None:
        if wanted not in rows:
            raise TwinError(f"there is no community {wanted!r} in the twin")
        return [wanted]
    return Everywhere(rows)


# --- the static map (first load) ----------------------------------------------------------

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
    """The geometry the base map is drawn from: the twin's own, no tiles needed.

    Devices are included up to `full_devices_limit`; walkways while there are at most
    `walkway_buildings_limit` buildings (a district's 28,000 walkway edges would be most
    of the first load and unreadable at that zoom anyway)."""
    (building_count,) = conn.execute(
        "SELECT count(*) FROM building WHERE community_id = ANY(%s)",
        (_ids(community_id),)).fetchone()
    walk_kinds = ["road", "footway", "ramp", "steps"] if building_count <= walkway_buildings_limit \
        else []
    (device_count,) = conn.execute(
        "SELECT count(*) FROM device WHERE community_id = ANY(%s)", (_ids(community_id),)).fetchone()
    devices = None
    if device_count <= full_devices_limit:
        devices = _frame(conn, """
            SELECT id, type, floor, building_id, ST_AsBinary(geom) FROM device
            WHERE community_id = ANY(%s) ORDER BY id""", (_ids(community_id),),
            ["id", "type", "floor", "building_id"])
    return MapFrames(
        boundary=_frame(conn, "SELECT id, ST_AsBinary(boundary) FROM community WHERE id = ANY(%s) ORDER BY id",
                        (_ids(community_id),), ["id"]),
        green=_frame(conn, """SELECT id, ST_AsBinary(area) FROM facility
                              WHERE community_id = ANY(%s) AND area IS NOT NULL
                                AND kind IN ('green_area', 'playground') ORDER BY id""",
                     (_ids(community_id),), ["id"]),
        grids=_frame(conn, "SELECT id, ST_AsBinary(area) FROM grid WHERE community_id = ANY(%s) "
                           "ORDER BY id", (_ids(community_id),), ["id"]),
        walkways=_frame(conn, """SELECT id, kind, ST_AsBinary(ST_SimplifyPreserveTopology(geom, 2e-6))
                                 FROM walk_edge WHERE community_id = ANY(%s) AND kind = ANY(%s)
                                 ORDER BY id""", (_ids(community_id), walk_kinds), ["id", "kind"]),
        buildings=_frame(conn, """SELECT id, name, floors, height_m, grid_id,
                                         ST_AsBinary(ST_SimplifyPreserveTopology(footprint, 2e-6))
                                  FROM building WHERE community_id = ANY(%s) ORDER BY id""",
                         (_ids(community_id),), ["id", "name", "floors", "height_m", "grid_id"]),
        devices=devices,
        device_count=int(device_count),
    )


# --- live state (every tick) --------------------------------------------------------------

def building_severity(conn: psycopg.Connection, community_id: Scope) -> dict[str, str]:
    """{building: worst open alarm's severity}, for buildings with an open alarm only."""
    rows = conn.execute(
        """SELECT building_id, min(array_position(%(order)s::text[], severity))
           FROM alarm WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s)) AND state <> 'cleared' AND building_id IS NOT NULL
           GROUP BY building_id""",
        {"c": _named(community_id), "order": list(SEVERITIES)},
    ).fetchall()
    return {b: SEVERITIES[rank - 1] for b, rank in rows}


def attention_devices(conn: psycopg.Connection, community_id: Scope, *,
                      limit: int = ATTENTION_LIMIT) -> list[dict[str, Any]]:
    """Devices with an open alarm (worst first), then offline devices; at most `limit`."""
    rows = conn.execute(
        """
        WITH alarming AS (
            SELECT device_id, min(array_position(%(order)s::text[], severity)) AS rank
            FROM alarm WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s)) AND state <> 'cleared' AND device_id IS NOT NULL
            GROUP BY device_id
        ), offline AS (
            SELECT s.device_id FROM device_state s WHERE s.online IS NOT TRUE
              AND (%(c)s::text[] IS NULL OR EXISTS (SELECT 1 FROM device d
                   WHERE d.id = s.device_id AND d.community_id = ANY(%(c)s)))
        ), picked AS (
            SELECT device_id, rank FROM alarming
            UNION ALL
            SELECT o.device_id, 99 FROM offline o
            WHERE NOT EXISTS (SELECT 1 FROM alarming a WHERE a.device_id = o.device_id)
        )
        SELECT d.id, d.type, d.name, d.building_id, d.floor, ST_X(d.geom), ST_Y(d.geom), p.rank
        FROM picked p JOIN device d ON d.id = p.device_id
        ORDER BY p.rank, d.id
        LIMIT %(n)s
        """,
        {"c": _named(community_id), "order": list(SEVERITIES), "n": limit},
    ).fetchall()
    return [
        {"id": i, "type": t, "name": n, "building": b, "floor": f, "lon": x, "lat": y,
         "state": "alarm" if rank != 99 else "offline",
         "severity": SEVERITIES[rank - 1] if rank != 99 else None}
        for i, t, n, b, f, x, y, rank in rows
    ]


def staff_positions(conn: psycopg.Connection, community_id: Scope, *, now: datetime
                    ) -> list[dict[str, Any]]:
    """Staff on shift now (the dispatcher's shifts) with a known position; an off-shift
    position is only where somebody went home from."""
    from twin.dispatch import SHIFTS, on_shift

    working = {shift: on_shift(shift, now) for shift in SHIFTS}
    rows = conn.execute(
        """SELECT id, name, role, shift, ST_X(position), ST_Y(position) FROM staff
           WHERE community_id = ANY(%s) AND position IS NOT NULL ORDER BY id""",
        (_ids(community_id),),
    ).fetchall()
    return [{"id": i, "name": n, "role": r, "lon": x, "lat": y}
            for i, n, r, shift, x, y in rows if working.get(shift, True)]


def active_routes(conn: psycopg.Connection, community_id: Scope, *, limit: int = 300
                  ) -> list[dict[str, Any]]:
    """Routes of open work orders that have one (assigned, accepted, on the way)."""
    rows = conn.execute(
        """SELECT id, created_at, title, state, priority, ST_AsBinary(route) FROM work_order
           WHERE community_id = ANY(%s) AND state = ANY(%s) AND route IS NOT NULL
           ORDER BY id DESC LIMIT %s""",
        (_ids(community_id), sorted(OPEN_STATES), limit),
    ).fetchall()
    return [
        {"id": i, "code": f"WO-{at:%Y%m%d}-{i}", "title": t, "state": s, "priority": p,
         "path": list(shapely.from_wkb(g).coords)}
        for i, at, t, s, p, g in rows
    ]


def camera_incidents(conn: psycopg.Connection, community_id: Scope) -> list[dict[str, Any]]:
    """Open alarms raised on cameras, where they are: what pulses on the map."""
    rows = conn.execute(
        """SELECT a.id, a.title, ST_X(coalesce(a.geom, d.geom)), ST_Y(coalesce(a.geom, d.geom))
           FROM alarm a JOIN device d ON d.id = a.device_id
           WHERE a.community_id = ANY(%s) AND a.state <> 'cleared' AND d.type = ANY(%s)
           ORDER BY a.id DESC LIMIT 200""",
        (_ids(community_id), list(CAMERA_TYPES)),
    ).fetchall()
    return [{"id": i, "title": t, "lon": x, "lat": y} for i, t, x, y in rows]


def device_counts(conn: psycopg.Connection, community_id: Scope) -> dict[str, int]:
    """The device tiles' slow part: devices, devices that have reported, EV chargers and free
    ones. Counting 500,000 states takes a few hundred ms, so the large screen shares one
    answer between its tabs for a few seconds (`Settings.device_counts_ttl_s`)."""
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
        {"c": _named(community_id)},
    ).fetchone()
    return dict(zip(("devices", "reporting", "ev_free", "ev_total"), map(int, row), strict=True))


def kpis(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
         devices: dict[str, int] | None = None) -> dict[str, Any]:
    """The large screen's tiles in one round trip; `devices` from `device_counts` (read now
    when not given). Devices online = devices that have reported less those offline now,
    which a partial index counts in a few milliseconds."""
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
        {"c": _named(community_id), "open": sorted(OPEN_STATES), "now": now, "day": day_start},
    ).fetchone()
    (offline, by_sev, orders_open, overdue, response, care) = row
    return {
        "devices": devices["devices"], "online": max(0, devices["reporting"] - int(offline)),
        "alarms": {s: int(by_sev.get(s, 0)) for s in SEVERITIES},
        "orders_open": int(orders_open), "orders_overdue": int(overdue),
        "response_min": None if response is None else round(float(response), 1),
        "ev_free": devices["ev_free"], "ev_total": devices["ev_total"], "care_alerts": int(care),
    }


def alarm_feed(conn: psycopg.Connection, community_id: Scope, *, limit: int = 14
               ) -> list[dict[str, Any]]:
    """The newest open alarms, worst first, with where they are."""
    rows = conn.execute(
        """SELECT a.id, a.severity, a.domain, a.title, a.state, a.count, a.last_at,
                  a.building_id, b.name, a.floor, a.type
           FROM alarm a LEFT JOIN building b ON b.id = a.building_id
           WHERE (%(c)s::text[] IS NULL OR a.community_id = ANY(%(c)s)) AND a.state <> 'cleared'
           ORDER BY a.last_at DESC, a.id DESC LIMIT %(n)s""",
        {"c": _named(community_id), "n": limit},
    ).fetchall()
    keys = ("id", "severity", "domain", "title", "state", "count", "last_at", "building_id",
            "building", "floor", "type")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def order_board(conn: psycopg.Connection, community_id: Scope, *, limit: int = 10
                ) -> dict[str, Any]:
    """Open work orders by state, and the newest of them."""
    counts = dict(conn.execute(
        """SELECT state, count(*) FROM work_order
           WHERE community_id = ANY(%s) AND state = ANY(%s) GROUP BY state""",
        (_ids(community_id), sorted(OPEN_STATES)),
    ).fetchall())
    rows = conn.execute(
        """SELECT w.id, w.created_at, w.title, w.state, w.priority, s.name, w.due_at
           FROM work_order w LEFT JOIN staff s ON s.id = w.assignee_id
           WHERE w.community_id = ANY(%s) AND w.state = ANY(%s)
           ORDER BY array_position(%s::text[], w.priority), w.created_at DESC LIMIT %s""",
        (_ids(community_id), sorted(OPEN_STATES), ["urgent", "high", "normal", "low"], limit),
    ).fetchall()
    return {
        "counts": {s: int(counts.get(s, 0)) for s in
                   ("created", "assigned", "accepted", "arrived", "escalated")},
        "orders": [{"id": i, "code": f"WO-{at:%Y%m%d}-{i}", "title": t, "state": s,
                    "priority": p, "assignee": who, "due_at": due}
                   for i, at, t, s, p, who, due in rows],
    }


# --- charts -------------------------------------------------------------------------------

def events_per_hour(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
                    hours: int = 24) -> list[tuple[datetime, str, int]]:
    """(hour, domain, events) over the last `hours`, from the event hypertable."""
    rows = conn.execute(
        """SELECT time_bucket('1 hour', e.time) AS hour, t.domain, count(*)
           FROM event e JOIN device d ON d.id = e.device_id JOIN device_type t ON t.code = d.type
           WHERE e.time > %(since)s AND e.time <= %(now)s AND (%(c)s::text[] IS NULL OR d.community_id = ANY(%(c)s))
           GROUP BY 1, 2 ORDER BY 1, 2""",
        {"c": _named(community_id), "since": now - timedelta(hours=hours), "now": now},
    ).fetchall()
    return [(h, d, int(n)) for h, d, n in rows]


#: The large screen's trend lines: (device type, metric).
KEY_TRENDS: tuple[tuple[str, str], ...] = (
    ("air_quality_sensor", "pm25"), ("co_sensor", "co"), ("air_quality_sensor", "noise"),
)


def key_trends(conn: psycopg.Connection, community_id: Scope, *, now: datetime,
               hours: int = 24) -> list[tuple[datetime, str, float]]:
    """(bucket, "type.metric", mean over the community's devices) for KEY_TRENDS."""
    out = []
    for device_type, metric in KEY_TRENDS:
        rows = conn.execute(
            """SELECT time_bucket('15 minutes', r.time), avg(r.value) FROM reading r
               WHERE r.metric = %(m)s AND r.time > %(since)s AND r.time <= %(now)s
                 AND r.device_id IN (SELECT id FROM device
                                     WHERE (%(c)s::text[] IS NULL OR community_id = ANY(%(c)s)) AND type = %(t)s)
               GROUP BY 1 ORDER BY 1""",
            {"m": metric, "t": device_type, "c": _ids(community_id),
             "since": now - timedelta(hours=hours), "now": now},
        ).fetchall()
        out += [(b, f"{device_type}.{metric}", float(v)) for b, v in rows if v is not None]
    return out


# --- a building ---------------------------------------------------------------------------

def building_grid_id(conn: psycopg.Connection, building_id: str) -> str | None:
    row = conn.execute("SELECT grid_id FROM building WHERE id = %s", (building_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no building {building_id!r} in the twin")
    return row[0]


def building_summary(conn: psycopg.Connection, user: User, building_id: str) -> dict[str, Any]:
    require_grid(user, building_grid_id(conn, building_id), what=f"building {building_id}")
    row = conn.execute(
        """SELECT b.id, b.name, b.floors, b.units_per_floor, b.height_m, b.grid_id, g.name,
                  b.usage, ST_X(ST_Centroid(b.footprint)), ST_Y(ST_Centroid(b.footprint))
           FROM building b LEFT JOIN grid g ON g.id = b.grid_id WHERE b.id = %s""",
        (building_id,),
    ).fetchone()
    keys = ("id", "name", "floors", "units_per_floor", "height_m", "grid_id", "grid", "usage",
            "lon", "lat")
    return dict(zip(keys, row, strict=True))


def unit_grid(conn: psycopg.Connection, user: User, building_id: str) -> list[dict[str, Any]]:
    """Every unit with its occupancy, residents, special-care residents and open alarms."""
    require_grid(user, building_grid_id(conn, building_id), what=f"building {building_id}")
    rows = conn.execute(
        """
        SELECT u.id, u.floor, u.number, u.occupancy,
               count(r.id) AS residents,
               count(r.id) FILTER (WHERE cardinality(r.care_flags) > 0) AS care,
               (SELECT count(*) FROM alarm a WHERE a.unit_id = u.id AND a.state <> 'cleared'),
               (SELECT min(array_position(%s::text[], a.severity)) FROM alarm a
                 WHERE a.unit_id = u.id AND a.state <> 'cleared')
        FROM unit u LEFT JOIN resident r ON r.unit_id = u.id
        WHERE u.building_id = %s
        GROUP BY u.id ORDER BY u.floor DESC, u.number
        """,
        (list(SEVERITIES), building_id),
    ).fetchall()
    return [
        {"id": i, "floor": f, "number": n, "occupancy": o, "residents": int(r), "care": int(c),
         "alarms": int(a), "severity": SEVERITIES[s - 1] if s else None}
        for i, f, n, o, r, c, a, s in rows
    ]


def building_devices(conn: psycopg.Connection, user: User, building_id: str
                     ) -> list[dict[str, Any]]:
    """The building's devices with their latest state, and whether an alarm is open on them."""
    require_grid(user, building_grid_id(conn, building_id), what=f"building {building_id}")
    rows = conn.execute(
        """SELECT d.id, d.type, d.name, d.floor, d.unit_id, s.online, s.last_seen,
                  coalesce(s.metrics, '{}'::jsonb),
                  (SELECT min(array_position(%s::text[], a.severity)) FROM alarm a
                    WHERE a.device_id = d.id AND a.state <> 'cleared')
           FROM device d LEFT JOIN device_state s ON s.device_id = d.id
           WHERE d.building_id = %s ORDER BY d.floor NULLS FIRST, d.type, d.id""",
        (list(SEVERITIES), building_id),
    ).fetchall()
    return [
        {"id": i, "type": t, "name": n, "floor": f, "unit_id": u, "online": on,
         "last_seen": seen, "metrics": {k: v.get("v") for k, v in (m or {}).items()},
         "severity": SEVERITIES[s - 1] if s else None}
        for i, t, n, f, u, on, seen, m, s in rows
    ]


def device_history(conn: psycopg.Connection, user: User, device_id: str, metric: str,
                   range_key: str, *, now: datetime) -> list[tuple[datetime, float, float, float]]:
    """(bucket, mean, min, max) of one device's metric over a range, time-bucketed in the
    database so a month costs the same few hundred points as an hour."""
    if range_key not in HISTORY_BUCKETS:
        raise TwinError(f"unknown range {range_key!r}; expected one of {sorted(HISTORY_BUCKETS)}")
    row = conn.execute(
        """SELECT b.grid_id FROM device d LEFT JOIN building b ON b.id = d.building_id
           WHERE d.id = %s""", (device_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no device {device_id!r} in the twin")
    require_grid(user, row[0], what=f"device {device_id}")
    span, width = HISTORY_BUCKETS[range_key]
    rows = conn.execute(
        """SELECT time_bucket(%(w)s, time) AS b, avg(value), min(value), max(value)
           FROM reading WHERE device_id = %(d)s AND metric = %(m)s AND value IS NOT NULL
             AND time > %(since)s AND time <= %(now)s
           GROUP BY b ORDER BY b""",
        {"w": width, "d": device_id, "m": metric, "since": now - span, "now": now},
    ).fetchall()
    return [(b, float(a), float(lo), float(hi)) for b, a, lo, hi in rows]


def residents(conn: psycopg.Connection, user: User, *, building_id: str | None = None,
              unit_id: str | None = None) -> dict[str, Any]:
    """Residents of a building (or one unit): whole for the roles that need them (and then
    written to the audit log in the same transaction), masked for everyone else."""
    if unit_id is not None:
        row = conn.execute("SELECT building_id FROM unit WHERE id = %s", (unit_id,)).fetchone()
        if row is None:
            raise TwinError(f"there is no unit {unit_id!r} in the twin")
        building_id = row[0]
    if building_id is None:
        raise TwinError("residents needs a building or a unit")
    require_grid(user, building_grid_id(conn, building_id),
                 what=f"the households of building {building_id}")
    whole = sees_residents_whole(user)
    with conn.transaction():
        rows = conn.execute(
            """SELECT r.id, u.number, u.floor, r.name, r.phone, r.gender, r.age_band,
                      r.care_flags, r.family_contacts
               FROM resident r JOIN unit u ON u.id = r.unit_id
               WHERE u.building_id = %s AND (%s::text IS NULL OR u.id = %s)
               ORDER BY u.floor, u.number, r.id""",
            (building_id, unit_id, unit_id),
        ).fetchall()
        if whole and rows:
            audit.record(conn, user, "view_residents_unmasked",
                         subject_kind="unit" if unit_id else "building",
                         subject_id=unit_id or building_id,
                         detail={"residents": [r[0] for r in rows]})
    people = []
    for rid, number, floor, name, phone, gender, age, flags, contacts in rows:
        people.append({
            "id": rid, "unit": number, "floor": floor,
            "name": name if whole else mask_name(name),
            "phone": phone if whole else mask_phone(phone),
            "gender": gender, "age_band": age, "care_flags": list(flags),
            "contacts": [{"name": c["name"] if whole else mask_name(c["name"]),
                          "relation": c.get("relation", ""),
                          "phone": c["phone"] if whole else mask_phone(c["phone"])}
                         for c in (contacts or [])],
        })
    return {"masked": not whole, "residents": people}


# --- work orders --------------------------------------------------------------------------

def order_rows(orders: list[WorkOrder], names: dict[str, str]) -> list[dict[str, Any]]:
    """Work orders as the list shows them (pure)."""
    return [
        {"id": o.id, "code": o.code, "title": o.spec.title, "kind": o.spec.kind, "state": o.state,
         "priority": o.spec.priority, "domain": o.spec.domain, "grid": o.spec.grid_id or "",
         "building": o.spec.building_id or "", "assignee": names.get(o.assignee_id or "", ""),
         "created": f"{o.created_at.astimezone():%m-%d %H:%M}",
         "due": f"{o.due_at.astimezone():%m-%d %H:%M}" if o.due_at else ""}
        for o in orders
    ]


def staff_names(conn: psycopg.Connection, community_id: Scope) -> dict[str, str]:
    return dict(conn.execute("SELECT id, name FROM staff WHERE community_id = ANY(%s)",
                             (_ids(community_id),)).fetchall())


def staff_choices(conn: psycopg.Connection, community_id: Scope, *, role: str | None = None,
                  near: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Staff an operator may assign an order to, nearest first when the order has a place."""
    lon, lat = near if near else (None, None)
    rows = conn.execute(
        """SELECT s.id, s.name, s.role, s.grid_id,
                  CASE WHEN %(lon)s::float8 IS NULL OR s.position IS NULL THEN NULL
                       ELSE ST_Distance(s.position::geography,
                              ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography) END
           FROM staff s WHERE (%(c)s::text[] IS NULL OR s.community_id = ANY(%(c)s))
             AND (%(role)s::text IS NULL OR s.role = %(role)s)
           ORDER BY 5 NULLS LAST, s.id""",
        {"c": _named(community_id), "role": role, "lon": lon, "lat": lat},
    ).fetchall()
    return [{"id": i, "name": n, "role": r, "grid": g, "distance_m": d}
            for i, n, r, g, d in rows]


def my_tasks(conn: psycopg.Connection, user: User) -> list[dict[str, Any]]:
    """A grid worker's open orders, nearest first from where they are (by their last
    known position; without one, oldest first)."""
    if user.staff_id is None:
        return []
    rows = conn.execute(
        """
        SELECT w.id, w.created_at, w.title, w.state, w.priority, w.building_id, b.name,
               u.number, w.description,
               ST_Distance(w.geom::geography, s.position::geography) AS distance,
               ST_X(w.geom), ST_Y(w.geom)
        FROM work_order w
        JOIN staff s ON s.id = %(me)s
        LEFT JOIN building b ON b.id = w.building_id
        LEFT JOIN unit u ON u.id = w.unit_id
        WHERE w.assignee_id = %(me)s AND w.state = ANY(%(open)s)
        ORDER BY distance NULLS LAST, w.created_at
        """,
        {"me": user.staff_id, "open": sorted(OPEN_STATES)},
    ).fetchall()
    return [
        {"id": i, "code": f"WO-{at:%Y%m%d}-{i}", "title": t, "state": s, "priority": p,
         "building_id": b, "building": bn or "", "unit": un or "", "description": d or "",
         "distance_m": None if dist is None else float(dist), "lon": x, "lat": y}
        for i, at, t, s, p, b, bn, un, d, dist, x, y in rows
    ]


def lookup(conn: psycopg.Connection, user: User, query: str, *, limit: int = 20
           ) -> list[dict[str, Any]]:
    """Buildings and households in the user's grid matching "1栋", "1203" or "1栋 1203"."""
    words = query.split()
    if not words:
        return []
    grid = user.grid_id if user.role == "grid_worker" else None
    if user.role == "planner":
        require_grid(user, None, what="households")
    building_word = words[0] if len(words) > 1 else None
    unit_word = words[-1]
    rows = conn.execute(
        """
        (SELECT 'building' AS kind, b.id, b.name, NULL::text AS unit_id, NULL::text AS number,
                b.grid_id
         FROM building b
         WHERE (%(grid)s::text IS NULL OR b.grid_id = %(grid)s)
           AND %(bw)s::text IS NULL AND (b.name ILIKE %(q)s OR b.id ILIKE %(q)s)
         ORDER BY b.name LIMIT %(n)s)
        UNION ALL
        (SELECT 'unit', b.id, b.name, u.id, u.number, b.grid_id
         FROM unit u JOIN building b ON b.id = u.building_id
         WHERE (%(grid)s::text IS NULL OR b.grid_id = %(grid)s)
           AND u.number = %(uw)s
           AND (%(bw)s::text IS NULL OR b.name ILIKE %(bq)s)
         ORDER BY b.name LIMIT %(n)s)
        """,
        {"grid": grid, "q": f"%{query.strip()}%", "bw": building_word,
         "bq": f"%{building_word}%" if building_word else None, "uw": unit_word, "n": limit},
    ).fetchall()
    return [{"kind": k, "building_id": b, "building": bn, "unit_id": u, "unit": n, "grid": g}
            for k, b, bn, u, n, g in rows]


def order_for_user(conn: psycopg.Connection, user: User, order_id: int) -> WorkOrder:
    """An order, if the user may see it: operators all, a grid worker their own or their grid's."""
    from twin.store.operations import get_work_order

    order = get_work_order(conn, order_id)
    if user.role == "grid_worker" and order.assignee_id != user.staff_id:
        require_grid(user, order.spec.grid_id, what=f"work order {order_id}")
    elif user.role == "planner":
        require_grid(user, None, what=f"work order {order_id}")
    return order


# --- planner (aggregates only) ------------------------------------------------------------

def grid_aggregates(conn: psycopg.Connection, community_id: Scope, *, now: datetime
                    ) -> list[dict[str, Any]]:
    """Per grid: buildings, units, occupancy, care residents, devices, alarms and orders
    in 30 days. Counts only: nothing here names a person."""
    since = now - timedelta(days=30)
    rows = conn.execute(
        """
        SELECT g.id, g.name,
          (SELECT count(*) FROM building b WHERE b.grid_id = g.id),
          (SELECT count(*) FROM unit u JOIN building b ON b.id = u.building_id
            WHERE b.grid_id = g.id),
          (SELECT count(*) FROM unit u JOIN building b ON b.id = u.building_id
            WHERE b.grid_id = g.id AND u.occupancy <> 'vacant'),
          (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
             JOIN building b ON b.id = u.building_id
            WHERE b.grid_id = g.id AND cardinality(r.care_flags) > 0),
          (SELECT count(*) FROM device d JOIN building b ON b.id = d.building_id
            WHERE b.grid_id = g.id),
          (SELECT count(*) FROM alarm a JOIN building b ON b.id = a.building_id
            WHERE b.grid_id = g.id AND a.raised_at > %(since)s),
          (SELECT count(*) FROM work_order w WHERE w.grid_id = g.id AND w.created_at > %(since)s)
        FROM grid g WHERE (%(c)s::text[] IS NULL OR g.community_id = ANY(%(c)s)) ORDER BY g.id
        """,
        {"c": _named(community_id), "since": since},
    ).fetchall()
    return [
        {"grid_id": i, "grid": n, "buildings": int(b), "units": int(u),
         "occupancy": round(100.0 * o / u, 1) if u else 0.0, "care": int(c), "devices": int(d),
         "alarms_30d": int(a), "orders_30d": int(w)}
        for i, n, b, u, o, c, d, a, w in rows
    ]


def age_structure(conn: psycopg.Connection, community_id: Scope) -> dict[str, int]:
    rows = conn.execute(
        """SELECT r.age_band, count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
           JOIN building b ON b.id = u.building_id WHERE b.community_id = ANY(%s)
           GROUP BY 1 ORDER BY array_position(%s::text[], r.age_band)""",
        (_ids(community_id), list(AGE_BANDS))).fetchall()
    return {band: int(n) for band, n in rows}


def alarms_by_domain(conn: psycopg.Connection, community_id: Scope, *, now: datetime
                     ) -> dict[str, int]:
    rows = conn.execute(
        """SELECT domain, count(*) FROM alarm WHERE community_id = ANY(%s) AND raised_at > %s
           GROUP BY 1""", (_ids(community_id), now - timedelta(days=30))).fetchall()
    return {d: int(n) for d, n in rows}


def _ids(scope: Scope) -> list[str]:
    return [scope] if isinstance(scope, str) else list(scope)


def _named(scope: Scope) -> list[str] | None:
    """A named %(c)s parameter: None means "no filter" (every community)."""
    return None if isinstance(scope, Everywhere) else _ids(scope)


def _frame(conn: psycopg.Connection, query: str, params: tuple, columns: list[str]
           ) -> gpd.GeoDataFrame:
    rows = conn.execute(query, params).fetchall()
    data = {c: [r[i] for r in rows] for i, c in enumerate(columns)}
    geometry = shapely.from_wkb([r[len(columns)] for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=list(geometry), crs="EPSG:4326")
