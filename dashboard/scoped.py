"""Reads a user's role and grid limit: the check before the read, masking and the audit after.

Every read of a building, a device, residents or an order goes through here, so a
callback called directly, without its page, is held to the same rules as the page: a
grid worker reaches only their own grid, a planner no building, unit or order at all.
Residents are whole for the roles that need them (and then written to the audit log in
the same transaction as the read), masked for everyone else. The queries are in
`twin.store.reads`; nothing here runs SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from dashboard import audit
from dashboard.auth import AccessDenied, User, require_grid, require_page, sees_residents_whole
from dashboard.words import retitle
from twin.dispatch import on_shift
from twin.errors import TwinError
from twin.privacy import mask_name, mask_phone
from twin.rules.compile import RULE_TITLE
from twin.store import queries
from twin.store.operations import get_work_order
from twin.store.positions import Fix, record_fixes, staff_on_record
from twin.store.reads import buildings, devices, telemetry, work_orders
from twin.store.reads import residents as people
from twin.store.reads.texts import community_timezone
from twin.work_orders import WorkOrder


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
    _require_building(conn, user, building_id)
    return devices.building_devices(conn, building_id)


def device_history(conn: psycopg.Connection, user: User, device_id: str, metric: str,
                   range_key: str, *, now: datetime) -> list[tuple[datetime, float, float, float]]:
    """(bucket, mean, min, max) of one device's metric over a range, if the user may see it."""
    require_grid(user, devices.device_grid_id(conn, device_id), what=f"device {device_id}")
    return telemetry.device_history(conn, device_id, metric, range_key, now=now)


def residents(conn: psycopg.Connection, user: User, *, building_id: str | None = None,
              unit_id: str | None = None) -> dict[str, Any]:
    """Residents of a building (or one unit): whole for the roles that need them (and then
    written to the audit log in the same transaction), masked for everyone else."""
    if unit_id is not None:
        building_id = buildings.unit_building(conn, unit_id)
    if building_id is None:
        raise TwinError("residents needs a building or a unit")
    _require_building(conn, user, building_id)
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
    if user.role == "planner":
        require_grid(user, None, what="households")
    grid = user.grid_id if user.role == "grid_worker" else None
    return buildings.lookup(conn, query, grid_id=grid, limit=limit)


def order_for_user(conn: psycopg.Connection, user: User, order_id: int) -> WorkOrder:
    """An order, if the user may see it: operators all, a grid worker their own or their grid's."""
    order = get_work_order(conn, order_id)
    if user.role == "grid_worker" and order.assignee_id != user.staff_id:
        require_grid(user, order.spec.grid_id, what=f"work order {order_id}")
    elif user.role == "planner":
        require_grid(user, None, what=f"work order {order_id}")
    return order


def _require_building(conn: psycopg.Connection, user: User, building_id: str) -> None:
    """Refuse a building outside the user's scope (TwinError if there is no such building)."""
    require_grid(user, queries.building(conn, building_id).grid_id,
                 what=f"building {building_id}")


#: The worst accuracy a phone fix may claim and still be stored (metres).
PHONE_FIX_MAX_ACCURACY_M = 500.0


def record_my_position(conn: psycopg.Connection, user: User, staff_id: str | None, *,
                       lon: float, lat: float, accuracy_m: float | None, at: datetime
                       ) -> bool:
    """Store the browser's geolocation as a phone fix of the logged-in staff member.

    ``staff_id`` is what the page says it is reporting for; it must be the user's own
    staff record (the session decides, never the browser): anything else is refused
    with AccessDenied, for the caller to audit. Off shift nothing is stored (False):
    the phone reports only while its owner is on duty. ``at`` is the server's time.
    """
    require_page(user, "worker")
    if user.staff_id is None:
        raise AccessDenied(f"{user.name} is not a staff member and has no position to report")
    if staff_id != user.staff_id:
        raise AccessDenied(f"{user.name} may report only their own position, "
                           f"not that of {staff_id!r}")
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
