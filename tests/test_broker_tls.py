"""MQTT over TLS, and the background services' /healthz (issue 15, production serving).

A private broker of the embedded stack with its TLS listener (the project's own CA and
server certificate): ingest and a device connect over TLS and a reading lands in the twin;
a plain MQTT client on the TLS port and a TLS client that does not trust the project's CA
are refused. Ingest's /healthz says 503 while its broker or its database is gone.
"""

from __future__ import annotations

import json
import ssl
import threading
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import psycopg
import pytest

from ingest.broker import BrokerAddress, make_client
from tests.mqtt_helpers import Publisher, wait_until
from tests.test_ingest import _ids, _telemetry
from twin.services.broker_accounts import ADMIN, INGEST, SERVICES, SIMULATOR
from twin.services.mosquitto import EmbeddedMosquitto


@pytest.fixture
def tls_broker(tmp_path):
    server = EmbeddedMosquitto(tmp_path / "mqtt", services=SERVICES, tls=True)
    server.start()
    yield server
    server.stop()


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _connack(address: BrokerAddress, *, plain_to_tls: bool = False) -> bool:
    """Whether the broker accepts this client's CONNECT within a few seconds."""
    if plain_to_tls:
        address = BrokerAddress(address.host, address.port, address.username, address.password)
    client = make_client(address, f"probe-{uuid.uuid4().hex[:6]}")
    accepted = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: accepted.set() if not rc.is_failure else None
    try:
        client.connect(address.host, address.port, keepalive=5)
        client.loop_start()
        return accepted.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()


def test_ingest_and_a_device_work_over_tls(tls_broker, twin_db_url, start_ingest,
                                           sample) -> None:
    assert tls_broker.tls_port != tls_broker.port
    service = start_ingest(twin_db_url, tls_broker.service_tls_url(INGEST), metrics_port=0)
    assert service.address.tls and service.address.port == tls_broker.tls_port
    assert _health(service.metrics_port) == (200, {"ok": True, "database": "up",
                                                   "broker": "up"})
    co = _ids(sample, "co_sensor")[0]
    device = Publisher(tls_broker.service_tls_url(SIMULATOR))
    try:
        device.send(*_telemetry(co, datetime.now(UTC).replace(microsecond=0), co=31.5))
    finally:
        device.close()

    def landed() -> bool:
        with psycopg.connect(twin_db_url) as conn:
            return conn.execute("SELECT count(*) FROM reading WHERE device_id = %s AND "
                                "metric = 'co' AND value = 31.5", (co,)).fetchone()[0] == 1
    wait_until(landed)


def test_the_tls_port_refuses_plain_mqtt_and_an_untrusted_certificate(tls_broker) -> None:
    address = BrokerAddress.parse(tls_broker.service_tls_url(ADMIN))
    assert address.tls and address.ca_file == str(tls_broker.ca_file)
    assert _connack(address)  # with the project's CA: accepted
    assert not _connack(address, plain_to_tls=True)  # plain MQTT on the TLS port: refused
    # TLS trusting only the system's CAs: the project's certificate is not one of theirs
    stranger = BrokerAddress(address.host, address.port, address.username, address.password,
                             tls=True, ca_file=None)
    with pytest.raises(ssl.SSLCertVerificationError):
        _connack(stranger)
    # the certificate names localhost and 127.0.0.1, nothing else
    assert _connack(BrokerAddress("127.0.0.1", address.port, address.username,
                                  address.password, tls=True, ca_file=address.ca_file))


def test_a_plain_client_on_the_plain_port_still_works_on_loopback(tls_broker) -> None:
    address = BrokerAddress.parse(tls_broker.admin_url)
    assert not address.tls and _connack(address)


def test_ingest_healthz_says_503_while_its_broker_is_down(tls_broker, twin_db_url,
                                                          start_ingest) -> None:
    service = start_ingest(twin_db_url, tls_broker.service_tls_url(INGEST), metrics_port=0)
    assert _health(service.metrics_port)[0] == 200
    tls_broker.stop()
    wait_until(lambda: _health(service.metrics_port) == (
        503, {"ok": False, "database": "up", "broker": "down"}), timeout=20)
    tls_broker.start()  # same ports: paho reconnects by itself
    wait_until(lambda: _health(service.metrics_port)[0] == 200, timeout=30)


def test_ingest_healthz_says_503_while_its_database_is_gone(pg, sample_template, broker,
                                                            start_ingest) -> None:
    name = f"health_{uuid.uuid4().hex[:6]}"
    url = pg.create_database(name, template=sample_template)
    service = start_ingest(url, broker.service_url(INGEST), metrics_port=0)
    assert _health(service.metrics_port)[0] == 200
    pg.drop_database(name)
    status, body = _health(service.metrics_port)
    assert (status, body) == (503, {"ok": False, "database": "down", "broker": "up"})
    assert service.running  # it waits for the database, it does not die


def test_a_url_with_an_unknown_ca_file_is_refused_by_name() -> None:
    from twin.errors import TwinError

    with pytest.raises(TwinError, match="/nowhere/ca.crt"):
        BrokerAddress.parse("mqtts://u:secret@localhost:8883?ca=/nowhere/ca.crt")
    with pytest.raises(TwinError) as refused:
        BrokerAddress.parse("http://u:secret@localhost:8883")
    assert "secret" not in str(refused.value)
    assert BrokerAddress.parse("mqtts://broker.example").port == 8883
