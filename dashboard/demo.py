"""A working morning for the sample community: logins for each role and a few real
alarms and work orders, written through the same store functions the rule engine
and the dispatcher use. For demos, screenshots and end-to-end tests only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import shapely

from dashboard.auth import add_user
from twin.alarms import AlarmSpec
from twin.errors import TwinError
from twin.rules.compile import library_dir, load_directory
from twin.rules.store import store_texts
from twin.store.operations import (
    Assignee,
    act_on_work_order,
    open_work_order,
    raise_alarm,
)
from twin.store.queries import care_residents, communities, devices_within
from twin.store.reads.devices import PlacedDevice, first_device
from twin.store.reads.grids import grid_ids, grid_owner
from twin.store.reads.residents import first_with_care_flag, household_resident
from twin.store.reads.staff import staff_position
from twin.store.reads.texts import wording
from twin.texts import Viewer
from twin.work_orders import SYSTEM, Actor, WorkOrderSpec

DEMO_PASSWORD = "twin-demo-2026"


@dataclass(frozen=True)
class DemoUsers:
    admin: str = "admin"
    operator: str = "operator"
    planner: str = "planner"
    #: grid worker of the community's first grid
    worker: str = "worker1"
    #: grid worker of the second grid
    worker2: str = "worker2"
    #: a resident of the first grid, who logs in by their phone number (set by seed_users)
    resident: str = ""
    #: the family of the first grid's first special-care resident
    family: str = "family1"


def seed_users(conn: psycopg.Connection, *, password: str = DEMO_PASSWORD,
               lang: str = "zh-CN") -> DemoUsers:
    grids = grid_ids(conn)
    users = DemoUsers()
    add_user(conn, users.admin, password, "admin", lang=lang, display_name="管理员")
    add_user(conn, users.operator, password, "operator", lang=lang, display_name="值班员 张")
    add_user(conn, users.planner, password, "planner", lang=lang, display_name="规划 王")
    add_user(conn, users.worker, password, "grid_worker", grid_id=grids[0], lang=lang,
             display_name="网格员 李")
    add_user(conn, users.worker2, password, "grid_worker", grid_id=grids[1], lang=lang,
             display_name="网格员 沈")
    # the people's apps: a resident without special care, and the family of one with it
    resident = household_resident(conn, grids[0])
    if resident is not None:
        rid, phone = resident
        users = replace(users, resident=phone)
        add_user(conn, phone, password, "resident", resident_id=rid, lang=lang)
    cared = first_with_care_flag(conn, grids[0], "elderly_alone")
    if cared is not None:
        add_user(conn, users.family, password, "family", resident_id=cared[0], lang=lang,
                 display_name="家属")
    conn.commit()
    return users


def seed_operations(conn: psycopg.Connection, *, now: datetime | None = None) -> dict[str, int]:
    """A handful of alarms and orders in several states; returns their ids by name."""
    now = now or datetime.now(UTC)
    community = communities(conn)[0][0]
    ids: dict[str, int] = {}

    def device(kind: str, **where) -> PlacedDevice:
        found = first_device(conn, community, kind, **where)
        if found is None:
            raise TwinError(f"the demo needs a {kind} in {community}")
        return found

    # the library's texts, so that every reader sees the seeded alarms in their words
    library = load_directory(library_dir())
    store_texts(conn, library)

    def text(key: str, dev: PlacedDevice, **params: Any) -> tuple[str, dict[str, Any]]:
        """The zh-CN text with residents masked (the stored title) and the parameters."""
        facility = next((n.device.facility_id for n in devices_within(conn, dev.lon, dev.lat,
                                                                      1.0)
                         if n.device.id == dev.id), None)
        params = {k: v for k, v in {"device": dev.id, "building": dev.building_id,
                                     "floor": dev.floor, "unit": dev.unit_id,
                                     "facility": facility, **params}.items()
                  if v is not None}
        return wording(conn, [(key, params)]).render(key, params, viewer=Viewer()), params

    def alarm(name, kind, type_, domain, severity, key, minutes, resident=None, values=None,
              **where):
        dev = device(kind, **where)
        title, params = text(key, dev, resident=resident, **(values or {}))
        spec = AlarmSpec(
            community_id=community, type=type_, domain=domain, severity=severity,
            source_kind="device", source_id=dev.id, title=title,
            at=now - timedelta(minutes=minutes), building_id=dev.building_id, floor=dev.floor,
            unit_id=dev.unit_id, device_id=dev.id, resident_id=resident,
            location=shapely.Point(dev.lon, dev.lat), rule_id="demo",
            text_key=key, text_params=params)
        ids[name] = raise_alarm(conn, spec).alarm.id
        return dev

    smoke = alarm("smoke", "smoke_detector", "smoke", "safety", "critical",
                  "smoke-detector-alarm/alarm", 3, above_floor=10)
    alarm("co", "co_sensor", "co_high", "safety", "major", "garage-co/alarm", 9,
          values={"value": "86"})
    alarm("camera", "ai_camera", "ebike_in_lift", "safety", "major",
          "camera-ebike-in-lift/alarm", 2, indoors=True)
    alarm("charger", "ev_charger", "charger_overheat", "service", "minor",
          "ev-charger-overheat/alarm", 22, values={"value": "74"})
    alarm("bin", "trash_bin_sensor", "bin_full", "environment", "info",
          "trash-bin-full/alarm", 41, values={"value": "96"})
    care = first_with_care_flag(conn, smoke.grid_id, "elderly_alone")
    if care is not None:
        resident_id, _unit_id, care_building = care
        (age_band,) = [r.age_band for r in care_residents(conn, unit_id=_unit_id)
                       if r.id == resident_id]
        alarm("care", "access_door", "no_activity", "activity", "major",
              "special-care-not-out/alarm", 15, resident=resident_id,
              building_id=care_building, values={"hours": "24", "age_band": age_band})

    worker = grid_owner(conn, smoke.grid_id).grid_worker_id
    if worker is None:
        raise TwinError(f"the demo needs a grid worker in grid {smoke.grid_id}")
    operator = Actor(name="operator", role="operator")
    staff_actor = Actor(name="worker1", role="grid_worker", staff_id=worker)

    def order(name, key, kind, priority, dev_row, minutes, *, role="grid_worker", alarm_id=None,
              values=None):
        title, params = text(key, dev_row, **(values or {}))
        spec = WorkOrderSpec(
            community_id=community, kind=kind, title=title, domain="safety", role=role,
            text_key=key, text_params=params,
            location=shapely.Point(dev_row.lon, dev_row.lat), at=now - timedelta(minutes=minutes),
            priority=priority, alarm_id=alarm_id, grid_id=dev_row.grid_id,
            building_id=dev_row.building_id, unit_id=dev_row.unit_id, device_id=dev_row.id,
            due_in=timedelta(minutes=30),
            description="现场核实并处置 Check on site and resolve")
        ids[name] = open_work_order(conn, spec, actor=SYSTEM).id
        return ids[name]

    def route_to(staff_id: str, x: float, y: float):
        start = staff_position(conn, staff_id)
        if start is None:
            raise TwinError(f"the demo needs a position for staff member {staff_id}")
        sx, sy = start
        line = shapely.LineString([(sx, sy), (sx, y), (x, y)])
        return Assignee(staff_id=staff_id, route=line, route_m=float(line.length * 111_000),
                        eta_s=float(line.length * 111_000 / 1.2))

    o1 = order("order_smoke", "smoke-detector-alarm/guard", "smoke_check", "urgent", smoke, 3,
               alarm_id=ids["smoke"])
    act_on_work_order(conn, o1, "assign", actor=operator, at=now - timedelta(minutes=2),
                      assignee=route_to(worker, smoke.lon, smoke.lat))
    charger = device("ev_charger")
    o2 = order("order_charger", "ev-charger-overheat/engineer", "charger_check", "high",
               charger, 20)
    act_on_work_order(conn, o2, "assign", actor=operator, at=now - timedelta(minutes=18),
                      assignee=route_to(worker, charger.lon, charger.lat))
    act_on_work_order(conn, o2, "accept", actor=staff_actor, at=now - timedelta(minutes=16))
    bin_ = device("trash_bin_sensor")
    order("order_bin", "trash-bin-full/cleaner", "bin_empty", "normal", bin_, 40,
          role="cleaning")
    leak = device("water_leak_sensor")
    o4 = order("order_leak", "water-leak/plumber", "leak_check", "high", leak, 90)
    act_on_work_order(conn, o4, "assign", actor=operator, at=now - timedelta(minutes=85),
                      assignee=route_to(worker, leak.lon, leak.lat))
    act_on_work_order(conn, o4, "accept", actor=staff_actor, at=now - timedelta(minutes=80))
    act_on_work_order(conn, o4, "arrive", actor=staff_actor, at=now - timedelta(minutes=70))
    act_on_work_order(conn, o4, "resolve", actor=staff_actor, at=now - timedelta(minutes=60),
                      note="阀门已关闭 Valve closed")
    conn.commit()
    return ids
