"""`twin rules run`: the rule engine as its own process beside ingest.

It holds its own shared subscription (group ``twin-rules``) to what devices
send, so the broker gives it every message once, independently of ingest; a
persistent MQTT 5 session keeps what arrives while it is down. The paho
network thread only queues messages. One worker thread does the rest, in
order: decode a batch with ingest's own decoder (so the rules see exactly
what ingest accepts), evaluate it, and in one transaction write the alarms,
notifications, work orders (dispatched to the nearest staff), queued device
commands, rule state and counters; then acknowledge the messages and publish
the commands. Every ``tick_s`` the same thread lets the clock speak (durations
reached, silences, absences) and escalates alarms and work orders; every
``reload_s`` it checks whether `twin rules load` stored a new rule set.

The clock is injected: tests move it by hours without sleeping.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest import contract
from ingest.broker import BrokerAddress, Received, make_client, session_properties
from ingest.decode import Decoded, DeviceInfo, decode
from twin.errors import TwinError, UnreachableError
from twin.rules import store
from twin.rules.engine import Engine, Observation
from twin.store.connection import connect

log = logging.getLogger("twin.rules")
_DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, UnreachableError)
#: What the rules listen to: everything a device says except command acks.
_KINDS = ("telemetry", "event", "status", "batch")

Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True, slots=True)
class RulesOptions:
    group: str = "twin-rules"
    #: Keep it stable across restarts: the broker keeps our session under it.
    client_id: str = "twin-rules-1"
    community_id: str | None = None
    flush_interval_s: float = 0.05
    max_batch: int = 5000
    tick_s: float = 5.0
    reload_s: float = 1.0
    receive_maximum: int = 20000


class RulesService:
    def __init__(self, database_url: str, mqtt_url: str, options: RulesOptions = RulesOptions(),
                 *, clock: Clock = wall_clock) -> None:
        self.database_url = database_url
        self.address = BrokerAddress.parse(mqtt_url)
        self.options = options
        self.clock = clock
        self.engine: Engine | None = None
        self.revision = -1
        self.dispatcher = store.Dispatcher()
        #: Firings that failed to execute (a bug, not an outage), with the error; logged too.
        self.errors: list[str] = []
        self.processed = 0
        self._conn: psycopg.Connection | None = None
        self._pending: list[Received] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._tick_asked = threading.Event()
        self._tick_done = threading.Condition()
        self._ticks = 0
        self._generation = 0
        self._connected = threading.Event()
        self._client = make_client(self.address, options.client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._worker = threading.Thread(target=self._loop, name="rules-worker", daemon=True)
        self._directory: dict[str, DeviceInfo] = {}

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, *, wait_connected_s: float = 10.0) -> None:
        self._reload(force=True)
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=30,
                                 clean_start=False, properties=session_properties(
                                     receive_maximum=self.options.receive_maximum))
        except OSError as e:
            raise TwinError(f"cannot reach the MQTT broker at {self.address.host}:"
                            f"{self.address.port}: {e.strerror or e}") from e
        self._client.loop_start()
        if not self._connected.wait(wait_connected_s):
            self._client.loop_stop()
            raise TwinError(f"the MQTT broker at {self.address.host}:{self.address.port} "
                            "did not accept the rules service's connection")
        self._publish_pending()  # commands committed before a crash and never sent
        self._last_tick = time.monotonic()
        self._worker.start()

    def stop(self) -> None:
        """Finish the batch in hand, commit, acknowledge, and leave (the session stays)."""
        self._stopping.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join()
        self._client.disconnect()
        self._client.loop_stop()
        if self._conn is not None:
            self._conn.close()

    def run_forever(self) -> None:
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        log.info("rules service running: %d rules", len(self.engine.rules) if self.engine else 0)
        done.wait()
        self.stop()

    def tick_now(self, *, timeout: float = 30.0) -> None:
        """Run one clock tick (and reload check) on the worker and wait for it to commit."""
        with self._tick_done:
            target = self._ticks + 1
            self._tick_asked.set()
            self._wake.set()
            if not self._tick_done.wait_for(lambda: self._ticks >= target, timeout):
                raise TimeoutError("the rules service did not tick")

    # --- paho callbacks (network thread) -----------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the rules service: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
        client.subscribe([(t, SubscribeOptions(qos=1, retainHandling=2))
                          for t in contract.subscriptions(self.options.group, _KINDS)])
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self._pending.append(Received.of(msg, self._generation))
            n = len(self._pending)
        if n >= self.options.max_batch:
            self._wake.set()

    # --- the worker ---------------------------------------------------------------------------
    def _loop(self) -> None:
        last_reload = time.monotonic()
        while True:
            self._wake.wait(self.options.flush_interval_s)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
            if batch:
                if not self._retrying(lambda: self._process(batch)):
                    continue
            now = time.monotonic()
            if self._tick_asked.is_set() or now - last_reload >= self.options.reload_s:
                self._retrying(self._reload)
                last_reload = now
            if self._tick_asked.is_set() or now - self._last_tick >= self.options.tick_s:
                asked = self._tick_asked.is_set()
                self._tick_asked.clear()
                self._retrying(self._tick)
                self._last_tick = now
                if asked:
                    with self._tick_done:
                        self._ticks += 1
                        self._tick_done.notify_all()
            if self._stopping.is_set() and not batch:
                return

    def _process(self, batch: list[Received]) -> None:
        engine = self.engine
        assert engine is not None
        rows = Decoded()
        for item in batch:
            decode(item.topic, item.payload, datetime.fromtimestamp(item.received, timezone.utc),
                   self._directory.get, rows)
        firings = []
        for obs in observations(rows, self._directory):
            firings.extend(engine.observe(obs))
        self._commit(firings)
        self._ack(batch)
        self.processed += len(batch)

    def _tick(self) -> None:
        engine = self.engine
        assert engine is not None
        self._commit(engine.tick(self.clock()), follow_up=True)

    def _commit(self, firings: list, *, follow_up: bool = False) -> None:
        engine = self.engine
        assert engine is not None
        conn = self._db()
        now = self.clock()
        outcome = store.Outcome()
        with conn.transaction():
            for firing in firings:
                try:
                    with conn.transaction():
                        store.execute(conn, firing, now=now, dispatcher=self.dispatcher,
                                      outcome=outcome)
                except _DB_ERRORS:
                    raise
                except Exception as e:  # one bad firing must not poison the stream
                    log.exception("rule %s could not act for %s", firing.rule_id, firing.key)
                    self.errors.append(f"{firing.rule_id} {firing.key}: {e!r}")
            if follow_up:
                communities = sorted({d.community_id for d in engine.snapshot.devices.values()})
                store.follow_up(conn, communities, now=now, dispatcher=self.dispatcher,
                                outcome=outcome)
            store.save_engine(conn, engine, at=now)
        if outcome.outbox:
            self._publish_pending()

    def _reload(self, *, force: bool = False) -> None:
        conn = self._db()
        revision = store.rule_revision(conn)
        if revision == self.revision and not force:
            return
        rules, errors = store.stored_rules(conn)
        for error in errors:
            log.error("stored rule left out: %s", error)
        snapshot = store.load_snapshot(conn, self.options.community_id)
        state = store.load_state(conn, rules)
        old = self.engine
        started = old.started if old is not None else self.clock()
        if old is not None:  # counters not yet saved are kept
            with conn.transaction():
                store.save_engine(conn, old, at=self.clock())
        conn.commit()
        self.engine = Engine(rules, snapshot, state=state, started=started)
        self._directory = {d.id: DeviceInfo(d.type, d.community_id)
                           for d in snapshot.devices.values()}
        self.dispatcher.forget()
        self.revision = revision
        log.info("rule set %d: %d rules enabled of %d", revision, len(self.engine.rules),
                 len(rules))

    def _publish_pending(self) -> None:
        conn = self._db()
        pending = store.pending_commands(conn)
        conn.commit()
        if not pending:
            return
        infos = [(i, self._client.publish(topic, payload, qos=1)) for i, topic, payload in pending]
        done = []
        for outbox_id, info in infos:
            try:
                info.wait_for_publish(timeout=5)
            except (RuntimeError, ValueError):
                continue  # not connected: published again on the next round
            if info.is_published():
                done.append(outbox_id)
        with conn.transaction():
            store.mark_published(conn, done, at=self.clock())

    def _ack(self, batch: list[Received]) -> None:
        with self._lock:
            generation = self._generation
        for item in batch:
            if item.qos > 0 and item.generation == generation:
                self._client.ack(item.mid, item.qos)

    def _retrying(self, work) -> bool:
        backoff = 0.2
        while True:
            try:
                work()
                return True
            except _DB_ERRORS as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                log.warning("database unavailable (%s); messages wait unacknowledged", first)
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if self._stopping.is_set() and backoff > 1:
                    return False
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _db(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self.database_url, autocommit=True)
        return self._conn


def observations(rows: Decoded, directory: dict[str, DeviceInfo]) -> list[Observation]:
    """Decoded rows as observations in time order: one per (device, time) of readings,
    one per event, one per status."""
    out: list[Observation] = []
    grouped: dict[tuple[str, datetime], dict] = {}
    received: dict[tuple[str, datetime], datetime] = {}
    for ts, device_id, metric, value, text, got in rows.readings:
        grouped.setdefault((device_id, ts), {})[metric] = text if value is None else value
        received[device_id, ts] = got
    for (device_id, ts), values in grouped.items():
        out.append(Observation(directory[device_id].community_id, device_id, ts, "telemetry",
                               values, received=received[device_id, ts]))
    for (ts, device_id, _, kind, cls, confidence, _, direction, subject, value, attrs,
         got) in rows.events:
        extra = orjson.loads(attrs) if attrs and attrs != "{}" else {}
        out.append(Observation(directory[device_id].community_id, device_id, ts, "event",
                               {"value": value} if value is not None else {}, event=kind,
                               cls=cls, confidence=confidence, direction=direction,
                               subject=subject, attrs=extra, received=got))
    for device_id, (online, ts) in rows.statuses.items():
        out.append(Observation(directory[device_id].community_id, device_id, ts, "status",
                               {"online": online}))
    out.sort(key=lambda o: o.at)
    return out
