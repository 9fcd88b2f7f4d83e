"""What the resident and family apps read: a household whole, the community's charging
piles with their live state, a resident's charging sessions, a special-care resident's
last passes and care alarms. Nothing here checks who asks: `dashboard.people` does,
before it calls these."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from shapely.geometry import Point

#: The alarm types of the special-care rules (twin/rules/library/activity/special-care-*),
#: and the resident's own SOS: what a family login is told of (migration 0024).
CARE_ALARM_TYPES: tuple[str, ...] = ("care_not_out", "care_not_back", "sos")


def household(conn: psycopg.Connection, resident_id: str) -> dict[str, Any] | None:
    """The resident's unit and building and everyone who lives there, whole."""
    row = conn.execute(
        """SELECT u.id, u.number, u.floor, b.id, b.name, b.community_id, b.grid_id,
                  c.name, c.timezone
             FROM resident r JOIN unit u ON u.id = r.unit_id
             JOIN building b ON b.id = u.building_id JOIN community c ON c.id = b.community_id
            WHERE r.id = %s""", (resident_id,)).fetchone()
    if row is None:
        return None
    unit_id, number, floor, building_id, building, community_id, grid_id, community, tz = row
    members = conn.execute(
        """SELECT id, name, phone, gender, age_band, care_flags FROM resident
            WHERE unit_id = %s ORDER BY id""", (unit_id,)).fetchall()
    return {"unit_id": unit_id, "unit": number, "floor": floor, "building_id": building_id,
            "building": building, "community_id": community_id, "community": community,
            "grid_id": grid_id, "timezone": tz,
            "members": [{"id": m[0], "name": m[1], "phone": m[2], "gender": m[3],
                         "age_band": m[4], "care_flags": list(m[5] or ()),
                         "me": m[0] == resident_id} for m in members]}


def entrance_point(conn: psycopg.Connection, building_id: str) -> Point | None:
    """The building's first entrance (its centroid if it has none): where a resident
    walks from, and where an SOS without a phone fix is placed."""
    row = conn.execute(
        """SELECT coalesce(ST_X(e.geom), ST_X(ST_Centroid(b.footprint))),
                  coalesce(ST_Y(e.geom), ST_Y(ST_Centroid(b.footprint)))
             FROM building b LEFT JOIN LATERAL (
                  SELECT geom FROM entrance WHERE building_id = b.id ORDER BY id LIMIT 1) e
               ON true
            WHERE b.id = %s""", (building_id,)).fetchone()
    return None if row is None or row[0] is None else Point(row[0], row[1])


def charging_piles(conn: psycopg.Connection, community_id: str) -> list[dict[str, Any]]:
    """Every e-bike charging pile of the community's EV sheds, with its shed and live
    state: free is online and reading idle, as the large screen counts it
    (`twin.store.reads.kpis.device_counts`)."""
    rows = conn.execute(
        """SELECT f.id, f.name, ST_X(f.geom), ST_Y(f.geom), d.id, d.name,
                  s.online, s.metrics->'status'->>'v', (s.metrics->'power'->>'v')::float,
                  s.last_seen,
                  EXISTS (SELECT 1 FROM charging_session c WHERE c.device_id = d.id
                            AND c.state IN ('requested', 'charging'))
             FROM facility f JOIN device d ON d.facility_id = f.id AND d.type = 'ev_charger'
             LEFT JOIN device_state s ON s.device_id = d.id
            WHERE f.community_id = %s AND f.kind = 'ev_shed'
            ORDER BY f.id, d.id""", (community_id,)).fetchall()
    return [{"shed_id": shed, "shed": name, "lon": lon, "lat": lat, "device_id": device,
             "device": device_name, "online": bool(online), "status": status or "unknown",
             "power_kw": power, "last_seen": seen, "taken": bool(taken),
             "free": bool(online) and status == "idle" and not taken}
            for shed, name, lon, lat, device, device_name, online, status, power, seen, taken
            in rows]


def pile(conn: psycopg.Connection, device_id: str) -> dict[str, Any] | None:
    """One pile's community, type and live state (what starting a session checks)."""
    row = conn.execute(
        """SELECT d.community_id, d.type, s.online, s.metrics->'status'->>'v'
             FROM device d LEFT JOIN device_state s ON s.device_id = d.id
            WHERE d.id = %s""", (device_id,)).fetchone()
    if row is None:
        return None
    return {"community_id": row[0], "type": row[1], "online": bool(row[2]),
            "status": row[3] or "unknown"}


_SESSION_COLUMNS = """c.id, c.device_id, d.name, c.state, c.requested_at, c.started_at,
    c.ended_at, c.energy_kwh, c.end_reason, c.stop_requested_at,
    s.metrics->'status'->>'v', (s.metrics->'power'->>'v')::float, c.resident_id,
    c.community_id, s.last_seen"""


def sessions(conn: psycopg.Connection, resident_id: str, *, limit: int = 10
             ) -> list[dict[str, Any]]:
    """A resident's charging sessions, newest first, with the pile's live status and power,
    and the energy so far: the pile's own total once it ended, else its power readings
    since the start, integrated (each reading's power held until the next)."""
    rows = conn.execute(
        f"""SELECT {_SESSION_COLUMNS},
                   (SELECT sum(r.value * extract(epoch FROM r.next - r.time)) / 3600.0
                      FROM (SELECT time, value, lead(time) OVER (ORDER BY time) AS next
                              FROM reading
                             WHERE device_id = c.device_id AND metric = 'power'
                               AND time >= c.started_at) r)
              FROM charging_session c JOIN device d ON d.id = c.device_id
              LEFT JOIN device_state s ON s.device_id = c.device_id
             WHERE c.resident_id = %s
             ORDER BY c.requested_at DESC, c.id DESC LIMIT %s""",
        (resident_id, limit)).fetchall()
    return [_session(r) for r in rows]


def session(conn: psycopg.Connection, session_id: int) -> dict[str, Any] | None:
    row = conn.execute(
        f"""SELECT {_SESSION_COLUMNS}, NULL
              FROM charging_session c JOIN device d ON d.id = c.device_id
              LEFT JOIN device_state s ON s.device_id = c.device_id
             WHERE c.id = %s""", (session_id,)).fetchone()
    return None if row is None else _session(row)


def care_status(conn: psycopg.Connection, resident_id: str, *, since: datetime
                ) -> dict[str, Any]:
    """A special-care resident's last pass out and in (gates and doors), their care flags,
    and the care rules' alarms about them since ``since`` (open ones whatever their age)."""
    flags = conn.execute("SELECT care_flags FROM resident WHERE id = %s",
                         (resident_id,)).fetchone()
    last: dict[str, datetime] = dict(conn.execute(
        """SELECT direction, max(time) FROM event
            WHERE kind = 'access' AND subject_id = %s AND direction IS NOT NULL
              AND time > %s - interval '30 days'
            GROUP BY direction""", (resident_id, since)).fetchall())
    alarms = conn.execute(
        """SELECT id, type, severity, state, raised_at, last_at, cleared_at, text_key,
                  text_params, title
             FROM alarm WHERE resident_id = %s AND type = ANY(%s)
              AND (state <> 'cleared' OR raised_at >= %s)
            ORDER BY raised_at DESC LIMIT 20""",
        (resident_id, list(CARE_ALARM_TYPES), since)).fetchall()
    return {"care_flags": list(flags[0] or ()) if flags else [],
            "last_out": last.get("out"), "last_in": last.get("in"),
            "alarms": [{"id": a[0], "type": a[1], "severity": a[2], "state": a[3],
                        "raised_at": a[4], "last_at": a[5], "cleared_at": a[6],
                        "text_key": a[7], "text_params": a[8] or {}, "title": a[9]}
                       for a in alarms]}


def _session(r: tuple) -> dict[str, Any]:
    (sid, device, name, state, requested, started, ended, kwh, reason, stop_at, status,
     power, resident, community, seen, so_far) = r
    return {"id": sid, "device_id": device, "device": name, "state": state,
            "requested_at": requested, "started_at": started, "ended_at": ended,
            "energy_kwh": kwh if kwh is not None else (float(so_far) if so_far else 0.0),
            "end_reason": reason, "stop_requested_at": stop_at, "pile_status": status,
            "power_kw": power if state == "charging" else 0.0, "resident_id": resident,
            "community_id": community,
            # the pile's own clock: how long it has charged, by what it last reported
            "pile_seen_at": seen}
