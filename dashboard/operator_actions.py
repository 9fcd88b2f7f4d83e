"""What an operator does by hand on the large screen and the reports page: a work order
made from a point on the map, a building or an alarm, dispatched like the rules' orders;
and an alarm cleared by hand with a reason kept in its history.

Role and scope are checked here (`twin.access`: order.create, alarm.clear), whichever page
or forged request called, and refusals are audited where they happen."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import psycopg

from dashboard import audit
from dashboard.scoped import audited, whole_number
from twin import access
from twin.access import User
from twin.alarms import Alarm
from twin.reports import MAX_SNAP_M, Refused, checked_point, load_catalogue, manual_key
from twin.store import queries
from twin.store import reports as report_store
from twin.store.operations import (
    act_on_work_order,
    clear_alarm,
    get_alarm,
    open_work_order,
)
from twin.system_texts import Said
from twin.work_orders import PRIORITIES, STAFF_ROLES, SYSTEM, WorkOrder, WorkOrderSpec

if TYPE_CHECKING:
    from twin.rules.store import Dispatcher

MAX_TEXT_CHARS = 500
MAX_REASON_CHARS = 300


def create_order(conn: psycopg.Connection, user: User, *, source: object,
                 category: object, role: object = None, skill: object = None,
                 priority: object = None, text: object = "", lon: object = None,
                 lat: object = None, building_id: object = None, alarm_id: object = None,
                 community_id: str, at: datetime, dispatcher: Dispatcher
                 ) -> tuple[WorkOrder, str | None]:
    """A hand-made order, dispatched at once: from a point ("point", lon/lat), a building
    ("building") or an alarm ("alarm": its place, building and kind; the order follows the
    alarm as the rules' orders do). ``category`` is a service-list entry, which gives the
    kind, role, skill and priority unless the operator chose others. Returns the order and
    why nobody could be sent yet."""
    from twin.rules.store import Outcome

    with audited(conn, user, "order.create", subject_kind="work_order", subject_id=source):
        access.require(user, "order.create", what="create a work order")
    category_id, entry = load_catalogue().get(category)
    role = role or entry.role
    priority = priority or entry.priority
    if role not in STAFF_ROLES or priority not in PRIORITIES:
        raise Refused("hand.err.role")
    if skill is not None and not isinstance(skill, str):
        raise Refused("hand.err.role")
    if not isinstance(text, str) or len(text) > MAX_TEXT_CHARS:
        raise Refused("rpt.err.text_long", chars=MAX_TEXT_CHARS)
    alarm: Alarm | None = None
    kind, domain = entry.kind, entry.domain
    title_key, params = manual_key(category_id), {}
    if source == "alarm":
        alarm = get_alarm(conn, whole_number(alarm_id, "an alarm"))
        if alarm.spec.location is None:
            raise Refused("hand.err.no_place", alarm=alarm.id)
        place, building, grid = alarm.spec.location, alarm.spec.building_id, None
        kind, domain = alarm.spec.type, alarm.spec.domain
        title_key, params = alarm.spec.text_key or title_key, dict(alarm.spec.text_params)
        where_community = alarm.spec.community_id
    elif source == "building":
        if not isinstance(building_id, str) or not building_id:
            raise Refused("hand.err.building")
        b = queries.building(conn, building_id)
        place = report_store.building_point(conn, building_id)
        if place is None:
            raise Refused("hand.err.building")
        building, grid, where_community = b.id, b.grid_id, b.community_id
    elif source == "point":
        place = checked_point(lon, lat)
        found = report_store.map_place(conn, community_id, place, max_m=MAX_SNAP_M)
        if found is None:
            raise Refused("hand.err.point")
        building, grid, where_community = found.building_id, found.grid_id, community_id
    else:
        raise Refused("hand.err.source")
    if grid is None and building is not None:
        grid = queries.building(conn, building).grid_id
    with audited(conn, user, "order.create", subject_kind="work_order", subject_id=source):
        access.require_community(user, where_community, what=f"a place in {where_community}")
    if not params and building is not None:
        params = {"building": building}
    spec = WorkOrderSpec(
        community_id=where_community, kind=kind, domain=domain, role=str(role),
        skill=skill or (entry.skill if role == entry.role else None), priority=str(priority),
        location=place, at=at, due_in=timedelta(minutes=entry.due_min),
        title=f"hand-made order: {kind}", description=text.strip(),
        alarm_id=alarm.id if alarm else None, grid_id=grid, building_id=building,
        text_key=title_key, text_params=params)
    outcome = Outcome()
    with conn.transaction():
        report_store.store_texts(conn, load_catalogue())
        order = open_work_order(conn, spec, actor=access.actor(user))
        audit.record(conn, user, "order.create", subject_kind="work_order",
                     subject_id=str(order.id),
                     detail={"source": source, "kind": kind, "alarm": alarm.id if alarm else None})
        order = dispatcher.assign(conn, order, now=at, outcome=outcome,
                                  actor=access.actor(user))
    conn.commit()
    return order, outcome.not_dispatched[0][1] if outcome.not_dispatched else None


def clear_alarm_by_hand(conn: psycopg.Connection, user: User, alarm_id: object, *,
                        reason: object, at: datetime) -> Alarm:
    """Clear an alarm by hand, the reason kept in its history (alarm_log, with the
    operator's name); the open orders it opened are closed as when its rule clears it."""
    number = whole_number(alarm_id, "an alarm")
    with audited(conn, user, "alarm.clear", subject_kind="alarm", subject_id=number):
        access.require(user, "alarm.clear", what=f"clear alarm {number}")
        access.require_community(user, get_alarm(conn, number).spec.community_id,
                                 what=f"alarm {number}")
    if not isinstance(reason, str) or not reason.strip():
        raise Refused("hand.err.reason")
    if len(reason) > MAX_REASON_CHARS:
        raise Refused("rpt.err.text_long", chars=MAX_REASON_CHARS)
    with conn.transaction():
        alarm = clear_alarm(conn, number, actor=user.name, at=at, reason=reason.strip())
        settled = report_store.open_orders_of_alarm(conn, number)
        for order_id in settled:  # an alarm's few orders
            act_on_work_order(conn, order_id, "settle", actor=SYSTEM, at=at, note=Said(
                f"alarm {number} cleared: {reason.strip()}", "sys/alarm-cleared",
                alarm=number, reason=reason.strip()))
        audit.record(conn, user, "alarm.clear", subject_kind="alarm", subject_id=str(number),
                     detail={"orders_settled": settled})
    conn.commit()
    return alarm


