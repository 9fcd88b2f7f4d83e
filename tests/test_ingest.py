"""`twin ingest` against the real Mosquitto and PostgreSQL/TimescaleDB.

Counts published versus stored, through a database restart, a broker restart
and a kill -9 of the ingest process, with no reading lost and none doubled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from ingest import contract
from ingest.broker import forget_session
from tests.mqtt_helpers import Publisher, wait_until
from twin.services.broker_accounts import INGEST, SERVICES, SIMULATOR
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.postgres import EmbeddedPostgres
from twin.store import migrations
from twin.store.connection import connect
from twin.store.loader import load_dataset

COMMUNITY = "wh-guanggu"
TWIN = str(Path(sys.executable).parent / "twin")


def _ids(sample, device_type: str) -> list[str]:
    devices = dict(sample.tables())["device"]
    return devices[devices["type"] == device_type]["id"].tolist()


def _telemetry(device: str, ts: datetime, **readings: float | str) -> tuple[str, bytes]:
    return (contract.topic(COMMUNITY, device, "telemetry"),
            orjson.dumps({"ts": contract.fmt_time(ts), "readings": readings}))


def _count(url: str, sql: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def test_every_message_type_lands(twin_db_url, broker, start_ingest, publisher, sample) -> None:
    service = start_ingest(twin_db_url, broker.service_url(INGEST), metrics_port=0)
    now = datetime.now(UTC).replace(microsecond=0)
    co, cam, gate, pile, gateway = (_ids(sample, t)[0] for t in (
        "co_sensor", "ai_camera", "access_gate", "ev_charger", "iot_gateway"))
    meter = _ids(sample, "water_meter")[0]
    with psycopg.connect(twin_db_url) as conn:
        conn.execute("INSERT INTO device_command (id, device_id, command, issued_by) "
                     "VALUES ('cmd-1', %s, 'stop', 'test')", (pile,))
    messages = [
        _telemetry(co, now - timedelta(seconds=2), co=12.5, temperature=18.0),
        _telemetry(pile, now - timedelta(seconds=2), status="charging", power=6.6),
        (contract.topic(COMMUNITY, cam, "event"), orjson.dumps({
            "ts": contract.fmt_time(now), "id": "det-1", "kind": "detection",
            "class": "high_altitude_throw", "confidence": 0.93})),
        (contract.topic(COMMUNITY, gate, "event"), orjson.dumps({
            "ts": contract.fmt_time(now), "id": "acc-1", "kind": "access", "method": "qr",
            "direction": "in", "subject": "resident-1"})),
        (contract.topic(COMMUNITY, pile, "event"), orjson.dumps({
            "ts": contract.fmt_time(now), "id": "chg-1", "kind": "charge_stop",
            "energy_kwh": 9.4, "session": "s-1"})),
        (contract.topic(COMMUNITY, co, "status"), orjson.dumps({"online": True})),
        (contract.topic(COMMUNITY, pile, "ack"), orjson.dumps({
            "id": "cmd-1", "ts": contract.fmt_time(now), "ok": True, "detail": "stopped"})),
        (contract.topic(COMMUNITY, gateway, "batch"), orjson.dumps({"items": [
            {"device": meter, "ts": contract.fmt_time(now), "readings": {"flow": 1.2}},
            {"device": co, "ts": contract.fmt_time(now), "readings": {"co": 14.0}},
        ]})),
    ]
    for topic, payload in messages:
        publisher.send(topic, payload)

    # A device that vanishes without saying goodbye: the broker publishes its last will.
    gone = _ids(sample, "co_sensor")[1]
    import paho.mqtt.client as mqtt

    dying = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"dev-{gone}")
    # the broker knows no device yet (no `twin broker-config`): the simulator plays it
    dying.username_pw_set(*broker.credentials(SIMULATOR))
    dying.will_set(contract.topic(COMMUNITY, gone, "status"), orjson.dumps({"online": False}),
                   qos=1)
    dying.connect("127.0.0.1", broker.port, keepalive=5)
    dying.loop_start()
    time.sleep(0.3)
    dying.loop_stop()
    dying.socket().close()  # no DISCONNECT: the will fires

    wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM reading") == 6
               and _count(twin_db_url, "SELECT count(*) FROM device_state WHERE device_id = %s "
                                       "AND online = false", gone) == 1, timeout=30)
    with psycopg.connect(twin_db_url) as conn:
        readings = conn.execute("SELECT device_id, metric, value, value_text FROM reading "
                                "ORDER BY device_id, metric, time").fetchall()
        assert (co, "co", 12.5, None) in readings and (co, "co", 14.0, None) in readings
        assert (pile, "status", None, "charging") in readings
        assert (meter, "flow", 1.2, None) in readings
        events = dict(conn.execute("SELECT event_id, row(kind, class, method, direction, "
                                   "subject_id, value)::text FROM event").fetchall())
        assert events == {
            "det-1": "(detection,high_altitude_throw,,,,)",
            "acc-1": "(access,,qr,in,resident-1,)",
            "chg-1": "(charge_stop,,,,,9.4)",
        }
        # attrs are a JSON object that SQL can read, not a JSON string
        assert conn.execute("SELECT jsonb_typeof(attrs), attrs->>'session' FROM event "
                            "WHERE event_id = 'chg-1'").fetchone() == ("object", "s-1")
        state = conn.execute("SELECT online, metrics FROM device_state WHERE device_id = %s",
                             (co,)).fetchone()
        assert state[0] is True and state[1]["co"]["v"] == 14.0  # the batch's newer value
        assert conn.execute("SELECT ok, detail FROM device_command WHERE id = 'cmd-1'"
                            ).fetchone() == (True, "stopped")
        assert conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == 0
        received_after_sent = conn.execute(
            "SELECT bool_and(received_at >= time) FROM reading").fetchone()[0]
        assert received_after_sent

    body = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics").read()
    text = body.decode()
    assert 'twin_ingest_rows_written_total{table="reading"} 6.0' in text
    assert "twin_ingest_lag_seconds_bucket" in text
    assert "twin_ingest_messages_received_total 9.0" in text


def test_invalid_messages_go_to_dead_letters_and_the_service_keeps_going(
        twin_db_url, broker, start_ingest, publisher, sample) -> None:
    service = start_ingest(twin_db_url, broker.service_url(INGEST))
    co, cam = _ids(sample, "co_sensor")[0], _ids(sample, "ai_camera")[0]
    now = contract.fmt_time(datetime.now(UTC))
    future = contract.fmt_time(datetime.now(UTC) + timedelta(hours=2))
    bad = {
        "not_json": (contract.topic(COMMUNITY, co, "telemetry"), b"\xff\xfe{{"),
        "schema": (contract.topic(COMMUNITY, co, "telemetry"), b'{"readings": {"co": 1}}'),
        "unknown_device": _telemetry("nobody-here", datetime.now(UTC), co=1),
        "wrong_community": (contract.topic("elsewhere", co, "telemetry"),
                            orjson.dumps({"ts": now, "readings": {"co": 1}})),
        "future_timestamp": (contract.topic(COMMUNITY, co, "telemetry"),
                             orjson.dumps({"ts": future, "readings": {"co": 1}})),
        "out_of_range": _telemetry(co, datetime.now(UTC), co=99999),
        "unknown_metric": _telemetry(co, datetime.now(UTC), fill=3),
        "unknown_event": (contract.topic(COMMUNITY, cam, "event"), orjson.dumps(
            {"ts": now, "id": "x", "kind": "detection", "class": "ufo", "confidence": 1})),
        "not_a_gateway": (contract.topic(COMMUNITY, co, "batch"), orjson.dumps(
            {"items": [{"device": co, "ts": now, "readings": {"co": 1}}]})),
        "oversized": (contract.topic(COMMUNITY, co, "telemetry"),
                      b" " * (contract.MAX_PAYLOAD_BYTES + 10)),
        "unknown_command": (contract.topic(COMMUNITY, co, "ack"),
                            orjson.dumps({"id": "never-sent", "ts": now, "ok": True})),
    }
    for topic, payload in bad.values():
        publisher.send(topic, payload)
    publisher.send(*_telemetry(co, datetime.now(UTC), co=3))

    wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM dead_letter") == len(bad)
               and _count(twin_db_url, "SELECT count(*) FROM reading") == 1)
    with psycopg.connect(twin_db_url) as conn:
        rows = conn.execute("SELECT reason, topic, payload, detail FROM dead_letter").fetchall()
    by_reason = {r[0]: r for r in rows}
    assert set(by_reason) == set(bad)
    for why, (topic, payload) in bad.items():
        _, stored_topic, stored_payload, detail = by_reason[why]
        assert stored_topic == topic and bytes(stored_payload) == payload and detail
    assert service.connected


def test_a_redelivered_message_adds_nothing(twin_db_url, broker, start_ingest, publisher,
                                           sample) -> None:
    start_ingest(twin_db_url, broker.service_url(INGEST))
    co = _ids(sample, "co_sensor")[0]
    message = _telemetry(co, datetime.now(UTC), co=7)
    for _ in range(3):
        publisher.send(*message)
    publisher.send(*_telemetry(co, datetime.now(UTC) + timedelta(seconds=1), co=8))
    wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM reading WHERE value = 8") == 1)
    assert _count(twin_db_url, "SELECT count(*) FROM reading") == 2


def _stream(publisher: Publisher, devices: list[str], n: int, *, start: datetime,
            pause: float = 0.0) -> None:
    for i in range(n):
        device = devices[i % len(devices)]
        publisher.send(*_telemetry(device, start + timedelta(milliseconds=i), co=float(i % 500)))
        if pause:
            time.sleep(pause)


def test_two_processes_in_a_group_split_the_stream(twin_db_url, broker, start_ingest,
                                                   publisher, sample) -> None:
    group = f"split{uuid.uuid4().hex[:6]}"
    a = start_ingest(twin_db_url, broker.service_url(INGEST), group=group)
    b = start_ingest(twin_db_url, broker.service_url(INGEST), group=group)
    n = 2000
    _stream(publisher, _ids(sample, "co_sensor"), n, start=datetime.now(UTC))
    wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM reading") >= n)
    time.sleep(0.5)
    got_a = a.metrics.received._value.get()
    got_b = b.metrics.received._value.get()
    assert got_a > n * 0.2 and got_b > n * 0.2, (got_a, got_b)
    assert got_a + got_b == n  # nobody got a message twice
    assert _count(twin_db_url, "SELECT count(*) FROM reading") == n
    dupes = a.metrics.duplicates.labels("reading")._value.get() + \
        b.metrics.duplicates.labels("reading")._value.get()
    assert dupes == 0


@pytest.fixture
def own_pg(server_root: Path, sample) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A cluster of this test's own, which it may stop and start."""
    server = EmbeddedPostgres(server_root / f"pg-{uuid.uuid4().hex[:6]}", durable=False)
    url = server.start()
    with connect(url) as conn:
        migrations.upgrade(conn)
        load_dataset(conn, sample)
    yield server, url
    server.stop()


def test_database_restart_loses_nothing(own_pg, broker, start_ingest, publisher,
                                        sample) -> None:
    server, url = own_pg
    service = start_ingest(url, broker.service_url(INGEST))
    devices = _ids(sample, "co_sensor")
    start = datetime.now(UTC)
    _stream(publisher, devices, 200, start=start)
    wait_until(lambda: _count(url, "SELECT count(*) FROM reading") == 200)

    server.stop()
    _stream(publisher, devices, 300, start=start + timedelta(seconds=1))
    wait_until(lambda: service.metrics.database_up._value.get() == 0, timeout=10)
    assert service.connected  # still holding the broker connection, not acknowledging
    assert service.metrics.pending._value.get() > 0
    server.start()
    wait_until(lambda: _count(url, "SELECT count(*) FROM reading") == 500, timeout=60)
    time.sleep(0.5)
    assert _count(url, "SELECT count(*) FROM reading") == 500
    assert service.metrics.pending._value.get() == 0


@pytest.fixture
def own_broker(server_root: Path) -> Iterator[EmbeddedMosquitto]:
    """A broker of this test's own, which it may restart (torn down after the services)."""
    server = EmbeddedMosquitto(server_root / f"mqtt-{uuid.uuid4().hex[:6]}", services=SERVICES)
    server.start()
    yield server
    server.stop()


def test_broker_restart_loses_nothing(twin_db_url, own_broker, start_ingest, sample) -> None:
    start_ingest(twin_db_url, own_broker.service_url(INGEST), client_id="restart-ingest")
    publisher = Publisher(own_broker.service_url(SIMULATOR), client_id="restart-pub")
    devices = _ids(sample, "co_sensor")
    sender = threading.Thread(target=_stream, args=(publisher, devices, 600),
                              kwargs={"start": datetime.now(UTC), "pause": 0.003})
    sender.start()
    time.sleep(0.6)
    own_broker.stop()
    time.sleep(0.5)
    own_broker.start()
    sender.join(timeout=120)
    assert not sender.is_alive()
    wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM reading") == 600, timeout=60)
    publisher.close()


def test_kill_9_mid_stream_loses_nothing(twin_db_url, broker, publisher, sample) -> None:
    client_id = f"killed-{uuid.uuid4().hex[:6]}"
    # a broker of one's own (TWIN_MQTT_URL) with the service's login in the URL
    mqtt_url = broker.service_url(INGEST)
    env = {**os.environ, "TWIN_DATABASE_URL": twin_db_url, "TWIN_MQTT_URL": mqtt_url}
    argv = [TWIN, "ingest", "--client-id", client_id, "--group", f"k{client_id}",
            "--metrics-port", "0", "--flush-ms", "50"]

    def launch() -> subprocess.Popen:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        wait_until(lambda: _subscribed(broker, client_id) or proc.poll() is not None)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        return proc

    proc = launch()
    try:
        n = 3000
        sender = threading.Thread(target=_stream, args=(publisher, _ids(sample, "co_sensor"), n),
                                  kwargs={"start": datetime.now(UTC), "pause": 0.0005})
        sender.start()
        wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM reading") > 300)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stored_at_kill = _count(twin_db_url, "SELECT count(*) FROM reading")
        assert stored_at_kill < n
        proc = launch()
        sender.join(timeout=120)
        wait_until(lambda: _count(twin_db_url, "SELECT count(*) FROM reading") == n, timeout=60)
        time.sleep(0.5)
        assert _count(twin_db_url, "SELECT count(*) FROM reading") == n
        assert _count(twin_db_url, "SELECT count(*) FROM dead_letter") == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        forget_session(mqtt_url, client_id)


def _subscribed(broker: EmbeddedMosquitto, client_id: str) -> bool:
    """True once the broker's log shows the client connected (it subscribes right after)."""
    log = (broker.directory / "mosquitto.log").read_text(errors="replace")
    return f"as {client_id} " in log or f"client {client_id}" in log or client_id in log
