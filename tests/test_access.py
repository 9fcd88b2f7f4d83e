"""The policy of who may do what (`twin.access`): pure, no database, no web."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shapely.geometry import Point

from twin import access
from twin.access import AccessDenied, User
from twin.work_orders import ACTIONS, Actor, NotPermitted, TransitionError, WorkOrder, WorkOrderSpec

ADMIN, OPERATOR = User("a", "admin"), User("o", "operator")
WORKER = User("w", "grid_worker", grid_id="g1", staff_id="s1")
PLANNER = User("p", "planner")


def _order(*, grid: str | None = "g1", assignee: str | None = None, state: str = "assigned"
           ) -> WorkOrder:
    at = datetime(2026, 11, 24, 2, tzinfo=UTC)
    spec = WorkOrderSpec(community_id="c", kind="k", title="t", domain="safety",
                         role="grid_worker", location=Point(114.4, 30.5), at=at, grid_id=grid)
    return WorkOrder(id=7, spec=spec, state=state, updated_at=at, assignee_id=assignee)


def test_only_operators_dispatch_the_same_roles_that_work_orders_lets_assign() -> None:
    for role in access.ROLES:
        assert access.may(User("x", role), "order.dispatch") == Actor("x", role).is_operator
    assert ACTIONS["assign"].who == "operator"


@pytest.mark.parametrize("action", ["dispatch", "assign", "close", "cancel"])
def test_operator_steps_are_refused_to_a_grid_worker_even_on_his_own_order(action) -> None:
    mine = _order(assignee="s1")
    access.require_order_action(OPERATOR, mine, action)
    access.require_order_action(ADMIN, _order(grid="g9"), action)
    with pytest.raises(AccessDenied):
        access.require_order_action(WORKER, mine, action)
    with pytest.raises(AccessDenied, match="aggregates only"):
        access.require_order_action(PLANNER, mine, action)


@pytest.mark.parametrize("action", ["accept", "arrive", "resolve", "decline", "escalate"])
def test_a_grid_worker_takes_the_steps_of_his_own_orders_only(action) -> None:
    access.require_order_action(WORKER, _order(assignee="s1"), action)
    access.require_order_action(WORKER, _order(grid="g2", assignee="s1"), action)  # handed over
    with pytest.raises(NotPermitted, match="assigned to s2; w may not"):  # in his grid, not his
        access.require_order_action(WORKER, _order(assignee="s2"), action)
    with pytest.raises(AccessDenied, match="not in w's grid"):
        access.require_order_action(WORKER, _order(grid="g2", assignee="s2"), action)


def test_nobody_settles_and_an_unknown_step_is_not_a_refusal() -> None:
    with pytest.raises(NotPermitted, match="only the system"):
        access.require_order_action(ADMIN, _order(), "settle")
    with pytest.raises(TransitionError, match="unknown action") as e:
        access.require_order_action(ADMIN, _order(), "frobnicate")
    assert not isinstance(e.value, AccessDenied)
    with pytest.raises(TransitionError, match="unknown action"):
        access.require_order_action(ADMIN, _order(), ["close"])  # type: ignore[arg-type]


def test_who_sees_an_order_and_reads_residents_whole() -> None:
    access.require_order(OPERATOR, _order(grid=None))
    access.require_order(WORKER, _order(grid="g1", assignee="s2"))
    access.require_order(WORKER, _order(grid="g2", assignee="s1"))
    with pytest.raises(AccessDenied):
        access.require_order(WORKER, _order(grid="g2"))
    with pytest.raises(AccessDenied):
        access.require_order(User("x", "grid_worker", grid_id="g1"), _order(grid="g2"))
    assert access.sees_residents_whole_in(WORKER, "g1")
    assert not access.sees_residents_whole_in(WORKER, "g2")
    assert access.sees_residents_whole_in(ADMIN, "g2")
    assert not access.sees_residents_whole_in(OPERATOR, "g1")


def test_a_phone_reports_only_its_own_staff_record() -> None:
    access.require_own_staff(WORKER, "s1")
    for staff in ("s2", None):
        with pytest.raises(AccessDenied, match="only their own position"):
            access.require_own_staff(WORKER, staff)
    with pytest.raises(AccessDenied, match="may not report"):
        access.require_own_staff(OPERATOR, "s1")
    with pytest.raises(AccessDenied, match="not a staff member"):
        access.require_own_staff(ADMIN, "s1")


def test_every_permission_names_known_roles_and_the_dashboard_reuses_the_policy() -> None:
    from dashboard import auth

    for roles in (*access.PERMISSIONS.values(), *access.PAGE_ROLES.values()):
        assert roles <= set(access.ROLES)
    assert not any(access.may(PLANNER, p) for p in
                   ("order.view", "order.act", "building.view", "alarm.acknowledge"))
    assert auth.require_grid is access.require_grid and auth.AccessDenied is AccessDenied
    assert auth.User is User and auth.PAGE_ROLES is access.PAGE_ROLES


def test_a_login_bound_to_a_community_reaches_no_other_communitys_orders() -> None:
    theirs = _order()  # community "c"
    for user in (User("o2", "operator", community_id="other"),
                 User("w2", "grid_worker", community_id="other", grid_id="g1", staff_id="s1")):
        with pytest.raises(AccessDenied, match="not in .*'s community"):
            access.require_order(user, theirs)
    access.require_order(User("o3", "operator", community_id="c"), theirs)
    access.require_order(OPERATOR, theirs)  # a district operator: no community bound


def test_people_act_only_for_their_own_resident_and_never_on_the_control_room() -> None:
    me = User("13800000000", "resident", community_id="c", resident_id="r1")
    kin = User("kin", "family", community_id="c", resident_id="r2")
    access.require_own_resident(me, "r1", what="household")
    access.require_own_resident(kin, "r2", what="care status")
    for user, other in ((me, "r2"), (kin, "r1"), (OPERATOR, "r1"), (WORKER, None)):
        with pytest.raises(AccessDenied):
            access.require_own_resident(user, other, what="a resident")
    control_room = {"live.view", "order.list", "order.view", "order.act", "order.dispatch",
                    "building.view", "whatif.use", "alarm.acknowledge", "alarm.clear",
                    "order.create", "broadcast.send", "report.queue", "access.history"}
    for permission in control_room:
        assert not access.may(me, permission) and not access.may(kin, permission)
    assert access.may(me, "door.open") and not access.may(kin, "door.open")
    assert access.may(kin, "care.view") and not access.may(me, "care.view")
    with pytest.raises(AccessDenied):
        access.require_order_action(User("x", "resident", resident_id="r1"),
                                    _order(grid=None, assignee="s1"), "accept")
