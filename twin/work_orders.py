"""Work orders: their lifecycle, who may move them, and when they escalate.

Pure: the store (`twin.store.operations`) asks `transition` before every
change and writes what it returns, so the rules that a grid worker's phone,
the control room and the rule engine obey are written once, here.

    created --assign--> assigned --accept--> accepted --arrive--> arrived
       ^                   |                    |                    |
       +-----decline-------+                    +------resolve-------+--> resolved --close--> closed
    any open state --escalate--> escalated --assign--> assigned (one level up)
    any state before closed --cancel--> cancelled
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from shapely.geometry import LineString, Point

from twin.errors import TwinError

STATES: tuple[str, ...] = (
    "created", "assigned", "accepted", "arrived", "resolved", "escalated", "closed", "cancelled",
)
#: States in which somebody still has to do something.
OPEN_STATES: frozenset[str] = frozenset({"created", "assigned", "accepted", "arrived", "escalated"})
#: States that count against a staff member's open-order limit.
BUSY_STATES: frozenset[str] = frozenset({"assigned", "accepted", "arrived"})
Priority = Literal["urgent", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = get_args(Priority)
StaffRole = Literal["grid_worker", "security", "cleaning", "engineer", "manager"]
STAFF_ROLES: tuple[StaffRole, ...] = get_args(StaffRole)

#: Roles of the control room's users (dashboard logins), beside the staff roles.
#: 'system' is the rule engine and the escalation timer.
OPERATOR_ROLES: frozenset[str] = frozenset({"admin", "operator", "system"})


@dataclass(frozen=True, slots=True)
class Transition:
    from_states: frozenset[str]
    to_state: str
    #: 'assignee': only the staff member the order is assigned to (or an operator);
    #: 'operator': admin, operator or system; 'anyone': the assignee or an operator.
    who: str


ACTIONS: dict[str, Transition] = {
    "assign": Transition(frozenset({"created", "escalated", "assigned"}), "assigned", "operator"),
    "decline": Transition(frozenset({"assigned"}), "created", "assignee"),
    "accept": Transition(frozenset({"assigned"}), "accepted", "assignee"),
    "arrive": Transition(frozenset({"accepted"}), "arrived", "assignee"),
    "resolve": Transition(frozenset({"accepted", "arrived"}), "resolved", "assignee"),
    "escalate": Transition(
        frozenset({"created", "assigned", "accepted", "arrived"}), "escalated", "anyone"
    ),
    "close": Transition(frozenset({"resolved"}), "closed", "operator"),
    "cancel": Transition(OPEN_STATES | {"resolved"}, "cancelled", "operator"),
}

#: Who takes an order one escalation level up, by the role that could not solve it.
ESCALATE_TO: dict[str, str] = {
    "grid_worker": "manager",
    "security": "manager",
    "cleaning": "manager",
    "engineer": "manager",
    "manager": "manager",
}


class TransitionError(TwinError):
    """A lifecycle step that is not allowed from where the order is, or for this actor."""


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
    """The state after `action`, or a TransitionError that says why not."""
    step = ACTIONS.get(action)
    if step is None:
        raise TransitionError(
            f"work order {order_id}: unknown action {action!r}; expected one of {sorted(ACTIONS)}"
        )
    if state not in step.from_states:
        raise TransitionError(
            f"work order {order_id} is {state}; it cannot be {_past(action)} from there"
        )
    is_assignee = actor.staff_id is not None and actor.staff_id == assignee_id
    if step.who == "operator" and not actor.is_operator:
        raise TransitionError(f"work order {order_id}: only an operator may {action} it")
    if step.who in ("assignee", "anyone") and not (is_assignee or actor.is_operator):
        raise TransitionError(
            f"work order {order_id} is assigned to {assignee_id or 'nobody'}; "
            f"{actor.name} may not {action} it"
        )
    return step.to_state


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    """How long an order may sit in a state before the system escalates it."""

    unassigned: timedelta = timedelta(minutes=2)
    not_accepted: timedelta = timedelta(minutes=5)
    #: beyond the route's ETA
    not_arrived: timedelta = timedelta(minutes=10)


def escalation_due(
    state: str,
    *,
    now: datetime,
    updated_at: datetime,
    due_at: datetime | None,
    eta_s: float | None,
    policy: EscalationPolicy = EscalationPolicy(),
) -> str | None:
    """Why the order should escalate now, or None. `now` is injected: no wall clock here."""
    waited = now - updated_at
    if state == "created" and waited > policy.unassigned:
        return f"nobody took it within {_minutes(policy.unassigned)}"
    if state == "assigned" and waited > policy.not_accepted:
        return f"not accepted within {_minutes(policy.not_accepted)}"
    if state == "accepted":
        limit = timedelta(seconds=eta_s or 0) + policy.not_arrived
        if waited > limit:
            return f"not on site within {_minutes(limit)} of accepting"
    if state in BUSY_STATES and due_at is not None and now > due_at:
        return "not resolved by its due time"
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
        return f"WO-{self.created_at:%Y%m%d}-{self.id}"


def _past(action: str) -> str:
    return {"assign": "assigned", "decline": "declined", "accept": "accepted",
            "arrive": "marked arrived", "resolve": "resolved", "escalate": "escalated",
            "close": "closed", "cancel": "cancelled"}[action]


def _minutes(delta: timedelta) -> str:
    minutes = delta.total_seconds() / 60
    return f"{minutes:g} min"
