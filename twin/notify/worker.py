"""The delivery worker: claim due notifications, try each routed transport, record, finish.

Per notification, after its claim:

- older than ``retry.max_age_s`` with nothing sent yet, or claimed more often
  than ``retry.max_attempts`` (each earlier claim ended with a dead worker): failed;
- each transport of its route not done on an earlier try is tried, and the try
  is recorded at once (so a worker that dies after the SMS went out does not
  send it again, only what was not recorded);
- every transport took it: delivered (``sent_at``); some could not be routed or
  refused it for good, and at least one took it: delivered, with those noted;
- a transport failed and may succeed later: due again after the back-off, or
  failed once the attempts are used up; only permanent failures: failed.

Addresses, names and texts are never logged: notification ids and transports only.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import psycopg

from twin.notify import outbox
from twin.notify.config import NotifyConfig
from twin.notify.retry import backoff, exhausted
from twin.notify.routing import Contact, Delivery, Pending, Unroutable, reader, route
from twin.notify.transport import DeliveryError, Transport
from twin.store.reads.texts import wording

log = logging.getLogger(__name__)

STAFF_CHANNELS = ("grid_worker", "staff")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Tally:
    """What one round did."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0
    #: claims lost to another worker after the lease ran out
    lost: int = 0

    def add(self, other: Tally) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class Worker:
    """Drains the outbox through the given transports (name in the config → transport)."""

    def __init__(self, conn: psycopg.Connection, config: NotifyConfig,
                 transports: Mapping[str, Transport], *,
                 clock: Callable[[], datetime] = utc_now,
                 rng: random.Random | None = None,
                 on_attempt: Callable[[str, bool, float], None] | None = None) -> None:
        """``on_attempt(transport, ok, seconds)`` is told of every try (metrics)."""
        missing = sorted(set(config.transports) - set(transports))
        if missing:
            raise ValueError(f"no transport built for {missing}")
        if not conn.autocommit:
            raise ValueError("the worker commits each step itself: give it an autocommit "
                             "connection")
        self.conn = conn
        self.config = config
        self.transports = transports
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_attempt = on_attempt

    def run_once(self, *, batch: int = 50) -> Tally:
        """One round: claim up to ``batch`` due notifications and deliver them."""
        policy = self.config.retry
        got = outbox.claim(self.conn, now=self.clock(), batch=batch,
                           lease=timedelta(seconds=policy.lease_s))
        tally = Tally(claimed=len(got.notifications))
        if not got.notifications:
            return tally
        staff = outbox.staff_contacts(self.conn, (n.recipient for n in got.notifications
                                                  if n.channel in STAFF_CHANNELS))
        for n in self._rendered(got.notifications):
            tally.add(self._deliver(got.token, n, staff))
        return tally

    def _rendered(self, pending: list[Pending]) -> list[Pending]:
        """Each text rendered for who reads its channel (`routing.reader`): a family
        contact gets the resident's name, the security desk a masked one."""
        words = wording(self.conn, ((n.text_key, n.text_params) for n in pending))
        return [replace(n, message=words.render(n.text_key, n.text_params,
                                                viewer=reader(n.channel), fallback=n.message))
                for n in pending]

    def run_forever(self, *, batch: int = 50, interval_s: float = 2.0,
                    stop: threading.Event | None = None,
                    on_round: Callable[[Tally], None] | None = None) -> Tally:
        """Rounds until ``stop`` is set; waits ``interval_s`` when the outbox is drained."""
        stop = stop or threading.Event()
        total = Tally()
        while not stop.is_set():
            tally = self.run_once(batch=batch)
            total.add(tally)
            if on_round is not None:
                on_round(tally)
            if tally.claimed < batch:
                stop.wait(interval_s)
        return total

    # --- one notification ------------------------------------------------------------------
    def _deliver(self, token: uuid.UUID, n: Pending, staff: Mapping[str, Contact]) -> Tally:
        policy = self.config.retry
        now = self.clock()
        if not outbox.renew(self.conn, token, n.id, until=now + timedelta(seconds=policy.lease_s)):
            log.warning("notification %d: claim lost to another worker before its turn", n.id)
            return Tally(lost=1)
        if n.attempt > policy.max_attempts:
            return self._fail(token, n, f"claimed {n.attempt - 1} times with no outcome: the "
                                        f"worker stopped while delivering")
        age = (now - n.time).total_seconds()
        if age > policy.max_age_s and not n.done:
            return self._fail(token, n, f"expired: {age / 3600:.1f} h old and not sent "
                                        f"(max_age_s {policy.max_age_s:g})")
        sent = set(n.done)
        permanent: list[str] = []
        transient: list[str] = []
        for step in route(self.config, n, staff=staff):
            if isinstance(step, Unroutable):
                error = f"{step.transport}: {step.reason}"
                if not self._record(token, n, step.transport, self.clock(), 0.0, False, error):
                    return Tally(lost=1)
                permanent.append(error)
                continue
            ok, error, permanently = self._try(token, n, step)
            if ok is None:
                return Tally(lost=1)
            if ok:
                sent.add(step.transport)
            elif permanently:
                permanent.append(f"{step.transport}: {error}")
            else:
                transient.append(f"{step.transport}: {error}")
        if transient:
            reason = "; ".join(transient + permanent)
            if exhausted(policy, n.attempt):
                return self._fail(token, n, f"{n.attempt} attempts: {reason}")
            due = self.clock() + backoff(policy, n.attempt, rng=self.rng)
            if not outbox.retry_at(self.conn, token, n.id, at=due, error=reason):
                return Tally(lost=1)
            log.info("notification %d: try %d failed (%s); next at %s", n.id, n.attempt,
                     ", ".join(sorted({t.split(":")[0] for t in transient})), due.isoformat())
            return Tally(retrying=1)
        if not sent:
            return self._fail(token, n, "; ".join(permanent) or "no transport on its route")
        note = "; ".join(permanent) or None
        if not outbox.mark_delivered(self.conn, token, n.id, at=self.clock(), note=note):
            return Tally(lost=1)
        log.info("notification %d delivered via %s", n.id, ", ".join(sorted(sent)))
        return Tally(delivered=1)

    def _try(self, token: uuid.UUID, n: Pending, d: Delivery) -> tuple[bool | None, str, bool]:
        """(ok, error, permanent); ok None when the claim was lost meanwhile."""
        started = self.clock()
        t0 = time.perf_counter()
        error, permanent = "", False
        try:
            self.transports[d.transport].send(d)
        except DeliveryError as e:
            error, permanent = str(e), e.permanent
        ms = (time.perf_counter() - t0) * 1000
        ok = not error
        if self.on_attempt is not None:
            self.on_attempt(d.transport, ok, ms / 1000)
        if not self._record(token, n, d.transport, started, ms, ok, error or None):
            return None, error, permanent
        return ok, error, permanent

    def _record(self, token: uuid.UUID, n: Pending, transport: str, started: datetime, ms: float,
                ok: bool, error: str | None) -> bool:
        kept = outbox.record_attempt(self.conn, token, n, transport=transport,
                                     started_at=started, duration_ms=ms, ok=ok, error=error)
        if not kept:
            log.warning("notification %d: claim lost to another worker (lease %gs too short?)",
                        n.id, self.config.retry.lease_s)
        return kept

    def _fail(self, token: uuid.UUID, n: Pending, reason: str) -> Tally:
        if not outbox.mark_failed(self.conn, token, n.id, error=reason):
            return Tally(lost=1)
        log.warning("notification %d failed: %s", n.id, reason)
        return Tally(failed=1)
