"""Who may do what: the roles of the control room's logins, the pages and actions each
may use, and the grid that bounds a grid worker.

Pure (no database, no web), so that every way in asks the same questions: the
dashboard's service functions (`dashboard.scoped`, the pages' services) ask here before
they read or write, whether a page or a forged request called them, and a REST API
would ask the same. Lifecycle steps of work orders are decided by
`twin.work_orders` (an operator assigns, the assignee accepts); this module asks it.

Roles:
- admin: everything, residents whole.
- operator: large screen, buildings, work orders, planner; residents masked.
- grid_worker: the worker view, the buildings of their own grid and the orders they hold
  or that lie in their grid; residents of their grid whole (they visit them); nothing
  outside their grid.
- planner: the planner page with aggregates only; no residents, buildings or orders.
- resident: the resident app on their phone, for their own household only: its members,
  free charging piles and their own sessions, the doors they may open, visitor passes,
  their own reports, the community's notices, a one-key SOS.
- family: a relative of one special-care resident: that resident's care status and
  alerts, and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.errors import AccessDenied
from twin.work_orders import Actor, WorkOrder, check_actor

__all__ = [
    "OPERATORS", "PAGE_ROLES", "PEOPLE", "PERMISSIONS", "ROLES", "UNMASKED_ROLES", "AccessDenied",
    "User",
    "actor", "can_open", "may", "require", "require_community", "require_grid",
    "require_order", "require_order_action", "require_own_resident", "require_own_staff",
    "require_page",
    "sees_residents_whole", "sees_residents_whole_in",
]

ROLES: tuple[str, ...] = ("admin", "operator", "grid_worker", "planner", "resident", "family")
#: The roles of people who live in the community (or look after someone who does): they
#: act for one resident (`User.resident_id`), never on the control room.
PEOPLE: frozenset[str] = frozenset({"resident", "family"})
#: The roles that run the control room: every order, alarm and building, no grid limit.
OPERATORS: frozenset[str] = frozenset({"admin", "operator"})
_FIELD = frozenset({"admin", "operator", "grid_worker"})
_PLANNING = frozenset({"admin", "operator", "planner"})

#: Which roles may open which page.
PAGE_ROLES: dict[str, frozenset[str]] = {
    "large_screen": OPERATORS,
    "building": _FIELD,
    "work_orders": OPERATORS,
    "worker": frozenset({"admin", "grid_worker"}),
    "planner": _PLANNING,
    "audit": frozenset({"admin"}),
    "reports": OPERATORS,
    "resident_app": frozenset({"resident"}),
    "family": frozenset({"family"}),
}

#: What each role may do, whichever page (or none) asks. A service function asks for
#: one of these before it reads or writes; the scope (the grid, the order) comes after.
PERMISSIONS: dict[str, frozenset[str]] = {
    # the large screen's live state, KPIs and charts
    "live.view": OPERATORS,
    "alarm.acknowledge": OPERATORS,
    # every order, filtered (the work-order list)
    "order.list": OPERATORS,
    # one order, with its history and photos: a grid worker's own or their grid's
    "order.view": _FIELD,
    # a lifecycle step, as twin.work_orders allows the actor (its assignee, an operator)
    "order.act": _FIELD,
    # the dispatcher's choice, assigned in the user's name (an operator's step)
    "order.dispatch": OPERATORS,
    # a building, its units, devices and residents: a grid worker's in their grid only
    "building.view": _FIELD,
    # the position of their own staff record, from their phone
    "position.report": frozenset({"admin", "grid_worker"}),
    # what-if scenarios: load, edit, save, run, export (per building and counts only)
    "whatif.use": _PLANNING,
    # -- people and operators acting on the twin --
    # a hand-made order (from a point, a building, an alarm); a manual clear with a reason
    "order.create": OPERATORS,
    "alarm.clear": OPERATORS,
    # cloud broadcast to speakers; notices to a community, building or grid
    "broadcast.send": OPERATORS,
    "notice.publish": OPERATORS,
    # the queue of residents' reports
    "report.queue": OPERATORS,
    # a door opened remotely: an operator any of the community's, a resident their own
    # unit's entrance and the gates (the scope is checked against the door)
    "door.open": frozenset({"admin", "operator", "resident"}),
    # the access history of a door or a resident (a grid worker's in their grid)
    "access.history": _FIELD,
    # the resident's own: household, charging, passes, reports, notices, SOS
    "household.view": frozenset({"resident"}),
    "charging.use": frozenset({"resident"}),
    "pass.issue": frozenset({"resident"}),
    "report.submit": frozenset({"resident"}),
    "notice.read": frozenset({"resident"}),
    "sos.raise": frozenset({"resident"}),
    # a family member: their relative's care status and alerts
    "care.view": frozenset({"family"}),
}

#: Roles that see residents' names and phone numbers whole (within their scope).
UNMASKED_ROLES: frozenset[str] = frozenset({"admin", "grid_worker"})


@dataclass(frozen=True, slots=True)
class User:
    """A login: its role, and the community, grid and staff record it acts for."""

    name: str
    role: str
    display_name: str = ""
    community_id: str | None = None
    grid_id: str | None = None
    staff_id: str | None = None
    lang: str = "zh-CN"
    #: The resident a resident login is, or a family login looks after.
    resident_id: str | None = None

    @property
    def label(self) -> str:
        return self.display_name or self.name


def can_open(user: User, page: str) -> bool:
    return user.role in PAGE_ROLES[page]


def require_page(user: User, page: str) -> None:
    if not can_open(user, page):
        raise AccessDenied(f"{user.name} ({user.role}) may not open the {page} page")


def may(user: User, permission: str) -> bool:
    return user.role in PERMISSIONS[permission]


def require(user: User, permission: str, *, what: str) -> None:
    """Refuse a user whose role may not do ``permission``; ``what`` names it for the log."""
    if not may(user, permission):
        raise AccessDenied(f"{user.name} ({user.role}) may not {what}")


def require_grid(user: User, grid_id: str | None, *, what: str) -> None:
    """A grid worker may reach only what lies in their own grid; a planner nothing placed."""
    if user.role == "grid_worker" and grid_id != user.grid_id:
        raise AccessDenied(f"{what} is not in {user.name}'s grid")
    if user.role == "planner":
        raise AccessDenied(f"a planner sees aggregates only, not {what}")
    require(user, "building.view", what=f"see {what}")


def require_community(user: User, community_id: str, *, what: str) -> None:
    """A login bound to a community reaches only that community's things (a district's
    database holds many); a login without one (a district operator) reaches them all."""
    if user.community_id is not None and community_id != user.community_id:
        raise AccessDenied(f"{what} is not in {user.name}'s community")


def require_order(user: User, order: WorkOrder) -> None:
    """An order is the user's to see: every one of their community for an operator, a
    grid worker's own (wherever it lies) or their grid's."""
    what = f"work order {order.id}"
    require_community(user, order.spec.community_id, what=what)
    if user.role == "grid_worker" and user.staff_id is not None \
            and order.assignee_id == user.staff_id:
        return
    require_grid(user, order.spec.grid_id, what=what)
    require(user, "order.view", what=f"see {what}")


def require_order_action(user: User, order: WorkOrder, action: str) -> None:
    """The user may take this lifecycle step on this order (its state aside, which the
    store checks as it writes). 'dispatch' is the dispatcher's assignment in the user's
    name: an operator's step, like 'assign'."""
    require_order(user, order)
    if action == "dispatch":
        require(user, "order.dispatch", what=f"dispatch work order {order.id}")
        action = "assign"
    require(user, "order.act", what=f"act on work order {order.id}")
    check_actor(order.id, action, actor(user), assignee_id=order.assignee_id)


def require_own_staff(user: User, staff_id: str | None) -> None:
    """A phone reports only the position of its user's own staff record (the session says
    whose; the browser only claims)."""
    require(user, "position.report", what="report a staff position")
    if user.staff_id is None:
        raise AccessDenied(f"{user.name} is not a staff member and has no position to report")
    if staff_id != user.staff_id:
        raise AccessDenied(f"{user.name} may report only their own position, "
                           f"not that of {staff_id!r}")


def require_own_resident(user: User, resident_id: str | None, *, what: str) -> None:
    """A resident or family login reaches only the resident it acts for (a family member
    their relative); any other id, whatever the browser claims, is refused."""
    if user.role not in PEOPLE or user.resident_id is None:
        raise AccessDenied(f"{user.name} ({user.role}) does not act for a resident")
    if resident_id != user.resident_id:
        raise AccessDenied(f"{what} is not {user.name}'s own")


def sees_residents_whole(user: User) -> bool:
    return user.role in UNMASKED_ROLES


def sees_residents_whole_in(user: User, grid_id: str | None) -> bool:
    """Whether the user reads a resident of ``grid_id`` whole: an admin anywhere, a grid
    worker in their own grid."""
    return sees_residents_whole(user) and (user.role != "grid_worker" or grid_id == user.grid_id)


def actor(user: User) -> Actor:
    """The user as the actor of an order's step, the name its history keeps: a resident or
    family member by their resident id, never by their login (their phone number), which
    an operator's masked view would show whole."""
    name = f"resident:{user.resident_id}" if user.role in PEOPLE and user.resident_id \
        else user.name
    return Actor(name=name, role=user.role, staff_id=user.staff_id)
