"""`twin simulate`: a loaded community's devices, live on the broker, obeying commands.

The adapter around the pure :class:`~ingest.simulator.simulation.Simulation`:
it reads one community from the twin's database, runs the simulated clock at
``speed`` times real time and publishes what the devices say (QoS 1) through
one MQTT client, no faster than ``rate`` messages per second. Each device's
status (online, retained) goes out first; devices that a gateway relays are
heard through the gateway's ``batch`` messages when ``batch_size`` is above 1.
Commands the twin sends to the community's devices are obeyed between ticks.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Annotated

import orjson
import typer

from ingest import contract
from ingest.broker import BrokerAddress, with_service_credentials
from ingest.simulator.clock import LOCAL_OFFSET_S
from ingest.simulator.incidents import INCIDENTS, Incident
from ingest.simulator.load import load_community
from ingest.simulator.publisher import Publisher
from ingest.simulator.simulation import Simulation
from ingest.simulator.staff_work import StaffAtWork
from twin.errors import TwinError
from twin.services.broker_accounts import SIMULATOR
from twin.store.connection import connect

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from rich.progress import Progress


#: How often the simulated staff look at their orders, in simulated seconds (well inside
#: the 45 s before anyone accepts), and at most every so many wall seconds: at 1800x the
#: floor is 90 s of the day, often enough not to outrun the five minutes an assignment
#: waits for an accept; at 1x it is a query every 15 s, not twenty a second.
STAFF_LOOK_SIM_S, STAFF_LOOK_S = 15.0, 0.05


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
    #: Commands obeyed (each answered with an ``ack``), by command.
    commands: dict[str, int] = field(default_factory=dict)
    #: Why the broker would not let the simulator take commands, if it would not.
    commands_refused: str | None = None
    #: What the simulated staff did with their orders, by action (accept, arrive ...).
    staff_steps: dict[str, int] = field(default_factory=dict)

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
                   progress: Progress | None = None,
                   stop: threading.Event | None = None,
                   until: datetime | None = None,
                   linger_s: float = 0.0,
                   published_all: threading.Event | None = None,
                   staff_work: bool = True,
                   visitors: queue.Queue[tuple[str, str]] | None = None) -> SimulationReport:
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
    stop
        Set it to end the run early (as Ctrl-C does), from another thread.
    until
        Stop when the simulated clock reaches this time (a scripted day: the whole day is
        simulated even if publishing falls behind ``speed``).
    linger_s
        After the last message, keep obeying commands this long (or until ``stop``), so the
        twin's last commands are carried out and acknowledged.
    published_all
        Set when the last message is out (the run then lingers, obeying commands).
    staff_work
        The community's staff accept, walk to, and resolve the orders the twin gives
        them (:mod:`ingest.simulator.staff_work`), on the simulated clock.
    visitors
        (gate device id, pass token) put here while the run lasts: a visitor shows that
        pass's QR code at that gate (`Simulation.present_pass`), which asks the twin.

    The actuators obey the commands the twin publishes to their ``cmd``
    topics while the run lasts, and each answers with an ``ack``. Acks are
    counted in ``published`` but never held back by ``rate`` or ``messages``.
    """
    _check(rate=rate, duration=duration, messages=messages, batch_size=batch_size,
           speed=speed)
    address = BrokerAddress.parse(mqtt_url)
    with connect(database_url) as conn:
        community = load_community(conn, community_id)
    now = datetime.now(UTC)
    begin = start if start is not None else default_start(now, speed=speed, duration=duration)
    if begin.tzinfo is None:
        raise TwinError("the start time needs a time zone")
    simulation = Simulation(community, start=begin, seed=seed, batch_size=batch_size,
                            tick_s=tick_for(speed))
    try:
        now_specs = []
        for text in inject:
            spec, at = parse_injection(text, begin)
            if at is None or at <= begin:
                now_specs.append(spec)
            else:
                simulation.schedule(spec, at)
        for spec in now_specs:
            simulation.inject(spec)
    except ValueError as e:
        raise TwinError(str(e)) from e
    task = None
    if progress is not None:
        task = progress.add_task(f"simulating {community.id}",
                                 total=messages if messages is not None else duration)
    publisher = Publisher(address, rate=rate, client_id=f"twin-sim-{os.getpid()}",
                          commands=contract.topic(community.id, "+", "cmd"))
    sent: Counter[str] = Counter()
    obeyed: Counter[str] = Counter()
    worked: Counter[str] = Counter()
    staff = StaffAtWork(community.id) if staff_work else None
    staff_conn = connect(database_url, autocommit=True) if staff is not None else None
    started = time.monotonic()
    interrupted = False
    next_work = 0.0
    look_every = max(STAFF_LOOK_S, STAFF_LOOK_SIM_S / speed)

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
            if sent.total() % 200 == 0:
                look()  # a fast run publishes for a while: the staff keep looking
            if progress is not None and task is not None and sent.total() % 100 == 0:
                progress.update(task, completed=sent.total() if messages is not None
                                else time.monotonic() - started)

    def obey() -> None:
        """Carry out the commands that arrived; their acks go out at once. Visitors who
        arrived meanwhile show their passes."""
        while visitors is not None and not visitors.empty():
            gate, token = visitors.get_nowait()
            try:
                simulation.present_pass(gate, token)
            except ValueError as e:
                log.warning("visitor pass not shown: %s", e)
        for topic, payload in publisher.take_commands():
            for ack_topic, ack in simulation.obey(topic, payload):
                publisher.send(ack_topic, ack, paced=False)
                sent["ack"] += 1
                obeyed[_command_name(payload)] += 1
        look()

    def look() -> None:
        """The staff look at their phones (see STAFF_LOOK_SIM_S)."""
        nonlocal next_work
        if staff is not None and staff_conn is not None and time.monotonic() >= next_work:
            next_work = time.monotonic() + look_every
            worked.update(staff.step(staff_conn, simulation.clock))

    try:
        publish(simulation.opening())
        span = simulation.tick_s * 3
        while room() and not (stop is not None and stop.is_set()):
            elapsed = time.monotonic() - started
            if duration is not None and elapsed >= duration:
                break
            obey()
            if until is not None and simulation.clock >= until:
                break
            target = begin + timedelta(seconds=elapsed * speed)
            if until is not None:
                target = min(target, until)
            if target - simulation.clock < timedelta(seconds=simulation.tick_s):
                time.sleep(min(0.05, simulation.tick_s / speed))
                continue
            publish(simulation.advance(min(target, simulation.clock
                                           + timedelta(seconds=span))))
        publish(simulation.flush(), last=True)
        if published_all is not None:
            published_all.set()
        lingering = time.monotonic() + linger_s
        while time.monotonic() < lingering and not (stop is not None and stop.is_set()):
            obey()
            time.sleep(0.05)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        publisher.close()
        if staff_conn is not None:
            staff_conn.close()
    if progress is not None and task is not None:
        progress.update(task, completed=sent.total() if messages is not None else duration)
    return SimulationReport(
        community_id=community.id, devices=simulation.devices, published=dict(sent),
        incidents=simulation.started_incidents, simulated_from=begin, simulated_to=simulation.clock,
        wall_s=time.monotonic() - started, interrupted=interrupted,
        unmatched=publisher.unmatched, commands=dict(obeyed),
        commands_refused=publisher.commands_refused, staff_steps=dict(worked),
    )


def default_start(now: datetime, *, speed: float, duration: float | None) -> datetime:
    """Now, or early enough that a faster-than-real clock ends at now."""
    if speed > 1 and duration is not None:
        return now - timedelta(seconds=duration * (speed - 1))
    return now


def tick_for(speed: float) -> float:
    """Simulated seconds per step: about one step per real second, 1 s to 60 s."""
    return float(min(60.0, max(1.0, round(speed))))


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
             "e.g. co-leak:1号地库; at a local time with @03:00, or later with @+90m.")]
    = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed, the same stream.")] = 0,
    staff: Annotated[bool, typer.Option(
        "--staff/--no-staff",
        help="The community's staff accept, walk to and resolve the orders they are given.")]
    = True,
    visitor: Annotated[list[str] | None, typer.Option(
        help="GATE:TOKEN, repeatable: a visitor shows the pass with this token (the code under "
             "its QR) at the gate with this device id, at the start; the twin answers.")]
    = None,
) -> None:
    """Publish realistic device messages of a loaded community, with incidents on demand;
    its actuators obey the twin's commands."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from ingest.broker_auth import admit_simulator
    from twin.config import load_settings
    from twin.services import stack

    begin = parse_start(start)
    from twin import logs

    logs.configure()  # its staff's work (staff_work) logs: JSON lines, or text at a terminal
    visitors: queue.Queue[tuple[str, str]] = queue.Queue()
    for text in visitor or []:
        gate, _, token = text.partition(":")
        if not gate or not token:
            raise TwinError(f"--visitor takes GATE:TOKEN, not {text!r}")
        visitors.put((gate, token))
    settings = load_settings()
    console = Console()
    mqtt_url = stack.mqtt_url(settings)
    if admit_simulator(settings):
        console.print(f"the embedded broker admits {SIMULATOR} from now on "
                      "(as `twin broker-config --simulator` would)")
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        report = run_simulation(
            stack.database_url(settings),
            with_service_credentials(mqtt_url, SIMULATOR),
            community_id=community,
            rate=rate, duration=duration, messages=messages, batch_size=batch,
            start=begin, speed=speed, inject=inject or [], seed=seed,
            progress=progress, staff_work=staff, visitors=visitors,
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
    for command, count in sorted(report.commands.items()):
        table.add_row(f"command {command}", f"{count:,} obeyed")
    if report.commands_refused:
        table.add_row("[yellow]commands[/]",
                      f"the broker refused the subscription to commands "
                      f"({report.commands_refused}): run `twin broker-config --simulator`")
    for action, count in sorted(report.staff_steps.items()):
        table.add_row(f"staff {action}", f"{count:,} orders")
    for incident in report.incidents:
        n = len(incident.devices)
        table.add_row(f"incident {incident.name}",
                      f"{incident.target} ({n} device{'' if n == 1 else 's'})")
    console.print(table)


def parse_injection(text: str, begin: datetime) -> tuple[str, datetime | None]:
    """``name:target``, ``name:target@HH:MM`` (the next such local time from ``begin``) or
    ``name:target@+90m`` (``+2h``, ``+30s``: after ``begin``); the spec and its time."""
    spec, sep, when = text.rpartition("@")
    if not sep:
        return text, None
    when = when.strip()
    try:
        if when.startswith("+"):
            units = {"s": 1, "m": 60, "h": 3600}
            unit = when[-1] if when[-1] in units else "s"
            amount = float(when[1:].rstrip("smh"))
            return spec, begin + timedelta(seconds=amount * units[unit])
        hour, minute = (int(x) for x in when.split(":"))
        local = timezone(timedelta(seconds=LOCAL_OFFSET_S))
        at = begin.astimezone(local).replace(hour=hour, minute=minute, second=0,
                                             microsecond=0)
        if at < begin:
            at += timedelta(days=1)
        return spec, at.astimezone(UTC)
    except ValueError as e:
        raise ValueError(f"incident {text!r}: after '@' write a local time (03:00) or a "
                         f"delay (+90m, +2h, +30s)") from e


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
    return value.astimezone(UTC)


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


def _command_name(payload: bytes) -> str:
    try:
        name = orjson.loads(payload).get("command")
    except (orjson.JSONDecodeError, AttributeError):
        return "?"
    return str(name) if name else "?"


def _local(ts: datetime) -> str:
    local = timezone(timedelta(seconds=LOCAL_OFFSET_S))
    return ts.astimezone(local).strftime("%Y-%m-%d %H:%M:%S")
