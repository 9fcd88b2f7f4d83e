"""`twin ingest`: MQTT in, TimescaleDB out, nothing lost and nothing doubled.

The paho network thread only appends each message to a pending list. A
decoder thread takes the list every ``flush_interval_s`` (or sooner when it
reaches ``max_batch``) and decodes it; a writer thread writes each decoded
flush in one transaction and only then acknowledges its messages (QoS 1,
manual ack). The two overlap: while PostgreSQL commits one flush (and the
GIL is free), the next is decoded. Acknowledgements are sent by the network
thread itself, as it reads the next messages (a paho call from another thread
would wake its loop once per message); when the stream goes quiet, the
decoder thread sends what is left. If the database is down,
the flush is retried with back-off and nothing is acknowledged; the broker
stops sending once our receive window is full and redelivers whatever was not
acknowledged if we die. Writes are idempotent, so redelivery adds nothing.
"""

from __future__ import annotations

import collections
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest import contract
from ingest.broker import BrokerAddress, Received, make_client, session_properties
from ingest.decode import Decoded, decode
from ingest.directory import DeviceDirectory
from ingest.metrics import IngestMetrics
from ingest.writer import Written, prepare, write
from twin.errors import TwinError, UnreachableError
from twin.store.connection import connect

log = logging.getLogger("twin.ingest")
#: After this long without a new message, committed messages are acknowledged
#: by the decoder thread instead of waiting for the network thread.
_QUIET_ACK_S = 0.05
_DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, UnreachableError)


@dataclass(frozen=True, slots=True)
class IngestOptions:
    group: str = "twin-ingest"
    #: Keep it stable across restarts: the broker keeps our session under it.
    client_id: str = "twin-ingest-1"
    max_batch: int = 5000
    flush_interval_s: float = 0.1
    receive_maximum: int = 20000
    metrics_port: int | None = None


class IngestService:
    def __init__(self, database_url: str, mqtt_url: str,
                 options: IngestOptions = IngestOptions()) -> None:
        self.database_url = database_url
        self.address = BrokerAddress.parse(mqtt_url)
        self.options = options
        self.metrics = IngestMetrics()
        self.metrics_port: int | None = None
        self._write_conn: psycopg.Connection | None = None
        self._lookup_conn: psycopg.Connection | None = None
        self._directory = DeviceDirectory(self._lookup_db)
        self._decoded: queue.Queue[tuple[list[Received], Decoded] | None] = queue.Queue(maxsize=2)
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
        self._decoder = threading.Thread(target=self._decode_loop, name="ingest-decode",
                                         daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="ingest-write",
                                        daemon=True)

    # --- lifecycle -----------------------------------------------------------------
    def start(self, *, wait_connected_s: float = 10.0) -> None:
        devices = self._directory.load()
        log.info("ingest knows %d devices", devices)
        if self.options.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.options.metrics_port)
        self._decoder.start()
        self._writer.start()
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
            self.stop()
            raise TwinError(f"the MQTT broker at {self.address.host}:{self.address.port} "
                            "did not accept ingest's connection (check credentials and ACLs)")

    def stop(self) -> None:
        """Commit and acknowledge what has arrived, then leave (the session stays)."""
        self._stopping.set()
        self._wake.set()
        for thread in (self._decoder, self._writer):
            if thread.is_alive():
                thread.join()
        self._send_acks()  # queued before DISCONNECT, so written before it
        self._client.disconnect()
        self._client.loop_stop()
        for conn in (self._write_conn, self._lookup_conn):
            if conn is not None:
                conn.close()

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

    # --- paho callbacks (network thread): keep them short ------------------------------
    def _on_connect(self, client: mqtt.Client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused ingest: %s", reason_code)
            return
        with self._lock:
            self._generation += 1
        # Retain handling 2: no retained messages at subscribe. The spec keeps
        # them from shared subscriptions, but Mosquitto 2.0 sends them, which
        # would replay one status per device to every member on every reconnect.
        client.subscribe([(t, SubscribeOptions(qos=1, retainHandling=2))
                          for t in contract.subscriptions(self.options.group)])
        self._connected.set()
        log.info("connected to %s:%d (session present: %s)", self.address.host,
                 self.address.port, flags.session_present)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            log.warning("lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self._ready:
            self._send_acks()
        with self._lock:
            self._pending.append(Received.of(msg, self._generation))
            n = len(self._pending)
        if n >= self.options.max_batch:
            self._wake.set()

    # --- decoder and writer threads -----------------------------------------------------
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
                rows = self._retrying(lambda: self._decode(batch), len(batch), "_lookup_conn")
                if rows is None:  # stopping with the database down: the broker redelivers
                    self.metrics.pending.dec(len(batch))
                    continue
                self._decoded.put((batch, rows))
            elif self._stopping.is_set():
                self._decoded.put(None)
                return

    def _write_loop(self) -> None:
        while (job := self._decoded.get()) is not None:
            batch, rows = job
            began = time.perf_counter()
            written = self._retrying(lambda: write(self._write_db(), rows), len(batch),
                                     "_write_conn")
            self.metrics.pending.dec(len(batch))
            if written is None:
                continue
            committed = datetime.now(timezone.utc)
            self._ack(batch)
            self._record(batch, rows, written, committed, time.perf_counter() - began)

    def _retrying(self, work, waiting: int, connection: str):  # -> work's result, or None
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
            except _DB_ERRORS as e:
                self.metrics.database_up.set(0)
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                log.warning("database unavailable (%s); %d messages wait unacknowledged",
                            first, waiting)
                self._drop_connection(connection)
                if self._stopping.is_set() and backoff > 1:
                    return None
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    def _record(self, batch: list[Received], rows: Decoded, written: Written,
                committed: datetime, seconds: float) -> None:
        self.metrics.flush_seconds.observe(seconds)
        self.metrics.batch_size.observe(len(batch))
        for table, added, offered in (("reading", written.readings, len(rows.readings)),
                                      ("event", written.events, len(rows.events))):
            self.metrics.written.labels(table).inc(added)
            self.metrics.duplicates.labels(table).inc(offered - added)
        self.metrics.written.labels("device_state").inc(written.states)
        self.metrics.written.labels("device_command").inc(written.acks)
        for reason, n in written.dead.items():
            self.metrics.rejected.labels(reason).inc(n)
        for ts in rows.device_times:
            self.metrics.lag.observe(max(0.0, (committed - ts).total_seconds()))

    def _decode(self, batch: list[Received]) -> Decoded:
        rows = Decoded()
        for item in batch:
            received = datetime.fromtimestamp(item.received, timezone.utc)
            try:
                decode(item.topic, item.payload, received, self._directory, rows)
            except _DB_ERRORS:
                raise
            except Exception as e:  # a bug must not make one message poison the stream
                log.exception("could not decode a message on %s", item.topic)
                rows.dead.append((received, item.topic, item.payload, "internal_error",
                                  repr(e)[:500], None))
        return rows

    def _ack(self, batch: list[Received]) -> None:
        """Hand committed messages over for acknowledgement."""
        self._ready.append((time.time(), batch))

    def _send_acks(self) -> None:
        """Acknowledge committed messages (from the network thread when it can)."""
        with self._ack_lock:
            with self._lock:
                generation = self._generation
            while self._ready:
                _, batch = self._ready.popleft()
                for item in batch:
                    # A message from before a reconnect is redelivered by the broker
                    # (and written again as a no-op); its old id may now name another.
                    if item.qos > 0 and item.generation == generation:
                        self._client.ack(item.mid, item.qos)

    def _write_db(self) -> psycopg.Connection:
        if self._write_conn is None or self._write_conn.closed:
            # Autocommit, so that each write's `with conn.transaction()` is a real
            # BEGIN ... COMMIT.
            self._write_conn = connect(self.database_url, autocommit=True)
            prepare(self._write_conn)
        return self._write_conn

    def _lookup_db(self) -> psycopg.Connection:
        """The directory's own connection: psycopg connections are not shared by threads."""
        if self._lookup_conn is None or self._lookup_conn.closed:
            self._lookup_conn = connect(self.database_url, autocommit=True)
        return self._lookup_conn

    def _drop_connection(self, name: str) -> None:
        conn = getattr(self, name)
        setattr(self, name, None)
        if conn is not None:
            conn.close()
