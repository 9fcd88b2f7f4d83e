"""The rule file format: what a rule YAML may say, as pydantic models.

A rule is a small directed graph of named nodes. Each node has exactly one
kind key (``source``, a condition such as ``threshold``, ``enrich``, or an
action such as ``raise_alarm``) and names the nodes it follows in ``after``.
These models check the shape of one rule (types, required fields, unknown
keys); `twin.rules.compile` checks the meaning (device types, metrics,
commands, edges, cycles) against the device-type registry.

    id: garage-co
    title: CO in a garage above 50 ppm
    domain: safety
    key: facility
    nodes:
      - id: co
        source: {device_types: [co_sensor], metrics: [co], place: {facility_kind: garage}}
      - id: high
        after: co
        threshold: {metric: co, above: 50}
      - id: fans
        after: high
        command: {target: {device_type: exhaust_fan, same: facility}, command: start}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin.alarms import Severity
from twin.device_types import Domain
from twin.model import CARE_FLAGS
from twin.texts import LANGS  # noqa: F401  (re-exported: the languages of rule texts)
from twin.work_orders import Priority, StaffRole

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
#: How firings of one rule are grouped: one alarm per device, per garage, per resident ...
KEYS = ("device", "facility", "building", "unit", "grid", "resident", "community")
#: What an action's devices share with the device that triggered the rule.
SAME = ("device", "unit", "building", "facility", "grid", "community")
CHANNELS = ("family", "grid_worker", "security_desk", "manager")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Around(_Strict):
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    radius_m: float = Field(gt=0, le=50_000)


class Place(_Strict):
    """Where a source listens: any of these narrows it (all must hold)."""

    community: str | None = None
    grid: str | None = None
    building: str | None = None
    facility: str | None = None
    facility_kind: str | None = None
    around: Around | None = None


class Source(_Strict):
    device_types: list[str] = Field(min_length=1)
    #: Telemetry with any of these metrics (None: no telemetry unless nothing else is asked).
    metrics: list[str] | None = None
    #: Events of these kinds (``detection``, ``access``, ``door_forced`` ...).
    events: list[str] | None = None
    #: For detections: the classes listened to.
    classes: list[str] | None = None
    #: Status messages (online/offline), seen as the metric ``online`` (true/false).
    status: bool = False
    min_confidence: float | None = Field(None, ge=0, le=1)
    #: For access events: only residents with one of these care flags.
    care_flags: list[str] | None = None
    place: Place | None = None

    @model_validator(mode="after")
    def _listens(self) -> Source:
        if self.metrics is None and self.events is None and self.classes is None \
                and not self.status:
            raise ValueError("a source listens to metrics, events, classes or status; "
                             "give at least one")
        return self


class _Compare(_Strict):
    above: float | None = None
    below: float | None = None
    equals: float | str | bool | None = None
    not_equals: float | str | bool | None = None

    @model_validator(mode="after")
    def _one(self) -> _Compare:
        given = [f for f in ("above", "below", "equals", "not_equals")
                 if getattr(self, f) is not None]
        if not given:
            raise ValueError("give 'above', 'below', 'equals' or 'not_equals'")
        if len(given) > 1 and set(given) != {"above", "below"}:
            raise ValueError(f"{' and '.join(given)} do not go together "
                             "(only 'above' and 'below' do: outside a band)")
        return self


class Threshold(_Compare):
    metric: str
    #: any: true while one device of the key is past it; all: while every one is
    #: (every device of the source's types in the key, from their latest values).
    devices: Literal["any", "all"] = "any"


class ForDuration(_Strict):
    seconds: float = Field(gt=0)
    #: For events (pulses): the condition stays true this long after each one.
    gap_s: float | None = Field(None, gt=0)


class NoSignal(_Strict):
    seconds: float = Field(gt=0)


class CountInWindow(_Strict):
    count: int = Field(ge=1)
    seconds: float = Field(gt=0)


class RateOfChange(_Compare):
    metric: str
    #: The rate is per this many seconds (3600: per hour).
    per_seconds: float = Field(3600, gt=0)
    #: A reading sooner than this after the one it is compared with is not compared (a
    #: report off schedule, seconds after the last, would scale the sensor's noise into a
    #: rate); the older reading stays the reference.
    min_interval_s: float = Field(0.0, ge=0)


class TimeWindow(_Strict):
    start: str
    end: str
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] | None = None

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"{value!r} is not a time of day written HH:MM")
        return value


class Geofence(_Strict):
    facility: str | None = None
    facility_kind: str | None = None
    around: Around | None = None
    #: [[lon, lat], ...], at least three corners.
    polygon: list[tuple[float, float]] | None = Field(None, min_length=3)
    #: A facility without an area counts as a circle of this radius round its point.
    margin_m: float = Field(30.0, ge=0)
    outside: bool = False

    @model_validator(mode="after")
    def _one(self) -> Geofence:
        given = [f for f in ("facility", "facility_kind", "around", "polygon")
                 if getattr(self, f) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of facility, facility_kind, around, polygon")
        return self


class StateOf(_Compare):
    """The latest state of another device: one sharing ``same`` with the triggering device."""

    device_type: str
    same: Literal["device", "unit", "building", "facility", "grid", "community"] = "unit"
    metric: str


class Baseline(_Strict):
    """A meter against its own usual, not one fixed threshold.

    Per device and hour of the week (or of the day, local), the median and the
    MAD of its readings over a trailing window, learnt from the readings
    hypertable when the rules load. A reading is a hit when its robust z
    ((x - median) / (1.4826 MAD)) passes ``z`` and it is at least
    ``min_deviation`` (metric units) and ``min_ratio`` (of the median) away from
    the median; the condition holds after ``consecutive`` hits in a row of one
    device. A bucket with fewer than ``min_samples`` learnt values says nothing.
    """

    metric: str
    bucket: Literal["hour_of_week", "hour_of_day"] = "hour_of_week"
    window_days: float = Field(28.0, gt=0, le=366)
    z: float = Field(4.0, gt=0)
    direction: Literal["above", "below"] = "above"
    min_deviation: float = Field(0.0, ge=0)
    min_ratio: float = Field(0.0, ge=0)
    consecutive: int = Field(3, ge=1, le=100)
    min_samples: int = Field(8, ge=2)


class Absence(_Strict):
    """Special care: a resident not seen going out (``out``) or not back (``in``) for hours."""

    direction: Literal["out", "in"]
    care_flags: list[str] = Field(min_length=1)
    #: Hours by care flag; a resident with several flags gets the shortest.
    hours: dict[str, float] = Field(default_factory=dict)
    default_hours: float = Field(24.0, gt=0)
    #: Local times during which nothing is raised (it waits until they end).
    quiet: str | None = "22:00-07:00"

    @field_validator("care_flags")
    @classmethod
    def _flags(cls, value: list[str]) -> list[str]:
        for flag in value:
            if flag not in CARE_FLAGS:
                raise ValueError(f"unknown care flag {flag!r}; expected one of {list(CARE_FLAGS)}")
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, float]) -> dict[str, float]:
        for flag, h in value.items():
            if flag not in CARE_FLAGS:
                raise ValueError(f"unknown care flag {flag!r}; expected one of {list(CARE_FLAGS)}")
            if h <= 0:
                raise ValueError(f"hours for {flag} must be positive")
        return value

    @field_validator("quiet")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            parts = value.split("-")
            if len(parts) != 2 or not all(_HHMM.match(p) for p in parts):
                raise ValueError(f"{value!r} is not a span of local time written HH:MM-HH:MM")
        return value


class Nearby(_Strict):
    device_type: str
    radius_m: float = Field(gt=0, le=5000)


class Enrich(_Strict):
    """What the twin adds to a firing, for titles, messages and the alarm's detail."""

    place: bool = True
    residents: bool = False
    nearby: list[Nearby] = Field(default_factory=list)


class Target(_Strict):
    """Devices an action speaks to, relative to the device that triggered the rule."""

    device_type: str | None = None
    same: Literal["device", "unit", "building", "facility", "grid", "community"] | None = None
    radius_m: float | None = Field(None, gt=0, le=5000)
    devices: list[str] | None = None
    #: At most this many, nearest first.
    limit: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _how(self) -> Target:
        if self.same is None and self.radius_m is None and self.devices is None:
            raise ValueError("say which devices: 'same', 'radius_m' or 'devices'")
        return self


class Group(_Strict):
    """One incident seen by several sources: within ``radius_m`` and ``window_s`` of an open
    alarm of the same type, a new raise counts on that alarm instead of opening another."""

    radius_m: float = Field(gt=0, le=2000)
    window_s: float = Field(gt=0, le=86_400)


class Localized(_Strict):
    """One text of a rule in every language: ``{zh-CN: "...", en: "..."}``.

    Both are required: a rule missing one is refused on load, naming the node and the
    field (``raise_alarm.title.en``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    zh_CN: str = Field(alias="zh-CN", min_length=1, max_length=500)
    en: str = Field(min_length=1, max_length=500)

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            # pydantic reports a ValueError with the field's location; a TypeError it does not
            raise ValueError(  # noqa: TRY004
                "write the text in every language: {zh-CN: '...', en: '...'}")
        return value

    def by_lang(self) -> dict[str, str]:
        """``{"zh-CN": ..., "en": ...}``: what `twin.texts.render` reads."""
        return {"zh-CN": self.zh_CN, "en": self.en}


class RaiseAlarm(_Strict):
    type: Id
    severity: Severity
    title: Localized
    #: What the alarm is about; by default what the rule is keyed by.
    source: Literal["device", "resident", "facility", "building", "community"] | None = None
    #: Escalate when nobody acknowledged it within this many seconds.
    escalate_after_s: float | None = Field(None, gt=0)


class ClearAlarm(_Strict):
    type: Id
    source: Literal["device", "resident", "facility", "building", "community"] | None = None
    #: Why it cleared, in every language (a plain string is taken as is, for older rules).
    reason: Localized | str = ""


class Command(_Strict):
    target: Target
    command: str
    args: dict[str, Any] = Field(default_factory=dict)


class Broadcast(_Strict):
    """Spoken in zh-CN (a speaker plays one language); the en text is for the screens."""

    target: Target
    message: Localized


class Notify(_Strict):
    to: list[Literal["family", "grid_worker", "security_desk", "manager"]] = Field(
        min_length=1)
    message: Localized


class WorkOrder(_Strict):
    kind: Id
    title: Localized
    role: StaffRole
    skill: str | None = None
    priority: Priority = "normal"
    due_min: float | None = Field(None, gt=0)


#: What one node says: one of these, by its kind.
Spec = (Source | Threshold | ForDuration | NoSignal | CountInWindow | RateOfChange | Baseline
        | TimeWindow | Geofence | StateOf | Absence | Enrich | RaiseAlarm | ClearAlarm | Command | Broadcast
        | Notify | WorkOrder)
#: The conditions that compare a value (above, below, equals, not_equals).
Comparison = Threshold | RateOfChange | StateOf

CONDITIONS = ("threshold", "for_duration", "no_signal", "count_in_window", "rate_of_change",
              "baseline", "time_window", "geofence", "state_of", "absence")
ACTIONS = ("raise_alarm", "clear_alarm", "command", "broadcast", "notify", "work_order")
KINDS = ("source", *CONDITIONS, "enrich", *ACTIONS)


class Node(_Strict):
    id: Id
    after: list[str] = Field(default_factory=list)
    #: Actions only: run when the condition before them becomes true (raised) or false again.
    when: Literal["raised", "cleared"] = "raised"
    source: Source | None = None
    threshold: Threshold | None = None
    for_duration: ForDuration | None = None
    no_signal: NoSignal | None = None
    count_in_window: CountInWindow | None = None
    rate_of_change: RateOfChange | None = None
    baseline: Baseline | None = None
    time_window: TimeWindow | None = None
    geofence: Geofence | None = None
    state_of: StateOf | None = None
    absence: Absence | None = None
    enrich: Enrich | None = None
    raise_alarm: RaiseAlarm | None = None
    clear_alarm: ClearAlarm | None = None
    command: Command | None = None
    broadcast: Broadcast | None = None
    notify: Notify | None = None
    work_order: WorkOrder | None = None

    @field_validator("after", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> Node:
        given = [k for k in KINDS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a node has exactly one of {', '.join(KINDS)}; "
                             f"this one has {', '.join(given) or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def spec(self) -> Spec:
        """The node's one kind of content (its `kind` field); narrow it with isinstance."""
        return getattr(self, self.kind)


class Rule(_Strict):
    id: Id
    #: What the rule is about, in every language (a plain string is taken as is, for
    #: older rules): the description of the orders it opens.
    title: Localized | Annotated[str, Field(min_length=1, max_length=200)]
    domain: Domain
    description: str = ""
    enabled: bool = True
    key: Literal["device", "facility", "building", "unit", "grid", "resident", "community"] = \
        "device"
    #: Local time of the community, for time windows and quiet hours (Wuhan: +8).
    utc_offset_h: float = Field(8.0, ge=-12, le=14)
    #: After firing, the same key does not fire again for this long (pulses only).
    cooldown_s: float = Field(0.0, ge=0)
    #: Several sources (cameras, sensors) near each other within a time window are one
    #: incident: one alarm (the others counted on it) and one order.
    group: Group | None = None
    #: What becomes of the work orders an alarm of the rule opened when the rule clears it:
    #: left as they are (keep), closed as done (close) or cancelled (cancel), with the reason.
    orders_on_clear: Literal["keep", "close", "cancel"] = "keep"
    nodes: list[Node] = Field(min_length=2)

    def title_in(self, lang: str) -> str:
        """The title in ``lang`` (English and zh-CN are both always there)."""
        if isinstance(self.title, str):
            return self.title
        return self.title.zh_CN if lang == "zh-CN" else self.title.en
