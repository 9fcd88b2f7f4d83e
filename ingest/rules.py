"""`twin rules run`: the rule engine as an MQTT consumer of its own, beside ingest.

It holds its own shared subscription (group ``twin-rules``) to what devices
send, so the broker gives it every message once, independently of ingest; a
persistent MQTT 5 session keeps what arrives while it is down. The consumer
base (:mod:`ingest.consumer`) decodes with ingest's own decoder, so the rules
see exactly what ingest accepts; this module evaluates each message's
observations (:meth:`stage`) and writes, in one transaction, the alarms,
notifications, work orders (dispatched to the nearest staff), queued device
commands, rule state and counters (:meth:`commit`); then the base acknowledges
the messages and the commands are published (a transactional outbox). Between
flushes the clock speaks every ``tick_s`` (durations reached, silences,
absences, escalation) and every ``reload_s`` a new stored rule set is picked up.

A rule that raises dead-letters the message it was evaluating (reason
``rule_error``), is logged once, and the stream goes on. A device the twin
learnt of after start is looked up by the directory and added to the rules'
snapshot before its message is evaluated.

The clock is injected: tests move it by hours without sleeping. Living
through the day it is the wall clock; simulating or replaying at speed it is a
:class:`twin.clock.Watermark`, the newest device time seen, so that the same
day gives the same alarms at 60x as in real time, and back-dated messages are
not hours overdue on arrival.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import psycopg

from ingest import contract
from ingest.broker import Received
from ingest.consumer import DB_ERRORS, Consumer, ConsumerOptions, DeadLetter
from ingest.decode import Decoded
from ingest.metrics import RulesMetrics
from twin.clock import Clock, Watermark, wall_clock
from twin.dispatch import MAX_FIX_AGE
from twin.model import DeviceInfo
from twin.rules import store
from twin.rules.actions import Firing
from twin.rules.engine import Engine, Observation
from twin.store import doors

#: What the rules listen to: everything a device says except command acks.
RULE_KINDS = ("telemetry", "event", "status", "batch")

@dataclass(frozen=True, slots=True)
class RulesOptions(ConsumerOptions):
    group: str = "twin-rules"
    client_id: str = "twin-rules-1"
    flush_interval_s: float = 0.05
    tick_s: float = 5.0
    reload_s: float = 1.0
    #: Dispatch trusts a staff member's newest fix up to this age, then uses their post.
    max_fix_age_s: float = MAX_FIX_AGE.total_seconds()


@dataclass(slots=True)
class Staged:
    """A flush evaluated: what each message asks the twin to do, and what failed."""

    #: (index of the message in the flush, firing)
    firings: list[tuple[int, Firing]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    #: Visitor passes shown at gates, to answer (`pass_scans`).
    scans: list[Scan] = field(default_factory=list)


class RulesService(Consumer):
    service = "rules"
    kinds = RULE_KINDS
    tracks_new_devices = True
    metrics: RulesMetrics
    options: RulesOptions

    def __init__(self, database_url: str, mqtt_url: str, options: RulesOptions = RulesOptions(),
                 *, clock: Clock = wall_clock) -> None:
        super().__init__(database_url, mqtt_url, options, RulesMetrics())
        self.clock = clock
        #: The data's clock, when the service runs on one (checked once, not per message).
        self._watermark = clock if isinstance(clock, Watermark) else None
        #: The communities of the rules' snapshot, set when it is (re)loaded.
        self._communities: list[str] = []
        self.engine: Engine | None = None
        self.revision = -1
        self.dispatcher = store.Dispatcher(
            max_fix_age=timedelta(seconds=options.max_fix_age_s))
        #: Firings that failed to execute (a bug, not an outage), with the error; logged too.
        self.errors: list[str] = []
        self.processed = 0
        self._tick_asked = threading.Event()
        self._tick_done = threading.Condition()
        self._ticks = 0
        self._last_tick = time.monotonic()
        self._last_reload = time.monotonic()
        self._owed: list[Firing] = []
        #: The clock's reading at the last tick (a data clock ticks as the data moves).
        self._last_tick_at: datetime | None = None
        #: The clock's reading when the meter baselines were last learnt.
        self._seeded_at: datetime | None = None

    # --- the consumer's hooks ---------------------------------------------------------------
    def prepare(self) -> None:
        self._reload(force=True)

    def connected_first(self) -> None:
        self._publish_pending()  # commands committed before a crash and never sent
        self._last_tick = time.monotonic()

    def decode_batch(self, batch: list[Received]) -> list[Decoded]:
        """One :class:`Decoded` per message, so that a rule's failure names its message."""
        out = []
        for item in batch:
            rows = Decoded()
            self.decode_one(item, rows)
            out.append(rows)
        return out

    def stage(self, batch: list[Received], rows: list[Decoded]) -> Staged:
        self._learn_new_devices()
        engine = self._engine()
        staged = Staged()
        for index, (item, decoded) in enumerate(zip(batch, rows, strict=True)):
            # Refusals are ingest's to record (same decoder, same verdict); a bug in
            # decoding is recorded by both consumers, each with its own name.
            staged.dead.extend(d for d in decoded.dead if d[3] == "internal_error")
            try:
                for obs in observations(decoded, self.directory.get):
                    self._keep_time(engine, obs.at)
                    staged.firings.extend((index, f) for f in engine.observe(obs))
            except Exception as e:  # noqa: BLE001 - a rule bug must not end the worker
                self._failed(item, f"evaluating the message on {item.topic}", e, staged.dead)
            staged.scans.extend(pass_scans(decoded, self.directory.get))
        return staged

    def commit(self, batch: list[Received], staged: Staged) -> None:
        engine = self._engine()
        conn = self.db()
        now = self.clock()
        outcome = store.Outcome()
        dead = list(staged.dead)
        with conn.transaction():
            self._act(conn, [(batch[i], f) for i, f in staged.firings], now, outcome, dead)
            for scan in staged.scans:  # the gate waits: answered in this commit
                # A pass's hours are the wall clock's (a person issued it on the app),
                # checked on the twin's, not the gate's, even when the rules run on the
                # data's own clock.
                doors.answer_scan(conn, device_id=scan.device_id,
                                  community_id=scan.community_id, scan_id=scan.scan_id,
                                  token=scan.token, at=wall_clock(), now=now)
            store.save_engine(conn, engine, at=now)
            self.store_dead(conn, dead)
        self.metrics.firings.inc(len(staged.firings))
        self.processed += len(batch)
        if outcome.outbox or staged.scans:
            self._publish_pending()

    def idle(self) -> None:
        now = time.monotonic()
        asked = self._tick_asked.is_set()
        if asked or now - self._last_reload >= self.options.reload_s:
            self._reload()
            self._last_reload = now
            # commands queued by people (a door opened, a broadcast, a charging pile
            # started from the app) since the last look: out within reload_s
            self._publish_pending()
        data_moved = (self._watermark is not None and self._last_tick_at is not None
                      and (self.clock() - self._last_tick_at).total_seconds()
                      >= self.options.tick_s)
        if asked or data_moved or now - self._last_tick >= self.options.tick_s:
            self._tick_asked.clear()
            self._tick()
            self._last_tick = now
            self._last_tick_at = self.clock()
            if asked:
                with self._tick_done:
                    self._ticks += 1
                    self._tick_done.notify_all()

    # --- for tests and operators ------------------------------------------------------------
    def tick_now(self, *, timeout: float = 30.0) -> None:
        """Run one clock tick (and reload check) on the worker and wait for it to commit."""
        with self._tick_done:
            target = self._ticks + 1
            self._tick_asked.set()
            if not self._tick_done.wait_for(lambda: self._ticks >= target, timeout):
                raise TimeoutError("the rules service did not tick")

    # --- internals ------------------------------------------------------------------------
    def _engine(self) -> Engine:
        if self.engine is None:
            raise RuntimeError("the rules service has not loaded its rules (start it first)")
        return self.engine

    def _act(self, conn: psycopg.Connection, firings: list[tuple[Received | None, Firing]],
             now: datetime, outcome: store.Outcome, dead: list[DeadLetter]) -> None:
        """Carry out firings, each in its own savepoint: a bug undoes only its own firing."""
        for item, firing in firings:
            try:
                with conn.transaction():
                    store.execute(conn, firing, now=now, dispatcher=self.dispatcher,
                                  outcome=outcome)
            except DB_ERRORS:
                raise
            except Exception as e:  # noqa: BLE001 - one bad firing must not poison the stream
                self._failed(item, f"rule {firing.rule_id} acting for {firing.key}", e, dead)

    def _failed(self, item: Received | None, what: str, error: Exception,
                dead: list[DeadLetter]) -> None:
        """A rule bug: logged once, counted, and its message (if any) dead-lettered."""
        self.log.error("%s failed: %r", what, error, exc_info=error)
        self.errors.append(f"{what}: {error!r}")
        self.metrics.rule_errors.inc()
        if item is not None:
            dead.append((datetime.fromtimestamp(item.received, UTC), item.topic, item.payload,
                         "rule_error", f"{what}: {error!r}"[:500], None))

    def _keep_time(self, engine: Engine, at: datetime) -> None:
        """On the data's clock, time is what the data says; the engine began with the data."""
        if self._watermark is not None:
            first = not self._watermark.started
            now = self._watermark.advance(at)
            if first:
                engine.started = min(engine.started, now)
                self._last_tick_at = now

    def _learn_new_devices(self) -> None:
        """Devices the directory found after start join the snapshot before they are seen."""
        engine = self._engine()
        new = [d for d in self.directory.take_discovered()
               if d.id not in engine.snapshot.devices]
        if new:
            self.log.info("%d devices joined the twin since the rules loaded; reloading the "
                          "snapshot", len(new))
            self.retrying(lambda: self._reload(force=True), 0)

    def _tick(self) -> None:
        engine = self._engine()
        conn = self.db()
        now = self.clock()
        outcome = store.Outcome()
        # Firings of a tick whose commit failed are owed, not evaluated again: the
        # engine's state has already moved on.
        if self._seeded_at is None or _hour(now) != _hour(self._seeded_at):
            self._seed(conn, hours=(0, 1))  # each hour, the baselines of this hour and next
        self._owed.extend(engine.tick(now))
        with conn.transaction():
            self._act(conn, [(None, f) for f in self._owed], now, outcome, [])
            store.follow_up(conn, self._communities, now=now, dispatcher=self.dispatcher,
                            outcome=outcome)
            store.save_engine(conn, engine, at=now)
        self._owed = []
        if outcome.outbox:
            self._publish_pending()

    def _reload(self, *, force: bool = False) -> None:
        conn = self.db()
        revision = store.rule_revision(conn)
        if revision == self.revision and not force:
            return
        rules, errors = store.stored_rules(conn)
        for error in errors:
            self.log.error("stored rule left out: %s", error)
        snapshot = store.load_snapshot(conn, self.options.community_id)
        state = store.load_state(conn, rules)
        old = self.engine
        started = old.started if old is not None else self.clock()
        if old is not None:  # counters not yet saved are kept
            with conn.transaction():
                store.save_engine(conn, old, at=self.clock())
        self.engine = Engine(rules, snapshot, state=state, started=started)
        self._communities = sorted({d.community_id for d in snapshot.devices.values()})
        self._seed(conn)
        self.dispatcher.forget()
        if revision != self.revision:
            self.log.info("rule set %d: %d rules enabled of %d", revision,
                          len(self.engine.rules), len(rules))
        self.revision = revision

    def _seed(self, conn: psycopg.Connection, *, hours: tuple[int, ...] = (-1, 0, 1)) -> None:
        """Meter baselines of the hours around now, learnt from the readings so far."""
        now = self.clock()
        with conn.transaction():
            store.seed_baselines(conn, self._engine(), now=now, hours=hours,
                                 community_id=self.options.community_id)
        self._seeded_at = now

    def _publish_pending(self) -> None:
        conn = self.db()
        pending = store.pending_commands(conn)
        if not pending:
            return
        infos = [(c.outbox_id, self.client.publish(*contract.command_message(
            c.community_id, c.device_id, c.command_id, c.issued_at, c.command, c.args), qos=1))
            for c in pending]
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


@dataclass(frozen=True, slots=True)
class Scan:
    """A visitor pass shown at a gate (a ``pass_scan`` event): the gate waits for the
    twin's open or deny."""

    device_id: str
    community_id: str
    scan_id: str
    token: object
    #: The gate's own time of the scan (the pass is checked on the twin's clock).
    at: datetime


def pass_scans(rows: Decoded, directory: Callable[[str], DeviceInfo | None]) -> list[Scan]:
    """The ``pass_scan`` events among decoded rows."""
    out = []
    for ts, device_id, event_id, kind, *_, attrs, _got in rows.events:
        info = directory(device_id)
        if kind != "pass_scan" or info is None:
            continue
        token = orjson.loads(attrs).get("token") if attrs else None
        out.append(Scan(device_id, info.community_id, event_id, token, ts))
    return out


def _hour(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def observations(rows: Decoded, directory: Callable[[str], DeviceInfo | None]
                 ) -> list[Observation]:
    """Decoded rows as observations in time order: one per (device, time) of readings,
    one per event, one per status."""
    out: list[Observation] = []
    grouped: dict[tuple[str, datetime], dict] = {}
    received: dict[tuple[str, datetime], datetime] = {}

    def community(device_id: str) -> str:
        info = directory(device_id)
        if info is None:  # decoding found it, so the directory holds it
            raise LookupError(f"device {device_id} vanished from the directory")
        return info.community_id

    for ts, device_id, metric, value, text, got in rows.readings:
        grouped.setdefault((device_id, ts), {})[metric] = text if value is None else value
        received[device_id, ts] = got
    for (device_id, ts), values in grouped.items():
        out.append(Observation(community(device_id), device_id, ts, "telemetry", values,
                               received=received[device_id, ts]))
    for (ts, device_id, _, kind, cls, confidence, _, direction, subject, value, attrs,
         got) in rows.events:
        extra = orjson.loads(attrs) if attrs and attrs != "{}" else {}
        out.append(Observation(community(device_id), device_id, ts, "event",
                               {"value": value} if value is not None else {}, event=kind,
                               cls=cls, confidence=confidence, direction=direction,
                               subject=subject, attrs=extra, received=got))
    for device_id, (online, ts) in rows.statuses.items():
        out.append(Observation(community(device_id), device_id, ts, "status",
                               {"online": online}))
    out.sort(key=lambda o: o.at)
    return out
