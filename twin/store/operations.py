"""Keeping alarms, work orders and notifications: the one place that writes them.

Every function runs inside the caller's transaction (nested ones become
savepoints) and writes the history row beside the change, so a history can
never miss a step. Lifecycle checks come from `twin.work_orders.transition`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
import shapely
from psycopg.types.json import Jsonb
from shapely.geometry import LineString

from twin.alarms import SEVERITIES, Alarm, AlarmGroup, AlarmSpec, Raised, severity_rank
from twin.calendars import DEFAULT_TIMEZONE
from twin.errors import TwinError
from twin.escalation import Climb, climb, config_for
from twin.store.connection import one_row
from twin.system_texts import Said
from twin.work_orders import (
    BUSY_STATES,
    Actor,
    TransitionError,
    WorkOrder,
    WorkOrderEvent,
    WorkOrderSpec,
    order_code,
    transition,
)

# --- alarms ------------------------------------------------------------------------------

_ALARM_COLUMNS = """
    id, community_id, type, domain, severity, source_kind, source_id, title, state, count,
    raised_at, last_at, updated_at, rule_id, building_id, floor, unit_id, device_id,
    resident_id, ST_AsBinary(geom), detail, acknowledged_at, acknowledged_by, cleared_at,
    cleared_by, escalation_level, known_at, sources, active_sources,
    text_key, text_params
"""


def raise_alarm(
    conn: psycopg.Connection, spec: AlarmSpec, *, actor: str = "system",
    known_at: datetime | None = None, group: AlarmGroup | None = None,
) -> Raised:
    """Open the alarm, or count a repeat of the one already open for this source and type.

    A repeat keeps the worse of the two severities and the latest detail.
    ``known_at`` is when the twin learnt of it (the service's clock; default:
    the event's own time): escalation counts from it. With ``group``, an open
    alarm of the same type near ``spec.location`` (within ``group.radius_m``)
    and seen within ``group.window_s`` is the same incident: the new source is
    counted on it and recorded among its sources, and no second alarm opens.
    """
    geom = spec.location.wkb if spec.location is not None else None
    with conn.transaction():
        same = _grouped_with(conn, spec, group) if group is not None else None
        if same is None:
            same = _open_of(conn, spec)
        if same is not None:
            return _repeat_on(conn, *same, spec, actor)
        row = conn.execute(
            f"""
            INSERT INTO alarm (community_id, type, rule_id, domain, severity, source_kind,
                               source_id, building_id, floor, unit_id, device_id, resident_id,
                               geom, title, detail, raised_at, last_at, updated_at, known_at,
                               sources, active_sources, text_key, text_params)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    ST_SetSRID(ST_GeomFromWKB(%s), 4326), %s, %s, %s, %s, %s, %s,
                    ARRAY[%s], ARRAY[%s], %s, %s)
            ON CONFLICT (community_id, source_id, type) WHERE state <> 'cleared' DO NOTHING
            RETURNING {_ALARM_COLUMNS}
            """,
            (
                spec.community_id, spec.type, spec.rule_id, spec.domain, spec.severity,
                spec.source_kind, spec.source_id, spec.building_id, spec.floor, spec.unit_id,
                spec.device_id, spec.resident_id, geom, spec.title, _json(spec.detail),
                spec.at, spec.at, known_at or spec.at, known_at or spec.at, spec.source_id,
                spec.source_id, spec.text_key, _json(spec.text_params),
            ),
        ).fetchone()
        if row is None:  # another worker opened it between the look and the insert
            raced = _open_of(conn, spec)
            if raced is None:
                raise TwinError(f"raising an alarm: {spec.type} on {spec.source_id} was "
                                "opened and cleared meanwhile")
            return _repeat_on(conn, *raced, spec, actor)
        alarm = _alarm(row)
        _alarm_log(conn, alarm.id, spec.at, "raised", actor, spec.detail)
    return Raised(alarm=alarm, new=True)


def _open_of(conn: psycopg.Connection, spec: AlarmSpec) -> tuple[int, str] | None:
    """The open alarm of this source and type, locked, with its severity."""
    row = conn.execute(
        """SELECT id, severity FROM alarm WHERE community_id = %s AND source_id = %s
             AND type = %s AND state <> 'cleared' FOR UPDATE""",
        (spec.community_id, spec.source_id, spec.type)).fetchone()
    return (int(row[0]), str(row[1])) if row is not None else None


def clear_source(
    conn: psycopg.Connection, community_id: str, source_id: str, alarm_type: str, *,
    actor: str, at: datetime, reason: str = "", up_to: str | None = None,
) -> tuple[Alarm, bool] | None:
    """One source of an open alarm stopped reporting it: the alarm clears with its last source.

    Returns the alarm and whether it cleared (False: other sources still report it,
    or the alarm is worse than ``up_to``, the severity the clearing rule raises it
    at: an early warning's all-clear does not end what it grew into), or None when
    no open alarm of this type has this source.
    """
    with conn.transaction():
        row = conn.execute(
            """SELECT id, active_sources, severity FROM alarm
               WHERE community_id = %s AND type = %s AND state <> 'cleared'
                 AND (source_id = %s OR %s = ANY(active_sources))
               ORDER BY id LIMIT 1 FOR UPDATE""",
            (community_id, alarm_type, source_id, source_id)).fetchone()
        if row is None:
            return None
        alarm_id, active, severity = row
        if up_to is not None and severity_rank(severity) < severity_rank(up_to):
            _alarm_log(conn, alarm_id, at, "note", actor,
                       {"kept": f"{severity} is not this rule's to clear",
                        **({"reason": reason} if reason else {})})
            return get_alarm(conn, alarm_id), False
        remaining = [s for s in active if s != source_id]
        if remaining:
            updated = one_row(conn.execute(
                f"""UPDATE alarm SET active_sources = %s, updated_at = greatest(updated_at, %s)
                    WHERE id = %s RETURNING {_ALARM_COLUMNS}""",
                (remaining, at, alarm_id)), f"updating alarm {alarm_id}")
            _alarm_log(conn, alarm_id, at, "note", actor,
                       {"source_cleared": source_id, "remaining": remaining,
                        **({"reason": reason} if reason else {})})
            return _alarm(updated), False
        conn.execute("UPDATE alarm SET active_sources = '{}' WHERE id = %s", (alarm_id,))
        return clear_alarm(conn, alarm_id, actor=actor, at=at, reason=reason), True


def acknowledge_alarm(conn: psycopg.Connection, alarm_id: int, *, actor: str, at: datetime) -> Alarm:
    """An operator has seen it: it stops escalating but stays open until cleared."""
    return _alarm_step(
        conn, alarm_id, at=at, actor=actor, action="acknowledged", allowed=("active",),
        sets="state = 'acknowledged', acknowledged_at = %(at)s, acknowledged_by = %(actor)s",
    )


def clear_alarm(
    conn: psycopg.Connection, alarm_id: int, *, actor: str, at: datetime, reason: str = ""
) -> Alarm:
    return _alarm_step(
        conn, alarm_id, at=at, actor=actor, action="cleared", allowed=("active", "acknowledged"),
        sets="state = 'cleared', cleared_at = %(at)s, cleared_by = %(actor)s",
        detail={"reason": reason} if reason else {},
    )


def escalate_alarm(
    conn: psycopg.Connection, alarm_id: int, *, actor: str = "system", at: datetime, reason: str = ""
) -> Alarm:
    return _alarm_step(
        conn, alarm_id, at=at, actor=actor, action="escalated", allowed=("active",),
        sets="escalation_level = escalation_level + 1, escalated_at = %(at)s",
        detail={"reason": reason} if reason else {},
    )


def open_alarm_for(
    conn: psycopg.Connection, community_id: str, source_id: str, alarm_type: str
) -> Alarm | None:
    """The open alarm of this source and type, if any (what a clearing rule looks for)."""
    row = conn.execute(
        f"""SELECT {_ALARM_COLUMNS} FROM alarm
            WHERE community_id = %s AND source_id = %s AND type = %s AND state <> 'cleared'""",
        (community_id, source_id, alarm_type),
    ).fetchone()
    return _alarm(row) if row else None


def get_alarm(conn: psycopg.Connection, alarm_id: int) -> Alarm:
    row = conn.execute(f"SELECT {_ALARM_COLUMNS} FROM alarm WHERE id = %s", (alarm_id,)).fetchone()
    if row is None:
        raise TwinError(f"there is no alarm {alarm_id}")
    return _alarm(row)


def open_alarms(
    conn: psycopg.Connection,
    community_id: str,
    *,
    building_id: str | None = None,
    changed_since: datetime | None = None,
    include_cleared: bool = False,
    limit: int = 500,
) -> list[Alarm]:
    """Open alarms, worst and newest first; with changed_since, every alarm changed after it."""
    rows = conn.execute(
        f"""
        SELECT {_ALARM_COLUMNS} FROM alarm
        WHERE community_id = %(c)s
          AND (%(b)s::text IS NULL OR building_id = %(b)s)
          AND (%(since)s::timestamptz IS NULL OR updated_at > %(since)s)
          AND (%(cleared)s OR state <> 'cleared')
        ORDER BY array_position(%(order)s::text[], severity), last_at DESC
        LIMIT %(limit)s
        """,
        {"c": community_id, "b": building_id, "since": changed_since,
         "cleared": include_cleared or changed_since is not None,
         "order": list(SEVERITIES), "limit": limit},
    ).fetchall()
    return [_alarm(r) for r in rows]


def alarm_history(conn: psycopg.Connection, alarm_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT time, action, actor, detail FROM alarm_log WHERE alarm_id = %s ORDER BY time, id",
        (alarm_id,),
    ).fetchall()
    return [{"time": t, "action": a, "actor": who, "detail": d} for t, a, who, d in rows]


# --- work orders -------------------------------------------------------------------------

_ORDER_COLUMNS = """
    id, community_id, kind, title, domain, priority, role, state, ST_AsBinary(geom),
    created_at, updated_at, skill, description, alarm_id, rule_id, assignee_id, grid_id,
    building_id, unit_id, resident_id, device_id, ST_AsBinary(route), route_m, eta_s,
    declined_by, escalation_level, due_at, tier, tier_since, department, text_key, text_params,
    (SELECT c.timezone FROM community c WHERE c.id = work_order.community_id)
"""


@dataclass(frozen=True, slots=True)
class Assignee:
    """Who the dispatcher chose and how they get there."""

    staff_id: str
    route: LineString | None = None
    route_m: float | None = None
    eta_s: float | None = None
    #: where the walk starts: 'fix' (their newest position fix) or 'post'; None by hand
    origin: str | None = None
    #: the age of their newest fix at the assignment, in seconds (None: no fix)
    fix_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class Photo:
    content_type: str
    data: bytes


def open_work_order(
    conn: psycopg.Connection, spec: WorkOrderSpec, *, actor: Actor
) -> WorkOrder:
    """A new order in state 'created'; the dispatcher assigns it next."""
    due_at = spec.at + spec.due_in if spec.due_in is not None else None
    with conn.transaction():
        (order_id,) = one_row(conn.execute(
            """
            INSERT INTO work_order (community_id, alarm_id, rule_id, kind, title, description,
                                    domain, priority, role, skill, grid_id, building_id, unit_id,
                                    resident_id, device_id, geom, due_at, created_at, updated_at,
                                    tier_since, text_key, text_params)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    ST_SetSRID(ST_GeomFromWKB(%s), 4326), %s, %s, %s, %s, %s, %s)
            RETURNING id
            """,
            (
                spec.community_id, spec.alarm_id, spec.rule_id, spec.kind, spec.title,
                spec.description, spec.domain, spec.priority, spec.role, spec.skill,
                spec.grid_id, spec.building_id, spec.unit_id, spec.resident_id, spec.device_id,
                spec.location.wkb, due_at, spec.at, spec.at, spec.at, spec.text_key,
                _json(spec.text_params),
            ),
        ), "opening a work order")
        _order_event(conn, order_id, spec.at, "created", actor, None, "created", None, "", {})
    return get_work_order(conn, order_id)


def act_on_work_order(
    conn: psycopg.Connection,
    order_id: int,
    action: str,
    *,
    actor: Actor,
    at: datetime,
    note: str = "",
    assignee: Assignee | None = None,
    photo: Photo | None = None,
    to: Climb | None = None,
) -> WorkOrder:
    """Move an order one lifecycle step, with its history row, or say why it cannot move.

    'assign' needs `assignee`; 'decline' remembers who declined so the
    dispatcher skips them; 'escalate' hands the order to the next tier (`to`,
    else `twin.escalation.climb` over the community's tiers at `at`), drops a
    skill that tier does not have, frees it for the next assignment, and for a
    department outside the twin writes its notifications.
    """
    with conn.transaction():
        row = conn.execute(
            """SELECT state, assignee_id, role, escalation_level, skill, kind, community_id
               FROM work_order WHERE id = %s FOR UPDATE""", (order_id,)
        ).fetchone()
        if row is None:
            raise TwinError(f"there is no work order {order_id}")
        state, current, role, level, skill, kind, community = row
        to_state = transition(order_id, state, action, actor, assignee_id=current)
        sets = ["state = %(to)s", "updated_at = %(at)s"]
        detail: dict[str, Any] = {}
        staff_id = current
        if action == "assign":
            if assignee is None:
                raise TransitionError(f"work order {order_id}: assigning needs a staff member")
            # the staff id may come from a browser: a stranger is refused here, by name
            if _staff_community(conn, assignee.staff_id) != community:
                raise TransitionError(f"work order {order_id}: there is no staff member "
                                      f"{assignee.staff_id!r} in {community}")
            staff_id = assignee.staff_id
            sets += ["assignee_id = %(staff)s", "assigned_at = %(at)s", "route_m = %(route_m)s",
                     "eta_s = %(eta_s)s", "route = ST_SetSRID(ST_GeomFromWKB(%(route)s), 4326)"]
            detail = {"route_m": assignee.route_m, "eta_s": assignee.eta_s, "previous": current}
            if assignee.origin is not None:
                detail |= {"origin": assignee.origin, "fix_age_s": assignee.fix_age_s}
        elif action == "decline":
            sets += ["assignee_id = NULL", "route = NULL", "route_m = NULL", "eta_s = NULL",
                     "declined_by = array_append(declined_by, %(staff)s)"]
        elif action == "escalate":
            if to is None:
                to = climb(config_for(community), level=level, role=role, skill=skill,
                           kind=kind, now=at, staffed=staffed_roles(conn, community))
            if to is None:
                raise TransitionError(f"work order {order_id} is at its community's top "
                                      f"escalation tier; there is no tier above")
            sets += ["assignee_id = NULL", "route = NULL", "route_m = NULL", "eta_s = NULL",
                     "escalation_level = %(level)s", "role = %(up)s", "skill = %(skill)s",
                     "tier = %(tier)s", "tier_since = %(at)s", "department = %(department)s"]
            detail = {"from_role": role, "to_role": to.role, "previous": current,
                      **to.detail(note)}
            why = note
            note = to.note(note or "escalated")
            if isinstance(why, Said):
                note = Said(note, "sys/escalated-to", tier_name=to.tier_name, why=why)
        elif action in ("accept", "arrive", "resolve", "close"):
            column = {"accept": "accepted_at", "arrive": "arrived_at",
                      "resolve": "resolved_at", "close": "closed_at"}[action]
            sets.append(f"{column} = %(at)s")
        elif action in ("cancel", "settle"):
            sets.append("closed_at = %(at)s")
        conn.execute(
            f"UPDATE work_order SET {', '.join(sets)} WHERE id = %(id)s",
            {
                "id": order_id, "to": to_state, "at": at, "staff": staff_id,
                "route_m": assignee.route_m if assignee else None,
                "eta_s": assignee.eta_s if assignee else None,
                "route": assignee.route.wkb if assignee and assignee.route is not None else None,
                "up": to.role if to else role, "level": to.level if to else level,
                "skill": to.skill if to else skill, "tier": to.tier if to else None,
                "department": to.department if to else None,
            },
        )
        event_id = _order_event(conn, order_id, at, action, actor, state, to_state, staff_id, note, detail)
        if to is not None and to.department is not None:
            _tell_department(conn, order_id, to, note, at)
        if photo is not None:
            conn.execute(
                """INSERT INTO work_order_photo (work_order_id, event_id, content_type, data, taken_at)
                   VALUES (%s, %s, %s, %s, %s)""",
                (order_id, event_id, photo.content_type, photo.data, at),
            )
    return get_work_order(conn, order_id)


def note_on_work_order(
    conn: psycopg.Connection, order_id: int, *, actor: Actor, at: datetime, note: str,
    detail: dict[str, Any] | None = None,
) -> bool:
    """Add a note to an order's history without moving it (why nobody could be sent, say).

    The order's clock (``updated_at``, which escalation measures) is left
    alone, and a note that repeats the order's last one is not written again,
    so a dispatcher retrying every few seconds leaves one line, not hundreds.
    Returns whether a note was written.
    """
    with conn.transaction():
        row = conn.execute("SELECT state FROM work_order WHERE id = %s FOR UPDATE",
                           (order_id,)).fetchone()
        if row is None:
            raise TwinError(f"there is no work order {order_id}")
        last = conn.execute(
            """SELECT action, note FROM work_order_event WHERE work_order_id = %s
               ORDER BY time DESC, id DESC LIMIT 1""", (order_id,)).fetchone()
        if last == ("note", note):
            return False
        _order_event(conn, order_id, at, "note", actor, row[0], row[0],
                     actor.staff_id, note, detail or {})
    return True


def get_work_order(conn: psycopg.Connection, order_id: int, *, history: bool = True) -> WorkOrder:
    row = conn.execute(
        f"SELECT {_ORDER_COLUMNS} FROM work_order WHERE id = %s", (order_id,)
    ).fetchone()
    if row is None:
        raise TwinError(f"there is no work order {order_id}")
    events: tuple[WorkOrderEvent, ...] = ()
    if history:
        events = tuple(
            WorkOrderEvent(*r)
            for r in conn.execute(
                """SELECT time, action, actor, from_state, to_state, staff_id, note, detail
                   FROM work_order_event WHERE work_order_id = %s ORDER BY time, id""",
                (order_id,),
            ).fetchall()
        )
    return _order(row, events)


def work_orders_by_id(conn: psycopg.Connection, order_ids: list[int]) -> dict[int, WorkOrder]:
    """Several orders (no history attached) in one query: a list's cards, not one read each."""
    rows = conn.execute(f"SELECT {_ORDER_COLUMNS} FROM work_order WHERE id = ANY(%s)",
                        (order_ids,)).fetchall()
    return {order.id: order for order in (_order(row, ()) for row in rows)}


def work_orders(
    conn: psycopg.Connection,
    community_id: str,
    *,
    states: tuple[str, ...] | None = None,
    assignee_id: str | None = None,
    grid_id: str | None = None,
    building_id: str | None = None,
    changed_since: datetime | None = None,
    limit: int = 500,
) -> list[WorkOrder]:
    """Orders, newest first, filtered as the lists and boards ask (no history attached)."""
    rows = conn.execute(
        f"""
        SELECT {_ORDER_COLUMNS} FROM work_order
        WHERE community_id = %(c)s
          AND (%(states)s::text[] IS NULL OR state = ANY(%(states)s))
          AND (%(who)s::text IS NULL OR assignee_id = %(who)s)
          AND (%(grid)s::text IS NULL OR grid_id = %(grid)s)
          AND (%(b)s::text IS NULL OR building_id = %(b)s)
          AND (%(since)s::timestamptz IS NULL OR updated_at > %(since)s)
        ORDER BY created_at DESC, id DESC
        LIMIT %(limit)s
        """,
        {"c": community_id, "states": list(states) if states else None, "who": assignee_id,
         "grid": grid_id, "b": building_id, "since": changed_since, "limit": limit},
    ).fetchall()
    return [_order(r, ()) for r in rows]


def open_orders_by_staff(conn: psycopg.Connection, community_id: str) -> dict[str, int]:
    """How many orders each staff member holds now: the dispatcher's open-order limit."""
    rows = conn.execute(
        """SELECT assignee_id, count(*) FROM work_order
           WHERE community_id = %s AND assignee_id IS NOT NULL AND state = ANY(%s)
           GROUP BY assignee_id""",
        (community_id, sorted(BUSY_STATES)),
    ).fetchall()
    return {staff: int(n) for staff, n in rows}


def staffed_roles(conn: psycopg.Connection, community_id: str) -> set[str]:
    """The staff roles somebody in the community holds: a tier of a role nobody holds is
    passed over."""
    return {r for (r,) in conn.execute(
        "SELECT DISTINCT role FROM staff WHERE community_id = %s", (community_id,))}


def work_order_photos(conn: psycopg.Connection, order_id: int) -> list[Photo]:
    rows = conn.execute(
        "SELECT content_type, data FROM work_order_photo WHERE work_order_id = %s ORDER BY id",
        (order_id,),
    ).fetchall()
    return [Photo(content_type=ct, data=bytes(data)) for ct, data in rows]


# --- notifications -----------------------------------------------------------------------

NOTIFICATION_CHANNELS: tuple[str, ...] = (
    "family", "grid_worker", "security_desk", "staff", "broadcast", "department", "app")


def notify(
    conn: psycopg.Connection,
    *,
    community_id: str,
    channel: str,
    recipient: str,
    message: str,
    at: datetime,
    alarm_id: int | None = None,
    work_order_id: int | None = None,
    rule_id: str | None = None,
    text_key: str | None = None,
    text_params: dict[str, Any] | None = None,
) -> int:
    """Put a message in the outbox; a delivery adapter (SMS, push) sends it later.

    ``message`` is what a reader that does not render sees; with ``text_key`` the
    worker renders the text for each recipient (`twin.texts`).
    """
    if channel not in NOTIFICATION_CHANNELS:
        raise ValueError(f"unknown notification channel {channel!r}; expected one of {NOTIFICATION_CHANNELS}")
    (nid,) = one_row(conn.execute(
        """INSERT INTO notification (community_id, time, channel, recipient, message,
                                     alarm_id, work_order_id, rule_id, text_key, text_params)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (community_id, at, channel, recipient, message, alarm_id, work_order_id, rule_id,
         text_key, _json(text_params or {})),
    ), "queueing a notification")
    return int(nid)


# --- private -----------------------------------------------------------------------------

def _tell_department(conn: psycopg.Connection, order_id: int, to: Climb, note: str,
                     at: datetime) -> None:
    """One notification per contact address of the department the order was handed to."""
    community, title, created_at, lon, lat, timezone = one_row(conn.execute(
        """SELECT w.community_id, w.title, w.created_at, ST_X(w.geom), ST_Y(w.geom), c.timezone
           FROM work_order w JOIN community c ON c.id = w.community_id
           WHERE w.id = %s""", (order_id,)), "reading the escalated order")
    code = order_code(order_id, created_at, timezone)
    message = f"{code} {title} ({lon:.6f}, {lat:.6f}): {note}"
    for contact in to.contacts:
        for recipient in contact.recipients():
            notify(conn, community_id=community, channel="department", recipient=recipient,
                   message=message, at=at, work_order_id=order_id)


def _staff_community(conn: psycopg.Connection, staff_id: str) -> str | None:
    row = conn.execute("SELECT community_id FROM staff WHERE id = %s", (staff_id,)).fetchone()
    return None if row is None else row[0]


def _json(value: dict[str, Any]) -> Jsonb:
    return Jsonb(value, dumps=lambda v: orjson.dumps(v, default=str).decode())


def _grouped_with(conn: psycopg.Connection, spec: AlarmSpec, group: AlarmGroup
                  ) -> tuple[int, str] | None:
    """The open alarm of the same type that this raise is one incident with, if any: the
    one this source already reports on, else the nearest within the group's radius seen
    within its window; locked, with its severity."""
    row = conn.execute(
        """SELECT id, severity FROM alarm
           WHERE community_id = %(c)s AND type = %(t)s AND state <> 'cleared'
             AND (source_id = %(s)s OR %(s)s = ANY(sources)
                  OR (geom IS NOT NULL AND %(g)s::bytea IS NOT NULL
                      AND last_at >= %(at)s - make_interval(secs => %(w)s)
                      AND ST_DWithin(geom::geography,
                                     ST_SetSRID(ST_GeomFromWKB(%(g)s), 4326)::geography, %(r)s)))
           ORDER BY (source_id = %(s)s OR %(s)s = ANY(sources)) DESC,
                    ST_Distance(geom::geography,
                                ST_SetSRID(ST_GeomFromWKB(%(g)s), 4326)::geography) NULLS LAST,
                    id
           LIMIT 1 FOR UPDATE""",
        {"c": spec.community_id, "t": spec.type, "s": spec.source_id,
         "g": spec.location.wkb if spec.location is not None else None,
         "at": spec.at, "w": group.window_s, "r": group.radius_m}).fetchone()
    return (int(row[0]), str(row[1])) if row else None


def _repeat_on(conn: psycopg.Connection, alarm_id: int, before: str, spec: AlarmSpec,
               actor: str) -> Raised:
    """Count a repeat (from this source or another of the same incident) on an open alarm
    (locked, its severity ``before``); a worse one takes it over (see :func:`raise_alarm`)."""
    worse = severity_rank(spec.severity) < severity_rank(before)
    row = one_row(conn.execute(
        f"""UPDATE alarm SET
                count = count + 1,
                last_at = greatest(last_at, %(at)s),
                updated_at = greatest(updated_at, %(at)s),
                detail = CASE WHEN source_id = %(s)s THEN %(d)s ELSE detail END,
                sources = CASE WHEN %(s)s = ANY(sources) THEN sources
                               ELSE array_append(sources, %(s)s) END,
                active_sources = array_append(array_remove(active_sources, %(s)s), %(s)s),
                severity = CASE WHEN %(worse)s THEN %(sev)s ELSE severity END,
                rule_id = CASE WHEN %(worse)s THEN %(rule)s ELSE rule_id END,
                title = CASE WHEN %(worse)s THEN %(title)s ELSE title END,
                text_key = CASE WHEN %(worse)s THEN %(key)s ELSE text_key END,
                -- the parameters follow the title's own text: a repeat by another rule
                -- of the same place (a camera's on the bins' alarm) keeps the title's
                text_params = CASE WHEN %(worse)s OR (source_id = %(s)s
                                        AND text_key IS NOT DISTINCT FROM %(key)s)
                                   THEN %(params)s ELSE text_params END
            WHERE id = %(id)s RETURNING {_ALARM_COLUMNS}""",
        {"id": alarm_id, "at": spec.at, "s": spec.source_id, "d": _json(spec.detail),
         "worse": worse, "sev": spec.severity, "rule": spec.rule_id, "title": spec.title,
         "key": spec.text_key, "params": _json(spec.text_params)}),
        f"repeating alarm {alarm_id}")
    alarm = _alarm(row)
    detail = spec.detail if spec.source_id == alarm.spec.source_id else {
        **spec.detail, "source": spec.source_id}
    if worse:
        detail = {**detail, "severity": {"from": before, "to": spec.severity},
                  "rule": spec.rule_id}
    _alarm_log(conn, alarm_id, spec.at, "upgraded" if worse else "repeated", actor, detail)
    return Raised(alarm=alarm, new=False, upgraded=worse)


def _alarm_step(
    conn: psycopg.Connection,
    alarm_id: int,
    *,
    at: datetime,
    actor: str,
    action: str,
    allowed: tuple[str, ...],
    sets: str,
    detail: dict[str, Any] | None = None,
) -> Alarm:
    with conn.transaction():
        row = conn.execute("SELECT state FROM alarm WHERE id = %s FOR UPDATE", (alarm_id,)).fetchone()
        if row is None:
            raise TwinError(f"there is no alarm {alarm_id}")
        if row[0] not in allowed:
            raise TwinError(f"alarm {alarm_id} is {row[0]}; it cannot be {action} from there")
        # the row is locked above, so the update finds it
        updated = one_row(conn.execute(
            f"UPDATE alarm SET {sets}, updated_at = %(at)s WHERE id = %(id)s RETURNING {_ALARM_COLUMNS}",
            {"id": alarm_id, "at": at, "actor": actor},
        ), f"updating alarm {alarm_id}")
        _alarm_log(conn, alarm_id, at, action, actor, detail or {})
    return _alarm(updated)


def _alarm_log(
    conn: psycopg.Connection, alarm_id: int, at: datetime, action: str, actor: str, detail: dict[str, Any]
) -> None:
    conn.execute(
        "INSERT INTO alarm_log (alarm_id, time, action, actor, detail) VALUES (%s, %s, %s, %s, %s)",
        (alarm_id, at, action, actor, _json(detail)),
    )


def _order_event(
    conn: psycopg.Connection,
    order_id: int,
    at: datetime,
    action: str,
    actor: Actor,
    from_state: str | None,
    to_state: str,
    staff_id: str | None,
    note: str,
    detail: dict[str, Any],
) -> int:
    """One line of an order's history; a note the system said (`Said`) keeps its key and
    parameters beside the English, for each reader's language."""
    if isinstance(note, Said):
        detail = {**detail, "said": note.stored()}
    (event_id,) = one_row(conn.execute(
        """INSERT INTO work_order_event (work_order_id, time, action, actor, from_state, to_state,
                                         staff_id, note, detail)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (order_id, at, action, actor.name, from_state, to_state, staff_id, note, _json(detail)),
    ), "writing a work order event")
    return int(event_id)


def _point(wkb: bytes | None):
    return shapely.from_wkb(wkb) if wkb is not None else None


def _alarm(row: tuple) -> Alarm:
    (id_, community, type_, domain, severity, source_kind, source_id, title, state, count,
     raised_at, last_at, updated_at, rule_id, building_id, floor, unit_id, device_id, resident_id,
     geom, detail, ack_at, ack_by, cleared_at, cleared_by, level, known_at, sources,
     active_sources, text_key, text_params) = row
    spec = AlarmSpec(
        community_id=community, type=type_, domain=domain, severity=severity,
        source_kind=source_kind, source_id=source_id, title=title, at=raised_at,
        rule_id=rule_id, building_id=building_id, floor=floor, unit_id=unit_id,
        device_id=device_id, resident_id=resident_id, location=_point(geom), detail=detail or {},
        text_key=text_key, text_params=text_params or {},
    )
    return Alarm(
        id=id_, spec=spec, state=state, count=count, last_at=last_at, updated_at=updated_at,
        acknowledged_at=ack_at, acknowledged_by=ack_by, cleared_at=cleared_at,
        cleared_by=cleared_by, escalation_level=level, known_at=known_at,
        sources=tuple(sources or ()), active_sources=tuple(active_sources or ()),
    )


def _order(row: tuple, history: tuple[WorkOrderEvent, ...]) -> WorkOrder:
    (id_, community, kind, title, domain, priority, role, state, geom, created_at, updated_at,
     skill, description, alarm_id, rule_id, assignee_id, grid_id, building_id, unit_id,
     resident_id, device_id, route, route_m, eta_s, declined_by, level, due_at, tier, tier_since,
     department, text_key, text_params, timezone) = row
    spec = WorkOrderSpec(
        community_id=community, kind=kind, title=title, domain=domain, role=role,
        location=_point(geom), at=created_at, priority=priority, skill=skill,
        description=description, alarm_id=alarm_id, rule_id=rule_id, grid_id=grid_id,
        building_id=building_id, unit_id=unit_id, resident_id=resident_id, device_id=device_id,
        due_in=due_at - created_at if due_at is not None else None,
        text_key=text_key, text_params=text_params or {},
    )
    return WorkOrder(
        id=id_, spec=spec, state=state, updated_at=updated_at, assignee_id=assignee_id,
        route=_point(route), route_m=route_m, eta_s=eta_s, declined_by=tuple(declined_by or ()),
        escalation_level=level, history=history, tier=tier,
        tier_since=tier_since or created_at, department=department,
        timezone=timezone or DEFAULT_TIMEZONE,
    )
