"""Working calendars: the local hours a desk or a shift is staffed, and time counted in them.

Pure: every function takes the moment it is asked about. A calendar is a set
of local intervals per weekday in a time zone, minus holidays, the way Zammad
and Odoo's resource calendars describe business hours. An SLA on a calendar
counts only its open hours: thirty minutes asked at 17:50 on a Friday from an
office open 09:00-18:00 on weekdays are due at 09:20 on Monday.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Weekday names as written in configurations, 0 = Monday.
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A community's time zone when nothing says otherwise (`community.timezone` does).
DEFAULT_TIMEZONE = "Asia/Shanghai"
_DAY = timedelta(days=1)
#: How far ahead a calendar is searched for its next opening (a year of holidays at most).
_HORIZON_DAYS = 400


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Open hours per weekday, [start, end) in local time; ``time(0)`` as an end is midnight."""

    tz: str
    #: weekday (0 = Monday) -> the day's open intervals, sorted, not overlapping
    days: Mapping[int, tuple[tuple[time, time], ...]]
    holidays: frozenset[date] = frozenset()
    #: open every hour of every day, holidays included (a 24-hour duty line)
    always: bool = False

    @classmethod
    def around_the_clock(cls, tz: str) -> WorkingHours:
        return cls(tz=tz, days={}, always=True)

    @classmethod
    def from_shift(cls, start: time, end: time, weekdays: Sequence[int] | frozenset[int],
                   *, tz: str) -> WorkingHours:
        """A shift [start, end) that starts on ``weekdays``; one ending before it starts runs
        past midnight, and its early hours belong to the next day."""
        days: dict[int, list[tuple[time, time]]] = {d: [] for d in range(7)}
        for d in weekdays:
            if start < end:
                days[d].append((start, end))
            else:
                days[d].append((start, time(0)))
                if end != time(0):
                    days[(d + 1) % 7].append((time(0), end))
        return cls(tz=tz, days={d: tuple(sorted(v)) for d, v in days.items() if v})

    def is_open(self, moment: datetime) -> bool:
        """Whether the calendar is open at the aware moment."""
        return any(a <= moment < b for a, b in self._intervals(moment, moment + timedelta(0)))

    def working_time(self, start: datetime, end: datetime) -> timedelta:
        """Open time between two aware moments (zero if end is not after start)."""
        if end <= start:
            return timedelta(0)
        if self.always:
            return end - start
        total = timedelta(0)
        for a, b in self._intervals(start, end):
            lo, hi = max(a, start), min(b, end)
            if hi > lo:
                total += hi - lo
        return total

    def add(self, start: datetime, amount: timedelta) -> datetime | None:
        """The moment at which ``amount`` of open time has passed since ``start``;
        None if the calendar never opens again."""
        if self.always:
            return start + amount
        left = amount
        for a, b in self._intervals(start, start + _HORIZON_DAYS * _DAY):
            lo = max(a, start)
            if b <= lo:
                continue
            if lo + left <= b:
                return lo + left
            left -= b - lo
        return None

    def next_change(self, after: datetime) -> datetime | None:
        """The first moment strictly after ``after`` at which the calendar opens or closes."""
        if self.always:
            return None
        for a, b in self._intervals(after, after + _HORIZON_DAYS * _DAY):
            for edge in (a, b):
                if edge > after:
                    return edge
        return None

    def next_opening(self, after: datetime) -> datetime | None:
        """``after`` itself if open, else the first opening after it."""
        if self.always or self.is_open(after):
            return after
        for a, _ in self._intervals(after, after + _HORIZON_DAYS * _DAY):
            if a > after:
                return a
        return None

    def describe(self) -> str:
        """The hours in a few words: '24 h' or 'mon-fri 09:00-18:00'."""
        if self.always:
            return "24 h"
        parts: list[str] = []
        runs: list[tuple[int, int, tuple[tuple[time, time], ...]]] = []
        for d in range(7):
            spans = tuple(self.days.get(d, ()))
            if spans and runs and runs[-1][1] == d - 1 and runs[-1][2] == spans:
                runs[-1] = (runs[-1][0], d, spans)
            elif spans:
                runs.append((d, d, spans))
        for first, last, spans in runs:
            days = WEEKDAYS[first] if first == last else f"{WEEKDAYS[first]}-{WEEKDAYS[last]}"
            parts.append(f"{days} " + ", ".join(
                f"{a:%H:%M}-{'24:00' if b == time(0) else f'{b:%H:%M}'}" for a, b in spans))
        return "; ".join(parts) or "never open"

    # --- private ---------------------------------------------------------------------------
    def _intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open intervals (aware, merged across midnight) touching [start, end]."""
        if start.tzinfo is None:
            raise ValueError("calendar moments must be timezone-aware")
        zone = ZoneInfo(self.tz)
        if self.always:
            yield start - _DAY, end + _DAY
            return
        day = start.astimezone(zone).date() - _DAY
        last = end.astimezone(zone).date()
        pending: tuple[datetime, datetime] | None = None
        while day <= last:
            if day not in self.holidays:
                for a, b in self.days.get(day.weekday(), ()):
                    lo = datetime.combine(day, a, zone)
                    hi = datetime.combine(day + _DAY if b == time(0) else day, b, zone)
                    if pending is not None and pending[1] == lo:
                        pending = (pending[0], hi)
                        continue
                    if pending is not None:
                        yield pending
                    pending = (lo, hi)
            day += _DAY
        if pending is not None:
            yield pending


def local_moment(text: str, tz: str, *, end_of_day: bool = False) -> datetime:
    """A moment a person wrote on the community's clock, as an aware datetime.

    ``2026-11-24 08:30`` (or ``2026-11-24T08:30``) is that time in ``tz``; text with an
    offset (``...+08:00``, ``...Z``) keeps it. A date alone is the start of that day, or
    with ``end_of_day`` the start of the next one: the end of a range that takes the
    whole day in. Raises ValueError, naming the text, for anything else.
    """
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date or a time (2026-11-24 or "
                         "2026-11-24 08:30)") from None
    if moment.tzinfo is not None:
        return moment
    if end_of_day and _is_date(text):
        moment += _DAY
    return moment.replace(tzinfo=ZoneInfo(tz))


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True
