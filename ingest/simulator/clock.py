"""The simulation's one clock, and the community's time of day.

Every domain module reads the time from the shared :class:`Clock` (the tick
being played, ``t0`` to ``t1``), never from the wall clock or a copy of its
own, so the warm-up, the ticks and the commands all agree on what time it is.
Times are seconds since the epoch (UTC) as floats; the community lives in
Asia/Shanghai time (UTC+8, no daylight saving).
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

#: The community's local time: Asia/Shanghai, UTC+8 all year (no daylight saving).
LOCAL_OFFSET_S = 8 * 3600
DAY_S = 86_400.0
_HOURS = np.arange(25.0)


class Clock:
    """Simulated time: the tick being played, ``(t0, t1]``, in epoch seconds.

    Between ticks, ``now`` is the end of the last one. The simulation moves
    it; domain modules only read it.
    """

    def __init__(self, now: float) -> None:
        self.t0 = self.t1 = float(now)

    @property
    def now(self) -> float:
        """The end of the last tick: what a device's own clock says."""
        return self.t1

    @property
    def dt(self) -> float:
        return self.t1 - self.t0

    @property
    def mid(self) -> float:
        return (self.t0 + self.t1) / 2

    @property
    def hour(self) -> float:
        """Local hour of day in the middle of the tick."""
        return float(local_hour(self.mid))

    def as_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.t1, UTC)

    def step(self, dt: float) -> None:
        """Start the next tick, ``dt`` seconds long."""
        self.t0, self.t1 = self.t1, self.t1 + dt

    def set(self, now: float) -> None:
        """Stand still at ``now`` (after the warm-up)."""
        self.t0 = self.t1 = float(now)

    def random_time(self, rng: np.random.Generator) -> float:
        """A moment inside the tick, strictly after its start."""
        return self.t0 + rng.uniform(1e-3, self.t1 - self.t0)


def daily(values: list[float], *, mean: float | None = None) -> np.ndarray:
    """A daily curve from one value per local hour (0 h .. 23 h); 24 h repeats 0 h."""
    curve = np.array(values + values[:1], dtype=float)
    return curve if mean is None else curve * (mean / np.mean(values))


def profile(curve: np.ndarray, h: np.ndarray | float) -> np.ndarray | float:
    """A daily curve (see :func:`daily`) at local hour ``h``, interpolated."""
    return np.interp(h, _HOURS, curve)


def local_hour(t: np.ndarray | float) -> np.ndarray | float:
    if isinstance(t, float):
        return ((t + LOCAL_OFFSET_S) % DAY_S) / 3600.0
    return ((np.asarray(t, dtype=float) + LOCAL_OFFSET_S) % DAY_S) / 3600.0


def local_seconds(t: np.ndarray | float) -> np.ndarray:
    """Seconds since local midnight."""
    return (np.asarray(t, dtype=float) + LOCAL_OFFSET_S) % DAY_S


def weekday(t: np.ndarray | float) -> np.ndarray:
    """Local day of the week, Monday 0 (1970-01-01 was a Thursday)."""
    return (np.floor((np.asarray(t, dtype=float) + LOCAL_OFFSET_S) / DAY_S).astype(int) + 3) % 7


def bump(h: np.ndarray | float, centre: float, width: float) -> np.ndarray:
    """A daily Gaussian peak at local hour ``centre`` (hours wrap round midnight)."""
    d = (np.asarray(h) - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def crossed(t0: float, t1: float, at: np.ndarray) -> np.ndarray:
    """Whether the local time of day ``at`` (seconds after midnight) falls in (t0, t1]."""
    return (np.floor((t1 + LOCAL_OFFSET_S - at) / DAY_S)
            > np.floor((t0 + LOCAL_OFFSET_S - at) / DAY_S))


def iso(times: list[float]) -> list[str]:
    """RFC 3339 UTC text with milliseconds and 'Z' (vectorised)."""
    if not times:
        return []
    ms = np.round(np.asarray(times, dtype=float) * 1000).astype("int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]
