"""Charging capacity: how long residents would have queued for a pile with more or fewer of them.

Pure: the sessions of each shed come in as arrays (``twin.store.whatif_queries``
reads them), the queue is simulated here and summed up per shed and per day.

The model, and what it cannot see:

- Each stored session is a resident who *was served*: its start is the
  arrival, its length (start to stop) the time it held a pile. The queue is
  FIFO over ``c`` identical servers, ``c`` = the shed's piles: a resident
  takes the first pile that comes free and waits until then.
- With **fewer** piles than the shed has, the model says exactly who would
  have waited and how long, given that the same residents came at the same
  times and charged as long.
- With the piles the shed **has**, the replay shows no wait (the stored
  sessions never overlap more than the piles): waits that really happened
  (a resident who found every pile taken and came back later, or gave up)
  left no record. We do not invent them. Instead every result reports
  ``full_share``, the share of time every pile was busy: during that time
  any further resident was turned away or queued unseen. With **more** piles
  the observed waits stay zero and only ``full_share`` falls; read the gain
  of added piles as the turned-away time it removes, not as a wait saved.
- A pile counts as free again at ``charge_stop``: a bike left plugged in
  after it is full is not seen by the events, so utilisation is a lower
  bound and waits under fewer piles are, if anything, understated.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from twin.calendars import DEFAULT_TIMEZONE

#: The community's local time: days are its days.
DEFAULT_TZ = DEFAULT_TIMEZONE


@dataclass(frozen=True, slots=True, eq=False)
class ShedDemand:
    """The sessions of one shed: arrivals (epoch seconds, sorted) and how long each held a pile."""

    shed_id: str
    name: str
    piles: int
    arrivals: np.ndarray
    service_s: np.ndarray

    def __post_init__(self) -> None:
        if len(self.arrivals) != len(self.service_s):
            raise ValueError(f"shed {self.shed_id}: {len(self.arrivals)} arrivals but "
                             f"{len(self.service_s)} service times")
        if len(self.arrivals) and np.any(np.diff(self.arrivals) < 0):
            raise ValueError(f"shed {self.shed_id}: arrivals are not sorted by time")
        if len(self.service_s) and np.min(self.service_s) < 0:
            raise ValueError(f"shed {self.shed_id}: a session ends before it starts")


@dataclass(frozen=True, slots=True)
class QueueStats:
    """How one shed did over one day (or the whole period when ``day`` is None)."""

    shed_id: str
    name: str
    day: date | None
    piles: int
    #: Residents who arrived in the span.
    sessions: int
    waited: int
    share_waited: float
    mean_wait_s: float
    p90_wait_s: float
    max_wait_s: float
    #: Pile-time busy over pile-time available.
    utilisation: float
    #: Share of the span with every pile busy: when residents were turned away unseen.
    full_share: float
    #: Most residents waiting at once.
    peak_queue: int


@dataclass(frozen=True, slots=True)
class ChargingReport:
    """Baseline and scenario side by side: per shed for the period, then per shed and day."""

    start: datetime
    end: datetime
    tz: str
    piles_added: Mapping[str, int]
    baseline: tuple[QueueStats, ...]
    scenario: tuple[QueueStats, ...]
    notes: tuple[str, ...] = field(default=())

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per (shed, day) with ``base_``/``scen_`` columns: for tables and CSV."""
        out = []
        for b, s in zip(self.baseline, self.scenario, strict=True):
            row: dict[str, Any] = {"shed_id": b.shed_id, "name": b.name,
                                   "day": b.day.isoformat() if b.day else "all"}
            for prefix, stats in (("base", b), ("scen", s)):
                row.update({f"{prefix}_{k}": v for k, v in _figures(stats).items()})
            out.append(row)
        return out


def fifo_starts(arrivals: np.ndarray, service_s: np.ndarray, *, servers: int) -> np.ndarray:
    """When each resident gets a pile: FIFO over ``servers`` identical piles.

    ``arrivals`` sorted; a resident takes the pile that comes free first. One
    heap operation per session, so a week of a large shed takes milliseconds.
    """
    if servers < 1:
        raise ValueError(f"a queue needs at least one server, not {servers}")
    n = len(arrivals)
    starts = np.empty(n, dtype=float)
    if n == 0:
        return starts
    free = [-np.inf] * servers  # when each pile is next free (a heap)
    a = np.asarray(arrivals, dtype=float).tolist()
    d = np.asarray(service_s, dtype=float).tolist()
    for i in range(n):
        s = max(a[i], free[0])
        heapq.heapreplace(free, s + d[i])
        starts[i] = s
    return starts


def shed_queue(demand: ShedDemand, *, piles: int, start: datetime, end: datetime,
               tz: str = DEFAULT_TZ, min_wait_s: float = 0.0) -> tuple[QueueStats, ...]:
    """The queue of one shed with ``piles`` piles: the period first, then each local day.

    Sessions before ``start`` (the warm-up the caller read) occupy piles but
    are not counted; a resident "waited" when the wait exceeds ``min_wait_s``.
    """
    if piles < 1:
        raise ValueError(f"shed {demand.shed_id} ({demand.name}) would have {piles} piles; "
                         "a shed needs at least one")
    lo, hi = start.timestamp(), end.timestamp()
    if hi <= lo:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    arrivals = np.asarray(demand.arrivals, dtype=float)
    service = np.asarray(demand.service_s, dtype=float)
    starts = fifo_starts(arrivals, service, servers=piles)
    ends = starts + service
    waits = starts - arrivals
    spans = [(None, lo, hi), *((d, a, b) for d, a, b in _days(start, end, tz))]
    out = []
    for day, a, b in spans:
        mine = (arrivals >= a) & (arrivals < b)
        w = waits[mine]
        waited = w > min_wait_s
        busy = np.clip(np.minimum(ends, b) - np.maximum(starts, a), 0.0, None).sum()
        full = _time_at_least(starts, ends, piles, a, b)
        queued = waits > 0
        peak = _peak(arrivals[queued], starts[queued], a, b)
        out.append(QueueStats(
            shed_id=demand.shed_id, name=demand.name, day=day, piles=piles,
            sessions=int(mine.sum()), waited=int(waited.sum()),
            share_waited=float(waited.mean()) if len(w) else 0.0,
            mean_wait_s=float(w.mean()) if len(w) else 0.0,
            p90_wait_s=float(np.percentile(w, 90)) if len(w) else 0.0,
            max_wait_s=float(w.max()) if len(w) else 0.0,
            utilisation=float(busy / (piles * (b - a))),
            full_share=float(full / (b - a)),
            peak_queue=peak))
    return tuple(out)


def charging_capacity(demands: Sequence[ShedDemand], *, start: datetime, end: datetime,
                      piles_added: Mapping[str, int] | None = None, tz: str = DEFAULT_TZ,
                      min_wait_s: float = 0.0) -> ChargingReport:
    """Every shed's queue as it is and with ``piles_added`` (shed id -> piles, < 0 removes).

    Parameters
    ----------
    demands: the sheds' sessions, from `twin.store.whatif_queries.shed_demand`.
    piles_added: a scenario's ``piles_added``; a shed it names must be among ``demands``.

    Returns
    -------
    A `ChargingReport`; `ChargingReport.rows` puts both side by side.
    """
    added = dict(piles_added or {})
    known = {d.shed_id for d in demands}
    unknown = sorted(set(added) - known)
    if unknown:
        raise ValueError(f"piles_added names {', '.join(unknown)}, which "
                         f"{'is not an EV shed' if len(unknown) == 1 else 'are not EV sheds'} "
                         f"of the twin; the sheds are {sorted(known)}")
    baseline: list[QueueStats] = []
    scenario: list[QueueStats] = []
    notes: list[str] = []
    for demand in demands:
        if demand.piles < 1:
            notes.append(f"shed {demand.shed_id} ({demand.name}) has no charger: skipped")
            continue
        base = shed_queue(demand, piles=demand.piles, start=start, end=end, tz=tz,
                          min_wait_s=min_wait_s)
        if base[0].waited:
            notes.append(f"shed {demand.shed_id} ({demand.name}): the stored sessions overlap "
                         f"more than its {demand.piles} piles; the baseline shows waits")
        baseline.extend(base)
        scenario.extend(shed_queue(demand, piles=demand.piles + added.get(demand.shed_id, 0),
                                   start=start, end=end, tz=tz, min_wait_s=min_wait_s))
    return ChargingReport(start=start, end=end, tz=tz, piles_added=added,
                          baseline=tuple(baseline), scenario=tuple(scenario), notes=tuple(notes))


# --- helpers --------------------------------------------------------------------------------

def _figures(s: QueueStats) -> dict[str, Any]:
    return {"piles": s.piles, "sessions": s.sessions, "waited": s.waited,
            "share_waited": round(s.share_waited, 3), "mean_wait_min": round(s.mean_wait_s / 60, 1),
            "p90_wait_min": round(s.p90_wait_s / 60, 1), "max_wait_min": round(s.max_wait_s / 60, 1),
            "utilisation": round(s.utilisation, 3), "full_share": round(s.full_share, 3),
            "peak_queue": s.peak_queue}


def _days(start: datetime, end: datetime, tz: str) -> list[tuple[date, float, float]]:
    """(local day, from, to) in epoch seconds, the first and last clipped to the period."""
    zone = ZoneInfo(tz)
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    lo, hi = start.timestamp(), end.timestamp()
    out = []
    while day <= last:
        a = datetime.combine(day, time(), zone).timestamp()
        b = datetime.combine(day + timedelta(days=1), time(), zone).timestamp()
        a, b = max(a, lo), min(b, hi)
        if b > a:
            out.append((day, a, b))
        day += timedelta(days=1)
    return out


def _steps(begin: np.ndarray, finish: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many intervals are open, as a step function: (change times, level after each).

    At one instant the ends go before the beginnings, so a pile freed and
    taken at the same moment never counts twice.
    """
    t = np.concatenate([begin, finish])
    d = np.concatenate([np.ones(len(begin), dtype=int), -np.ones(len(finish), dtype=int)])
    order = np.lexsort((d, t))
    return t[order], np.cumsum(d[order])


def _segments(begin: np.ndarray, finish: np.ndarray, lo: float, hi: float
              ) -> tuple[np.ndarray, np.ndarray]:
    """(length inside [lo, hi), level) of each constant piece of the step function."""
    t, level = _steps(begin, finish)
    nxt = np.append(t[1:], np.inf)
    length = np.clip(np.minimum(nxt, hi) - np.maximum(t, lo), 0.0, None)
    return length, level


def _time_at_least(begin: np.ndarray, finish: np.ndarray, k: int, lo: float, hi: float) -> float:
    length, level = _segments(begin, finish, lo, hi)
    return float(length[level >= k].sum())


def _peak(begin: np.ndarray, finish: np.ndarray, lo: float, hi: float) -> int:
    if not len(begin):
        return 0
    length, level = _segments(begin, finish, lo, hi)
    inside = level[length > 0]
    return int(inside.max()) if len(inside) else 0
