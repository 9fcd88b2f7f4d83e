"""Work orders: their lifecycle, who may move them, and when they escalate.

Pure: the store (`twin.store.operations`) asks `transition` before every
change and writes what it returns, so the rules that a grid worker's phone,
the control room and the rule engine obey are written once, here.

    created --assign--> assigned --accept--> accepted --arrive--> arrived
       ^                   |                    |                    |
       +-----decline-------+                    +------resolve-------+--> resolved --close--> closed
    any open state --escalate--> escalated --assign--> assigned (one tier up, twin.escalation)
    escalated --escalate--> escalated (nobody at that tier took it: the next tier)
    any state before closed --cancel--> cancelled
    any state before closed --settle--> closed (the system only: the alarm that opened
                                        it cleared, and its rule says the order is done)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from shapely.geometry import LineString, Point

from twin.calendars import DEFAULT_TIMEZONE, WorkingHours
from twin.errors import AccessDenied, TwinError
from twin.system_texts import Said

STATES: tuple[str, ...] = (
    "created", "assigned", "accepted", "arrived", "resolved", "escalated", "closed", "cancelled",
)
#: States in which somebody still has to do something.
OPEN_STATES: frozenset[str] = frozenset({"created", "assigned", "accepted", "arrived", "escalated"})
#: States that count against a staff member's open-order limit.
BUSY_STATES: frozenset[str] = frozenset({"assigned", "accepted", "arrived"})
Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
StaffRole = Literal["grid_worker", "security", "cleaning", "engineer", "manager", "duty_officer"]
STAFF_ROLES: tuple[StaffRole, ...] = get_args(StaffRole)

#: Roles of the control room's users (dashboard logins), beside the staff roles.
#: 'system' is the rule engine and the escalation timer.
OPERATOR_ROLES: frozenset[str] = frozenset({"admin", "operator", "system"})


@dataclass(frozen=True, slots=True)
class Transition:
    from_states: frozenset[str]
    to_state: str
    #: 'assignee': only the staff member the order is assigned to (or an operator);
    #: 'operator': admin, operator or system; 'anyone': the assignee or an operator;
    #: 'system': the rule engine and its timers only.
    who: str


ACTIONS: dict[str, Transition] = {
    "assign": Transition(frozenset({"created", "escalated", "assigned"}), "assigned", "operator"),
    "decline": Transition(frozenset({"assigned"}), "created", "assignee"),
    "accept": Transition(frozenset({"assigned"}), "accepted", "assignee"),
    "arrive": Transition(frozenset({"accepted"}), "arrived", "assignee"),
    "resolve": Transition(frozenset({"accepted", "arrived"}), "resolved", "assignee"),
    "escalate": Transition(
        frozenset({"created", "assigned", "accepted", "arrived", "escalated"}), "escalated",
        "anyone"
    ),
    "close": Transition(frozenset({"resolved"}), "closed", "operator"),
    "cancel": Transition(OPEN_STATES | {"resolved"}, "cancelled", "operator"),
    "settle": Transition(OPEN_STATES | {"resolved"}, "closed", "system"),
}

class TransitionError(TwinError):
    """A lifecycle step that is not allowed from where the order is, or for this actor."""


class NotPermitted(TransitionError, AccessDenied):
    """The step is not this actor's to take: their role, or an order that is not theirs.

    Both a TransitionError (the step did not happen) and an AccessDenied (a refusal
    the caller audits)."""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a login (role admin/operator/grid_worker/planner), a staff member, or the system."""

    name: str
    role: str
    staff_id: str | None = None

    @property
    def is_operator(self) -> bool:
        return self.role in OPERATOR_ROLES


SYSTEM = Actor(name="system", role="system")


def transition(
    order_id: int, state: str, action: str, actor: Actor, *, assignee_id: str | None
) -> str:
    """The state after `action`, or a TransitionError that says why not (a NotPermitted
    when the step is not the actor's to take)."""
    step = _step(order_id, action)
    if state not in step.from_states:
        raise TransitionError(
            f"work order {order_id} is {state}; it cannot be {_past(action)} from there"
        )
    check_actor(order_id, action, actor, assignee_id=assignee_id)
    return step.to_state


def check_actor(order_id: int, action: str, actor: Actor, *, assignee_id: str | None) -> None:
    """Refuse (NotPermitted) a step that is not the actor's to take, whatever the order's
    state: the role and scope half of `transition`, which `twin.access` asks before acting."""
    step = _step(order_id, action)
    is_assignee = actor.staff_id is not None and actor.staff_id == assignee_id
    if step.who == "system" and actor.role != "system":
        raise NotPermitted(f"work order {order_id}: only the system may {action} it "
                           "(when the alarm that opened it clears)")
    if step.who == "operator" and not actor.is_operator:
        raise NotPermitted(f"work order {order_id}: only an operator may {action} it")
    if step.who in ("assignee", "anyone") and not (is_assignee or actor.is_operator):
        raise NotPermitted(
            f"work order {order_id} is assigned to {assignee_id or 'nobody'}; "
            f"{actor.name} may not {action} it"
        )


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """How long an order may sit in a state before the system escalates it: one tier's SLA
    (:meth:`twin.escalation.EscalationConfig.policy`)."""

    #: waiting for somebody to take it ('created', 'escalated')
    unassigned: timedelta = timedelta(minutes=2)
    not_accepted: timedelta = timedelta(minutes=5)
    #: beyond the route's ETA
    not_arrived: timedelta = timedelta(minutes=10)
    #: held by the tier without being resolved, from when the tier got it
    resolution: timedelta | None = None
    #: the tier's working hours: only open hours count; None: every hour does
    calendar: WorkingHours | None = None


def escalation_deadline(
    state: str,
    *,
    updated_at: datetime,
    due_at: datetime | None,
    eta_s: float | None,
    tier_since: datetime | None = None,
    policy: EscalationPolicy = EscalationPolicy(),
) -> tuple[datetime, str] | None:
    """When the order escalates if nothing happens first, and why; None if it never does."""
    after = _counting(policy)
    found: list[tuple[datetime | None, str]] = []
    if state in ("created", "escalated"):
        found.append((after(updated_at, policy.unassigned),
                      Said(f"nobody took it within {_minutes(policy.unassigned)}",
                           "sys/unassigned", minutes=_mins(policy.unassigned))))
    if state == "assigned":
        found.append((after(updated_at, policy.not_accepted),
                      Said(f"not accepted within {_minutes(policy.not_accepted)}",
                           "sys/not-accepted", minutes=_mins(policy.not_accepted))))
    if state == "accepted":
        limit = timedelta(seconds=eta_s or 0) + policy.not_arrived
        found.append((after(updated_at, limit),
                      Said(f"not on site within {_minutes(limit)} of accepting",
                           "sys/not-arrived", minutes=_mins(limit))))
    if state in BUSY_STATES and due_at is not None:
        found.append((due_at, Said("not resolved by its due time", "sys/overdue")))
    if state in OPEN_STATES and policy.resolution is not None and tier_since is not None:
        found.append((after(tier_since, policy.resolution),
                      Said(f"not resolved within {_minutes(policy.resolution)} at this tier",
                           "sys/tier-timeout", minutes=_mins(policy.resolution))))
    dated = [(at, why) for at, why in found if at is not None]
    return min(dated, key=lambda d: d[0]) if dated else None


def escalation_due(
    state: str,
    *,
    now: datetime,
    updated_at: datetime,
    due_at: datetime | None,
    eta_s: float | None,
    tier_since: datetime | None = None,
    policy: EscalationPolicy = EscalationPolicy(),
) -> str | None:
    """Why the order should escalate now, or None. `now` is injected: no wall clock here.

    Waiting is counted in the tier's open hours (``policy.calendar``); the due
    time is a moment, and counts every hour.
    """
    deadline = escalation_deadline(state, updated_at=updated_at, due_at=due_at, eta_s=eta_s,
                                   tier_since=tier_since, policy=policy)
    if deadline is not None and now > deadline[0]:
        return deadline[1]
    return None


@dataclass(frozen=True, slots=True)
class WorkOrderSpec:
    """What a rule (or an operator) asks to open."""

    community_id: str
    kind: str
    title: str
    domain: str
    role: str
    location: Point
    at: datetime
    priority: str = "normal"
    skill: str | None = None
    description: str = ""
    alarm_id: int | None = None
    rule_id: str | None = None
    grid_id: str | None = None
    building_id: str | None = None
    unit_id: str | None = None
    resident_id: str | None = None
    device_id: str | None = None
    due_in: timedelta | None = None
    #: The rule text the title is rendered from and its parameters (ids, never names).
    text_key: str | None = None
    text_params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.role not in STAFF_ROLES:
            raise ValueError(f"work order {self.kind!r}: unknown role {self.role!r}; expected one of {STAFF_ROLES}")
        if self.priority not in PRIORITIES:
            raise ValueError(
                f"work order {self.kind!r}: unknown priority {self.priority!r}; expected one of {PRIORITIES}"
            )
        if self.at.tzinfo is None:
            raise ValueError(f"work order {self.kind!r}: time {self.at} has no time zone")


@dataclass(frozen=True, slots=True)
class WorkOrderEvent:
    time: datetime
    action: str
    actor: str
    from_state: str | None
    to_state: str
    staff_id: str | None
    note: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkOrder:
    """A kept work order: the spec it stands for, and its state since.

    ``spec`` holds the order as it is kept now (an escalation hands it to
    another ``role``); ``spec.at`` is when it was created (the table's
    ``created_at``) and ``spec.due_in`` how long after that it is due.
    """

    id: int
    spec: WorkOrderSpec
    state: str
    updated_at: datetime
    assignee_id: str | None = None
    route: LineString | None = None
    route_m: float | None = None
    eta_s: float | None = None
    declined_by: tuple[str, ...] = ()
    escalation_level: int = 0
    history: tuple[WorkOrderEvent, ...] = ()
    #: the escalation tier holding it (twin.escalation), since when, and the department
    #: outside the twin it was handed to, if any
    tier: str = "front_line"
    tier_since: datetime | None = None
    department: str | None = None
    #: its community's IANA time zone: the date in its code is the local date
    timezone: str = DEFAULT_TIMEZONE

    @property
    def created_at(self) -> datetime:
        """When it was opened: its spec's time."""
        return self.spec.at

    @property
    def due_at(self) -> datetime | None:
        """When it must be resolved by, if it has a due time."""
        return self.spec.at + self.spec.due_in if self.spec.due_in is not None else None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def code(self) -> str:
        """The number people read out on the phone: WO-20261124-42."""
        return order_code(self.id, self.created_at, self.timezone)


def _step(order_id: int, action: str) -> Transition:
    # the action may come from a browser: anything at all, not only a string
    step = ACTIONS.get(action) if isinstance(action, str) else None
    if step is None:
        raise TransitionError(
            f"work order {order_id}: unknown action {action!r}; expected one of {sorted(ACTIONS)}"
        )
    return step


def _past(action: str) -> str:
    return {"assign": "assigned", "decline": "declined", "accept": "accepted",
            "arrive": "marked arrived", "resolve": "resolved", "escalate": "escalated",
            "close": "closed", "cancel": "cancelled", "settle": "settled"}[action]


def _counting(policy: EscalationPolicy) -> Callable[[datetime, timedelta], datetime | None]:
    """start + amount, in the policy's calendar hours where it has a calendar."""
    if policy.calendar is None:
        return lambda start, amount: start + amount
    return policy.calendar.add


def order_code(order_id: int, created_at: datetime, timezone: str) -> str:
    """WO-<the local date it was opened>-<id>: an order opened at 01:30 in Wuhan on the
    25th is WO-20261125-…, though it is still the 24th in UTC."""
    return f"WO-{created_at.astimezone(ZoneInfo(timezone)):%Y%m%d}-{order_id}"


def _mins(delta: timedelta) -> float | int:
    minutes = round(delta.total_seconds() / 60, 1)
    return int(minutes) if minutes == int(minutes) else minutes


def _minutes(delta: timedelta) -> str:
    return f"{_mins(delta):g} min"
