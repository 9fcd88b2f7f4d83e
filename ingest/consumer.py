"""One MQTT consumer for everything that listens to the devices: ingest and the rules.

The broker keeps a persistent MQTT 5 session for each consumer and splits the
stream across the processes of one shared-subscription group. Nothing is lost
and nothing is doubled because a message is acknowledged (QoS 1, manual ack)
only after what it caused is committed, and every write is idempotent:

- the paho network thread only appends each message to a pending list (and
  sends acknowledgements that are due: a paho call from another thread would
  wake its loop once per message);
- a decoder thread takes the list every ``flush_interval_s`` (or sooner at
  ``max_batch``) and decodes it with :mod:`ingest.decode`, every message in
  its own guard, so that a bug dead-letters one message instead of the stream;
- a committer thread hands each decoded flush to the subclass (:meth:`stage`
  once, then :meth:`commit`, retried with back-off while the database is
  down), then queues the flush's acknowledgements. Between flushes it runs
  :meth:`idle`, where the rules let the clock speak.

An acknowledgement carries the connection's generation: after a reconnect the
broker redelivers what was not acknowledged, and an old packet id may name
another message on the new connection. Unknown devices are looked up in the
database (the twin may have learnt of them since start). A consumer of one
community subscribes to that community's topics only.

Subclasses: :class:`ingest.service.IngestService` (rows into TimescaleDB) and
:class:`ingest.rules.RulesService` (the rule engine).
"""

from __future__ import annotations

import collections
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar, TypeVar

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest import contract
from ingest.broker import BrokerAddress, Received, make_client, session_properties
from ingest.decode import Decoded, decode
from ingest.directory import DeviceDirectory
from ingest.health import database_reachable
from ingest.metrics import ConsumerMetrics
from ingest.writer import write_dead_letters
from twin.errors import TwinError, UnreachableError
from twin.store.connection import connect

log = logging.getLogger("twin.consumer")
#: After this long without a new message, committed messages are acknowledged
#: by the decoder thread instead of waiting for the network thread.
_QUIET_ACK_S = 0.05
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, UnreachableError)
T = TypeVar("T")

#: A dead letter as the writer stores it: (received_at, topic, payload, reason, detail, item).
DeadLetter = tuple[datetime, str, bytes, str, str, int | None]


@dataclass(frozen=True, slots=True)
class ConsumerOptions:
    group: str
    #: Keep it stable across restarts: the broker keeps our session under it.
    client_id: str
    #: Only this community's devices (its own topics); None: every community.
    community_id: str | None = None
    max_batch: int = 5000
    flush_interval_s: float = 0.1
    receive_maximum: int = 20000
    metrics_port: int | None = None


class Consumer:
    """The shared lifecycle; subclasses say what a flush means (:meth:`commit`)."""

    #: Names the service in logs and errors ("ingest", "rules").
    service: ClassVar[str]
    #: Which device-to-twin kinds it listens to.
    kinds: ClassVar[tuple[str, ...]] = contract.DEVICE_TO_TWIN
    #: Whether it asks the directory which devices joined the twin since start.
    tracks_new_devices: ClassVar[bool] = False

    def __init__(self, database_url: str, mqtt_url: str, options: ConsumerOptions,
                 metrics: ConsumerMetrics) -> None:
        self.database_url = database_url
        self.address = BrokerAddress.parse(mqtt_url)
        self.options = options
        self.metrics = metrics
        self.metrics_port: int | None = None
        self._health_server: ThreadingHTTPServer | None = None
        self.log = logging.getLogger(f"twin.{self.service}")
        self.directory = DeviceDirectory(self._lookup_db, community_id=options.community_id,
                                         track_discovered=self.tracks_new_devices)
        self._commit_conn: psycopg.Connection | None = None
        self._lookup_conn: psycopg.Connection | None = None
        self._decoded: queue.Queue[tuple[list[Received], Any] | None] = queue.Queue(maxsize=2)
        self._pending: list[Received] = []
        self._lock = threading.Lock()
        self._ack_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._generation = 0
        # (committed at, items) whose acknowledgements are due; see _send_acks
        self._ready: collections.deque[tuple[float, list[Received]]] = collections.deque()
        self._connected = threading.Event()
        self._client = make_client(self.address, options.client_id, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._decoder = threading.Thread(target=self._decode_loop,
                                         name=f"{self.service}-decode", daemon=True)
        self._committer = threading.Thread(target=self._commit_loop,
                                           name=f"{self.service}-commit", daemon=True)

    # --- what a subclass says ------------------------------------------------------------
    def prepare(self) -> None:
        """Before connecting: load what the service needs (committer's connection)."""

    def connected_first(self) -> None:
        """Once connected, before the first flush (the rules publish what a crash left)."""

    def stage(self, batch: list[Received], rows: Any) -> Any:
        """Turn a decoded flush into what :meth:`commit` writes; runs once per flush.

        No database work here that must be retried: :meth:`commit` is retried, this is not.
        """
        return rows

    def commit(self, batch: list[Received], staged: Any) -> None:
        """Write a flush in one transaction (``self.db()``); raise on a database error."""
        raise NotImplementedError

    def idle(self) -> None:
        """Between flushes, at least every ``flush_interval_s``, on the committer thread."""

    # --- lifecycle -----------------------------------------------------------------------
    def start(self, *, wait_connected_s: float = 10.0) -> None:
        devices = self.directory.load()
        self.log.info("%s knows %d devices%s", self.service, devices,
                      f" of {self.options.community_id}" if self.options.community_id else "")
        self.retrying(self.prepare, 0)
        if self.options.metrics_port is not None:
            self._health_server = self.metrics.serve(self.options.metrics_port, self.health)
            self.metrics_port = int(self._health_server.server_port)
            self.log.info("%s: /metrics and /healthz on port %d", self.service,
                          self.metrics_port, extra={"service": self.service,
                                                    "port": self.metrics_port})
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=30,
                                 clean_start=False,
                                 properties=session_properties(
                                     receive_maximum=self.options.receive_maximum))
        except OSError as e:
            raise TwinError(f"cannot reach the MQTT broker at {self.address.host}:"
                            f"{self.address.port}: {e.strerror or e}") from e
        self._client.loop_start()
        if not self._connected.wait(wait_connected_s):
            self._client.loop_stop()
            self._close_connections()
            raise TwinError(f"the MQTT broker at {self.address.host}:{self.address.port} "
                            f"did not accept the {self.service} service's connection "
                            "(check credentials and ACLs)")
        self.retrying(self.connected_first, 0)
        self._decoder.start()
        self._committer.start()

    def stop(self) -> None:
        """Commit and acknowledge what has arrived, then leave (the session stays)."""
        self._stopping.set()
        self._wake.set()
        for thread in (self._decoder, self._committer):
            if thread.is_alive():
                thread.join()
        self._send_acks()  # queued before DISCONNECT, so written before it
        self._client.disconnect()
        self._client.loop_stop()
        self._close_connections()
        if self._health_server is not None:
            self._health_server.shutdown()
            self._health_server.server_close()

    def health(self) -> dict[str, bool | None]:
        """For /healthz: a fresh connection reaches the database, and the broker session is
        up (paho reconnects by itself; until then this says down)."""
        return {"database": database_reachable(self.database_url),
                "broker": self.connected}

    def run_forever(self) -> None:
        """Run until SIGINT or SIGTERM."""
        done = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: done.set())
        self.start()
        done.wait()
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def running(self) -> bool:
        return self._committer.is_alive()

    @property
    def client(self) -> mqtt.Client:
        return self._client

    # --- paho callbacks (network thread): keep them short ----------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                    properties: Any) -> None:
        if reason_code.is_failure:
            self.log.error("broker refused %s: %s", self.service, reason_code)
            return
        with self._lock:
            self._generation += 1
        # Retain handling 2: no retained messages at subscribe. The spec keeps
        # them from shared subscriptions, but Mosquitto 2.0 sends them, which
        # would replay one status per device to every member on every reconnect.
        client.subscribe([(t, SubscribeOptions(qos=1, retainHandling=2))
                          for t in contract.subscriptions(self.options.group, self.kinds,
                                                          self.options.community_id)])
        self._connected.set()
        self.metrics.broker_up.set(1)
        self.log.info("%s connected to %s:%d (session present: %s)", self.service,
                      self.address.host, self.address.port, flags.session_present)

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any,
                       properties: Any) -> None:
        self._connected.clear()
        self.metrics.broker_up.set(0)
        if not self._stopping.is_set():
            self.log.warning("%s lost the broker (%s); reconnecting", self.service, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._ready:
            self._send_acks()
        with self._lock:
            self._pending.append(Received.of(msg, self._generation))
            n = len(self._pending)
        if n >= self.options.max_batch:
            self._wake.set()

    # --- decoder thread --------------------------------------------------------------------
    def _decode_loop(self) -> None:
        while True:
            self._wake.wait(self.options.flush_interval_s)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
            if self._ready and time.time() - self._ready[0][0] > _QUIET_ACK_S:
                self._send_acks()  # the stream went quiet: nobody else will send them
            if batch:
                self.metrics.received.inc(len(batch))
                self.metrics.pending.inc(len(batch))
                rows = self.retrying(partial(self.decode_batch, batch), len(batch),
                                     "_lookup_conn")
                if rows is None:  # stopping with the database down: the broker redelivers
                    self.metrics.pending.dec(len(batch))
                    continue
                self._decoded.put((batch, rows))
            elif self._stopping.is_set():
                self._decoded.put(None)
                return

    def decode_batch(self, batch: list[Received]) -> Any:
        """A flush as :meth:`stage` takes it: by default all messages in one :class:`Decoded`."""
        rows = Decoded()
        for item in batch:
            self.decode_one(item, rows)
        return rows

    def decode_one(self, item: Received, into: Decoded) -> None:
        """Decode one message into ``into``; a bug becomes its dead letter, never an error."""
        received = datetime.fromtimestamp(item.received, UTC)
        try:
            decode(item.topic, item.payload, received, self.directory, into)
        except DB_ERRORS:
            raise
        except Exception as e:  # a bug must not make one message poison the stream
            self.log.exception("%s could not decode a message on %s", self.service, item.topic,
                               extra={"topic": item.topic, "mqtt_mid": item.mid,
                                      "service": self.service})
            into.dead.append((received, item.topic, item.payload, "internal_error",
                              repr(e)[:500], None))

    # --- committer thread ------------------------------------------------------------------
    def _commit_loop(self) -> None:
        while True:
            try:
                job = self._decoded.get(timeout=self.options.flush_interval_s)
            except queue.Empty:
                job = ()  # type: ignore[assignment]
            if job is None:
                return
            if job:
                self._flush(*job)
            self._guarded(lambda: self.retrying(self.idle, 0), "idle work")

    def _flush(self, batch: list[Received], rows: Any) -> None:
        began = time.perf_counter()
        n = len(batch)
        staged = self._guarded(lambda: self.stage(batch, rows), "staging a flush")
        done: object = _FAILED
        if staged is not _FAILED:
            done = self._guarded(lambda: self.retrying(lambda: self._commit(batch, staged), n),
                                 "committing a flush")
        if done is _FAILED:
            # A bug outside the per-message guards: the flush becomes dead letters,
            # so the stream goes on and nothing is silently dropped.
            failed: list[DeadLetter] = [
                (datetime.fromtimestamp(i.received, UTC), i.topic, i.payload, "internal_error",
                 f"{self.service} could not handle the flush (logged)", None) for i in batch]
            done = self.retrying(lambda: self._write_dead(failed), n)
        self.metrics.pending.dec(n)
        if done is None:
            return  # stopping with the database down: the broker redelivers
        self._ready.append((time.time(), batch))
        self.metrics.flush_seconds.observe(time.perf_counter() - began)
        self.metrics.batch_size.observe(n)

    def _commit(self, batch: list[Received], staged: Any) -> bool:
        self.commit(batch, staged)
        return True

    def _write_dead(self, dead: list[DeadLetter]) -> bool:
        conn = self.db()
        with conn.transaction():
            self.store_dead(conn, dead)
        return True

    def store_dead(self, conn: psycopg.Connection, dead: list[DeadLetter]) -> None:
        """Dead letters under this consumer's name, in the caller's transaction; counted."""
        for reason, n in write_dead_letters(conn, dead, consumer=self.service).items():
            self.metrics.rejected.labels(reason).inc(n)

    def _guarded(self, work: Callable[[], T], what: str) -> T | object:
        try:
            return work()
        except Exception:
            self.log.exception("%s: a bug in %s; going on", self.service, what)
            return _FAILED

    def retrying(self, work: Callable[[], T], waiting: int,
                 connection: str = "_commit_conn") -> T | None:
        """Run ``work`` until the database answers; None if we are stopping meanwhile.

        On failure only this thread's own connection (attribute ``connection``) is
        dropped: the other thread may be using its own at that moment.
        """
        backoff = 0.2
        while True:
            try:
                result = work()
                self.metrics.database_up.set(1)
                return result
            except DB_ERRORS as e:
                self.metrics.database_up.set(0)
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                self.log.warning("%s: database unavailable (%s); %d messages wait "
                                 "unacknowledged", self.service, first, waiting)
                self._drop_connection(connection)
                if self._stopping.is_set() and backoff > 1:
                    return None
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _send_acks(self) -> None:
        """Acknowledge committed messages (from the network thread when it can)."""
        with self._ack_lock:
            with self._lock:
                generation = self._generation
            while self._ready:
                _, batch = self._ready.popleft()
                for item in batch:
                    # A message from before a reconnect is redelivered by the broker
                    # (and handled again as a no-op); its old id may now name another.
                    if item.qos > 0 and item.generation == generation:
                        self._client.ack(item.mid, item.qos)

    # --- connections: one per thread (psycopg connections are not shared) -------------------
    def db(self) -> psycopg.Connection:
        """The committer thread's connection (autocommit: each transaction is explicit)."""
        if self._commit_conn is None or self._commit_conn.closed:
            self._commit_conn = connect(self.database_url, autocommit=True)
            self.connection_opened(self._commit_conn)
        return self._commit_conn

    def connection_opened(self, conn: psycopg.Connection) -> None:
        """A new committer connection (ingest creates its staging tables here)."""

    def _lookup_db(self) -> psycopg.Connection:
        """The directory's own connection, used from the decoder thread."""
        if self._lookup_conn is None or self._lookup_conn.closed:
            self._lookup_conn = connect(self.database_url, autocommit=True)
        return self._lookup_conn

    def _drop_connection(self, name: str) -> None:
        conn = getattr(self, name)
        setattr(self, name, None)
        if conn is not None:
            conn.close()

    def _close_connections(self) -> None:
        for name in ("_commit_conn", "_lookup_conn"):
            self._drop_connection(name)


_FAILED = object()


def open_session(mqtt_url: str, options: ConsumerOptions,
                 kinds: tuple[str, ...] = contract.DEVICE_TO_TWIN, *, timeout_s: float = 10.0
                 ) -> None:
    """Create a consumer's persistent session and subscriptions before it first runs.

    From then on the broker queues what devices send for it, so a stack whose
    publishers start at the same moment as its consumers (`twin demo`) loses
    nothing to the race.
    """
    address = BrokerAddress.parse(mqtt_url)
    client = make_client(address, options.client_id)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(
        [(t, SubscribeOptions(qos=1, retainHandling=2))
         for t in contract.subscriptions(options.group, kinds, options.community_id)])
    try:
        client.connect(address.host, address.port, clean_start=False,
                       properties=session_properties(receive_maximum=options.receive_maximum))
    except OSError as e:
        raise TwinError(f"cannot reach the MQTT broker at {address.host}:{address.port}: "
                        f"{e.strerror or e}") from e
    client.loop_start()
    try:
        if not subscribed.wait(timeout_s):
            raise TwinError(f"the broker did not accept the subscriptions of {options.client_id}")
    finally:
        client.disconnect()
        client.loop_stop()
