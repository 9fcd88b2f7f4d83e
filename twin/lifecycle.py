"""The data lifecycle: how long each kind of data is kept, how large its chunks are, and
which of TimescaleDB's two editions does the keeping.

Pure: no database. :mod:`twin.store.lifecycle` runs what is decided here, and
docs/operations.md explains the figures.

Two editions, two ways of doing the same thing:

- **apache** (the Apache-2 build this project compiles, ``SHOW timescaledb.license``
  = ``apache``): no retention policies, no continuous aggregates, no compression.
  The project's own job (``twin db lifecycle``, run on a schedule) rolls changed
  hours of readings up into the ``reading_hourly`` table with ``time_bucket``,
  then ``drop_chunks`` what is past its retention.
- **timescale** (the ``timescale/timescaledb-ha`` image): ``reading_hourly`` is a
  continuous aggregate, and the server's own job scheduler runs a refresh
  policy, retention policies and a compression policy that
  ``twin db lifecycle`` sets once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

#: The chunk intervals worth choosing. Each is a whole number of hours, so that an
#: hourly rollup bucket never straddles two chunks, and dropping a chunk drops whole hours.
CHUNK_STEPS: tuple[timedelta, ...] = (
    HOUR, 2 * HOUR, 3 * HOUR, 4 * HOUR, 6 * HOUR, 8 * HOUR, 12 * HOUR,
    DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY, 28 * DAY,
)

#: TimescaleDB's sizing guideline: the chunks being written, with their indexes,
#: should fit in a quarter of the server's memory (its usual ``shared_buffers``).
MEMORY_SHARE = 0.25

Licence = Literal["apache", "timescale"]
#: Who keeps the data: the project's job or the server's policies.
Keeper = Literal["job", "policies"]


# --- chunk intervals --------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Volume:
    """What one hypertable takes in: rows per second (a day's mean) and bytes per row,
    heap and indexes together, as measured on the real table."""

    table: str
    rows_per_s: float
    bytes_per_row: float

    @property
    def bytes_per_s(self) -> float:
        return self.rows_per_s * self.bytes_per_row

    def chunk_bytes(self, interval: timedelta) -> float:
        """Bytes of one chunk of this interval, heap and indexes."""
        return self.bytes_per_s * interval.total_seconds()


def chunk_intervals(volumes: Sequence[Volume], *, memory_bytes: float,
                    share: float = MEMORY_SHARE,
                    longest: timedelta = timedelta(days=7)) -> dict[str, timedelta]:
    """The chunk interval of each hypertable, so that the chunks being written fit in memory.

    Every table starts at ``longest``. While the chunks being written (one per
    table, heap and indexes) together exceed ``share`` of ``memory_bytes``, the
    table whose chunk is largest steps down to the next shorter interval of
    :data:`CHUNK_STEPS`. So the busy table gives way first and a quiet table keeps
    long chunks (few chunks to plan over, whole weeks to drop).

    Parameters
    ----------
    volumes
        One per hypertable.
    memory_bytes
        The database server's memory.
    share
        The part of memory the chunks being written may take.
    longest
        The longest interval any table gets; one of :data:`CHUNK_STEPS`.

    Returns
    -------
    dict
        table -> interval, in the order of ``volumes``.
    """
    if memory_bytes <= 0 or not 0 < share <= 1:
        raise ValueError(f"memory_bytes must be positive and share in (0, 1], got "
                         f"{memory_bytes} and {share}")
    if longest not in CHUNK_STEPS:
        raise ValueError(f"longest must be one of the chunk steps, got {longest}")
    budget = memory_bytes * share
    step = {v.table: CHUNK_STEPS.index(longest) for v in volumes}

    def total() -> float:
        return sum(v.chunk_bytes(CHUNK_STEPS[step[v.table]]) for v in volumes)

    while total() > budget:
        largest = max(volumes, key=lambda v: v.chunk_bytes(CHUNK_STEPS[step[v.table]]))
        if step[largest.table] == 0:
            raise ValueError(
                f"even one-hour chunks of {largest.table} ({_gib(largest.chunk_bytes(HOUR))}) "
                f"do not fit with the others in {share:.0%} of {_gib(memory_bytes)}: "
                "the server needs more memory")
        step[largest.table] -= 1
    return {v.table: CHUNK_STEPS[step[v.table]] for v in volumes}


# --- retention ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Retention:
    """How long each kind of data is kept.

    readings
        Raw readings (``reading``). Older chunks are dropped once rolled up.
    rollups
        Hourly rollups of readings (``reading_hourly``), kept longer.
    events, positions
        ``event`` and ``staff_position``; None keeps them for ever.
    compress_after
        Timescale edition only: readings older than this are compressed. None: a week,
        or half the raw retention if that is shorter.
    """

    readings: timedelta = timedelta(days=90)
    rollups: timedelta = timedelta(days=730)
    events: timedelta | None = None
    positions: timedelta | None = None
    compress_after: timedelta | None = None

    def __post_init__(self) -> None:
        if self.readings < 2 * DAY:
            raise ValueError(f"raw readings must be kept at least 2 days, got {self.readings}")
        if self.rollups < self.readings:
            raise ValueError(f"rollups must be kept at least as long as the raw readings "
                             f"({self.readings.days} days), got {self.rollups.days} days")
        for name in ("events", "positions"):
            kept = getattr(self, name)
            if kept is not None and kept < DAY:
                raise ValueError(f"{name} must be kept at least 1 day, got {kept}")
        if self.compress_after is not None and not HOUR <= self.compress_after < self.readings:
            raise ValueError(f"compress_after must be at least an hour and shorter than the "
                             f"raw readings' retention ({self.readings.days} days), got "
                             f"{self.compress_after}")

    @property
    def compress_age(self) -> timedelta:
        """Readings older than this are compressed (timescale edition)."""
        if self.compress_after is not None:
            return self.compress_after
        return min(timedelta(days=7), self.readings / 2)

    @property
    def refresh_window(self) -> timedelta:
        """How far back the continuous aggregate's refresh policy looks: a day short of the
        raw retention. A refresh over hours whose raw readings were dropped would empty
        their rollups, so the window must stay inside the raw data."""
        return self.readings - DAY

    @classmethod
    def in_days(cls, *, readings: float, rollups: float, events: float | None = None,
                positions: float | None = None,
                compress_after: float | None = None) -> Retention:
        """Days as the command line and the environment say them (0 or None: for ever,
        for events and positions)."""
        def days(value: float | None) -> timedelta | None:
            return timedelta(days=value) if value else None

        return cls(readings=timedelta(days=readings), rollups=timedelta(days=rollups),
                   events=days(events), positions=days(positions),
                   compress_after=days(compress_after))


def choose_path(licence: str, *, rollup_is_aggregate: bool) -> tuple[Keeper, str]:
    """Who keeps the data: the project's job or the server's policies, and why.

    ``rollup_is_aggregate`` says whether ``reading_hourly`` is a continuous
    aggregate (migration 0017 makes it one on a server of the timescale edition)
    or a plain table (made under the apache edition, perhaps restored since
    onto a timescale server).
    """
    if licence == "timescale":
        if rollup_is_aggregate:
            return "policies", ("the timescale edition: a continuous aggregate, retention and "
                                "compression policies run by the server's own scheduler")
        return "job", ("the timescale edition, but reading_hourly is a plain table (the "
                       "database was created under the apache edition): the project's job "
                       "keeps it")
    if licence == "apache":
        if rollup_is_aggregate:
            raise ValueError("reading_hourly is a continuous aggregate, which the apache "
                             "edition cannot refresh")
        return "job", ("the apache edition has no retention policies, continuous aggregates "
                       "or compression: the project's job rolls up and drops chunks")
    raise ValueError(f"unknown timescaledb.license {licence!r}; expected 'apache' or "
                     "'timescale'")


# --- the job's arithmetic ---------------------------------------------------------------

def islands(buckets: Iterable[datetime], *, width: timedelta = HOUR,
            longest: int = 24) -> list[tuple[datetime, datetime]]:
    """Consecutive buckets as ``[start, end)`` ranges of at most ``longest`` buckets.

    One statement per range lets TimescaleDB exclude every chunk outside it
    (a join on a list of buckets would read them all), and the cap keeps each
    statement to about a day of readings, however long the first refresh.
    """
    if longest < 1:
        raise ValueError(f"longest must be at least 1, got {longest}")
    out: list[tuple[datetime, datetime]] = []
    start = end = None
    count = 0
    for b in sorted(set(buckets)):
        if start is not None and end is not None and b == end and count < longest:
            end, count = b + width, count + 1
            continue
        if start is not None and end is not None:
            out.append((start, end))
        start, end, count = b, b + width, 1
    if start is not None and end is not None:
        out.append((start, end))
    return out


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{math.ceil(n / 2**20)} MiB"
