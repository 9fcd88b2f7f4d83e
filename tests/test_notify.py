"""Delivering notifications: routing, back-off and signing (pure), then the worker against a
real SMTP server (aiosmtpd), a real HTTP receiver, the suite's Mosquitto and PostgreSQL.

The notifications are written the way the rules write them (`twin.store.operations.notify`,
with the recipients `twin.rules.engine` gives each channel).
"""

from __future__ import annotations

import json
import os
import random
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ingest.broker import BrokerAddress, make_client
from ingest.notify import NotifyMetrics, build_transports, connect_broker
from twin.notify import webhook
from twin.notify.config import NotifyConfig, NotifyConfigError, load_config, parse_config
from twin.notify.retry import RetryPolicy, backoff, exhausted
from twin.notify.routing import Contact, Delivery, Pending, Unroutable, route
from twin.notify.worker import Worker
from twin.services.broker_accounts import RULES, SIMULATOR
from twin.services.ports import free_port
from twin.store import operations as ops
from twin.store.connection import connect

ROOT = Path(__file__).resolve().parent.parent
SECRET = "s3cret-for-tests"
T0 = datetime(2026, 11, 29, 2, 30, tzinfo=UTC)  # 10:30 in Wuhan; nothing depends on it


# --- pure: back-off, configuration, routing, signing ----------------------------------------

def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    policy = RetryPolicy(base_s=10, max_s=100, jitter=0.2, max_attempts=4)
    rng = random.Random(7)
    for attempt, full in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (30, 100)]:
        waits = [backoff(policy, attempt, rng=rng).total_seconds() for _ in range(200)]
        assert min(waits) >= 0.8 * full and max(waits) <= full
        assert max(waits) - min(waits) > 0.1 * full  # jittered, not one value
    assert not exhausted(policy, 3) and exhausted(policy, 4)
    assert backoff(RetryPolicy(jitter=0), 1, rng=rng) == timedelta(seconds=30)


CONFIG = """
transports:
  mail: {kind: smtp, host: 127.0.0.1, port: 2525, sender: twin@example.cn}
  sms: {kind: webhook, url: "http://127.0.0.1:9/send", secret_env: TWIN_SMS_SECRET}
  speakers: {kind: mqtt}
default:
  family: {via: [sms]}
  grid_worker: {via: [sms, mail], duty: {email: grid-duty@example.cn}}
  security_desk: {via: [mail], duty: {email: desk@example.cn}}
  staff: {via: [mail]}
  broadcast: {via: [speakers]}
communities:
  wh-guanggu:
    security_desk: {via: [speakers], duty: {devices: [desk-screen]}}
"""


def test_the_shipped_example_configuration_is_valid() -> None:
    config = load_config(ROOT / "docs" / "notify.example.yaml")
    assert set(config.default) == {"family", "grid_worker", "security_desk", "staff",
                                   "broadcast"}


@pytest.mark.parametrize("change, message", [
    (("port: 2525", "port: twenty"),
     ("cfg.yaml: key 'transports.mail.port': Input should be a valid integer, unable to parse "
     "string as an integer; got 'twenty'")),
    (("kind: mqtt", "kind: pager"),
     ("cfg.yaml: key 'transports.speakers': Input tag 'pager' found using 'kind' does not "
     "match any of the expected tags: 'smtp', 'webhook', 'mqtt', 'inbox'; got {'kind': 'pager'}")),
    (("family: {via: [sms]}", "family: {via: [fax]}"),
     ("cfg.yaml: key 'default.family.via.0': there is no transport 'fax'; the transports are "
     "['mail', 'sms', 'speakers']")),
    (("family: {via: [sms]}", "family: {via: [mail]}"),
     ("cfg.yaml: key 'default.family.via.0': family recipients give no email for smtp "
     "transport 'mail': set 'default.family.duty.email'")),
    (("  staff: {via: [mail]}\n", ""),
     "cfg.yaml: key 'default': every channel needs a route; missing ['staff']"),
    (("{email: desk@example.cn}", "{email: not-an-address}"),
     "cfg.yaml: key 'default.security_desk.duty.email': String should match pattern"),
    (("speakers: {kind: mqtt}", "speakers: {kind: mqtt}\nretry: {lease_s: 20}"),
     ("cfg.yaml: key 'retry.lease_s': 20 s is too short for default.grid_worker (via sms, "
      "mail: up to 15 s of timeouts); give at least twice that")),
    (("max_attempts", "max_attempts"), None),
])
def test_configuration_errors_name_file_key_and_expected_type(change, message) -> None:
    text = CONFIG.replace(*change)
    if message is None:
        text += "retry: {max_attempts: lots}\n"
        message = ("cfg.yaml: key 'retry.max_attempts': Input should be a valid integer, "
                   "unable to parse string as an integer; got 'lots'")
    with pytest.raises(NotifyConfigError) as e:
        parse_config(text, origin="cfg.yaml")
    assert str(e.value).startswith(message)
    assert "not-an-address" not in str(e.value)  # duty addresses are not echoed


def test_missing_secret_names_the_variable_and_the_key() -> None:
    config = parse_config(CONFIG, origin="cfg.yaml")
    with pytest.raises(NotifyConfigError, match=r"cfg.yaml: key 'transports.sms.secret_env': "
                                                r"the environment variable TWIN_SMS_SECRET"):
        build_transports(config, origin="cfg.yaml", conn=None, mqtt_client=None,  # type: ignore[arg-type]
                         environ={})


def _pending(channel: str, recipient: str, community: str = "c1", **kw) -> Pending:
    return Pending(id=7, community_id=community, channel=channel, recipient=recipient,
                   message="m", time=T0, rule_id=None, attempt=1, **kw)


def test_each_channel_routes_to_its_addresses_or_the_duty_address() -> None:
    config = parse_config(CONFIG)
    staff = {"s-1": Contact(phone="13800000001", email="wang@example.cn"),
             "s-2": Contact(phone="13800000002")}

    def to(n: Pending) -> list[tuple[str, tuple[str, ...]]]:
        return [(d.transport, d.to) if isinstance(d, Delivery) else (d.transport, ("-",))
                for d in route(config, n, staff=staff)]

    assert to(_pending("family", "黄雨雨 <10095801358>")) == [("sms", ("10095801358",))]
    assert to(_pending("grid_worker", "s-1")) == [("sms", ("13800000001",)),
                                                  ("mail", ("wang@example.cn",))]
    # no e-mail of their own: the channel's duty address
    assert to(_pending("grid_worker", "s-2")) == [("sms", ("13800000002",)),
                                                  ("mail", ("grid-duty@example.cn",))]
    assert to(_pending("security_desk", "security_desk")) == [("mail", ("desk@example.cn",))]
    assert to(_pending("security_desk", "security_desk", "wh-guanggu")) == [
        ("speakers", ("desk-screen",))]
    assert to(_pending("broadcast", "sp-1,sp-2")) == [("speakers", ("sp-1", "sp-2"))]
    # a transport already done on an earlier try is not tried again
    assert to(_pending("grid_worker", "s-1", done=frozenset({"sms"}))) == [
        ("mail", ("wang@example.cn",))]
    # a staff member without an e-mail, on a route with no duty e-mail: unroutable, with why
    (step,) = route(config, _pending("staff", "s-2"), staff=staff)
    assert isinstance(step, Unroutable) and "no email" in step.reason
    assert "13800000002" not in step.reason


def test_signature_covers_timestamp_and_body() -> None:
    body = b'{"text":"hi"}'
    sig = webhook.sign(b"k", "1000", body)
    assert webhook.verify(b"k", "1000", body, sig, now=1010)
    assert not webhook.verify(b"k", "1000", body + b" ", sig, now=1010)  # body changed
    assert not webhook.verify(b"k", "1001", body, sig, now=1010)  # timestamp changed
    assert not webhook.verify(b"other", "1000", body, sig, now=1010)  # wrong secret
    assert not webhook.verify(b"k", "1000", body, sig, now=1000 + 3600)  # replayed late


# --- real servers ---------------------------------------------------------------------------

class _Inbox:
    def __init__(self) -> None:
        self.mails: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.mails.append((list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@dataclass
class Smtp:
    port: int
    inbox: _Inbox
    ca_file: Path


@pytest.fixture(scope="module")
def smtp(tmp_path_factory) -> Iterator[Smtp]:
    """An SMTP server that demands STARTTLS and a login, as a provider's submission port does."""
    d = tmp_path_factory.mktemp("smtp")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"),
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(d / "cert.pem", d / "key.pem")

    def login(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"twin" \
            and auth_data.password == SECRET.encode()
        return AuthResult(success=ok)

    inbox = _Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=tls,
                            require_starttls=True, auth_required=True, authenticator=login)
    controller.start()
    yield Smtp(port, inbox, d / "cert.pem")
    controller.stop()


@dataclass
class Receiver:
    """What the local webhook receiver saw; ``status`` and ``hold`` set how it answers."""

    port: int
    bodies: list[dict] = field(default_factory=list)
    bad_signatures: int = 0
    status: int = 200
    delay_s: float = 0.0
    hold: threading.Event | None = None
    arrived: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/send"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            good = webhook.verify(SECRET.encode(), self.headers[webhook.TIMESTAMP_HEADER], body,
                                  self.headers[webhook.SIGNATURE_HEADER])
            with state.lock:
                if good:
                    state.bodies.append(json.loads(body))
                else:
                    state.bad_signatures += 1
            state.arrived.set()
            if state.hold is not None:
                state.hold.wait(60)
            time.sleep(state.delay_s)
            status = state.status if good else 401
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    if state.hold is not None:
        state.hold.set()
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def secrets(monkeypatch) -> None:
    monkeypatch.setenv("TWIN_SMS_SECRET", SECRET)
    monkeypatch.setenv("TWIN_SMTP_PASSWORD", SECRET)


class Speaker:
    """A device listening on its cmd topic, as a speaker or a screen does."""

    def __init__(self, url: str, topic: str) -> None:
        address = BrokerAddress.parse(url)
        self.got: list[dict] = []
        self._ready = threading.Event()
        self.client = make_client(address, f"speaker-{uuid.uuid4().hex[:12]}")
        self.client.on_message = lambda c, u, m: self.got.append(json.loads(m.payload))
        self.client.on_subscribe = lambda c, u, mid, rc, p: self._ready.set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert self._ready.wait(10), "the speaker never subscribed"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True)
class People:
    community: str
    grid_worker: str
    manager: str
    family: str       # "name <phone>", as the rules write a family contact
    family_phone: str
    speaker: str


@pytest.fixture
def db(twin_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(twin_db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def people(db: psycopg.Connection) -> People:
    community, grid_worker = db.execute(
        "SELECT community_id, grid_worker_id FROM grid WHERE grid_worker_id IS NOT NULL "
        "ORDER BY id LIMIT 1").fetchone()
    (manager,) = db.execute("SELECT id FROM staff WHERE role = 'manager' ORDER BY id LIMIT 1"
                            ).fetchone()
    (contact,) = db.execute("SELECT family_contacts->0 FROM resident "
                            "WHERE jsonb_array_length(family_contacts) > 0 ORDER BY id LIMIT 1"
                            ).fetchone()
    (speaker,) = db.execute("SELECT id FROM device WHERE type = 'speaker' ORDER BY id LIMIT 1"
                            ).fetchone()
    return People(community, grid_worker, manager, f"{contact['name']} <{contact['phone']}>",
                  contact["phone"], speaker)


def _config(smtp: Smtp | None, receiver: Receiver, *, speakers: bool = True) -> NotifyConfig:
    """Mail to the test's SMTP server (or a closed port), SMS to the receiver, MQTT speakers
    (without them, broadcasts go by SMS to a duty phone, and no broker is needed)."""
    mail = (f"mail: {{kind: smtp, host: 127.0.0.1, port: {smtp.port}, security: starttls, "
            f"username: twin, password_env: TWIN_SMTP_PASSWORD, sender: 社区 <twin@example.cn>, "
            f"ca_file: {smtp.ca_file}, timeout_s: 5}}") if smtp else \
        "mail: {kind: smtp, host: 127.0.0.1, port: 9, sender: twin@example.cn}"
    broadcast = "{via: [speakers]}" if speakers else \
        "{via: [sms], duty: {phone: '10000000000'}}"
    return parse_config(f"""
transports:
  {mail}
  sms: {{kind: webhook, url: "{receiver.url}", secret_env: TWIN_SMS_SECRET, timeout_s: 5}}
  {"speakers: {kind: mqtt, timeout_s: 5}" if speakers else ""}
retry: {{max_attempts: 4, base_s: 60, max_s: 600, jitter: 0.5, lease_s: 120}}
default:
  family: {{via: [sms]}}
  grid_worker: {{via: [mail], duty: {{email: grid-duty@example.cn}}}}
  security_desk: {{via: [mail], duty: {{email: desk@example.cn}}}}
  staff: {{via: [sms]}}
  broadcast: {broadcast}
""")


class Clock:
    """Time the test moves: back-off and leases without sleeping."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def _notify(db: psycopg.Connection, p: People, channel: str, recipient: str, message: str,
            *, at: datetime = T0, rule_id: str | None = None) -> int:
    return ops.notify(db, community_id=p.community, channel=channel, recipient=recipient,
                      message=message, at=at, rule_id=rule_id)


def _state(db: psycopg.Connection, nid: int) -> tuple:
    return db.execute("SELECT state, attempts, sent_at, last_error, next_attempt_at "
                      "FROM notification WHERE id = %s", (nid,)).fetchone()


def _attempts(db: psycopg.Connection, nid: int) -> list[tuple]:
    return db.execute("SELECT attempt, transport, ok, error FROM notification_attempt "
                      "WHERE notification_id = %s ORDER BY id", (nid,)).fetchall()


# --- delivery through each transport --------------------------------------------------------

def test_each_channel_is_delivered_through_its_transport(db, people, smtp, receiver, broker,
                                                        caplog) -> None:
    p = people
    db.execute("UPDATE staff SET email = 'grid.worker@example.cn' WHERE id = %s",
               (p.grid_worker,))
    ids = {
        "family": _notify(db, p, "family", p.family, "您的家人已36小时未出门"),
        "grid_worker": _notify(db, p, "grid_worker", p.grid_worker, "请上门探访 3栋1203"),
        "security_desk": _notify(db, p, "security_desk", "security_desk", "东门强行开门"),
        "staff": _notify(db, p, "staff", p.manager, "Escalated (level 1): CO in garage B1"),
        "broadcast": _notify(db, p, "broadcast", p.speaker, "车库CO超标，请离开"),
    }
    config = _config(smtp, receiver)
    # the speaker is played by the simulator's account; the worker logs in as the rules do
    speaker = Speaker(broker.service_url(SIMULATOR), f"twin/v1/{p.community}/{p.speaker}/cmd")
    client = connect_broker(broker.service_url(RULES), "notify-test")
    metrics = NotifyMetrics()
    try:
        worker = Worker(db, config, build_transports(config, origin="t", conn=db,
                                                     mqtt_client=client),
                        clock=Clock(T0 + timedelta(seconds=5)), on_attempt=metrics.attempt)
        with caplog.at_level("DEBUG"):
            tally = worker.run_once()
        metrics.round(tally)
        deadline = time.monotonic() + 10
        while not speaker.got and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
        speaker.close()

    assert (tally.claimed, tally.delivered) == (5, 5)
    for channel, nid in ids.items():
        state, attempts, sent_at, error, _ = _state(db, nid)
        assert (state, attempts, error) == ("delivered", 1, None), channel
        assert sent_at == T0 + timedelta(seconds=5)
        transport = {"family": "sms", "staff": "sms", "broadcast": "speakers"}.get(channel,
                                                                                "mail")
        assert _attempts(db, nid) == [(1, transport, True, None)], channel

    # e-mail: through STARTTLS and a login, to the worker's own address and the desk's duty one
    mails = {tuple(rcpt): message_from_bytes(raw) for rcpt, raw in smtp.inbox.mails[-2:]}
    assert set(mails) == {("grid.worker@example.cn",), ("desk@example.cn",)}
    mail = mails[("grid.worker@example.cn",)]
    assert mail.get_payload(decode=True).decode().strip() == "请上门探访 3栋1203"
    assert f"ntf-{ids['grid_worker']}-mail" in mail["Message-ID"]
    # webhook: signed, with the family contact's phone and the manager's phone
    (manager_phone,) = db.execute("SELECT phone FROM staff WHERE id = %s", (p.manager,)
                                  ).fetchone()
    assert receiver.bad_signatures == 0
    sent = {b["notification_id"]: b for b in receiver.bodies}
    assert sent[ids["family"]]["to"] == [p.family_phone]
    assert sent[ids["family"]]["text"] == "您的家人已36小时未出门"
    assert sent[ids["staff"]]["to"] == [manager_phone]
    assert sent[ids["staff"]]["id"] == f"ntf-{ids['staff']}-sms"
    # MQTT: a broadcast command on the speaker's cmd topic, recorded for its ack
    (command,) = speaker.got
    assert command["command"] == "broadcast" and command["args"] == {"text": "车库CO超标，请离开"}
    assert db.execute("SELECT device_id, issued_by FROM device_command WHERE id = %s",
                      (command["id"],)).fetchone() == (p.speaker, "notify")
    # metrics: tries by transport, notifications by outcome
    value = metrics.registry.get_sample_value
    assert value("twin_notify_try_seconds_count", {"transport": "sms", "ok": "true"}) == 2
    assert value("twin_notify_try_seconds_count", {"transport": "mail", "ok": "true"}) == 2
    assert value("twin_notify_notifications_total", {"outcome": "delivered"}) == 5
    # the log names notifications and transports, never an address, a phone or a name
    logged = "\n".join(r.getMessage() for r in caplog.records
                       if r.name.startswith(("twin", "ingest")))
    assert f"notification {ids['family']} delivered via sms" in logged
    name = p.family.split(" <")[0]
    for personal in (p.family_phone, manager_phone, "grid.worker@example.cn", name):
        assert personal not in logged


def test_a_speaker_already_told_by_the_rule_is_not_told_twice(db, people, receiver,
                                                             broker) -> None:
    """The rules' broadcast action commands the speakers itself and writes the notification."""
    from twin.rules import actions as act
    from twin.rules.store import Dispatcher, Outcome, execute

    p = people
    (other,) = db.execute("SELECT id FROM device WHERE type = 'speaker' AND id <> %s "
                          "ORDER BY id LIMIT 1", (p.speaker,)).fetchone()
    firing = act.Firing(rule_id="garage-co", community_id=p.community, key="f", at=T0,
                        edge="raised", intents=(act.Broadcast(
                            node="announce", community_id=p.community,
                            speaker_ids=(p.speaker, other), message="请离开车库", at=T0),))
    with db.transaction():
        execute(db, firing, now=T0, dispatcher=Dispatcher(), outcome=Outcome())
    (nid,) = db.execute("SELECT id FROM notification WHERE channel = 'broadcast'").fetchone()
    config = _config(None, receiver)
    client = connect_broker(broker.service_url(RULES), "notify-test-2")
    try:
        worker = Worker(db, config, build_transports(config, origin="t", conn=db,
                                                     mqtt_client=client), clock=Clock(T0))
        assert worker.run_once().delivered == 1
    finally:
        client.disconnect()
        client.loop_stop()
    assert _state(db, nid)[0] == "delivered"
    assert db.execute("SELECT count(*) FROM device_command WHERE issued_by = 'notify'"
                      ).fetchone() == (0,)


def test_an_offline_speaker_is_retried(db, people, receiver, broker) -> None:
    p = people
    nid = _notify(db, p, "broadcast", p.speaker, "测试广播")
    config = _config(None, receiver)
    client = connect_broker(broker.service_url(RULES), "notify-test-3")
    try:
        worker = Worker(db, config, build_transports(config, origin="t", conn=db,
                                                     mqtt_client=client), clock=Clock(T0))
        assert worker.run_once().retrying == 1
    finally:
        client.disconnect()
        client.loop_stop()
    state, attempts, _, error, due = _state(db, nid)
    assert (state, attempts) == ("pending", 1)
    assert "not subscribed" in error and due > T0


# --- retries, crashes, concurrency ----------------------------------------------------------

def test_a_failing_webhook_is_retried_with_backoff_then_failed(db, people, receiver) -> None:
    p = people
    receiver.status = 500
    nid = _notify(db, p, "family", p.family, "您的家人已36小时未出门")
    config = _config(None, receiver, speakers=False)
    clock = Clock(T0)
    worker = Worker(db, config, build_transports(config, origin="t", conn=None,  # type: ignore[arg-type]
                                                 mqtt_client=None),
                    clock=clock, rng=random.Random(3))
    waits = []
    assert worker.run_once().claimed == 1
    for attempt in range(1, 5):
        state, attempts, _, error, due = _state(db, nid)
        assert attempts == attempt
        if attempt == 4:
            break
        assert (state, error) == ("pending", "sms: HTTP 500 Internal Server Error")
        waits.append((due - clock.at).total_seconds())
        clock.at = due - timedelta(seconds=1)
        assert worker.run_once().claimed == 0  # not due before its time
        clock.at = due
        assert worker.run_once().claimed == 1
    # 60, 120, 240 s, each cut by up to half at random
    for wait, full in zip(waits, (60, 120, 240)):
        assert full * 0.5 <= wait <= full
    assert state == "failed" and due is None
    assert error == "4 attempts: sms: HTTP 500 Internal Server Error"
    assert _attempts(db, nid) == [(n, "sms", False, "HTTP 500 Internal Server Error")
                                  for n in range(1, 5)]
    assert len(receiver.bodies) == 4
    assert clock.at > T0  # it never slept: the clock was moved
    # nothing more is tried
    clock.at += timedelta(days=1)
    assert worker.run_once().claimed == 0


def _twin(db_url: str, *args: str) -> str:
    env = {**os.environ, "TWIN_DATABASE_URL": db_url, "TWIN_MQTT_URL": "mqtt://127.0.0.1:9",
           "COLUMNS": "200"}
    done = subprocess.run([str(Path(sys.executable).with_name("twin")), *args], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_a_refused_request_fails_at_once(db, twin_db_url, people, receiver, tmp_path) -> None:
    p = people
    receiver.status = 403
    now = datetime.now(UTC)
    nid = _notify(db, p, "family", p.family, "x", at=now)
    config = _config(None, receiver, speakers=False)
    worker = Worker(db, config, build_transports(config, origin="t", conn=None,  # type: ignore[arg-type]
                                                 mqtt_client=None), clock=Clock(now))
    assert worker.run_once().failed == 1
    assert _state(db, nid)[:2] == ("failed", 1)
    assert _state(db, nid)[3] == "sms: HTTP 403 Forbidden"
    # the failure is visible, without the recipient; once the gateway is fixed, it is retried
    shown = _twin(twin_db_url, "notify", "status")
    assert "pending 0  delivered 0  failed 1" in shown
    assert f"#{nid} {p.community} family" in shown and "sms: HTTP 403 Forbidden" in shown
    assert p.family_phone not in shown
    assert "1 notification(s) pending again" in _twin(twin_db_url, "notify", "retry", str(nid))
    receiver.status = 200
    config_file = _sms_only_config(tmp_path / "notify.yaml", receiver)
    assert "claimed 1: delivered 1, retrying 0, failed 0" in _twin(
        twin_db_url, "notify", "run", "--config", str(config_file), "--once")
    assert _state(db, nid)[:2] == ("delivered", 1)


def test_a_stale_notification_is_failed_not_sent(db, people, receiver) -> None:
    p = people
    nid = _notify(db, p, "family", p.family, "x")
    config = _config(None, receiver, speakers=False)
    worker = Worker(db, config, build_transports(config, origin="t", conn=None,  # type: ignore[arg-type]
                                                 mqtt_client=None),
                    clock=Clock(T0 + timedelta(days=2)))
    assert worker.run_once().failed == 1
    assert _state(db, nid)[3].startswith("expired: 48.0 h old")
    assert receiver.bodies == []


def _run_once_in_a_process(db_url: str, config: Path) -> subprocess.Popen:
    env = {**os.environ, "TWIN_DATABASE_URL": db_url, "TWIN_MQTT_URL": "mqtt://127.0.0.1:9"}
    return subprocess.Popen([str(Path(sys.executable).with_name("twin")), "notify", "run",
                             "--config", str(config), "--once"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _sms_only_config(path: Path, receiver: Receiver) -> Path:
    """A file configuration that needs no broker: every channel by SMS."""
    path.write_text(f"""
transports:
  sms: {{kind: webhook, url: "{receiver.url}", secret_env: TWIN_SMS_SECRET, timeout_s: 30}}
retry: {{lease_s: 120}}
default:
  family: {{via: [sms]}}
  grid_worker: {{via: [sms]}}
  security_desk: {{via: [sms], duty: {{phone: "10000000000"}}}}
  staff: {{via: [sms]}}
  broadcast: {{via: [sms], duty: {{phone: "10000000000"}}}}
""")
    return path


CLAIM_AND_HANG = """
import sys, time, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    conn.execute("UPDATE notification SET attempts = attempts + 1, claim_token = gen_random_uuid()"
                 " WHERE id = %s", (int(sys.argv[2]),))
    print("claimed", flush=True)
    time.sleep(120)
"""


def _wait_unlocked(db: psycopg.Connection, nid: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with db.transaction():
                db.execute("SELECT 1 FROM notification WHERE id = %s FOR UPDATE NOWAIT", (nid,))
            return
        except psycopg.errors.LockNotAvailable:
            assert time.monotonic() < deadline, "the killed claimer's lock was never released"
            time.sleep(0.05)


def test_a_worker_killed_mid_claim_or_mid_delivery_loses_nothing(db, twin_db_url, people, receiver,
                                                    tmp_path) -> None:
    p = people
    now = datetime.now(UTC)
    nid = _notify(db, p, "family", p.family, "您的家人已36小时未出门", at=now)
    config = _config(None, receiver, speakers=False)
    path = _sms_only_config(tmp_path / "notify.yaml", receiver)
    # 1. killed -9 inside the claim's transaction: it was never committed, and the lock
    #    goes with the process's connection
    claimer = subprocess.Popen([sys.executable, "-c", CLAIM_AND_HANG, twin_db_url, str(nid)],
                               stdout=subprocess.PIPE)
    try:
        assert claimer.stdout is not None and claimer.stdout.readline() == b"claimed\n"
        blocked = Worker(db, config, build_transports(config, origin="t", conn=db,
                                                      mqtt_client=None), clock=Clock(now))
        assert blocked.run_once().claimed == 0  # locked by the other: skipped, not waited for
    finally:
        claimer.send_signal(signal.SIGKILL)
        claimer.wait(10)
    _wait_unlocked(db, nid)
    assert _state(db, nid)[:3] == ("pending", 0, None)

    # 2. killed after the claim committed, while the gateway is answering: kill -9
    receiver.hold = threading.Event()
    proc = _run_once_in_a_process(twin_db_url, path)
    try:
        assert receiver.arrived.wait(60), proc.stderr.read1().decode() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    receiver.hold.set()
    receiver.hold = None
    state, attempts, sent_at, _, due = _state(db, nid)
    assert (state, attempts, sent_at) == ("pending", 1, None)
    assert _attempts(db, nid) == []  # it died before it could say
    # held by the lease: another worker does not take it yet ...
    worker = Worker(db, config, build_transports(config, origin="t", conn=db, mqtt_client=None),
                    clock=Clock(datetime.now(UTC)))
    assert worker.run_once().claimed == 0
    # ... and does once the lease has run out
    worker.clock = Clock(due + timedelta(seconds=1))
    assert worker.run_once().delivered == 1
    assert _state(db, nid)[:2] == ("delivered", 2)
    assert _attempts(db, nid) == [(2, "sms", True, None)]


def test_two_workers_never_deliver_one_notification_twice(db, twin_db_url, people,
                                                          receiver) -> None:
    p = people
    receiver.delay_s = 0.01
    ids = [_notify(db, p, "family", p.family, f"message {i}") for i in range(60)]
    config = _config(None, receiver, speakers=False)
    done = threading.Event()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with connect(twin_db_url, autocommit=True) as conn:
                worker = Worker(conn, config, build_transports(
                    config, origin="t", conn=conn, mqtt_client=None), clock=Clock(T0))
                while worker.run_once(batch=4).claimed:
                    pass
        except BaseException as e:  # noqa: BLE001 (reported by the test below)
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    assert errors == []
    delivered = sorted(b["notification_id"] for b in receiver.bodies)
    assert delivered == sorted(ids)  # each once
    assert db.execute("SELECT count(*), count(DISTINCT notification_id) FROM "
                      "notification_attempt").fetchone() == (60, 60)
    assert db.execute("SELECT state, count(*) FROM notification GROUP BY state"
                      ).fetchall() == [("delivered", 60)]


def test_a_worker_that_outlived_its_lease_cannot_overwrite_the_next_one(db, people) -> None:
    from twin.notify import outbox

    nid = _notify(db, people, "family", people.family, "x")
    lease = timedelta(seconds=60)
    first = outbox.claim(db, now=T0, batch=10, lease=lease)
    assert outbox.claim(db, now=T0 + timedelta(seconds=59), batch=10, lease=lease
                        ).notifications == []
    second = outbox.claim(db, now=T0 + timedelta(seconds=61), batch=10, lease=lease)
    (n1,), (n2,) = first.notifications, second.notifications
    assert (n1.id, n1.attempt, n2.id, n2.attempt) == (nid, 1, nid, 2)
    assert not outbox.record_attempt(db, first.token, n1, transport="sms", started_at=T0,
                                     duration_ms=1, ok=True)
    assert not outbox.mark_delivered(db, first.token, nid, at=T0)
    assert outbox.mark_delivered(db, second.token, nid, at=T0 + timedelta(seconds=62))
    assert _state(db, nid)[:2] == ("delivered", 2)


def test_a_retry_scoped_to_a_community_leaves_anothers_failures_alone(twin_db_url) -> None:
    from twin.notify import outbox

    at = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
    with psycopg.connect(twin_db_url, autocommit=True) as conn:
        (community,) = conn.execute("SELECT id FROM community ORDER BY id LIMIT 1").fetchone()
        conn.execute("INSERT INTO community (id, name, city, local_srid, boundary) "
                     "SELECT 'other', name, city, local_srid, boundary FROM community "
                     "WHERE id = %s", (community,))
        mine, theirs = (ops.notify(conn, community_id=c, channel="staff", recipient="s1",
                                   message="m", at=at) for c in (community, "other"))
        conn.execute("UPDATE notification SET state = 'failed', attempts = 5")
        assert outbox.requeue_failed(conn, [mine, theirs], now=at, community_id=community) == 1
        states = dict(conn.execute("SELECT id, state FROM notification").fetchall())
    assert states == {mine: "pending", theirs: "failed"}
