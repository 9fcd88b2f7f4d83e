"""Alarms that mean something, through the real broker and database (`twin rules run`).

- two cameras on one fire-lane car are one alarm and one order, with both cameras on it;
  the alarm clears when the last camera stops seeing the car, and the order is closed
  with the reason, as the rule says;
- an event stamped two hours ago escalates counting from when the twin learnt of it;
- meter baselines are learnt from the readings hypertable when the rules load;
- a camera's floor estimate is the alarm's floor.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from tests.mqtt_helpers import wait_until
from tests.test_rules_service import (
    CO,
    GARAGE,
    LIBRARY,
    C,
    FakeClock,
    _day_shift_moment,
    _event,
    _one,
    _order,
    _store,
    _telemetry,
)
from twin.rules import store
from twin.rules.engine import bucket_hours, bucket_of
from twin.store import operations as ops
from twin.store.reads.texts import wording
from twin.texts import Viewer


def _detect(camera: str, at: datetime, cls: str, **attrs) -> tuple[str, bytes]:
    return _event(camera, at, "detection", **{"class": cls, "confidence": 0.9,
                                               **({"attrs": attrs} if attrs else {})})


def _two_cameras_at_a_gate(url: str) -> tuple[str, str, float]:
    with psycopg.connect(url) as conn:
        a, b, apart = conn.execute(
            """SELECT a.id, b.id, ST_Distance(a.geom::geography, b.geom::geography)
               FROM device a JOIN device b ON b.facility_id = a.facility_id AND b.id > a.id
               JOIN facility f ON f.id = a.facility_id
               WHERE a.type = 'ai_camera' AND b.type = 'ai_camera' AND f.kind = 'gate'
               ORDER BY a.id, b.id LIMIT 1""").fetchone()
    return a, b, apart


def test_two_cameras_on_one_car_are_one_alarm_and_one_order(twin_db_url, start_rules,
                                                             publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    a, b, apart = _two_cameras_at_a_gate(url)
    assert apart < 100  # the rule's group radius
    _store(url, LIBRARY["camera-fire-lane-parking"])
    service = start_rules(url, clock)
    t0 = clock.now
    # both see the car every 80 s; camera a loses sight of it after 4 minutes, b a bit later
    sent = 0
    for k in range(5):
        publisher.send(*_detect(a, t0 + timedelta(seconds=80 * k), "fire_lane_parking"))
        publisher.send(*_detect(b, t0 + timedelta(seconds=80 * k + 7), "fire_lane_parking"))
        sent += 2
    for k in range(5, 8):
        publisher.send(*_detect(b, t0 + timedelta(seconds=80 * k + 7), "fire_lane_parking"))
        sent += 1
    wait_until(lambda: service.processed >= sent, timeout=30)
    with psycopg.connect(url) as conn:
        (alarm_id,) = conn.execute("SELECT id FROM alarm").fetchone()
        assert conn.execute("SELECT count(*) FROM alarm").fetchone()[0] == 1
        alarm = ops.get_alarm(conn, alarm_id)
        orders = conn.execute("SELECT count(*) FROM work_order").fetchone()[0]
        logged = [(h["action"], h["detail"].get("source")) for h in
                  ops.alarm_history(conn, alarm_id)]
    assert orders == 1
    assert alarm.spec.source_id == a and alarm.sources == (a, b)
    assert set(alarm.active_sources) == {a, b}
    assert alarm.count >= 2 and logged[0] == ("raised", None) and ("repeated", b) in logged
    order = _order(url, "fire_lane_parking")
    assert order.spec.alarm_id == alarm_id
    # camera a has not seen the car for 150 s: the alarm stays, b still sees it
    clock.now = t0 + timedelta(seconds=80 * 4 + 151)
    service.tick_now()
    with psycopg.connect(url) as conn:
        alarm = ops.get_alarm(conn, alarm_id)
    assert alarm.state == "active" and alarm.active_sources == (b,)
    assert _order(url, "fire_lane_parking").is_open
    # b neither: the alarm clears, and the guard's order is closed with the reason
    clock.now = t0 + timedelta(seconds=80 * 7 + 7 + 151)
    service.tick_now()
    with psycopg.connect(url) as conn:
        alarm = ops.get_alarm(conn, alarm_id)
    assert alarm.state == "cleared" and alarm.active_sources == ()
    order = _order(url, "fire_lane_parking")
    assert order.state == "closed"
    assert order.history[-1].action == "settle" and order.history[-1].actor == "system"
    assert order.history[-1].note == f"alarm {alarm_id} cleared: no car seen for 150 s"
    said = order.history[-1].detail["said"]  # and in the reader's language
    with psycopg.connect(url) as conn:
        words = wording(conn, [(said["key"], said["params"])])
    assert words.render(said["key"], said["params"], viewer=Viewer("zh-CN")) == \
        f"告警 #{alarm_id} 已解除：150 秒内未再见到车辆"
    assert service.errors == []


def test_a_back_dated_event_escalates_from_when_the_twin_learnt_of_it(
        twin_db_url, start_rules, publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    _store(url, LIBRARY["garage-co"])  # escalate_after_s: 300; orders accepted within 5 min
    service = start_rules(url, clock)
    stamped = clock.now - timedelta(hours=2)  # a gateway's backlog, arriving now
    publisher.send(*_telemetry(CO, stamped, co=120.0))
    wait_until(lambda: _one(url, "SELECT count(*) FROM work_order WHERE state = 'assigned'")[0]
               == 1, timeout=20)
    service.tick_now()
    with psycopg.connect(url) as conn:
        alarm = ops.open_alarm_for(conn, C, GARAGE, "garage_co")
    assert alarm is not None and alarm.raised_at == stamped and alarm.known_at == clock.now
    assert alarm.escalation_level == 0
    order = _order(url, "garage_ventilation")
    assert order.created_at == clock.now and order.due_at == clock.now + timedelta(minutes=30)
    assert [e.action for e in order.history] == ["created", "assign"]
    # five minutes after the twin learnt of it, nobody acknowledged: now it escalates
    clock.advance(minutes=5, seconds=1)
    service.tick_now()
    with psycopg.connect(url) as conn:
        assert ops.open_alarm_for(conn, C, GARAGE, "garage_co").escalation_level == 1
    assert service.errors == []


def _meters_of_a_building(url: str) -> tuple[str, str, str]:
    with psycopg.connect(url) as conn:
        flat, building = conn.execute(
            """SELECT d.id, d.building_id FROM device d
               WHERE d.type = 'power_meter' AND d.unit_id IS NOT NULL
                 AND EXISTS (SELECT 1 FROM device m WHERE m.type = 'power_meter'
                             AND m.building_id = d.building_id AND m.unit_id IS NULL)
               ORDER BY d.id LIMIT 1""").fetchone()
        (master,) = conn.execute(
            """SELECT id FROM device WHERE type = 'power_meter' AND building_id = %s
               AND unit_id IS NULL ORDER BY id LIMIT 1""", (building,)).fetchone()
    return flat, master, building


def test_meter_baselines_are_learnt_from_the_readings(twin_db_url, start_rules,
                                                      publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    flat, master, building = _meters_of_a_building(url)
    with psycopg.connect(url) as conn:  # two weeks of history every 15 minutes
        for device, usual, spread in ((flat, 0.5, 0.05), (master, 30.0, 2.0)):
            conn.execute(
                """INSERT INTO reading (time, device_id, metric, value)
                   SELECT t, %s, 'power', %s + %s * sin(extract(epoch FROM t) / 900)
                   FROM generate_series(%s - interval '14 days', %s - interval '15 minutes',
                                        interval '15 minutes') t""",
                (device, usual, spread, clock.now, clock.now))
    ranges = bucket_hours("hour_of_week", clock.now, offset_h=8.0,
                          since=clock.now - timedelta(days=28), until=clock.now)
    assert len(ranges) == 4  # this hour 1-4 weeks ago (the history holds the last two)
    with psycopg.connect(url) as conn:
        table = store.meter_baselines(conn, device_types=["power_meter"], metric="power",
                                      ranges=ranges)
    assert set(table) == {flat, master}
    median, mad, n = table[master]
    assert abs(median - 30.0) < 1.5 and 0 < mad < 2.0 and n == 8  # 2 weeks x 4 quarters
    _store(url, LIBRARY["power-meter-abnormal"])
    service = start_rules(url, clock)
    assert service.engine is not None
    learnt = service.engine.baselines[("power-meter-abnormal", "high")]
    bucket = bucket_of("hour_of_week", clock.now, 8.0)
    assert learnt[master][bucket] == table[master]  # and the hours before and after
    assert set(learnt[flat]) == {(bucket - 1) % 168, bucket, (bucket + 1) % 168}
    t = clock.now
    for k in range(4):  # the master meter at 34 kW: its own usual, whatever a flat draws
        publisher.send(*_telemetry(master, t + timedelta(minutes=15 * k), power=34.0))
    for k in range(3):  # the flat at 5 kW for half an hour
        publisher.send(*_telemetry(flat, t + timedelta(minutes=15 * k, seconds=5), power=5.0))
    wait_until(lambda: service.processed >= 7, timeout=20)
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT source_kind, source_id, unit_id, detail->>'usual' "
                            "FROM alarm").fetchall()
    (unit,) = _one(url, "SELECT unit_id FROM device WHERE id = %s", flat)
    assert len(rows) == 1 and rows[0][:3] == ("building", building, unit)
    assert abs(float(rows[0][3]) - 0.5) < 0.1
    assert service.errors == []


def test_a_cameras_floor_estimate_is_kept_on_the_alarm(twin_db_url, start_rules,
                                                       publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    (camera,) = _one(url, """SELECT id FROM device WHERE type = 'ai_camera'
                             AND building_id IS NOT NULL AND facility_id IS NULL
                             ORDER BY id LIMIT 1""")
    _store(url, LIBRARY["camera-high-altitude-throw"])
    service = start_rules(url, clock)
    publisher.send(*_detect(camera, clock.now, "high_altitude_throw", floor_estimate=12))
    wait_until(lambda: _one(url, "SELECT count(*) FROM alarm")[0] == 1, timeout=20)
    floor, estimate = _one(url, "SELECT floor, detail->'floor_estimate' FROM alarm")
    assert (floor, estimate) == (12, 12)
    assert service.errors == []


def test_an_early_warning_that_grows_into_the_real_thing_is_one_alarm(
        twin_db_url, start_rules, publisher) -> None:
    """A charger heating fast (minor) that goes on past 70 °C (major) is one alarm: the
    overheat rule takes it over and opens its order; the warning's all-clear, when
    the cut-off charger stops warming, does not end it; cooling below 70 °C does."""
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    (pile,) = _one(url, "SELECT id FROM device WHERE type = 'ev_charger' ORDER BY id LIMIT 1")
    _store(url, LIBRARY["ev-charger-heating-fast"], LIBRARY["ev-charger-overheat"])
    service = start_rules(url, clock)
    t0 = clock.now
    temps = [30.0, 38.0, 47.0, 58.0, 74.0, 72.0, 71.0, 66.0]
    for k, c in enumerate(temps):
        publisher.send(*_telemetry(pile, t0 + timedelta(seconds=150 * k), temperature=c))
    wait_until(lambda: service.processed >= len(temps), timeout=30)
    with psycopg.connect(url) as conn:
        alarms = conn.execute("SELECT id, type, severity, rule_id, state FROM alarm").fetchall()
        assert len(alarms) == 1
        alarm_id, kind, severity, rule_id, state = alarms[0]
        assert (kind, severity, rule_id) == ("charger_overheat", "major", "ev-charger-overheat")
        actions = [h["action"] for h in ops.alarm_history(conn, alarm_id)]
        orders = conn.execute("SELECT kind FROM work_order").fetchall()
    assert actions[:2] == ["raised", "upgraded"] and state == "cleared"
    assert orders == [("charger_overheat",)]
    # the warming stopped at 72 °C (its all-clear was noted, not obeyed); 66 °C cleared it
    assert "note" in actions and actions[-1] == "cleared"
