"""`twin rules run` end to end: the real Mosquitto, the real PostgreSQL, an injected clock.

A published CO reading starts the garage's fans (commands on their topics),
broadcasts, raises an alarm and opens a work order assigned to the engineer
that a hand-checked small walkway says is nearest by path (not the nearest in
a straight line); a declined or unaccepted order goes to the next candidate;
alarms and orders escalate when the clock passes their limits; a special-care
absence raises and a later access event clears it; a new rule set is picked
up without a restart; state survives a restart.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest

from ingest import contract
from ingest.broker import BrokerAddress, make_client
from ingest.rules import RulesService
from tests.mqtt_helpers import wait_until
from twin.rules import store
from twin.rules.compile import compile_text, library_dir, load_directory
from twin.store import operations as ops
from twin.work_orders import Actor

C = "wh-guanggu"
GARAGE = "wh-guanggu-f022"  # 1号地库
CO = "wh-guanggu-d01273"    # its first CO sensor
FANS = {f"wh-guanggu-d0128{i}" for i in (1, 2, 3, 4)}
SPEAKERS = {f"wh-guanggu-d0128{i}" for i in (5, 6, 7)}
NEAR_IN_LINE, NEAR_BY_PATH = "wh-guanggu-s21", "wh-guanggu-s24"  # the two day-shift HVAC engineers
MANAGER = "wh-guanggu-s26"
DAY_DUTY_OFFICER = "wh-guanggu-s29"
LIBRARY = {r.id: r for r in load_directory(library_dir())}


def _day_shift_moment() -> datetime:
    """10:00 in Wuhan on a recent weekday, at least an hour ago (device times may not be
    in the future; everybody's shift, the manager's office hours included, covers it)."""
    now = datetime.now(UTC)
    t = now.replace(hour=2, minute=0, second=0, microsecond=0)
    if t > now - timedelta(hours=1):
        t -= timedelta(days=1)
    while t.weekday() >= 5:
        t -= timedelta(days=1)
    return t


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class Commands:
    """Everything the twin sends on device command topics."""

    def __init__(self, url: str) -> None:
        address = BrokerAddress.parse(url)
        self.seen: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.client = make_client(address, f"cmd-watch-{uuid.uuid4().hex[:6]}")
        ready = threading.Event()
        self.client.on_connect = lambda c, *_: (c.subscribe(contract.topic(C, "+", "cmd"), qos=1),
                                                ready.set())
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert ready.wait(10)

    def _on_message(self, client, userdata, msg) -> None:
        with self._lock:
            self.seen.append((msg.topic.split("/")[3], orjson.loads(msg.payload)))

    def to(self, command: str) -> dict[str, dict]:
        with self._lock:
            return {device: body for device, body in self.seen if body["command"] == command}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def commands(broker) -> Iterator[Commands]:
    watch = Commands(broker.admin_url)
    yield watch
    watch.close()


def _store(url: str, *rules) -> None:
    with psycopg.connect(url) as conn:
        store.store_rules(conn, rules, at=datetime.now(UTC), replace_all=True)


def _telemetry(device: str, ts: datetime, **readings) -> tuple[str, bytes]:
    return (contract.topic(C, device, "telemetry"),
            orjson.dumps({"ts": contract.fmt_time(ts), "readings": readings}))


def _event(device: str, ts: datetime, kind: str, **fields) -> tuple[str, bytes]:
    return (contract.topic(C, device, "event"),
            orjson.dumps({"ts": contract.fmt_time(ts), "id": uuid.uuid4().hex[:12], "kind": kind,
                          **fields}))


def _one(url: str, sql: str, *params):
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()


def _small_walkway(url: str) -> dict[str, float]:
    """Replace the sample's walkway by a hand-drawn one round the CO sensor (at 0, 0):

        (0,200) N3 ------------ N2 (30,200)
           |                      |
           |                      |       s21 stands at (30, 0): 30 m away in a line,
           |                      |       but the garage wall is between: by path it is
        NB ------ N0 (0,0)        NA      30 (offset 0) + 200 + 30 + 200 = 430 m.
      (-60,0)                   (30,0)    s24 stands at (-60, 0): 60 m in a line and by path.

    Returns the straight-line distances, to check that the path decides.
    """
    with psycopg.connect(url) as conn:
        lon0, lat0 = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM device WHERE id = %s",
                                  (CO,)).fetchone()
        m_lat = 1 / 111_320.0
        m_lon = m_lat / math.cos(math.radians(lat0))

        def at(x: float, y: float) -> tuple[float, float]:
            return lon0 + x * m_lon, lat0 + y * m_lat

        nodes = {"N0": (0, 0), "N3": (0, 200), "N2": (30, 200), "NA": (30, 0), "NB": (-60, 0)}
        edges = [("N0", "N3"), ("N3", "N2"), ("N2", "NA"), ("NB", "N0")]
        conn.execute("DELETE FROM walk_edge WHERE community_id = %s", (C,))
        conn.execute("DELETE FROM walk_node WHERE community_id = %s", (C,))
        for name, (x, y) in nodes.items():
            conn.execute("INSERT INTO walk_node (id, community_id, kind, geom) VALUES "
                         "(%s, %s, 'junction', ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
                         (f"t-{name}", C, *at(x, y)))
        for a, b in edges:
            (ax, ay), (bx, by) = nodes[a], nodes[b]
            conn.execute(
                """INSERT INTO walk_edge (id, community_id, source, target, kind, length_m, geom)
                   VALUES (%s, %s, %s, %s, 'footway', %s,
                           ST_SetSRID(ST_MakeLine(ST_MakePoint(%s, %s), ST_MakePoint(%s, %s)),
                                      4326))""",
                (f"t-{a}-{b}", C, f"t-{a}", f"t-{b}", math.hypot(bx - ax, by - ay),
                 *at(ax, ay), *at(bx, by)))
        for staff, (x, y) in ((NEAR_IN_LINE, (30, 0)), (NEAR_BY_PATH, (-60, 0))):
            conn.execute("UPDATE staff SET position = ST_SetSRID(ST_MakePoint(%s, %s), 4326), "
                         "position_at = now() WHERE id = %s", (*at(x, y), staff))
        return {staff: conn.execute(
            """SELECT ST_Distance(s.position::geography, d.geom::geography)
               FROM staff s, device d WHERE s.id = %s AND d.id = %s""", (staff, CO)).fetchone()[0]
            for staff in (NEAR_IN_LINE, NEAR_BY_PATH)}


def _order(url: str, kind: str) -> ops.WorkOrder:
    with psycopg.connect(url) as conn:
        (order_id,) = conn.execute("SELECT id FROM work_order WHERE kind = %s ORDER BY id DESC",
                                   (kind,)).fetchone()
        return ops.get_work_order(conn, order_id)


def _garage_co_fires(url, start_rules, publisher, commands, clock) -> RulesService:
    straight = _small_walkway(url)
    assert straight[NEAR_IN_LINE] < straight[NEAR_BY_PATH]
    _store(url, LIBRARY["garage-co"])
    service = start_rules(url, clock)
    publisher.send(*_telemetry(CO, clock.now - timedelta(seconds=5), co=12.0))
    publisher.send(*_telemetry(CO, clock.now, co=120.0, temperature=18.0))
    wait_until(lambda: set(commands.to("start")) == FANS and
               set(commands.to("broadcast")) == SPEAKERS, timeout=20)
    wait_until(lambda: _one(url, "SELECT count(*) FROM work_order WHERE state = 'assigned'")[0]
               == 1, timeout=20)
    return service


def test_co_reading_starts_fans_broadcasts_alarms_and_sends_the_nearest_by_path(
        twin_db_url, start_rules, publisher, commands) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    service = _garage_co_fires(url, start_rules, publisher, commands, clock)
    # the commands: recorded in device_command and published on each device's cmd topic
    started = commands.to("start")
    with psycopg.connect(url) as conn:
        recorded = dict(conn.execute(
            "SELECT id, device_id FROM device_command WHERE issued_by = 'rule:garage-co' "
            "AND command = 'start'").fetchall())
    assert {body["id"]: device for device, body in started.items()} == recorded
    assert all("一氧化碳" in body["args"]["text"] for body in commands.to("broadcast").values())
    # the alarm
    with psycopg.connect(url) as conn:
        alarm = ops.open_alarm_for(conn, C, GARAGE, "garage_co")
        broadcast = conn.execute("SELECT recipient, alarm_id FROM notification "
                                 "WHERE channel = 'broadcast'").fetchall()
        counter = conn.execute("SELECT evaluated, fired FROM rule_counter "
                               "WHERE rule_id = 'garage-co'").fetchone()
    # kept as the zh-CN text (what a reader that does not render sees) and its key
    assert alarm is not None and alarm.spec.severity == "critical" and alarm.spec.title == \
        "1号地库 一氧化碳 120 ppm" and alarm.spec.text_key == "garage-co/alarm"
    assert [(set(r.split(",")), a) for r, a in broadcast] == [(SPEAKERS, alarm.id)]
    assert counter == (2, 1)
    # the work order: the engineer nearest by path, with the route over the small walkway
    order = _order(url, "garage_ventilation")
    assert order.spec.alarm_id == alarm.id and order.spec.rule_id == "garage-co"
    assert order.assignee_id == NEAR_BY_PATH
    assert order.route_m == pytest.approx(60, abs=1.0)
    assert order.route is not None and order.eta_s > 0
    assert [e.action for e in order.history] == ["created", "assign"]
    assert "nearest by walkway" in order.history[-1].note
    assert service.errors == []


def test_declined_order_goes_to_the_next_candidate(twin_db_url, start_rules, publisher,
                                                   commands) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    service = _garage_co_fires(url, start_rules, publisher, commands, clock)
    order = _order(url, "garage_ventilation")
    assert order.assignee_id == NEAR_BY_PATH
    worker = Actor(name="张雪雨", role="engineer", staff_id=NEAR_BY_PATH)
    with psycopg.connect(url) as conn:
        ops.act_on_work_order(conn, order.id, "decline", actor=worker,
                              at=clock.now + timedelta(seconds=30), note="at another job")
    clock.advance(seconds=40)
    service.tick_now()
    order = _order(url, "garage_ventilation")
    assert order.state == "assigned" and order.assignee_id == NEAR_IN_LINE
    assert order.route_m == pytest.approx(430, abs=1.0)
    assert [e.action for e in order.history] == ["created", "assign", "decline", "assign"]
    assert order.declined_by == (NEAR_BY_PATH,)
    assert service.errors == []


def test_escalation_after_the_timeouts_with_an_injected_clock(twin_db_url, start_rules,
                                                              publisher, commands) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    service = _garage_co_fires(url, start_rules, publisher, commands, clock)
    clock.advance(minutes=4)
    service.tick_now()
    with psycopg.connect(url) as conn:
        assert ops.open_alarm_for(conn, C, GARAGE, "garage_co").escalation_level == 0
    assert _order(url, "garage_ventilation").assignee_id == NEAR_BY_PATH
    # 6 minutes: the alarm (escalate_after_s 300) went unacknowledged; the order unaccepted
    clock.advance(minutes=2)
    service.tick_now()
    with psycopg.connect(url) as conn:
        alarm = ops.open_alarm_for(conn, C, GARAGE, "garage_co")
        told = conn.execute("SELECT recipient, message FROM notification WHERE channel = 'staff' "
                            "AND alarm_id = %s", (alarm.id,)).fetchall()
    assert alarm.escalation_level == 1
    assert told == [(MANAGER, ("Escalated (level 1): 1号地库 一氧化碳 120 ppm; not acknowledged "
                               "within 5 min"))]
    order = _order(url, "garage_ventilation")
    assert order.assignee_id == NEAR_IN_LINE  # the timed-out assignment went to the next one
    assert order.history[-2].action == "decline" and order.history[-2].actor == "system"
    assert order.history[-2].note == "not accepted within 5 min"
    # s21 does not accept either: nobody else has the HVAC skill, so the nearest engineer
    # without it goes, and the reason says so
    clock.advance(minutes=6)
    service.tick_now()
    order = _order(url, "garage_ventilation")
    other = order.assignee_id
    assert other not in (NEAR_BY_PATH, NEAR_IN_LINE)
    assert _one(url, "SELECT role FROM staff WHERE id = %s", other)[0] == "engineer"
    assert order.history[-1].note.startswith("no hvac skill available")
    assert order.declined_by == (NEAR_BY_PATH, NEAR_IN_LINE)
    # they accept but are not on site within their ETA plus 10 minutes: the order escalates
    # one tier up, to the duty officer of the day (the sample's 24-hour duty line), with the
    # reason on record
    with psycopg.connect(url) as conn:
        ops.act_on_work_order(conn, order.id, "accept", at=clock.now,
                              actor=Actor(name=other, role="engineer", staff_id=other))
    clock.advance(seconds=order.eta_s + 9 * 60)
    service.tick_now()
    assert _order(url, "garage_ventilation").state == "accepted"
    clock.advance(minutes=2)
    service.tick_now()
    order = _order(url, "garage_ventilation")
    assert [e.action for e in order.history][-3:] == ["accept", "escalate", "assign"]
    assert order.history[-2].note.startswith("to 物业值班经理 (duty_officer): not on site within ")
    assert order.history[-2].detail["reason"].startswith("not on site within ")
    assert order.spec.role == "duty_officer" and order.assignee_id == DAY_DUTY_OFFICER
    assert order.escalation_level == 1 and order.tier == "duty_officer"
    assert service.errors == []


def test_special_care_absence_raises_and_a_later_access_clears(twin_db_url, start_rules,
                                                               publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    with psycopg.connect(url) as conn:
        person, family = conn.execute(
            """SELECT id, family_contacts FROM resident
               WHERE 'elderly_alone' = ANY(care_flags) AND jsonb_array_length(family_contacts) > 0
               ORDER BY id LIMIT 1""").fetchone()
        # this resident's grid worker knows 4 hours is already worrying (default: 36)
        conn.execute("INSERT INTO care_override (resident_id, not_out_h, note) "
                     "VALUES (%s, 4, 'heart condition')", (person,))
        gate = conn.execute("SELECT id FROM device WHERE type = 'access_gate' ORDER BY id"
                            ).fetchone()[0]
    _store(url, LIBRARY["special-care-not-out"])
    service = start_rules(url, clock)
    publisher.send(*_event(gate, clock.now, "access", method="face", direction="in",
                           subject=person))
    wait_until(lambda: service.processed >= 1)
    clock.advance(hours=3, minutes=59)
    service.tick_now()
    assert _one(url, "SELECT count(*) FROM alarm")[0] == 0
    clock.advance(minutes=2)
    service.tick_now()
    with psycopg.connect(url) as conn:
        alarm = ops.open_alarm_for(conn, C, person, "care_not_out")
        told = conn.execute("SELECT channel, recipient FROM notification WHERE alarm_id = %s "
                            "ORDER BY id", (alarm.id,)).fetchall()
        assert conn.execute("SELECT count(*) FROM alarm").fetchone()[0] == 1  # only them
    assert alarm.spec.severity == "major" and "已 4 小时未出门" in alarm.spec.title
    assert alarm.spec.text_params["resident"] == person
    assert [c for c, _ in told] == ["family"] * len(family) + ["grid_worker"]
    assert [r for c, r in told if c == "family"] == [f"{f['name']} <{f['phone']}>"
                                                     for f in family]
    visit = _order(url, "welfare_check")
    assert visit.spec.resident_id == person and visit.state == "assigned"
    assert visit.assignee_id.startswith("wh-guanggu-s0")  # a grid worker
    # they go out: the alarm clears
    publisher.send(*_event(gate, datetime.now(UTC) - timedelta(seconds=1), "access",
                           method="card", direction="out", subject=person))
    wait_until(lambda: _one(url, "SELECT state FROM alarm WHERE id = %s", alarm.id)[0]
               == "cleared")
    assert service.errors == []


def test_a_new_rule_set_is_picked_up_without_a_restart(twin_db_url, start_rules,
                                                       publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    _store(url, LIBRARY["garage-co"])
    service = start_rules(url, clock)
    warm = compile_text("""
id: garage-warm
title: A warm garage
domain: environment
nodes:
  - id: co
    source: {device_types: [co_sensor], metrics: [temperature]}
  - id: warm
    after: co
    threshold: {metric: temperature, above: 30}
  - id: alarm
    after: warm
    raise_alarm: {type: garage_warm, severity: info, title: {zh-CN: "{device_name}: {value} °C", en: "{device_name} is warm: {value} °C"}}
""")
    revision = service.revision
    with psycopg.connect(url) as conn:
        store.store_rules(conn, [warm], at=datetime.now(UTC))
    wait_until(lambda: service.revision > revision, timeout=10)
    publisher.send(*_telemetry(CO, clock.now, temperature=33.5))
    wait_until(lambda: _one(url, "SELECT count(*) FROM alarm WHERE type = 'garage_warm'")[0]
               == 1)
    assert _one(url, "SELECT title FROM alarm WHERE type = 'garage_warm'")[0].endswith(
        ": 33.5 °C")
    # switched off: the next warm reading of another sensor raises nothing
    with psycopg.connect(url) as conn:
        store.set_enabled(conn, "garage-warm", False, at=datetime.now(UTC))
    wait_until(lambda: "garage-warm" not in service.engine.rules, timeout=10)
    publisher.send(*_telemetry("wh-guanggu-d01274", clock.now, temperature=34.0))
    wait_until(lambda: service.processed >= 2)
    assert _one(url, "SELECT count(*) FROM alarm WHERE type = 'garage_warm'")[0] == 1
    assert service.errors == []


def test_state_survives_a_restart(twin_db_url, start_rules, publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    _store(url, LIBRARY["camera-fire-lane-parking"])
    camera = "wh-guanggu-d01291"
    client_id = f"rules-{uuid.uuid4().hex[:6]}"
    first = start_rules(url, clock, client_id=client_id)
    t = clock.now - timedelta(minutes=30)
    for k in range(2):
        publisher.send(*_event(camera, t + timedelta(seconds=80 * k), "detection",
                               **{"class": "fire_lane_parking", "confidence": 0.9}))
    wait_until(lambda: first.processed >= 2)
    first.stop()
    assert _one(url, "SELECT count(*) FROM rule_state WHERE rule_id = "
                     "'camera-fire-lane-parking'")[0] == 1
    # published while no rules service runs: the persistent session keeps it
    publisher.send(*_event(camera, t + timedelta(seconds=200), "detection",
                           **{"class": "fire_lane_parking", "confidence": 0.9}))
    second = start_rules(url, clock, client_id=client_id)
    # 200 s of standing, counted from the first detection before the restart
    wait_until(lambda: _one(url, "SELECT count(*) FROM alarm WHERE type = "
                                 "'fire_lane_parking'")[0] == 1)
    assert second.engine.state["camera-fire-lane-parking"]["standing"][camera]["on"] is True
    assert second.errors == []
