"""Broker authentication from the device registry, against a real Mosquitto and database.

The broker here is our own, not the suite's shared one. It starts as the
embedded stack's does, admitting only the stack's own accounts; the registry
fixture then writes the devices in. Devices and services log in with
passwords derived from one secret; the ACL lets a device speak only on its
own topics.
"""

from __future__ import annotations

import queue
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import paho.mqtt.client as mqtt
import psycopg
import pytest
import typer
from typer.testing import CliRunner

from ingest import contract
from ingest.broker import NO_MATCHING_SUBSCRIBERS
from ingest.broker_auth import (
    BrokerConfigReport,
    DeviceAccount,
    acl_text,
    admit_simulator,
    broker_config_command,
    device_password,
    mqtt_credentials,
    write_broker_config,
)
from twin.device_types import BADGE_TYPE
from twin.errors import TwinError
from twin.services.broker_accounts import (
    ADMIN,
    COMMANDS,
    INGEST,
    RULES,
    SIMULATOR,
    TOPIC_ROOT,
    hash_password,
    load_secret,
    service_credentials,
    verify_password,
)
from twin.services.mosquitto import EmbeddedMosquitto
from twin.store.connection import connect

NOT_AUTHORIZED = 0x87
BAD_LOGIN = (0x86, 0x87)  # bad user name or password / not authorized
SECRET = bytes(range(32))
GATEWAY_ID = "test-gw-1"


@dataclass(frozen=True)
class Registry:
    """What the broker was configured with, for the tests to pick users from."""

    report: BrokerConfigReport
    #: Every device in the broker's files.
    devices: list[DeviceAccount]
    #: The devices that are not gateways.
    plain: list[DeviceAccount]
    gateway: DeviceAccount


# --- pure parts ----------------------------------------------------------------------------

def test_passwords_are_derived_per_user_and_per_secret() -> None:
    pw = device_password(SECRET, "cred-a")
    assert pw == device_password(SECRET, "cred-a") and len(pw) == 32
    assert pw != device_password(SECRET, "cred-b")
    assert pw != device_password(bytes(32), "cred-a")
    user, service_pw = service_credentials(SECRET, INGEST)
    assert user == INGEST
    # A device named like the service does not get the service's password.
    assert service_pw != device_password(SECRET, INGEST)
    with pytest.raises(ValueError, match="not a service account"):
        service_credentials(SECRET, "root")


def test_hashes_have_mosquitto_passwd_format(tmp_path: Path) -> None:
    """Our verify reads what mosquitto_passwd writes, and our hashes have its shape."""
    passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    file = tmp_path / "pw"
    subprocess.run([passwd, "-b", "-c", str(file), "someone", "s3cret"], check=True)
    theirs = file.read_text().strip().split(":", 1)[1]
    assert verify_password(theirs, "s3cret") and not verify_password(theirs, "s3creT")
    ours = hash_password("s3cret")
    assert ours.split("$")[:3] == theirs.split("$")[:3] == ["", "7", "101"]
    assert [len(p) for p in ours.split("$")[3:]] == [len(p) for p in theirs.split("$")[3:]]
    assert verify_password(ours, "s3cret") and ours != hash_password("s3cret")  # salted


def test_acl_gives_each_device_its_own_topics_and_gateways_batch() -> None:
    meter = DeviceAccount("cred-m", "c1", "m", "water_meter")
    gateway = DeviceAccount("cred-g", "c1", "g", "iot_gateway")
    text = acl_text([meter, gateway])
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n")[1:]}
    assert blocks["user twin-ingest"] == ["topic read twin/v1/#",
                                          "topic write twin/v1/+/+/cmd"]
    # the console's and the tests' account: every topic
    assert blocks["user twin-admin"] == ["topic readwrite #"]
    # the rule engine has its own account with the same rights, and the simulator none
    assert blocks["user twin-rules"] == blocks["user twin-ingest"]
    assert "user twin-simulator" not in blocks
    assert blocks["user cred-m"] == [
        "topic write twin/v1/c1/m/telemetry", "topic write twin/v1/c1/m/event",
        "topic write twin/v1/c1/m/status", "topic write twin/v1/c1/m/ack",
        "topic read twin/v1/c1/m/cmd",
    ]
    assert "topic write twin/v1/c1/g/batch" in blocks["user cred-g"]
    assert not any(ln.endswith("/position") for ln in blocks["user cred-m"] + blocks["user cred-g"])
    badge = acl_text([DeviceAccount("cred-b", "c1", "b", "staff_badge")])
    assert "topic write twin/v1/c1/b/position" in badge.splitlines()
    # Nothing before the first user: anonymous clients have no topics.
    assert all(ln.startswith("#") for ln in text.split("\n\n")[0].splitlines())
    assert f"user {SIMULATOR}" not in text
    # On request, the simulator speaks for every device and takes their commands.
    with_sim = acl_text([meter], services=(INGEST, RULES, SIMULATOR))
    sim_block = with_sim.split(f"\nuser {SIMULATOR}\n", 1)[1].split("\n\n", 1)[0]
    assert sim_block.splitlines() == ["topic write twin/v1/#", "topic read twin/v1/+/+/cmd"]


def test_secret_is_created_once_private(tmp_path: Path) -> None:
    path = tmp_path / "mqtt" / "secret"
    with pytest.raises(TwinError, match="there is no broker secret"):
        load_secret(path, create=False)
    first = load_secret(path)
    assert len(first) == 32 and load_secret(path) == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not hex\n")
    with pytest.raises(TwinError, match="not hex text"):
        load_secret(path)


def test_services_take_credentials_from_env_or_the_secret(tmp_path: Path) -> None:
    from twin.config import load_settings

    settings = load_settings({"TWIN_HOME": str(tmp_path)})
    assert mqtt_credentials(settings=settings, environ={}) is None  # no secret: anonymous
    env = {"TWIN_MQTT_USERNAME": "u", "TWIN_MQTT_PASSWORD": "p"}
    assert mqtt_credentials(settings=settings, environ=env) == ("u", "p")
    with pytest.raises(TwinError, match="go together"):
        mqtt_credentials(settings=settings, environ={"TWIN_MQTT_USERNAME": "u"})
    secret = load_secret(tmp_path / "mqtt" / "secret")
    assert mqtt_credentials(settings=settings, environ={}) == service_credentials(secret, INGEST)


def test_the_service_acl_speaks_the_contract() -> None:
    """The core declares the services' topics without importing the contract: the same."""
    assert TOPIC_ROOT == f"{contract.ROOT}/{contract.VERSION}"
    assert COMMANDS == contract.topic("+", "+", "cmd")


def test_a_fresh_embedded_broker_refuses_anonymous_clients(tmp_path: Path) -> None:
    """Out of the box, before `twin broker-config`: the stack's accounts and nobody else."""
    broker = EmbeddedMosquitto(tmp_path / "mqtt")
    assert broker.reload() is False  # not running: nothing to signal
    broker.start()
    try:
        assert "allow_anonymous true" not in broker.conf.read_text()
        assert "allow_anonymous false" in broker.auth_conf.read_text().splitlines()
        for private in (broker.secret_file, broker.password_file, broker.auth_conf,
                        broker.include_dir / "acl"):
            assert stat.S_IMODE(private.stat().st_mode) == 0o600, private
        assert _connack(broker.port, "anonymous") in BAD_LOGIN
        secret = load_secret(broker.secret_file, create=False)
        assert _connack(broker.port, "wrong", ADMIN, "wrong") in BAD_LOGIN
        for name in (ADMIN, INGEST, RULES):
            assert broker.credentials(name) == service_credentials(secret, name)
            assert _connack(broker.port, f"as-{name}", *broker.credentials(name)) == 0
        # The simulator speaks for any device: only on request.
        assert _connack(broker.port, "sim", *broker.credentials(SIMULATOR)) in BAD_LOGIN
        # A deleted auth.conf never opens the broker: reloading writes it again.
        broker.auth_conf.unlink()
        assert broker.reload()
        assert _wait(lambda: _connack(broker.port, "anonymous-again") in BAD_LOGIN)
        assert _connack(broker.port, "ingest-again", *broker.credentials(INGEST)) == 0
        # Restarted, it reads the same files and the same secret.
        broker.stop()
        broker.start()
        assert _connack(broker.port, "anonymous-restart") in BAD_LOGIN
        assert _connack(broker.port, "admin-restart", *broker.credentials(ADMIN)) == 0
    finally:
        broker.stop()


# --- against the real database -------------------------------------------------------------

def test_registry_values_that_cannot_be_users_or_topics_are_named(sample_db_url: str,
                                                                   tmp_path: Path) -> None:
    with connect(sample_db_url) as conn:
        try:
            with pytest.raises(TwinError, match="there is no community 'nowhere'"):
                write_broker_config(conn, tmp_path, secret=SECRET, community_id="nowhere")
            conn.rollback()
            _insert_device(conn, "bad/dev", "iot_gateway", "cred-bad-dev")
            with pytest.raises(TwinError, match=r"device 'bad/dev' has id 'bad/dev'"):
                write_broker_config(conn, tmp_path, secret=SECRET)
            conn.rollback()
            _insert_device(conn, "odd-dev", "water_meter", "cred:odd")
            with pytest.raises(TwinError, match="cannot be a broker username"):
                write_broker_config(conn, tmp_path, secret=SECRET)
        finally:
            conn.rollback()
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_regenerating_is_idempotent(registry: Registry, sample_db_url: str,
                                    tmp_path: Path) -> None:
    first = registry.report
    _write(sample_db_url, tmp_path / "again", SECRET)
    again = _write(sample_db_url, tmp_path / "again", SECRET)
    assert again.acl_file.read_text() == first.acl_file.read_text()
    assert _users(again.password_file) == _users(first.password_file)
    # Only the salts differ (that the hashes verify is the next test's business).
    assert again.password_file.read_text() != first.password_file.read_text()
    assert (again.auth_conf.read_text().replace(str(again.directory), "D")
            == first.auth_conf.read_text().replace(str(first.directory), "D"))
    for path in (again.password_file, again.acl_file, again.auth_conf):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in again.directory.iterdir()) == ["acl", "auth.conf", "passwords"]


def test_password_file_verifies_for_every_user(registry: Registry) -> None:
    lines = dict(ln.split(":", 1) for ln in registry.report.password_file.read_text().splitlines())
    assert len(lines) == registry.report.users == len(registry.devices) + 4
    for d in registry.devices:
        assert verify_password(lines[d.credentials_id], device_password(SECRET, d.credentials_id))
    for name in (ADMIN, INGEST, RULES, SIMULATOR):
        assert verify_password(lines[name], service_credentials(SECRET, name)[1])


def test_cli_writes_into_the_embedded_broker_conf_d(sample_db_url: str, tmp_path: Path) -> None:
    from twin.config import load_settings

    app = typer.Typer()
    app.command()(broker_config_command)
    env = {"TWIN_HOME": str(tmp_path), "TWIN_DATABASE_URL": sample_db_url}
    runner = CliRunner()
    assert runner.invoke(app, ["--help"]).exit_code == 0
    result = runner.invoke(app, ["--no-simulator", "--community", "wh-guanggu"], env=env)
    assert result.exit_code == 0, result.output
    conf_d = tmp_path / "mqtt" / "conf.d"
    assert sorted(p.name for p in conf_d.iterdir()) == ["acl", "auth.conf", "passwords"]
    assert stat.S_IMODE((tmp_path / "mqtt" / "secret").stat().st_mode) == 0o600
    output = " ".join(result.output.split())
    assert "embedded broker is not running" in output and "logs in as twin-ingest" in output

    # With the embedded broker running as it starts afresh (its own accounts only), the
    # command lets the registry's devices in, without letting anyone anonymous in.
    (conf_d / "auth.conf").unlink()
    broker = EmbeddedMosquitto(tmp_path / "mqtt")
    broker.start()
    try:
        key = load_secret(tmp_path / "mqtt" / "secret", create=False)
        with connect(sample_db_url) as conn:
            device = _accounts(conn)[0]
        login = (device.credentials_id, device_password(key, device.credentials_id))
        assert _connack(broker.port, "device-before", *login) in BAD_LOGIN
        result = runner.invoke(app, [], env=env)
        assert result.exit_code == 0, result.output
        assert "reloaded" in result.output
        assert _wait(lambda: _connack(broker.port, "device-after", *login) == 0)
        assert _connack(broker.port, "anonymous-after") in BAD_LOGIN
        ingest = mqtt_credentials(settings=load_settings(env), environ={})
        assert ingest is not None and ingest[0] == INGEST
        assert _connack(broker.port, "ingest", *ingest) == 0

        # --rotate: a new secret, every password with it; the old secret is kept aside.
        result = runner.invoke(app, ["--rotate"], env=env)
        assert result.exit_code == 0, result.output
        new_key = load_secret(tmp_path / "mqtt" / "secret", create=False)
        assert new_key != key and load_secret(tmp_path / "mqtt" / "secret.old") == key
        assert stat.S_IMODE((tmp_path / "mqtt" / "secret.old").stat().st_mode) == 0o600
        assert _wait(lambda: _connack(broker.port, "device-old", *login) in BAD_LOGIN)
        assert _connack(broker.port, "device-new", device.credentials_id,
                        device_password(new_key, device.credentials_id)) == 0
        assert _connack(broker.port, "admin-new", *broker.credentials(ADMIN)) == 0
    finally:
        broker.stop()


def test_twin_simulate_admits_the_simulator_to_the_embedded_broker(sample_db_url: str,
                                                                   tmp_path: Path) -> None:
    from twin.config import load_settings

    settings = load_settings({"TWIN_HOME": str(tmp_path), "TWIN_DATABASE_URL": sample_db_url})
    broker = EmbeddedMosquitto(tmp_path / "mqtt")
    broker.start()
    try:
        assert _connack(broker.port, "sim-before", *broker.credentials(SIMULATOR)) in BAD_LOGIN
        assert admit_simulator(settings)
        assert _wait(lambda: _connack(broker.port, "sim-after",
                                      *broker.credentials(SIMULATOR)) == 0)
        assert _connack(broker.port, "admin-after", *broker.credentials(ADMIN)) == 0
        assert _connack(broker.port, "anon-after") in BAD_LOGIN
        assert not admit_simulator(settings)  # already admitted: nothing written
        # A broker of one's own is not ours to change.
        own = load_settings({"TWIN_HOME": str(tmp_path), "TWIN_DATABASE_URL": sample_db_url,
                             "TWIN_MQTT_URL": "mqtt://127.0.0.1:9"})
        assert not admit_simulator(own)
    finally:
        broker.stop()


# --- against the real broker ---------------------------------------------------------------

def test_reload_switches_a_running_broker_to_the_registry(auth_broker: EmbeddedMosquitto,
                                                         registry: Registry) -> None:
    """The module's broker started with the stack's accounts; the registry fixture wrote the
    devices in and reloaded."""
    assert "allow_anonymous true" not in auth_broker.conf.read_text()
    # Restart-safe: a broker started afresh from these files refuses anonymous clients too.
    auth_broker.stop()
    auth_broker.start()
    assert _connack(auth_broker.port, "anon-after-restart") in BAD_LOGIN
    user, password = service_credentials(SECRET, INGEST)
    assert _connack(auth_broker.port, "ingest-after-restart", user, password) == 0


def test_device_publishes_own_telemetry_to_ingest(auth_broker: EmbeddedMosquitto,
                                                  registry: Registry) -> None:
    device = registry.plain[0]
    with _ingest(auth_broker, "telemetry") as ingest, _device(auth_broker, device) as peer:
        own = contract.topic(device.community_id, device.device_id, "telemetry")
        assert peer.publish(own, b'{"n": 1}') == 0
        assert ingest.next_message() == (own, b'{"n": 1}')


def test_device_cannot_publish_as_another_device(auth_broker: EmbeddedMosquitto,
                                                 registry: Registry) -> None:
    device, other = registry.plain[0], registry.plain[1]
    with _ingest(auth_broker, "telemetry") as ingest, _device(auth_broker, device) as peer:
        forged = contract.topic(other.community_id, other.device_id, "telemetry")
        assert peer.publish(forged, b"forged") == NOT_AUTHORIZED
        cmd = contract.topic(other.community_id, other.device_id, "cmd")
        assert peer.publish(cmd, b"{}") == NOT_AUTHORIZED  # nor command one
        own = contract.topic(device.community_id, device.device_id, "telemetry")
        assert peer.publish(own, b"sentinel") == 0
        # Messages from one client arrive in order: the forged one would have come first.
        assert ingest.next_message() == (own, b"sentinel")


def test_device_receives_only_its_own_commands(auth_broker: EmbeddedMosquitto,
                                               registry: Registry) -> None:
    device, other = registry.plain[0], registry.plain[1]
    own_cmd = contract.topic(device.community_id, device.device_id, "cmd")
    other_cmd = contract.topic(other.community_id, other.device_id, "cmd")
    with _ingest(auth_broker) as ingest, _device(auth_broker, device) as peer:
        # Mosquitto 2.0 grants the SUBACK and enforces read access on delivery.
        peer.subscribe(other_cmd, "twin/v1/#")
        assert ingest.publish(other_cmd, b"for the other one") == 0
        assert ingest.publish(own_cmd, b"for me") == 0
        # One publisher's messages arrive in order: the other's would have come first.
        assert peer.next_message() == (own_cmd, b"for me")
        assert peer.no_more_messages()


def test_wrong_password_and_anonymous_are_refused(auth_broker: EmbeddedMosquitto,
                                                  registry: Registry) -> None:
    device, other = registry.plain[0], registry.plain[1]
    port = auth_broker.port
    assert _connack(port, "anonymous") in BAD_LOGIN
    assert _connack(port, "wrong", device.credentials_id, "wrong") in BAD_LOGIN
    assert _connack(port, "borrowed", device.credentials_id,
                    device_password(SECRET, other.credentials_id)) in BAD_LOGIN
    assert _connack(port, "other-secret", device.credentials_id,
                    device_password(bytes(32), device.credentials_id)) in BAD_LOGIN
    assert _connack(port, "unknown", "cred-nobody", device_password(SECRET, "cred-nobody")) \
        in BAD_LOGIN


def test_only_gateways_publish_batches(auth_broker: EmbeddedMosquitto,
                                       registry: Registry) -> None:
    meter, gateway = registry.plain[0], registry.gateway
    assert not meter.is_gateway
    with _ingest(auth_broker, "batch") as ingest:
        with _device(auth_broker, meter) as peer:
            topic = contract.topic(meter.community_id, meter.device_id, "batch")
            assert peer.publish(topic, b"not allowed") == NOT_AUTHORIZED
        with _device(auth_broker, gateway) as peer:
            topic = contract.topic(gateway.community_id, gateway.device_id, "batch")
            assert peer.publish(topic, b"batch") == 0
        assert ingest.next_message() == (topic, b"batch")


def test_a_badge_publishes_only_its_own_position(auth_broker: EmbeddedMosquitto,
                                                 registry: Registry) -> None:
    """Whose fix it is follows from the topic, so a badge may not speak for another badge,
    and nothing but a badge publishes positions."""
    badges = [d for d in registry.devices if d.type == BADGE_TYPE]
    mine, other = badges[0], badges[1]
    meter = next(d for d in registry.plain if d.type != BADGE_TYPE)
    with _ingest(auth_broker, "position") as ingest:
        with _device(auth_broker, mine) as peer:
            forged = contract.topic(other.community_id, other.device_id, "position")
            assert peer.publish(forged, b"forged") == NOT_AUTHORIZED
            own = contract.topic(mine.community_id, mine.device_id, "position")
            assert peer.publish(own, b"fix") == 0
        assert ingest.next_message() == (own, b"fix")  # the forged one would have come first
        with _device(auth_broker, meter) as peer:
            topic = contract.topic(meter.community_id, meter.device_id, "position")
            assert peer.publish(topic, b"not a badge") == NOT_AUTHORIZED
        assert ingest.no_more_messages()


def test_rotating_the_secret_replaces_every_password(auth_broker: EmbeddedMosquitto,
                                                    registry: Registry,
                                                    sample_db_url: str) -> None:
    device = registry.plain[0]
    rotated = bytes(reversed(SECRET))
    old_login = (device.credentials_id, device_password(SECRET, device.credentials_id))
    new_login = (device.credentials_id, device_password(rotated, device.credentials_id))
    with _device(auth_broker, device) as connected:
        try:
            _write(sample_db_url, auth_broker.include_dir, rotated)
            assert auth_broker.reload()
            # Clients logged in with an old password are dropped; new logins use the new one.
            assert _wait(lambda: not connected.client.is_connected())
            assert _connack(auth_broker.port, "old", *old_login) in BAD_LOGIN
            assert _connack(auth_broker.port, "new", *new_login) == 0
        finally:
            _write(sample_db_url, auth_broker.include_dir, SECRET)
            assert auth_broker.reload()
    assert _wait(lambda: _connack(auth_broker.port, "back", *old_login) == 0)


def test_broker_admits_many_users_from_the_password_file(auth_broker: EmbeddedMosquitto,
                                                         registry: Registry) -> None:
    devices = registry.devices
    chosen = devices[::max(1, len(devices) // 8)]
    chosen.append(registry.gateway)
    for d in chosen:
        assert _connack(auth_broker.port, f"v-{d.device_id}", d.credentials_id,
                        device_password(SECRET, d.credentials_id)) == 0, d
    for name in (ADMIN, INGEST, SIMULATOR):
        assert _connack(auth_broker.port, f"v-{name}", *service_credentials(SECRET, name)) == 0
    # The simulator may speak for any device.
    d = devices[-1]
    with _Peer(auth_broker.port, "sim", *service_credentials(SECRET, SIMULATOR)) as sim:
        code = sim.publish(contract.topic(d.community_id, d.device_id, "telemetry"), b"{}")
        assert code == NO_MATCHING_SUBSCRIBERS  # accepted; nobody listens here


def test_simulator_takes_commands_and_acks_them(auth_broker: EmbeddedMosquitto,
                                               registry: Registry) -> None:
    """The simulator's account reads every device's cmd (and nothing else) and may ack."""
    d, other = registry.plain[0], registry.plain[1]
    cmd = contract.topic(d.community_id, d.device_id, "cmd")
    ack = contract.topic(d.community_id, d.device_id, "ack")
    telemetry = contract.topic(other.community_id, other.device_id, "telemetry")
    with _ingest(auth_broker, "ack") as ingest, \
            _Peer(auth_broker.port, "sim-cmd", *service_credentials(SECRET, SIMULATOR)) as sim, \
            _Peer(auth_broker.port, "rules-cmd", *service_credentials(SECRET, RULES)) as rules, \
            _device(auth_broker, other) as peer:
        # A filter over everything: the ACL lets only the commands through.
        sim.subscribe("twin/v1/#")
        # Acknowledged before the command is sent, so it would reach the simulator first.
        assert peer.publish(telemetry, b"not for the simulator") == 0
        assert rules.publish(cmd, b'{"id": "c-1"}') == 0
        assert sim.next_message() == (cmd, b'{"id": "c-1"}')
        assert sim.no_more_messages()
        assert sim.publish(ack, b'{"id": "c-1", "ok": true}') == 0
        assert ingest.next_message() == (ack, b'{"id": "c-1", "ok": true}')


# --- fixtures and helpers ------------------------------------------------------------------

@pytest.fixture(scope="module")
def auth_broker(server_root: Path) -> Iterator[EmbeddedMosquitto]:
    """A broker of our own, started like the embedded stack's (its own accounts only)."""
    broker = EmbeddedMosquitto(server_root / "mqtt-auth")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="module")
def registry(auth_broker: EmbeddedMosquitto, sample_db_url: str) -> Registry:
    """The sample's devices (plus a gateway) as the broker's users, switched on by reload."""
    with connect(sample_db_url) as conn:
        try:
            gateway_id = _ensure_gateway(conn)
            devices = _accounts(conn)
        finally:
            conn.rollback()
    first = (devices[0].credentials_id, device_password(SECRET, devices[0].credentials_id))
    dropped = threading.Event()
    admin = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="admin-before",
                        protocol=mqtt.MQTTv5)
    admin.username_pw_set(*auth_broker.credentials(ADMIN))  # its password: the broker's secret
    admin.on_disconnect = lambda *args: dropped.set()
    admin.reconnect_delay_set(60, 60)
    assert admin.connect("127.0.0.1", auth_broker.port) == 0
    admin.loop_start()
    try:
        assert _wait(admin.is_connected)
        assert _connack(auth_broker.port, "device-before", *first) in BAD_LOGIN
        report = _write(sample_db_url, auth_broker.include_dir, SECRET)
        assert auth_broker.reload()
        # Reloading drops the clients the new files do not admit: passwords of another secret.
        assert dropped.wait(10), "the broker did not reload its configuration"
    finally:
        admin.disconnect()
        admin.loop_stop()
    assert _connack(auth_broker.port, "device-after", *first) == 0
    gateway = next(d for d in devices if d.device_id == gateway_id)
    others = [d for d in devices if not d.is_gateway]
    assert report.devices == len(devices) and report.gateways >= 1
    return Registry(report=report, devices=devices, plain=others, gateway=gateway)


def _write(db_url: str, directory: Path, secret: bytes) -> BrokerConfigReport:
    """The broker files for the sample with a gateway, leaving the shared sample as it was."""
    with connect(db_url) as conn:
        try:
            _ensure_gateway(conn)
            return write_broker_config(conn, directory, secret=secret, include_simulator=True)
        finally:
            conn.rollback()


def _wait(condition: Callable[[], bool], timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _ensure_gateway(conn: psycopg.Connection) -> str:
    """The sample's first gateway; without one, a gateway row in this transaction."""
    row = conn.execute("SELECT id FROM device WHERE type = 'iot_gateway' ORDER BY id").fetchone()
    if row is not None:
        return row[0]
    _insert_device(conn, GATEWAY_ID, "iot_gateway", f"cred-{GATEWAY_ID}")
    return GATEWAY_ID


def _insert_device(conn: psycopg.Connection, device_id: str, type_: str, cred: str) -> None:
    conn.execute(
        """
        INSERT INTO device (id, community_id, type, name, credentials_id, geom)
        SELECT %s, community_id, %s, 'test device', %s, geom FROM device ORDER BY id LIMIT 1
        """,
        (device_id, type_, cred),
    )


def _accounts(conn: psycopg.Connection) -> list[DeviceAccount]:
    rows = conn.execute(
        "SELECT credentials_id, community_id, id, type FROM device ORDER BY id").fetchall()
    return [DeviceAccount(*r) for r in rows]


def _users(password_file: Path) -> list[str]:
    return [ln.split(":", 1)[0] for ln in password_file.read_text().splitlines()]


class _Peer:
    """A paho MQTT 5 client whose CONNACK, PUBACK and messages can be waited for."""

    def __init__(self, port: int, client_id: str, username: str | None = None,
                 password: str | None = None) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: queue.Queue[int] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: dict[int, int] = {}
        self._acked = threading.Condition()
        self.client.on_connect = lambda c, u, f, rc, p: self.connack.put(rc.value)
        self.client.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._on_ack(c, u, mid, rcs[0], p)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def __enter__(self) -> Self:
        code = self.connack.get(timeout=5)
        assert code == 0, f"connect refused: {code:#x}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> int:
        """The PUBACK's reason code (QoS 1)."""
        return self._wait_ack(self.client.publish(topic, payload, qos=1).mid)

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            assert self._wait_ack(self.client.subscribe(topic, qos=1)[1]) < 0x80

    def next_message(self) -> tuple[str, bytes]:
        return self.messages.get(timeout=5)

    def no_more_messages(self) -> bool:
        return self.messages.empty()

    def _on_ack(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked:
            self._acks[mid] = reason_code.value
            self._acked.notify_all()

    def _wait_ack(self, mid: int) -> int:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, timeout=5), "no ack"
            return self._acks.pop(mid)


def _connack(port: int, client_id: str, username: str | None = None,
             password: str | None = None) -> int:
    """The CONNACK reason code a login gets."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    codes: list[int] = []
    client.on_connect = lambda c, u, f, rc, p: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    assert codes, "no CONNACK"
    return codes[0]


def _device(broker: EmbeddedMosquitto, d: DeviceAccount) -> _Peer:
    return _Peer(broker.port, d.device_id, d.credentials_id,
                 device_password(SECRET, d.credentials_id))


@contextmanager
def _ingest(broker: EmbeddedMosquitto, *kinds: str) -> Iterator[_Peer]:
    """The ingest account, subscribed as ingest is to ``kinds`` (shared subscriptions)."""
    with _Peer(broker.port, f"ingest-{time.monotonic_ns()}",
               *service_credentials(SECRET, INGEST)) as peer:
        peer.subscribe(*(s for s in contract.subscriptions("g") if s.rsplit("/", 1)[1] in kinds))
        yield peer
