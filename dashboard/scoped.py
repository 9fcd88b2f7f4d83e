"""The control room's service functions: the policy's check before every read and write,
masking, and the audit log after.

Every read of a building, a device, residents or an order, and every change the pages
make (an order's step, a dispatch, an acknowledgement, a phone's position), goes through
here, so a callback called directly, without its page, is held to the same rules as the
page: `twin.access` decides (a grid worker reaches only their own grid and their own
orders, a planner no building, unit or order at all, only an operator assigns), and a
refusal is written to the audit log (who, what they asked, of what, why) before it is
raised. Residents are whole for the roles that need them (and then written to the audit
log in the same transaction as the read), masked for everyone else. The queries are in
`twin.store.reads`; nothing here runs SQL.

A refusal is committed on the caller's connection before the AccessDenied goes up, so
that the caller's rollback does not take the record with it: call these outside a
``conn.transaction()`` block (only reads precede a refusal, so the commit ends nothing
else).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from dashboard import audit
from dashboard.words import retitle
from twin import access
from twin.access import AccessDenied, User, require_grid, sees_residents_whole
from twin.alarms import Alarm
from twin.dispatch import on_shift
from twin.errors import TwinError
from twin.privacy import mask_name, mask_phone
from twin.rules.compile import RULE_TITLE
from twin.store import queries
from twin.store.operations import (
    Assignee,
    Photo,
    acknowledge_alarm,
    act_on_work_order,
    get_alarm,
    get_work_order,
)
from twin.store.positions import Fix, record_fixes, staff_on_record
from twin.store.reads import buildings, devices, telemetry, work_orders
from twin.store.reads import residents as people
from twin.store.reads.texts import community_timezone
from twin.work_orders import WorkOrder

if TYPE_CHECKING:  # the rule engine's module is heavy; the dispatcher is handed in
    from twin.rules.store import Dispatcher


def audited(conn: psycopg.Connection, user: User, asked: str, *, subject_kind: str,
            subject_id: object) -> AbstractContextManager[None]:
    """`dashboard.audit.audited`, with the subject as a browser sent it, shortened."""
    return audit.audited(conn, user, asked, subject_kind=subject_kind,
                         subject_id=brief(subject_id))


def require(conn: psycopg.Connection, user: User, permission: str, *, what: str,
            subject_kind: str = "", subject_id: object = "") -> None:
    """`twin.access.require`, with a refusal audited (pages, lists and charts ask this)."""
    with audited(conn, user, permission, subject_kind=subject_kind, subject_id=subject_id):
        access.require(user, permission, what=what)


def building_summary(conn: psycopg.Connection, user: User, building_id: str) -> dict[str, Any]:
    _require_building(conn, user, building_id)
    return buildings.building_summary(conn, building_id)


def unit_grid(conn: psycopg.Connection, user: User, building_id: str) -> list[dict[str, Any]]:
    """Every unit with its occupancy, residents, special-care residents and open alarms."""
    _require_building(conn, user, building_id)
    return buildings.unit_grid(conn, building_id)


def building_devices(conn: psycopg.Connection, user: User, building_id: str
                     ) -> list[dict[str, Any]]:
    """The building's devices with their latest state, and whether an alarm is open on them."""
    _require_building(conn, user, building_id, asked="devices")
    return devices.building_devices(conn, building_id)


def device_type(conn: psycopg.Connection, user: User, building_id: str, device_id: str) -> str:
    """The type of one of the building's devices (what its history chart may show)."""
    found = {d["id"]: d["type"] for d in building_devices(conn, user, building_id)}
    with audited(conn, user, "device", subject_kind="device", subject_id=device_id):
        if device_id not in found:
            raise AccessDenied(f"device {brief(device_id)} is not in building {building_id}")
    return found[device_id]


def device_history(conn: psycopg.Connection, user: User, device_id: str, metric: str,
                   range_key: str, *, now: datetime) -> list[tuple[datetime, float, float, float]]:
    """(bucket, mean, min, max) of one device's metric over a range, if the user may see it."""
    device_id = _text(device_id, "a device")
    metric, range_key = _text(metric, "a metric"), _text(range_key, "a history range")
    if range_key not in telemetry.HISTORY_BUCKETS:
        raise TwinError(f"unknown history range {brief(range_key)}; expected one of "
                        f"{', '.join(telemetry.HISTORY_BUCKETS)}")
    with audited(conn, user, "history", subject_kind="device", subject_id=device_id):
        require_grid(user, devices.device_grid_id(conn, device_id), what=f"device {device_id}")
    return telemetry.device_history(conn, device_id, metric, range_key, now=now)


def residents(conn: psycopg.Connection, user: User, *, building_id: str | None = None,
              unit_id: str | None = None) -> dict[str, Any]:
    """Residents of a building (or one unit): whole for the roles that need them (and then
    written to the audit log in the same transaction), masked for everyone else."""
    if unit_id is not None:
        unit_id = _text(unit_id, "a unit")
        building_id = buildings.unit_building(conn, unit_id)
    if building_id is None:
        raise TwinError("residents needs a building or a unit")
    _require_building(conn, user, building_id, asked="residents",
                      subject=("unit", unit_id) if unit_id else None)
    whole = sees_residents_whole(user)
    with conn.transaction():
        rows = people.residents_of(conn, building_id, unit_id=unit_id)
        if whole and rows:
            audit.record(conn, user, "view_residents_unmasked",
                         subject_kind="unit" if unit_id else "building",
                         subject_id=unit_id or building_id,
                         detail={"residents": [r.id for r in rows]})
    shown = [{
        "id": r.id, "unit": r.unit, "floor": r.floor,
        "name": r.name if whole else mask_name(r.name),
        "phone": r.phone if whole else mask_phone(r.phone),
        "gender": r.gender, "age_band": r.age_band, "care_flags": list(r.care_flags),
        "contacts": [{"name": c["name"] if whole else mask_name(c["name"]),
                      "relation": c.get("relation", ""),
                      "phone": c["phone"] if whole else mask_phone(c["phone"])}
                     for c in r.contacts],
    } for r in rows]
    return {"masked": not whole, "residents": shown}


def my_tasks(conn: psycopg.Connection, user: User) -> list[dict[str, Any]]:
    """The user's open orders, nearest first, titled for them (`dashboard.words`); none for a
    login that is not a staff member."""
    if user.staff_id is None:
        return []
    tasks = retitle(conn, user, work_orders.staff_tasks(conn, user.staff_id), what="work_order")
    # the description is the rule's title, in the user's language
    about = retitle(conn, user, [{**t, "text_key": f"{t['rule_id']}/{RULE_TITLE}" if t["rule_id"]
                                  else None, "text_params": {}} for t in tasks],
                    field="description", audit=False)
    return [{**t, "description": a["description"]} for t, a in zip(tasks, about)]


def lookup(conn: psycopg.Connection, user: User, query: str, *, limit: int = 20
           ) -> list[dict[str, Any]]:
    """Buildings and households matching "1栋", "1203" or "1栋 1203": a grid worker's in
    their grid only; never for a planner."""
    if not query.split():
        return []
    with audited(conn, user, "lookup", subject_kind="households", subject_id=""):
        access.require(user, "building.view", what="look up buildings or households")
    grid = user.grid_id if user.role == "grid_worker" else None
    return buildings.lookup(conn, query, grid_id=grid, limit=limit)


def order_for_user(conn: psycopg.Connection, user: User, order_id: object, *,
                   asked: str = "order.view", history: bool = True) -> WorkOrder:
    """An order, if the user may see it: operators all, a grid worker their own or their grid's.

    ``order_id`` may come from a browser: anything but a whole number is refused with a
    TwinError, before the database sees it.
    """
    order = get_work_order(conn, order_number(order_id), history=history)
    with audited(conn, user, asked, subject_kind="work_order", subject_id=order.id):
        access.require_order(user, order)
    return order


def _order_to_act_on(conn: psycopg.Connection, user: User, order_id: object, action: str
                     ) -> WorkOrder:
    """The order (without its history), if the user may take ``action`` on it: one check
    (`twin.access.require_order_action`, which sees the order first), audited once."""
    order = get_work_order(conn, order_number(order_id), history=False)
    with audited(conn, user, f"order.{brief(action)}", subject_kind="work_order",
                 subject_id=order.id):
        access.require_order_action(user, order, action)
    return order


def act_on_order(conn: psycopg.Connection, user: User, order_id: object, action: str, *,
                 at: datetime, staff_id: object = None, note: object = "",
                 photo: Photo | None = None) -> WorkOrder:
    """One lifecycle step of an order, taken by the user and written in their name.

    The role and the scope are checked before anything is written (`twin.access`), and
    the store checks them again as it writes (`twin.work_orders.transition`); a refusal
    from either is audited.
    """
    if not isinstance(note, str):
        raise TwinError("a note is text")
    order = _order_to_act_on(conn, user, order_id, action)
    assignee = Assignee(staff_id=_text(staff_id, "a staff member")) \
        if action == "assign" and staff_id is not None else None
    with audited(conn, user, f"order.{brief(action)}", subject_kind="work_order",
                 subject_id=order.id):  # the store's own check, as it writes
        return act_on_work_order(conn, order.id, action, actor=access.actor(user), at=at,
                                 note=note, assignee=assignee, photo=photo)


def dispatch_order(conn: psycopg.Connection, user: User, order_id: object, *, at: datetime,
                   dispatcher: Dispatcher) -> tuple[WorkOrder, str | None]:
    """The dispatcher (`twin.rules.store.Dispatcher`) assigns the order to the nearest
    qualified staff member, in the user's name; an operator's step. Returns the order and,
    when nobody could be sent, why. Committed here, as the rule engine commits its own."""
    from twin.rules.store import Outcome

    order = _order_to_act_on(conn, user, order_id, "dispatch")
    outcome = Outcome()
    with audited(conn, user, "order.dispatch", subject_kind="work_order", subject_id=order.id):
        order = dispatcher.assign(conn, order, now=at, outcome=outcome,
                                  actor=access.actor(user))
    conn.commit()
    return order, outcome.not_dispatched[0][1] if outcome.not_dispatched else None


def acknowledge(conn: psycopg.Connection, user: User, alarm_id: object, *, at: datetime
                ) -> Alarm:
    """The user has seen the alarm: it stops escalating; the log names them."""
    number = whole_number(alarm_id, "an alarm")
    with audited(conn, user, "alarm.acknowledge", subject_kind="alarm", subject_id=number):
        access.require(user, "alarm.acknowledge", what=f"acknowledge alarm {number}")
        access.require_community(user, get_alarm(conn, number).spec.community_id,
                                 what=f"alarm {number}")
    return acknowledge_alarm(conn, number, actor=user.name, at=at)


#: The worst accuracy a phone fix may claim and still be stored (metres).
PHONE_FIX_MAX_ACCURACY_M = 500.0


def record_my_position(conn: psycopg.Connection, user: User, staff_id: str | None, *,
                       lon: float, lat: float, accuracy_m: float | None, at: datetime
                       ) -> bool:
    """Store the browser's geolocation as a phone fix of the logged-in staff member.

    ``staff_id`` is what the page says it is reporting for; it must be the user's own
    staff record (the session decides, never the browser): anything else is refused
    with AccessDenied, and audited. Off shift nothing is stored (False): the phone
    reports only while its owner is on duty. ``at`` is the server's time.
    """
    with audited(conn, user, "position.report", subject_kind="staff", subject_id=staff_id):
        access.require_own_staff(user, staff_id)
    assert staff_id is not None  # the user's own, just checked
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise TwinError(f"not a position: lon {lon}, lat {lat}")
    if accuracy_m is not None and not 0 <= accuracy_m <= PHONE_FIX_MAX_ACCURACY_M:
        raise TwinError(f"a fix {accuracy_m:.0f} m wide says too little to be stored "
                        f"(at most {PHONE_FIX_MAX_ACCURACY_M:.0f} m)")
    record = staff_on_record(conn, staff_id)
    if record is None:
        raise TwinError(f"there is no staff member {staff_id!r}")
    community_id, shift = record
    # the shift in the community's own time zone, not a default one
    if not on_shift(shift, at, tz=community_timezone(conn, community_id)):
        return False
    with conn.transaction():
        record_fixes(conn, [Fix(staff_id=staff_id, time=at, lon=lon, lat=lat,
                                accuracy_m=accuracy_m, source="phone", received_at=at)])
    return True


def order_number(value: object) -> int:
    """A work order's id as a browser sent it (7 or "7"), or a TwinError that says it is not."""
    return whole_number(value, "a work order")


def brief(value: object) -> str:
    """A value from a browser as a log or a message may show it: short."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _require_building(conn: psycopg.Connection, user: User, building_id: str, *,
                      asked: str = "building", subject: tuple[str, str | None] | None = None
                      ) -> None:
    """Refuse (and audit) a building outside the user's scope (TwinError if there is no such
    building)."""
    building_id = _text(building_id, "a building")
    kind, subject_id = subject or ("building", building_id)
    grid_id = queries.building(conn, building_id).grid_id
    with audited(conn, user, asked, subject_kind=kind, subject_id=subject_id):
        require_grid(user, grid_id, what=f"building {building_id}")


def whole_number(value: object, what: str) -> int:
    """An id a browser sent for ``what`` ("an alarm"): a whole number (7 or "7") that a
    bigint holds, or a TwinError that says it is not."""
    if isinstance(value, bool) or not isinstance(value, int | str) \
            or isinstance(value, str) and not value.strip().isdecimal():
        raise TwinError(f"not {what}: {brief(value)}")
    number = int(value)
    if not 0 < number < 2**63:
        raise TwinError(f"not {what}: {brief(value)}")
    return number


def _text(value: object, what: str) -> str:
    """An id or a key a browser sent, refused unless it is a string (a list would reach
    the query as an array)."""
    if not isinstance(value, str) or not value:
        raise TwinError(f"not {what}: {brief(value)}")
    return value
