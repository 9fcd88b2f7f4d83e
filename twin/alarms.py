"""Alarms: what the twin says is wrong, how bad it is and where.

Pure types and ordering only; `twin.store.operations` keeps them. An alarm
is identified by (community, source, type): a repeat of an open alarm
increments its count instead of opening a second one, so an operator sees
one row for a charger that overheats every minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from shapely.geometry import Point

#: The five domains the scenario library and the large screen group by.
DOMAINS: tuple[str, ...] = ("safety", "environment", "service", "activity", "equipment")

#: Worst first: a building is coloured by the first of these it has open.
Severity = Literal["critical", "major", "minor", "info"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)

ALARM_STATES: tuple[str, ...] = ("active", "acknowledged", "cleared")

SOURCE_KINDS: tuple[str, ...] = ("device", "resident", "building", "facility", "staff", "community")


def severity_rank(severity: str) -> int:
    """0 for the worst; sorting by it puts critical alarms first."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown alarm severity {severity!r}; expected one of {SEVERITIES}") from None


def worst_severity(severities: list[str] | tuple[str, ...]) -> str | None:
    """The worst of some severities, or None when there are none."""
    return min(severities, key=severity_rank) if severities else None


@dataclass(frozen=True, slots=True)
class AlarmSpec:
    """What a rule (or an operator) asks to raise."""

    community_id: str
    type: str
    domain: str
    severity: str
    source_kind: str
    source_id: str
    title: str
    at: datetime
    rule_id: str | None = None
    building_id: str | None = None
    floor: int | None = None
    unit_id: str | None = None
    device_id: str | None = None
    resident_id: str | None = None
    location: Point | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    #: The rule text this alarm's title is rendered from (`twin.texts`), and its
    #: parameters: ids and values, never a name. ``title`` is then the zh-CN text with
    #: residents masked, kept for readers that do not render.
    text_key: str | None = None
    text_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"alarm {self.type!r}: unknown domain {self.domain!r}; expected one of {DOMAINS}")
        severity_rank(self.severity)
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(
                f"alarm {self.type!r}: unknown source kind {self.source_kind!r}; expected one of {SOURCE_KINDS}"
            )
        if self.at.tzinfo is None:
            raise ValueError(f"alarm {self.type!r}: time {self.at} has no time zone")


@dataclass(frozen=True, slots=True)
class Alarm:
    """A kept alarm: the spec it stands for, and what only a kept alarm has.

    ``spec`` holds the alarm as it is kept now: a repeat may have raised its
    severity and replaced its detail, and ``spec.at`` is when it was first
    raised (the table's ``raised_at``).
    """

    id: int
    spec: AlarmSpec
    state: str
    count: int
    last_at: datetime
    updated_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    cleared_at: datetime | None = None
    cleared_by: str | None = None
    escalation_level: int = 0
    #: When the twin learnt of it (the service's clock at raise); escalation counts from it.
    known_at: datetime | None = None
    #: Every source that reported this incident, and those still reporting it.
    sources: tuple[str, ...] = ()
    active_sources: tuple[str, ...] = ()

    @property
    def raised_at(self) -> datetime:
        """When it was first raised: its spec's time."""
        return self.spec.at

    @property
    def is_open(self) -> bool:
        return self.state != "cleared"


@dataclass(frozen=True, slots=True)
class AlarmGroup:
    """One incident seen by several sources: an open alarm of the same type within
    ``radius_m`` of a new one, last seen within ``window_s``, takes it as a repeat."""

    radius_m: float
    window_s: float

    def __post_init__(self) -> None:
        if not self.radius_m > 0 or not self.window_s > 0:
            raise ValueError(f"an alarm group needs a positive radius and window, not "
                             f"{self.radius_m} m and {self.window_s} s")


@dataclass(frozen=True, slots=True)
class Raised:
    """The outcome of raising: the alarm, and whether it is new, a repeat, or a worse
    repeat that took the alarm over (what follows the alarm is then done too)."""

    alarm: Alarm
    new: bool
    upgraded: bool = False

    @property
    def fresh(self) -> bool:
        """New, or newly worse: the actions that follow an alarm run."""
        return self.new or self.upgraded
