"""Escalation tiers: who takes an order nobody at the tier below could take, and by when.

Pure, apart from reading the YAML file it is given. A community's tiers run
from the front line (the grid worker, guard, cleaner or engineer the rule
asked for) through the property's duty officer and the community office to
the street office and the city departments, chosen by the order's category:
urban management (城管) for street vending, the fire service for fire lanes and
smoke, the police for intrusion, the utilities for power and water.

Each tier has its contacts, its working calendar in the community's time zone
(24-hour duty lines where real ones are) and its SLA: how long an order may
wait for somebody to take it (``response_min``) and to be resolved once the
tier has it (``resolution_min``), counted in the calendar's open hours only.

A tier is either staff of the twin (a ``role``: the order is dispatched to
them by walking distance) or a set of departments outside it (the order is
handed over through the notification outbox). :func:`climb` chooses the next
tier: one that is closed now, or whose role nobody in the community holds, is
passed over and the history says why; a skill the next tier does not have is
dropped.

The configuration is validated like the rules: an error names the file, the
key and what was expected. The sample's configuration ships as
``twin/escalation.yaml``; a community's own file, ``<community id>.yaml`` in
the directory named by ``TWIN_ESCALATION_DIR``, replaces it for that community.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from twin.calendars import DEFAULT_TIMEZONE, WEEKDAYS, WorkingHours
from twin.config_errors import KeyCheckError, describe
from twin.dispatch import SHIFTS
from twin.errors import TwinError
from twin.work_orders import STAFF_ROLES, EscalationPolicy
from twin.yaml12 import load_mapping

#: The sample's tiers, shipped with the package.
DEFAULT_PATH = Path(__file__).with_name("escalation.yaml")
#: Environment variable naming a directory of per-community files (``<community>.yaml``).
DIR_ENV = "TWIN_ESCALATION_DIR"
#: The tier at level 0: the role the order asked for, whoever that is.
FRONT_LINE = "front_line"

_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])$")


class EscalationConfigError(TwinError):
    """The escalation configuration is wrong; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Contact(_Model):
    """A desk or duty line: its name and at least one of a phone and an e-mail."""

    name: str = Field(min_length=1)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{1,}$")
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")

    @model_validator(mode="after")
    def _reachable(self) -> Contact:
        if self.phone is None and self.email is None:
            raise ValueError("a contact needs a 'phone' or an 'email'")
        return self

    def recipients(self) -> list[str]:
        """As the ``department`` notification channel takes them: ``name <address>``."""
        return [f"{self.name} <{a}>" for a in (self.phone, self.email) if a]


class CalendarSpec(_Model):
    """``hours: 24h``, or hours per weekday (``mon-fri: [09:00-12:00, 13:30-18:00]``)."""

    hours: str | dict[str, list[str]]
    holidays: tuple[date, ...] = ()

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | dict[str, list[str]]) -> str | dict[str, list[str]]:
        if isinstance(value, str):
            if value != "24h":
                raise ValueError(f"write '24h' or hours per weekday; got {value!r}")
            return value
        for days, spans in value.items():
            _weekdays(days)
            for span in spans:
                _span(span)
        return value

    def working_hours(self, tz: str) -> WorkingHours:
        if self.hours == "24h":
            return WorkingHours.around_the_clock(tz)
        assert isinstance(self.hours, dict)
        days: dict[int, list[tuple[time, time]]] = {}
        for key, spans in self.hours.items():
            for d in _weekdays(key):
                days.setdefault(d, []).extend(_span(s) for s in spans)
        return WorkingHours(tz=tz, days={d: tuple(sorted(v)) for d, v in days.items()},
                            holidays=frozenset(self.holidays))


class Sla(_Model):
    """Minutes, in the tier's open hours."""

    #: waiting for somebody to take it (unassigned) before the next tier is asked
    response_min: float = Field(gt=0)
    #: assigned but not accepted before the next candidate is asked
    accept_min: float = Field(default=5, gt=0)
    #: accepted but not on site, beyond the route's walking time
    arrive_min: float = Field(default=10, gt=0)
    #: held by the tier without being resolved
    resolution_min: float | None = Field(default=None, gt=0)


class Department(_Model):
    """A body outside the twin: it is told through the notification outbox."""

    name: str = Field(min_length=1)
    contacts: tuple[Contact, ...] = Field(min_length=1)
    calendar: str
    sla: Sla


class Tier(_Model):
    """One step of the ladder: staff of the twin (``role``) or ``departments`` by category."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    #: the staff role that takes orders at this tier; front_line: the order's own role
    role: str | None = None
    #: skills this tier's staff have; an order's skill outside them is dropped on the way up
    skills: tuple[str, ...] = ()
    calendar: str | None = None
    sla: Sla | None = None
    contacts: tuple[Contact, ...] = ()
    #: category -> department id; the key 'default' takes every other category
    departments: dict[str, str] = {}

    @model_validator(mode="after")
    def _kind(self) -> Tier:
        if self.id == FRONT_LINE:
            if self.role is not None or self.departments:
                raise ValueError("the front line takes the order's own role: give no 'role' "
                                 "or 'departments'")
        elif (self.role is None) == (not self.departments):
            raise ValueError("give a tier either a staff 'role' or 'departments' by category")
        if self.role is not None and self.role not in STAFF_ROLES:
            raise KeyCheckError("role", f"unknown staff role {self.role!r}; expected one of "
                                    f"{list(STAFF_ROLES)}")
        if self.role is not None or self.id == FRONT_LINE:
            for field in ("calendar", "sla"):
                if getattr(self, field) is None:
                    raise KeyCheckError(field, "a tier of staff needs a " + repr(field))
        return self

    @property
    def external(self) -> bool:
        return bool(self.departments)


class EscalationConfig(_Model):
    """The whole file: time zone, calendars, order categories, departments and the tiers."""

    timezone: str = DEFAULT_TIMEZONE
    calendars: dict[str, CalendarSpec] = Field(min_length=1)
    #: category -> the order kinds in it (work_order.kind)
    categories: dict[str, tuple[str, ...]] = {}
    departments: dict[str, Department] = {}
    tiers: tuple[Tier, ...] = Field(min_length=2)
    _hours: dict[str, WorkingHours] = PrivateAttr(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; e.g. 'Asia/Shanghai'") from None
        return value

    @model_validator(mode="after")
    def _references(self) -> EscalationConfig:
        if self.tiers[0].id != FRONT_LINE:
            raise KeyCheckError("tiers.0.id", f"the first tier is {FRONT_LINE!r}, the order's own "
                                          f"role; got {self.tiers[0].id!r}")
        seen: set[str] = set()
        for i, tier in enumerate(self.tiers):
            if tier.id in seen:
                raise KeyCheckError(f"tiers.{i}.id", f"tier {tier.id!r} is defined twice")
            seen.add(tier.id)
            if tier.calendar is not None and tier.calendar not in self.calendars:
                raise KeyCheckError(f"tiers.{i}.calendar", f"there is no calendar {tier.calendar!r}; "
                                f"the calendars are {sorted(self.calendars)}")
            for category, dept in tier.departments.items():
                if category != "default" and category not in self.categories:
                    raise KeyCheckError(f"tiers.{i}.departments.{category}",
                                    f"there is no category {category!r}; the categories are "
                                    f"{sorted(self.categories)}")
                if dept not in self.departments:
                    raise KeyCheckError(f"tiers.{i}.departments.{category}",
                                    f"there is no department {dept!r}; the departments are "
                                    f"{sorted(self.departments)}")
            if tier.external and "default" not in tier.departments:
                raise KeyCheckError(f"tiers.{i}.departments", "say which department takes the "
                                "other categories: add 'default'")
        for name, department in self.departments.items():
            if department.calendar not in self.calendars:
                raise KeyCheckError(f"departments.{name}.calendar", f"there is no calendar "
                                f"{department.calendar!r}; the calendars are "
                                f"{sorted(self.calendars)}")
        owner: dict[str, str] = {}
        for category, kinds in self.categories.items():
            for kind in kinds:
                if kind in owner:
                    raise KeyCheckError(f"categories.{category}", f"order kind {kind!r} is already "
                                    f"in category {owner[kind]!r}")
                owner[kind] = category
        return self

    # --- reading it ---------------------------------------------------------------------------
    def model_post_init(self, context: Any, /) -> None:
        self._hours.update({n: c.working_hours(self.timezone) for n, c in self.calendars.items()})

    def calendar(self, name: str) -> WorkingHours:
        return self._hours[name]

    def category_of(self, kind: str) -> str | None:
        return next((c for c, kinds in self.categories.items() if kind in kinds), None)

    def department_for(self, tier: Tier, kind: str) -> tuple[str, Department]:
        category = self.category_of(kind)
        name = tier.departments.get(category or "", tier.departments["default"])
        return name, self.departments[name]

    def policy(self, level: int, kind: str) -> EscalationPolicy:
        """The SLA of the tier at ``level``, as :func:`twin.work_orders.escalation_due` takes it."""
        tier = self.tiers[min(level, len(self.tiers) - 1)]
        if tier.external:
            _, dept = self.department_for(tier, kind)
            sla, calendar = dept.sla, self.calendar(dept.calendar)
        else:
            assert tier.sla is not None and tier.calendar is not None
            sla, calendar = tier.sla, self.calendar(tier.calendar)
        return EscalationPolicy(
            unassigned=timedelta(minutes=sla.response_min),
            not_accepted=timedelta(minutes=sla.accept_min),
            not_arrived=timedelta(minutes=sla.arrive_min),
            resolution=timedelta(minutes=sla.resolution_min) if sla.resolution_min else None,
            calendar=None if calendar.always else calendar)


@dataclass(frozen=True, slots=True)
class Climb:
    """Where an escalated order goes: the tier, and what it asks of it."""

    level: int
    tier: str
    tier_name: str
    #: the staff role to dispatch to; for a department, the role the order had
    role: str
    skill: str | None
    department: str | None = None
    contacts: tuple[Contact, ...] = ()
    #: (tier id, why it was passed over)
    skipped: tuple[tuple[str, str], ...] = ()
    #: the skill the order asked for and this tier does not have
    dropped_skill: str | None = None
    #: the skills this tier's staff have
    tier_skills: tuple[str, ...] = ()

    def note(self, reason: str) -> str:
        """The history line: the tier, the reason, and what was passed over or dropped."""
        parts = [f"to {self.tier_name} ({self.tier}"
                 + (f": {self.department}" if self.department else "") + f"): {reason}"]
        parts += [f"passed over {t}: {why}" for t, why in self.skipped]
        if self.dropped_skill:
            parts.append(f"dropped skill {self.dropped_skill}: {self.tier} has "
                         f"{list(self.tier_skills) or 'no skills'}")
        return "; ".join(parts)

    def detail(self, reason: str) -> dict[str, Any]:
        return {"tier": self.tier, "level": self.level, "reason": reason,
                "department": self.department, "dropped_skill": self.dropped_skill,
                "skipped": [list(s) for s in self.skipped], "role": self.role}


def climb(config: EscalationConfig, *, level: int, role: str, skill: str | None, kind: str,
          now: datetime, staffed: Iterable[str]) -> Climb | None:
    """The next tier above ``level`` that can take the order now, or None at the top.

    A tier of staff is passed over when its calendar is closed at ``now`` or
    nobody in the community holds its role (``staffed``: the roles present).
    Departments are always told (their duty lines answer, or their own
    calendar's hours count for the SLA).
    """
    roles = set(staffed)
    skipped: list[tuple[str, str]] = []
    for index in range(level + 1, len(config.tiers)):
        tier = config.tiers[index]
        if tier.external:
            name, dept = config.department_for(tier, kind)
            return Climb(level=index, tier=tier.id, tier_name=tier.name, role=role, skill=None,
                         department=name, contacts=dept.contacts, skipped=tuple(skipped),
                         dropped_skill=skill)
        assert tier.calendar is not None and tier.role is not None
        hours = config.calendar(tier.calendar)
        if not hours.is_open(now):
            skipped.append((tier.id, f"closed ({hours.describe()})"))
            continue
        if tier.role not in roles:
            skipped.append((tier.id, f"nobody in the community is {tier.role}"))
            continue
        kept = skill if skill is None or skill in tier.skills else None
        return Climb(level=index, tier=tier.id, tier_name=tier.name, role=tier.role,
                                skill=kept, contacts=tier.contacts, skipped=tuple(skipped),
                                dropped_skill=skill if kept is None and skill else None,
                                tier_skills=tier.skills)
    return None


def next_retry(*, shifts: Iterable[str], now: datetime, tz: str,
               also: Iterable[datetime | None] = ()) -> datetime | None:
    """The next moment a waiting order's answer can change by the clock alone: a shift of
    the staff who could take it starts or ends, or one of ``also`` (an SLA deadline, a
    tier's calendar opening) comes. Positions, declines and finished orders are events,
    watched by the caller."""
    moments = [m for m in also if m is not None and m > now]
    for shift in set(shifts):
        hours = SHIFTS[shift]
        change = WorkingHours.from_shift(hours.start, hours.end, hours.weekdays,
                                         tz=tz).next_change(now)
        if change is not None:
            moments.append(change)
    return min(moments, default=None)


def parse_config(text: str, *, origin: str = "<text>") -> EscalationConfig:
    """The tiers in a YAML text, or an EscalationConfigError naming ``origin`` and the key."""
    data = load_mapping(text, origin=origin, error=EscalationConfigError,
                        holds="timezone, calendars, categories, departments, tiers")
    try:
        return EscalationConfig.model_validate(data)
    except ValidationError as e:
        raise EscalationConfigError(describe(origin, e)) from None


def load_config(path: Path) -> EscalationConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise EscalationConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_config(text, origin=str(path))


def config_for(community_id: str, *, directory: Path | None = None) -> EscalationConfig:
    """The community's own file in ``directory`` (default: ``$TWIN_ESCALATION_DIR``), else
    the shipped default. Files are read once per process."""
    if directory is None and os.environ.get(DIR_ENV):
        directory = Path(os.environ[DIR_ENV])
    if directory is not None and (directory / f"{community_id}.yaml").is_file():
        return _cached(str(directory / f"{community_id}.yaml"))
    return _cached(str(DEFAULT_PATH))


# --- private ---------------------------------------------------------------------------

@lru_cache(maxsize=64)
def _cached(path: str) -> EscalationConfig:
    return load_config(Path(path))


def _weekdays(key: str) -> list[int]:
    """'mon', 'mon-fri', 'sat-sun' -> weekday numbers."""
    ends = key.split("-")
    if len(ends) > 2 or any(e not in WEEKDAYS for e in ends):
        raise ValueError(f"weekdays are written 'mon' or 'mon-fri'; got {key!r}")
    first, last = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
    return [d % 7 for d in range(first, last + 1 if last >= first else last + 8)]


def _span(text: str) -> tuple[time, time]:
    """'09:00-18:00' -> (09:00, 18:00); an end of 24:00 is midnight."""
    m = _HHMM.match(str(text))
    if not m:
        raise ValueError(f"hours are written 'HH:MM-HH:MM'; got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 == 24 or (h2 == 24 and m2) or (h1, m1) >= (h2, m2):
        raise ValueError(f"hours run forwards within one day (end 24:00 at the latest); "
                         f"got {text!r}")
    return time(h1, m1), time(0) if h2 == 24 else time(h2, m2)


