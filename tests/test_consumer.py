"""The shared MQTT consumer as the rules use it, against the real Mosquitto and PostgreSQL.

- a message that cannot be decoded, a decoder bug and a rule that raises each
  leave the worker running: the bug's message is dead-lettered (by the rules,
  under their own name), logged once, and the next message is evaluated;
- a device added while the rules run is evaluated from its first message;
- two rules processes with different ``--community`` split the stream by
  community, each message evaluated exactly once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from ingest import consumer as consumer_module
from tests.mqtt_helpers import wait_until
from tests.test_rules_service import CO, C, FakeClock, _day_shift_moment, _one, _telemetry
from twin.rules import store
from twin.rules.compile import compile_text
from twin.rules.engine import Engine

WARM = compile_text("""
id: device-warm
title: A warm device
domain: environment
nodes:
  - id: co
    source: {device_types: [co_sensor], metrics: [temperature]}
  - id: warm
    after: co
    threshold: {metric: temperature, above: 30}
  - id: alarm
    after: warm
    raise_alarm: {type: device_warm, severity: info, title: {zh-CN: "{device_name}: {value} °C", en: "{device_name} is warm: {value} °C"}}
""")


def _store_warm(url: str) -> None:
    with psycopg.connect(url) as conn:
        store.store_rules(conn, [WARM], at=datetime.now(UTC), replace_all=True)


def _dead(url: str) -> list[tuple[str, str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT consumer, reason, topic FROM dead_letter ORDER BY id"
                            ).fetchall()


def _add_co_sensor(url: str, device_id: str, *, community: str = C) -> None:
    """A CO sensor next to the sample's first one, as `twin import` would add it."""
    with psycopg.connect(url) as conn:
        conn.execute(
            """INSERT INTO device (id, community_id, type, name, building_id, floor, unit_id,
                                   facility_id, credentials_id, geom)
               SELECT %s, %s, type, name || ' (new)', NULL, NULL, NULL, NULL, %s, geom
               FROM device WHERE id = %s""", (device_id, community, f"cred-{device_id}", CO))


def test_a_rule_that_raises_dead_letters_its_message_and_the_worker_goes_on(
        twin_db_url, start_rules, publisher, monkeypatch) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    _store_warm(url)
    bad = "wh-guanggu-d01274"
    real = Engine.observe

    def buggy(self, obs):  # a rule bug that strikes one device's readings
        if obs.device_id == bad:
            raise ZeroDivisionError("a rule bug")
        return real(self, obs)

    monkeypatch.setattr(Engine, "observe", buggy)
    service = start_rules(url, clock)
    publisher.send(*_telemetry(bad, clock.now, temperature=40.0))
    publisher.send(*_telemetry(CO, clock.now, temperature=41.0))
    wait_until(lambda: service.processed >= 2, timeout=20)
    assert service.running
    assert _dead(url) == [("rules", "rule_error", f"twin/v1/{C}/{bad}/telemetry")]
    assert _one(url, "SELECT count(*) FROM alarm WHERE type = 'device_warm' AND device_id = %s",
                CO)[0] == 1
    assert len(service.errors) == 1 and "a rule bug" in service.errors[0]
    assert service.metrics.rule_errors._value.get() == 1


def test_bad_input_and_a_decoder_bug_leave_the_worker_running(
        twin_db_url, start_rules, publisher, monkeypatch) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    _store_warm(url)
    broken = "wh-guanggu-d01275"
    real = consumer_module.decode

    def buggy(topic, payload, received, directory, into):
        if f"/{broken}/" in topic:
            raise KeyError("a decoder bug")
        real(topic, payload, received, directory, into)

    monkeypatch.setattr(consumer_module, "decode", buggy)
    service = start_rules(url, clock)
    publisher.send(f"twin/v1/{C}/{CO}/telemetry", b"{not json")   # refused: ingest's to record
    publisher.send(*_telemetry(broken, clock.now, temperature=40.0))  # a bug: the rules record it
    publisher.send(*_telemetry(CO, clock.now, temperature=42.0))
    wait_until(lambda: service.processed >= 3, timeout=20)
    assert service.running
    assert _dead(url) == [("rules", "internal_error", f"twin/v1/{C}/{broken}/telemetry")]
    assert _one(url, "SELECT count(*) FROM alarm WHERE type = 'device_warm'")[0] == 1


def test_a_device_added_while_the_rules_run_is_evaluated(twin_db_url, start_rules,
                                                         publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    _store_warm(url)
    service = start_rules(url, clock)
    new = "wh-guanggu-d09999"
    assert new not in service.engine.snapshot.devices
    _add_co_sensor(url, new)
    publisher.send(*_telemetry(new, clock.now, temperature=36.0))
    wait_until(lambda: _one(url, "SELECT count(*) FROM alarm WHERE device_id = %s", new)[0] == 1,
               timeout=20)
    assert _one(url, "SELECT title FROM alarm WHERE device_id = %s", new)[0].endswith(
        "(new): 36 °C")
    assert service.errors == [] and _dead(url) == []


def test_two_rules_processes_split_the_stream_by_community(twin_db_url, start_rules,
                                                           publisher) -> None:
    url, clock = twin_db_url, FakeClock(_day_shift_moment())
    other = "wh-other"
    with psycopg.connect(url) as conn:
        conn.execute("""INSERT INTO community (id, name, city, local_srid, boundary)
                        SELECT %s, '另一个社区', city, local_srid, boundary FROM community
                        WHERE id = %s""", (other, C))
    far = "wh-other-d00001"
    _add_co_sensor(url, far, community=other)
    _store_warm(url)
    here = start_rules(url, clock, community=C)
    there = start_rules(url, clock, community=other)
    assert far not in here.engine.snapshot.devices and CO not in there.engine.snapshot.devices
    for minute in range(5):
        publisher.send(*_telemetry(CO, clock.now.replace(minute=minute), temperature=20.0))
    for minute in range(3):
        publisher.send(f"twin/v1/{other}/{far}/telemetry",
                       _telemetry(far, clock.now.replace(minute=minute), temperature=20.0)[1])
    wait_until(lambda: here.processed + there.processed >= 8, timeout=20)
    wait_until(lambda: _one(url, "SELECT evaluated FROM rule_counter WHERE rule_id = %s",
                            "device-warm") == (8,), timeout=10)
    assert (here.processed, there.processed) == (5, 3)
    assert _dead(url) == []


def test_on_the_data_clock_a_back_dated_incident_is_not_overdue_on_arrival(
        twin_db_url, start_rules, publisher) -> None:
    """Simulating the past at speed: escalation counts in the data's time, not the wall's."""
    from tests.test_rules_service import LIBRARY, _event
    from twin.clock import Watermark

    url = twin_db_url
    with psycopg.connect(url) as conn:
        store.store_rules(conn, [LIBRARY["camera-person-fall"], WARM], at=datetime.now(UTC),
                          replace_all=True)
        (camera,) = conn.execute("SELECT id FROM device WHERE type = 'ai_camera' ORDER BY id "
                                 "LIMIT 1").fetchone()
    past = _day_shift_moment() - timedelta(hours=3)
    clock = Watermark()
    service = start_rules(url, clock)
    publisher.send(*_event(camera, past, "detection", **{"class": "person_fall",
                                                          "confidence": 0.93}))
    wait_until(lambda: _one(url, "SELECT count(*) FROM alarm WHERE type = 'person_fall'")[0]
               == 1, timeout=20)
    assert clock() == past and service.engine.started <= past
    service.tick_now()
    assert _one(url, "SELECT escalation_level FROM alarm WHERE type = 'person_fall'")[0] == 0
    # four minutes later in the data's time, the 3-minute limit has passed
    publisher.send(*_telemetry(CO, past + timedelta(minutes=4), temperature=20.0))
    wait_until(lambda: clock() == past + timedelta(minutes=4), timeout=20)
    service.tick_now()
    assert _one(url, "SELECT escalation_level FROM alarm WHERE type = 'person_fall'")[0] == 1
