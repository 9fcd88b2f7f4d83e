"""`twin notify run`: the delivery worker, with the MQTT transport for speakers and screens.

The worker itself and the e-mail and webhook transports are in `twin/notify/`;
what is here needs the broker: a ``broadcast`` command with the text on each
device's ``cmd`` topic (docs/mqtt.md), QoS 1, recorded in ``device_command``
first so that the device's ack is matched (ingest dead-letters an ack for a
command the twin never sent).
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

import paho.mqtt.client as mqtt
import psycopg
import typer
from prometheus_client import CollectorRegistry, Counter, Histogram
from psycopg.types.json import Jsonb

from ingest import contract, health
from ingest.broker import (
    NO_MATCHING_SUBSCRIBERS,
    BrokerAddress,
    make_client,
    with_service_credentials,
)
from twin.config import load_settings
from twin.console import console
from twin.errors import TwinError, UnreachableError
from twin.notify import outbox
from twin.notify.config import MqttSettings, NotifyConfig, NotifyConfigError, load_config
from twin.notify.inbox import InboxTransport
from twin.notify.routing import Delivery
from twin.notify.smtp import SmtpTransport
from twin.notify.transport import DeliveryError, Transport
from twin.notify.webhook import WebhookTransport
from twin.notify.worker import Tally, Worker, utc_now
from twin.services import stack
from twin.services.broker_accounts import RULES
from twin.store import migrations
from twin.store.connection import connect

log = logging.getLogger(__name__)

#: Who the twin says sent a command (device_command.issued_by).
ISSUED_BY = "notify"

notify_app = typer.Typer(help="Deliver notifications: e-mail, signed webhooks, MQTT devices.",
                         no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")


class MqttTransport:
    """A ``broadcast`` command to each device of the delivery, acknowledged by the broker.

    A speaker the rules' own ``broadcast`` action already commanded with this
    text for this firing (same rule, time and text in device_command) is not
    told twice. The command id is the same on every retry, so a device that
    got it before the worker could record it can drop the repeat.
    """

    def __init__(self, settings: MqttSettings, client: mqtt.Client, conn: psycopg.Connection,
                 *, clock: Any = utc_now) -> None:
        self.settings = settings
        self.client = client
        self.conn = conn
        self.clock = clock
        self._pubacks = _Pubacks.of(client)

    def send(self, delivery: Delivery) -> None:
        commands = self._record(delivery)
        if not commands:
            return  # every device was already told by the rule's own broadcast
        if not self.client.is_connected():
            raise DeliveryError("MQTT broker not connected")
        infos = []
        for command_id, device_id, community_id, issued_at in commands:
            infos.append(self.client.publish(*contract.command_message(
                community_id, device_id, command_id, issued_at, "broadcast",
                {"text": delivery.text}), qos=1))
        deadline = time.monotonic() + self.settings.timeout_s
        unheard = 0
        for info in infos:
            try:
                info.wait_for_publish(timeout=max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                raise DeliveryError("MQTT connection lost while publishing") from None
            if not info.is_published():
                raise DeliveryError(f"no PUBACK within {self.settings.timeout_s:g} s")
            unheard += self._pubacks.unmatched(info.mid)
        if unheard:
            raise DeliveryError(f"{unheard} of {len(infos)} devices not subscribed to their "
                                f"cmd topic (offline)")

    def close(self) -> None:
        """The client belongs to the command that made it."""

    def _record(self, d: Delivery) -> list[tuple[str, str, str, datetime]]:
        """The commands to publish: device_command rows, one per device, made once."""
        ids = {dev: f"ntf-{d.notification_id}-{hashlib.sha1(dev.encode()).hexdigest()[:10]}"
               for dev in d.to}
        with self.conn.transaction():
            known = self.conn.execute(
                """SELECT d.id, d.community_id FROM device d
                   WHERE d.id = ANY(%(ids)s) AND NOT EXISTS (
                       SELECT 1 FROM device_command c
                       WHERE c.device_id = d.id AND c.command = 'broadcast'
                         AND c.issued_by = 'rule:' || %(rule)s::text
                         AND c.sent_at = %(at)s AND c.args->>'text' = %(text)s)""",
                {"ids": sorted(ids), "rule": d.rule_id, "at": d.time, "text": d.text},
            ).fetchall()
            if not known and not self._any_device(sorted(ids)):
                raise DeliveryError(f"none of the {len(ids)} devices is known to the twin",
                                    permanent=True)
            now = self.clock()
            for device_id, _ in known:
                self.conn.execute(
                    """INSERT INTO device_command (id, device_id, command, args, issued_by,
                                                   sent_at)
                       VALUES (%s, %s, 'broadcast', %s, %s, %s) ON CONFLICT (id) DO NOTHING""",
                    (ids[device_id], device_id, Jsonb({"text": d.text}), ISSUED_BY, now))
            sent: dict[str, datetime] = dict(self.conn.execute(
                "SELECT id, sent_at FROM device_command WHERE id = ANY(%s)",
                ([ids[dev] for dev, _ in known],)).fetchall())
        return [(ids[dev], dev, community, sent[ids[dev]]) for dev, community in sorted(known)]

    def _any_device(self, ids: list[str]) -> bool:
        row = self.conn.execute("SELECT count(*) FROM device WHERE id = ANY(%s)",
                                (ids,)).fetchone()
        return bool(row and row[0])



class _Pubacks:
    """The PUBACKs of one client that said "no matching subscribers" (shared by its transports)."""

    def __init__(self) -> None:
        self._refused: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def of(cls, client: mqtt.Client) -> _Pubacks:
        watch = _WATCHES.get(client)
        if watch is None:
            watch = _WATCHES[client] = cls()
            client.on_publish = watch._on_publish
        return watch

    def unmatched(self, mid: int) -> bool:
        """Whether the message ``mid`` (acknowledged) reached no subscriber; forgets it."""
        with self._lock:
            if mid in self._refused:
                self._refused.discard(mid)
                return True
            return False

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any,
                    properties: Any) -> None:
        if reason_code == NO_MATCHING_SUBSCRIBERS:
            with self._lock:
                self._refused.add(mid)


_WATCHES: weakref.WeakKeyDictionary[mqtt.Client, _Pubacks] = weakref.WeakKeyDictionary()


@dataclass
class NotifyMetrics:
    """``twin_notify_…`` at /metrics: tries by transport and outcome, notifications finished."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.tries = Histogram("twin_notify_try_seconds", "One transport's try, by outcome",
                               ["transport", "ok"], registry=r)
        self.finished = Counter("twin_notify_notifications", "Notifications by outcome of a "
                                "round (delivered, retrying, failed, lost)", ["outcome"],
                                registry=r)

    def attempt(self, transport: str, ok: bool, seconds: float) -> None:
        self.tries.labels(transport, "true" if ok else "false").observe(seconds)

    def round(self, tally: Tally) -> None:
        for outcome in ("delivered", "retrying", "failed", "lost"):
            if n := getattr(tally, outcome):
                self.finished.labels(outcome).inc(n)

    def serve(self, port: int, checks: health.Checks, host: str | None = None
              ) -> ThreadingHTTPServer:
        """Serve /metrics and /healthz on ``port`` (0 picks a free one)."""
        return health.serve(self.registry, checks, port, host)


def build_transports(config: NotifyConfig, *, origin: str, conn: psycopg.Connection,
                     mqtt_client: mqtt.Client | None,
                     environ: Mapping[str, str] | None = None) -> dict[str, Transport]:
    """One transport per configured name; secrets from the environment variables named."""
    env = os.environ if environ is None else environ

    def secret(name: str, key: str) -> str:
        value = env.get(name)
        if not value:
            raise NotifyConfigError(f"{origin}: key 'transports.{key}': the environment "
                                    f"variable {name} is not set")
        return value

    built: dict[str, Transport] = {}
    for name, settings in config.transports.items():
        if settings.kind == "smtp":
            password = secret(settings.password_env, f"{name}.password_env") \
                if settings.password_env else None
            built[name] = SmtpTransport(settings, password)
        elif settings.kind == "inbox":
            built[name] = InboxTransport(conn)
        elif settings.kind == "webhook":
            built[name] = WebhookTransport(
                settings, secret(settings.secret_env, f"{name}.secret_env").encode())
        else:
            if mqtt_client is None:
                raise TwinError(f"{origin}: transport {name!r} needs the MQTT broker")
            built[name] = MqttTransport(settings, mqtt_client, conn)
    return built


def connect_broker(url: str, client_id: str, *, timeout_s: float = 10.0) -> mqtt.Client:
    """A started paho client, connected (it reconnects by itself afterwards)."""
    address = BrokerAddress.parse(url)
    client = make_client(address, client_id)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
    client.connect_async(address.host, address.port, clean_start=True)
    client.loop_start()
    if not connected.wait(timeout_s):
        client.loop_stop()
        raise TwinError(f"cannot connect to the MQTT broker at {address.host}:{address.port}")
    return client


@notify_app.command("run")
def run_command(
    config: Annotated[Path, typer.Option(help="The delivery configuration (YAML); see "
                                              "docs/notifications.md.")],
    once: Annotated[bool, typer.Option(help="One round, then exit.")] = False,
    batch: Annotated[int, typer.Option(min=1, max=10_000,
                                       help="Notifications claimed per round.")] = 50,
    interval: Annotated[float, typer.Option(min=0.05, help="Seconds between rounds when "
                                                           "nothing is due.")] = 2.0,
    client_id: Annotated[str, typer.Option(help="MQTT client id; one per process.")]
    = "twin-notify-1",
    metrics_port: Annotated[int | None, typer.Option(
        envvar="TWIN_NOTIFY_METRICS_PORT",
        help="Serve Prometheus /metrics and /healthz here (0: a free port); default: "
             "none.")] = None,
) -> None:
    """Deliver due notifications until interrupted (or one round with --once).

    SIGTERM or Ctrl-C lets the round in progress finish. A lost database
    connection is opened again after ``--interval``: what was claimed and not
    finished is retried when its lease runs out.
    """
    _log_to_console()
    cfg = load_config(config)
    settings = load_settings()
    url = stack.database_url(settings)
    with connect(url) as conn:
        migrations.require_current(conn)
    client = None
    if any(t.kind == "mqtt" for t in cfg.transports.values()):
        # the rules' service account: it may already write every device's cmd topic
        client = connect_broker(with_service_credentials(stack.mqtt_url(settings), RULES),
                                client_id)
    metrics = NotifyMetrics()
    if metrics_port is not None:
        mqtt_client = client

        def checks() -> dict[str, bool | None]:
            return {"database": health.database_reachable(url),
                    "broker": None if mqtt_client is None else mqtt_client.is_connected()}

        port = metrics.serve(metrics_port, checks).server_port
        log.info("/metrics and /healthz on port %d", port, extra={"service": "notify",
                                                                  "port": port})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.is_set():
            try:
                with connect(url, autocommit=True) as conn:
                    worker = Worker(conn, cfg, build_transports(
                        cfg, origin=str(config), conn=conn, mqtt_client=client),
                        on_attempt=metrics.attempt)
                    if once:
                        tally = worker.run_once(batch=batch)
                        console.print(f"claimed {tally.claimed}: delivered {tally.delivered}, "
                                      f"retrying {tally.retrying}, failed {tally.failed}")
                        return
                    worker.run_forever(batch=batch, interval_s=interval, stop=stop,
                                       on_round=metrics.round)
            except (psycopg.OperationalError, UnreachableError) as e:
                if once:
                    raise
                log.warning("database connection lost (%s); again in %g s",
                            type(e).__name__, interval)
                stop.wait(max(interval, 1.0))
    finally:
        if client is not None:
            client.disconnect()
            client.loop_stop()


@notify_app.command("status")
def status_command(
    community: Annotated[str | None, typer.Option(help="Only this community.")] = None,
    failed: Annotated[int, typer.Option(help="List this many of the latest failed.")] = 20,
) -> None:
    """How many notifications are pending, delivered and failed, and why the latest failed."""
    settings = load_settings()
    with connect(stack.database_url(settings)) as conn:
        counts = outbox.counts(conn, community)
        console.print("  ".join(f"{state} {n}" for state, n in counts.items()))
        for f in outbox.failed(conn, community_id=community, limit=failed):
            console.print(f"#{f.id} {f.community_id} {f.channel} {f.time:%Y-%m-%d %H:%M} "
                          f"after {f.attempts}: {f.error}")


@notify_app.command("retry")
def retry_command(
    ids: Annotated[list[int], typer.Argument(help="Ids of failed notifications.")],
    community: Annotated[str | None, typer.Option(
        help="Only this community's (ids of another community are left alone).")] = None,
) -> None:
    """Give failed notifications a new round of tries (after the gateway is fixed)."""
    settings = load_settings()
    with connect(stack.database_url(settings), autocommit=True) as conn:
        n = outbox.requeue_failed(conn, ids, now=utc_now(), community_id=community)
    console.print(f"{n} notification(s) pending again")


def _log_to_console() -> None:
    from twin import logs

    logs.configure()
