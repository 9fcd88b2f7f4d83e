"""`twin simulate`: a loaded community's devices, live on the broker.

The adapter around :mod:`ingest.simulation`: it reads one community from the
twin's database, runs the simulated clock at ``speed`` times real time and
publishes what the devices say (QoS 1) through one MQTT client, no faster than
``rate`` messages per second. Each device's status (online, retained) goes
out first; devices that a gateway relays are heard through the gateway's
``batch`` messages when ``batch_size`` is above 1.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated

import paho.mqtt.client as mqtt
import pandas as pd
import psycopg
import typer

from ingest.broker import (
    NO_MATCHING_SUBSCRIBERS,
    BrokerAddress,
    make_client,
    with_service_credentials,
)
from ingest.broker_auth import SIMULATOR
from ingest.simulation import INCIDENTS, LOCAL_OFFSET_S, Community, Incident, Simulation
from twin.errors import TwinError
from twin.store import queries
from twin.store.connection import connect

if TYPE_CHECKING:
    from rich.progress import Progress

#: Messages published but not yet acknowledged before the publisher waits for the broker.
MAX_UNACKED = 2000
#: Sends of a message the broker keeps acknowledging with "no matching subscribers".
UNMATCHED_ATTEMPTS = 5
#: How long a "no matching subscribers" waits for a disconnect that explains it.
HOLD_S = 2.0
#: How long the broker may take to acknowledge what was published, at the end of a run.
DRAIN_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """What a run published."""

    community_id: str
    devices: int
    #: Messages published (and acknowledged by the broker), by kind: status, telemetry ...
    published: dict[str, int]
    incidents: tuple[Incident, ...]
    simulated_from: datetime
    simulated_to: datetime
    wall_s: float
    interrupted: bool = False
    #: Accepted by the broker while nothing subscribed (is `twin ingest` running?).
    unmatched: int = 0

    @property
    def total(self) -> int:
        return sum(self.published.values())

    @property
    def rate(self) -> float:
        """Messages per second achieved."""
        return self.total / self.wall_s if self.wall_s > 0 else 0.0


def run_simulation(database_url: str, mqtt_url: str, *, community_id: str | None = None,
                   rate: float = 0.0, duration: float | None = None,
                   messages: int | None = None, batch_size: int = 1,
                   start: datetime | None = None, speed: float = 1.0,
                   inject: list[str] | tuple[str, ...] = (), seed: int = 0,
                   progress: Progress | None = None) -> SimulationReport:
    """Publish a simulated stream of one community's devices to the broker.

    Parameters
    ----------
    database_url
        The twin's database, with the community loaded.
    mqtt_url
        ``mqtt://[user:password@]host:port`` (`twin simulate` adds the
        simulator's credentials with ``with_service_credentials``).
    community_id
        The community to simulate; None: the only one loaded.
    rate
        Messages per second at most (a token bucket); 0: as fast as the broker takes.
    duration
        Stop after this many seconds of real time; None: no time limit.
    messages
        Stop after this many messages; None: no count limit. Without either
        limit the run goes on until interrupted (Ctrl-C).
    batch_size
        Items per gateway ``batch`` message; 1: every device publishes its own.
    start
        Simulated time at the start. Default: now; with ``speed`` above 1 and
        a ``duration``, early enough that the simulated clock reaches now at
        the end (ingest refuses readings more than 5 minutes in its future).
    speed
        Simulated seconds per real second.
    inject
        Incidents ``name:target`` started at the start (see :data:`INCIDENTS`).
    seed
        The same seed, start, speed and options give the same messages.
    progress
        A running ``rich.progress.Progress`` to show the count on, or None.
    """
    _check(rate=rate, duration=duration, messages=messages, batch_size=batch_size,
           speed=speed)
    address = BrokerAddress.parse(mqtt_url)
    with connect(database_url) as conn:
        community = load_community(conn, community_id)
    now = datetime.now(timezone.utc)
    begin = start if start is not None else default_start(now, speed=speed, duration=duration)
    if begin.tzinfo is None:
        raise TwinError("the start time needs a time zone")
    simulation = Simulation(community, start=begin, seed=seed, batch_size=batch_size,
                            tick_s=tick_for(speed))
    try:
        incidents = tuple(simulation.inject(spec) for spec in inject)
    except ValueError as e:
        raise TwinError(str(e)) from e
    task = None
    if progress is not None:
        task = progress.add_task(f"simulating {community.id}",
                                 total=messages if messages is not None else duration)
    publisher = _Publisher(address, rate=rate, client_id=f"twin-sim-{os.getpid()}")
    sent: Counter[str] = Counter()
    started = time.monotonic()
    interrupted = False

    def room() -> bool:
        return messages is None or sent.total() < messages

    def publish(batch: list[tuple[str, bytes]], *, last: bool = False) -> None:
        for topic, payload in batch:
            if not room() or (not last and duration is not None
                              and time.monotonic() - started >= duration):
                return
            kind = topic.rsplit("/", 1)[-1]
            publisher.send(topic, payload, retain=kind == "status")
            sent[kind] += 1
            if task is not None and sent.total() % 100 == 0:
                progress.update(task, completed=sent.total() if messages is not None
                                else time.monotonic() - started)

    try:
        publish(simulation.opening())
        span = simulation.tick_s * 10
        while room():
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            target = begin + timedelta(seconds=elapsed * speed)
            if target - simulation.clock < timedelta(seconds=simulation.tick_s):
                time.sleep(min(0.05, simulation.tick_s / speed))
                continue
            publish(simulation.advance(min(target, simulation.clock
                                           + timedelta(seconds=span))))
        publish(simulation.flush(), last=True)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        publisher.close()
    if task is not None:
        progress.update(task, completed=sent.total() if messages is not None else duration)
    return SimulationReport(
        community_id=community.id, devices=simulation.devices, published=dict(sent),
        incidents=incidents, simulated_from=begin, simulated_to=simulation.clock,
        wall_s=time.monotonic() - started, interrupted=interrupted,
        unmatched=publisher.unmatched,
    )


def default_start(now: datetime, *, speed: float, duration: float | None) -> datetime:
    """Now, or early enough that a faster-than-real clock ends at now."""
    if speed > 1 and duration is not None:
        return now - timedelta(seconds=duration * (speed - 1))
    return now


def tick_for(speed: float) -> float:
    """Simulated seconds per step: about one step per real second, 1 s to 60 s."""
    return float(min(60.0, max(1.0, round(speed))))


# --- reading the community -------------------------------------------------------------

def load_community(conn: psycopg.Connection, community_id: str | None) -> Community:
    """The frames a simulation needs, of one community of the twin."""
    known = [row[0] for row in queries.communities(conn)]
    if community_id is None:
        if not known:
            raise TwinError("no community is loaded: run `twin load` first")
        if len(known) > 1:
            raise TwinError(f"{len(known)} communities are loaded ({', '.join(known[:10])}"
                            f"{' ...' if len(known) > 10 else ''}): choose one with --community")
        community_id = known[0]
    elif community_id not in known:
        raise TwinError(f"no community {community_id!r} in the twin"
                        + (f" (there are: {', '.join(known[:10])})" if known else ""))
    devices = community_devices(conn, community_id)
    if devices.empty:
        raise TwinError(f"community {community_id} has no devices")
    return Community(devices=devices, residents=community_residents(conn, community_id),
                     facilities=community_facilities(conn, community_id),
                     buildings=community_buildings(conn, community_id))


def community_devices(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, """
        SELECT id, community_id, type, building_id, floor, unit_id, facility_id
          FROM device WHERE community_id = %s ORDER BY id
    """, community_id)


def community_residents(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, """
        SELECT r.id, r.unit_id, u.building_id, r.care_flags, r.age_band
          FROM resident r
          JOIN unit u ON u.id = r.unit_id
          JOIN building b ON b.id = u.building_id
         WHERE b.community_id = %s
         ORDER BY r.id
    """, community_id)


def community_facilities(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, """
        SELECT id, kind, name, building_id FROM facility WHERE community_id = %s ORDER BY id
    """, community_id)


def community_buildings(conn: psycopg.Connection, community_id: str) -> pd.DataFrame:
    return _frame(conn, "SELECT id, name FROM building WHERE community_id = %s ORDER BY id",
                  community_id)


# --- the command -----------------------------------------------------------------------

def simulate_command(
    community: Annotated[str | None, typer.Option(
        help="Community id; default: the only one loaded.")] = None,
    rate: Annotated[float, typer.Option(
        help="Messages per second at most; 0: as fast as the broker takes.")] = 0.0,
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: run until Ctrl-C).")] = None,
    messages: Annotated[int | None, typer.Option(
        help="Stop after this many messages.")] = None,
    batch: Annotated[int, typer.Option(
        help="Items per gateway batch; 1: every device publishes its own readings.")] = 1,
    start: Annotated[str | None, typer.Option(
        help="Simulated start, ISO 8601 (community local time, UTC+8, if no offset is given);"
             " default: now.")] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 1.0,
    inject: Annotated[list[str] | None, typer.Option(
        help=f"Incident name:target, repeatable ({', '.join(INCIDENTS)}), "
             "e.g. co-leak:1号地库.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed, the same stream.")] = 0,
) -> None:
    """Publish realistic device messages of a loaded community, with incidents on demand."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from twin.config import load_settings
    from twin.services import stack

    begin = parse_start(start)
    settings = load_settings()
    console = Console()
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        report = run_simulation(
            stack.database_url(settings),
            with_service_credentials(stack.mqtt_url(settings), SIMULATOR),
            community_id=community,
            rate=rate, duration=duration, messages=messages, batch_size=batch,
            start=begin, speed=speed, inject=inject or [], seed=seed,
            progress=progress,
        )
    table = Table("what", "value", title=f"simulated {report.community_id}"
                  + (" (interrupted)" if report.interrupted else ""))
    table.add_row("devices", f"{report.devices:,}")
    for kind, count in sorted(report.published.items()):
        table.add_row(f"{kind} messages", f"{count:,}")
    table.add_row("messages", f"{report.total:,}")
    table.add_row("simulated", f"{_local(report.simulated_from)} → {_local(report.simulated_to)}"
                               " (UTC+8)")
    table.add_row("wall time", f"{report.wall_s:.1f} s")
    table.add_row("rate", f"{report.rate:,.0f} msg/s")
    if report.unmatched:
        table.add_row("[yellow]no subscriber[/]",
                      f"{report.unmatched:,} messages reached no subscriber: is `twin ingest` "
                      "running?")
    for incident in report.incidents:
        n = len(incident.devices)
        table.add_row(f"incident {incident.name}",
                      f"{incident.target} ({n} device{'' if n == 1 else 's'})")
    console.print(table)


def parse_start(text: str | None) -> datetime | None:
    """ISO 8601; without an offset, the community's local time (UTC+8)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as e:
        raise TwinError(f"--start {text!r} is not an ISO 8601 time (e.g. 2025-06-02T07:30)") \
            from e
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone(timedelta(seconds=LOCAL_OFFSET_S)))
    return value.astimezone(timezone.utc)


# --- publishing ------------------------------------------------------------------------

class _Publisher:
    """One QoS 1 client for all devices, paced by a token bucket, waiting on the broker.

    As docs/mqtt.md asks of devices, a message the broker acknowledges with
    "no matching subscribers" (0x10) is held: if the connection drops soon
    after, the broker was going down and the message is sent again; if not,
    nobody subscribes (ingest is not running) and it is counted in
    ``unmatched`` rather than sent forever.
    """

    def __init__(self, address: BrokerAddress, *, rate: float, client_id: str,
                 connect_timeout_s: float = 10.0) -> None:
        self._rate = rate
        self._tokens = 1.0
        self._refilled = time.monotonic()
        # (info, topic, payload, retain, attempt) of messages not yet acknowledged
        self._unacked: deque[tuple[mqtt.MQTTMessageInfo, str, bytes, bool, int]] = deque()
        self._unmatched_mids: set[int] = set()
        self._held: list[tuple[float, tuple[mqtt.MQTTMessageInfo, str, bytes, bool, int]]] = []
        self._last_disconnect = float("-inf")
        #: Messages the broker accepted while no one subscribed to them.
        self.unmatched = 0
        self._connected = threading.Event()
        self._refused: str | None = None
        self._where = f"{address.host}:{address.port}"
        self._client = make_client(address, client_id)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect
        try:
            self._client.connect(address.host, address.port, keepalive=30)
        except OSError as e:
            raise TwinError(f"cannot reach the MQTT broker at {self._where}: "
                            f"{e.strerror or e}") from e
        self._client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            self._client.loop_stop()
            reason = self._refused or "no answer"
            raise TwinError(f"the MQTT broker at {self._where} did not accept the simulator "
                            f"({reason}; check credentials and ACLs)")

    def send(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self._take()
        self._publish(topic, payload, retain)
        if self._held:
            self._review_held()
        unacked = self._unacked
        while unacked and unacked[0][0].is_published():
            self._settle(unacked.popleft())
        if len(unacked) > MAX_UNACKED:
            entry = unacked.popleft()
            self._wait(entry[0], DRAIN_TIMEOUT_S)
            self._settle(entry)

    def close(self) -> None:
        """Wait until the broker has everything, then disconnect."""
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while self._unacked or self._held:
                if self._unacked:
                    entry = self._unacked.popleft()
                    self._wait(entry[0], max(0.0, deadline - time.monotonic()))
                    self._settle(entry)
                else:
                    time.sleep(0.1)
                self._review_held()
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def _publish(self, topic: str, payload: bytes, retain: bool, attempt: int = 1) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise TwinError(f"could not publish to {topic}: {mqtt.error_string(info.rc)}")
        self._unacked.append((info, topic, payload, retain, attempt))

    def _settle(self, entry: tuple[mqtt.MQTTMessageInfo, str, bytes, bool, int]) -> None:
        """An acknowledged message: done, unless the broker matched no subscriber."""
        if entry[0].mid in self._unmatched_mids:
            self._unmatched_mids.discard(entry[0].mid)
            self._held.append((time.monotonic(), entry))

    def _review_held(self) -> None:
        """Resend what a departing broker dropped; count what nobody subscribes to."""
        now, keep = time.monotonic(), []
        for since, entry in self._held:
            _, topic, payload, retain, attempt = entry
            if self._last_disconnect >= since - HOLD_S and attempt < UNMATCHED_ATTEMPTS:
                self._publish(topic, payload, retain, attempt + 1)
            elif now - since > HOLD_S or attempt >= UNMATCHED_ATTEMPTS:
                self.unmatched += 1
            else:
                keep.append((since, entry))
        self._held = keep

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason_code: object, properties: object) -> None:
        self._last_disconnect = time.monotonic()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason_code: mqtt.ReasonCode, properties: object) -> None:
        if reason_code == NO_MATCHING_SUBSCRIBERS:
            self._unmatched_mids.add(mid)

    def _take(self) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        self._tokens = min(max(1.0, self._rate / 10), self._tokens
                           + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0:
            time.sleep((1.0 - self._tokens) / self._rate)
            self._tokens, self._refilled = 1.0, time.monotonic()
        self._tokens -= 1.0

    def _wait(self, info: mqtt.MQTTMessageInfo, timeout: float) -> None:
        """Until the broker acknowledges (a message queued while offline goes on reconnect)."""
        deadline = time.monotonic() + timeout
        while not info.is_published():
            if time.monotonic() > deadline:
                raise TwinError(f"the MQTT broker at {self._where} did not acknowledge the "
                                f"simulator's messages within {timeout:.0f} s")
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout=0.5)
            else:
                time.sleep(0.05)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason_code: mqtt.ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            self._connected.set()


def _check(*, rate: float, duration: float | None, messages: int | None, batch_size: int,
           speed: float) -> None:
    if rate < 0:
        raise TwinError(f"--rate must not be negative, got {rate:g}")
    if duration is not None and duration <= 0:
        raise TwinError(f"--duration must be positive, got {duration:g}")
    if messages is not None and messages < 1:
        raise TwinError(f"--messages must be at least 1, got {messages}")
    if batch_size < 1:
        raise TwinError(f"--batch must be at least 1, got {batch_size}")
    if speed <= 0:
        raise TwinError(f"--speed must be positive, got {speed:g}")


def _frame(conn: psycopg.Connection, sql: str, *params: object) -> pd.DataFrame:
    with conn.cursor() as cur:
        cur.execute(sql, params)
        columns = [c.name for c in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def _local(ts: datetime) -> str:
    local = timezone(timedelta(seconds=LOCAL_OFFSET_S))
    return ts.astimezone(local).strftime("%Y-%m-%d %H:%M:%S")
