"""The clocks the live loop can run on: the wall, or the data's own time.

Rules, escalation and absences ask "what time is it?". Living through a day,
the answer is the wall clock. Simulating a day at 60x, or replaying a past
week, the answer must be the time of the data itself, or a back-dated event
would look hours overdue on arrival and a resident would look absent since
the rules process started. :class:`Watermark` is that clock: the newest
device time the twin has committed, never ahead of the wall.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime

#: Anything that tells the time (aware, UTC).
Clock = Callable[[], datetime]


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Watermark:
    """The newest data time seen so far; before any data, ``start`` (or the wall clock)."""

    def __init__(self, start: datetime | None = None, *, wall: Clock = wall_clock) -> None:
        self._wall = wall
        self._mark = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._mark if self._mark is not None else self._wall()

    def advance(self, seen: datetime) -> datetime:
        """Move to ``seen`` if it is newer (a device clock ahead of ours is capped at the wall)."""
        seen = min(seen, self._wall())
        with self._lock:
            if self._mark is None or seen > self._mark:
                self._mark = seen
            return self._mark

    @property
    def started(self) -> bool:
        """Whether any data has set the mark yet."""
        return self._mark is not None
