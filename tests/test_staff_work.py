"""The simulated staff work their orders through the same service as the phone page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import LineString, Point

from ingest.simulator.staff_work import REACT_S, RESOLVED_NOTE, WORK_S, StaffAtWork
from twin.store import operations as ops
from twin.store.connection import connect
from twin.work_orders import SYSTEM, WorkOrderSpec

T0 = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 03:00 in Wuhan


@pytest.fixture
def db(twin_db_url: str):
    with connect(twin_db_url, autocommit=True) as conn:
        yield conn


def test_staff_accept_walk_and_resolve_their_orders_on_the_simulated_clock(db) -> None:
    community, staff_id = db.execute(
        "SELECT community_id, id FROM staff WHERE role = 'security' ORDER BY id LIMIT 1"
    ).fetchone()
    order = ops.open_work_order(db, WorkOrderSpec(
        community_id=community, kind="fire_lane_parking", title="move the car",
        domain="safety", role="security", location=Point(114.4, 30.5), at=T0), actor=SYSTEM)
    other = ops.open_work_order(db, WorkOrderSpec(
        community_id=community, kind="fire_lane_parking", title="nobody's", domain="safety",
        role="security", location=Point(114.4, 30.5), at=T0), actor=SYSTEM)
    route = LineString([(114.4, 30.5), (114.401, 30.5)])
    ops.act_on_work_order(db, order.id, "assign", actor=SYSTEM, at=T0,
                          assignee=ops.Assignee(staff_id, route, 96.0, 80.0))
    staff = StaffAtWork(community)
    assert staff.step(db, T0 + timedelta(seconds=REACT_S[0] - 1)) == {}  # not looked yet
    assert staff.step(db, T0 + timedelta(seconds=REACT_S[1])) == {"accept": 1}
    accepted = ops.get_work_order(db, order.id)
    assert accepted.state == "accepted"
    walked = accepted.history[-1].time + timedelta(seconds=80)
    assert staff.step(db, walked - timedelta(seconds=1)) == {}
    assert staff.step(db, walked) == {"arrive": 1}
    assert staff.step(db, walked + timedelta(seconds=WORK_S[1])) == {"resolve": 1}
    done = ops.get_work_order(db, order.id)
    assert done.state == "resolved" and done.history[-1].note == RESOLVED_NOTE
    # each step as the assignee, at the moment it fell due, never later than asked
    steps = done.history[-3:]
    assert [e.actor for e in steps] == [staff_id] * 3
    assert steps[1].time == walked
    # an order nobody holds is not theirs to touch
    assert ops.get_work_order(db, other.id).state == "created"
