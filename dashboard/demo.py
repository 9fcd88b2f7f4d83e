"""A working morning for the sample community: logins for each role and a few real
alarms and work orders, written through the same store functions the rule engine
and the dispatcher use. For demos, screenshots and end-to-end tests only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import psycopg
import shapely

from dashboard.auth import add_user
from twin.alarms import AlarmSpec
from twin.store.operations import (
    Assignee,
    act_on_work_order,
    open_work_order,
    raise_alarm,
)
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


def seed_users(conn: psycopg.Connection, *, password: str = DEMO_PASSWORD,
               lang: str = "zh-CN") -> DemoUsers:
    grids = [r[0] for r in conn.execute("SELECT id FROM grid ORDER BY id")]
    users = DemoUsers()
    add_user(conn, users.admin, password, "admin", lang=lang, display_name="管理员")
    add_user(conn, users.operator, password, "operator", lang=lang, display_name="值班员 张")
    add_user(conn, users.planner, password, "planner", lang=lang, display_name="规划 王")
    add_user(conn, users.worker, password, "grid_worker", grid_id=grids[0], lang=lang,
             display_name="网格员 李")
    add_user(conn, users.worker2, password, "grid_worker", grid_id=grids[1], lang=lang,
             display_name="网格员 沈")
    conn.commit()
    return users


def seed_operations(conn: psycopg.Connection, *, now: datetime | None = None) -> dict[str, int]:
    """A handful of alarms and orders in several states; returns their ids by name."""
    now = now or datetime.now(timezone.utc)
    (community,) = conn.execute("SELECT id FROM community ORDER BY id LIMIT 1").fetchone()
    ids: dict[str, int] = {}

    def device(kind: str, where: str = "TRUE") -> tuple:
        return conn.execute(
            f"""SELECT d.id, d.building_id, d.floor, d.unit_id, ST_X(d.geom), ST_Y(d.geom),
                       b.grid_id
                FROM device d LEFT JOIN building b ON b.id = d.building_id
                WHERE d.community_id = %s AND d.type = %s AND {where}
                ORDER BY d.id LIMIT 1""", (community, kind)).fetchone()

    def alarm(name, kind, type_, domain, severity, title, minutes, where="TRUE", resident=None):
        dev = device(kind, where)
        spec = AlarmSpec(
            community_id=community, type=type_, domain=domain, severity=severity,
            source_kind="device", source_id=dev[0], title=title,
            at=now - timedelta(minutes=minutes), building_id=dev[1], floor=dev[2],
            unit_id=dev[3], device_id=dev[0], resident_id=resident,
            location=shapely.Point(dev[4], dev[5]), rule_id="demo")
        ids[name] = raise_alarm(conn, spec).alarm.id
        return dev

    smoke = alarm("smoke", "smoke_detector", "smoke", "safety", "critical",
                  "烟感报警 Smoke alarm", 3, "d.floor > 10")
    alarm("co", "co_sensor", "co_high", "safety", "major", "地库CO超标 CO high in garage", 9)
    alarm("camera", "ai_camera", "ebike_in_lift", "safety", "major",
          "电梯内电动车 E-bike in lift", 2, "d.building_id IS NOT NULL")
    alarm("charger", "ev_charger", "charger_overheat", "service", "minor",
          "充电桩过温 Charger overheating", 22)
    alarm("bin", "trash_bin_sensor", "bin_full", "environment", "info",
          "垃圾桶满溢 Bin full", 41)
    care = conn.execute(
        """SELECT r.id, u.id FROM resident r JOIN unit u ON u.id = r.unit_id
           JOIN building b ON b.id = u.building_id
           WHERE 'elderly_alone' = ANY(r.care_flags) AND b.grid_id = %s
           ORDER BY r.id LIMIT 1""", (smoke[6],)).fetchone()
    if care is not None:
        alarm("care", "access_door", "no_activity", "activity", "major",
              "独居老人24小时无出入 Elderly resident not seen for 24 h", 15,
              f"d.building_id = (SELECT building_id FROM unit WHERE id = '{care[1]}')",
              resident=care[0])

    worker = conn.execute("SELECT grid_worker_id FROM grid WHERE id = %s", (smoke[6],)).fetchone()[0]
    operator = Actor(name="operator", role="operator")
    staff_actor = Actor(name="worker1", role="grid_worker", staff_id=worker)

    def order(name, title, kind, priority, dev_row, minutes, *, role="grid_worker", alarm_id=None):
        spec = WorkOrderSpec(
            community_id=community, kind=kind, title=title, domain="safety", role=role,
            location=shapely.Point(dev_row[4], dev_row[5]), at=now - timedelta(minutes=minutes),
            priority=priority, alarm_id=alarm_id, grid_id=dev_row[6], building_id=dev_row[1],
            unit_id=dev_row[3], device_id=dev_row[0], due_in=timedelta(minutes=30),
            description="现场核实并处置 Check on site and resolve")
        ids[name] = open_work_order(conn, spec, actor=SYSTEM).id
        return ids[name]

    def route_to(staff_id: str, x: float, y: float):
        sx, sy = conn.execute("SELECT ST_X(position), ST_Y(position) FROM staff WHERE id = %s",
                              (staff_id,)).fetchone()
        line = shapely.LineString([(sx, sy), (sx, y), (x, y)])
        return Assignee(staff_id=staff_id, route=line, route_m=float(line.length * 111_000),
                        eta_s=float(line.length * 111_000 / 1.2))

    o1 = order("order_smoke", "核查烟感报警 Check smoke alarm", "smoke_check", "urgent", smoke, 3,
               alarm_id=ids["smoke"])
    act_on_work_order(conn, o1, "assign", actor=operator, at=now - timedelta(minutes=2),
                      assignee=route_to(worker, smoke[4], smoke[5]))
    charger = device("ev_charger")
    o2 = order("order_charger", "充电桩过温检修 Inspect hot charger", "charger_check", "high",
               charger, 20)
    act_on_work_order(conn, o2, "assign", actor=operator, at=now - timedelta(minutes=18),
                      assignee=route_to(worker, charger[4], charger[5]))
    act_on_work_order(conn, o2, "accept", actor=staff_actor, at=now - timedelta(minutes=16))
    bin_ = device("trash_bin_sensor")
    order("order_bin", "清运满溢垃圾桶 Empty the full bin", "bin_empty", "normal", bin_, 40,
          role="cleaning")
    leak = device("water_leak_sensor")
    o4 = order("order_leak", "水浸处置 Water leak", "leak_check", "high", leak, 90)
    act_on_work_order(conn, o4, "assign", actor=operator, at=now - timedelta(minutes=85),
                      assignee=route_to(worker, leak[4], leak[5]))
    act_on_work_order(conn, o4, "accept", actor=staff_actor, at=now - timedelta(minutes=80))
    act_on_work_order(conn, o4, "arrive", actor=staff_actor, at=now - timedelta(minutes=70))
    act_on_work_order(conn, o4, "resolve", actor=staff_actor, at=now - timedelta(minutes=60),
                      note="阀门已关闭 Valve closed")
    conn.commit()
    return ids
