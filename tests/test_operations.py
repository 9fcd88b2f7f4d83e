"""Alarms and work orders: the lifecycle rules (pure) and how the store keeps them (real DB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import LineString, Point

from twin.alarms import AlarmSpec, worst_severity
from twin.store import operations as ops
from twin.store.connection import connect
from twin.work_orders import (
    SYSTEM,
    Actor,
    TransitionError,
    WorkOrderSpec,
    escalation_due,
    transition,
)

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
OPERATOR = Actor(name="op1", role="operator")


# --- pure ----------------------------------------------------------------------------------

def test_worst_severity_orders_critical_first() -> None:
    assert worst_severity(["minor", "critical", "major"]) == "critical"
    assert worst_severity([]) is None


def test_only_the_assignee_or_an_operator_moves_an_assigned_order() -> None:
    worker = Actor(name="w1", role="grid_worker", staff_id="s1")
    other = Actor(name="w2", role="grid_worker", staff_id="s2")
    assert transition(1, "assigned", "accept", worker, assignee_id="s1") == "accepted"
    with pytest.raises(TransitionError, match="assigned to s1; w2 may not accept"):
        transition(1, "assigned", "accept", other, assignee_id="s1")
    with pytest.raises(TransitionError, match="only an operator may close"):
        transition(1, "resolved", "close", worker, assignee_id="s1")
    with pytest.raises(TransitionError, match="is created; it cannot be resolved"):
        transition(1, "created", "resolve", OPERATOR, assignee_id=None)


def test_escalation_is_due_by_state_and_time() -> None:
    kw = {"due_at": None, "eta_s": 120.0}
    assert escalation_due("created", now=T0 + timedelta(minutes=1), updated_at=T0, **kw) is None
    assert "nobody took it" in escalation_due("created", now=T0 + timedelta(minutes=3), updated_at=T0, **kw)
    assert "not accepted" in escalation_due("assigned", now=T0 + timedelta(minutes=6), updated_at=T0, **kw)
    # accepted: ETA (2 min) plus 10 min of grace
    assert escalation_due("accepted", now=T0 + timedelta(minutes=11), updated_at=T0, **kw) is None
    assert "not on site" in escalation_due("accepted", now=T0 + timedelta(minutes=13), updated_at=T0, **kw)
    assert "due time" in escalation_due(
        "arrived", now=T0 + timedelta(hours=2), updated_at=T0, due_at=T0 + timedelta(hours=1), eta_s=None
    )


# --- store ---------------------------------------------------------------------------------

@pytest.fixture
def db(twin_db_url: str):
    with connect(twin_db_url) as conn:
        yield conn


def _device(conn) -> tuple[str, str, str]:
    return conn.execute(
        "SELECT d.id, d.building_id, d.community_id FROM device d WHERE type = 'co_sensor' LIMIT 1"
    ).fetchone()


def test_a_repeat_counts_on_the_open_alarm_and_keeps_the_worse_severity(db) -> None:
    device, building, community = _device(db)
    spec = AlarmSpec(community_id=community, type="co_high", domain="safety", severity="major",
                     source_kind="device", source_id=device, title="CO over 50 ppm", at=T0,
                     device_id=device, building_id=building, location=Point(114.0, 22.5),
                     detail={"ppm": 62})
    first = ops.raise_alarm(db, spec)
    again = ops.raise_alarm(db, AlarmSpec(**{**_fields(spec), "severity": "critical",
                                             "at": T0 + timedelta(minutes=1)}))
    assert first.new and not again.new and again.upgraded and again.fresh
    assert again.alarm.id == first.alarm.id
    assert again.alarm.count == 2 and again.alarm.spec.severity == "critical"
    # the kept spec is the first raise (its time is raised_at) with what repeats changed
    assert again.alarm.raised_at == again.alarm.spec.at == T0
    assert again.alarm.last_at == T0 + timedelta(minutes=1)
    assert again.alarm.spec == AlarmSpec(**{**_fields(spec), "severity": "critical"})
    ops.acknowledge_alarm(db, first.alarm.id, actor="op1", at=T0 + timedelta(minutes=2))
    cleared = ops.clear_alarm(db, first.alarm.id, actor="rule", at=T0 + timedelta(minutes=3))
    assert cleared.state == "cleared"
    # once cleared, the same source and type opens a new alarm
    third = ops.raise_alarm(db, AlarmSpec(**{**_fields(spec), "at": T0 + timedelta(minutes=4)}))
    assert third.new and third.alarm.id != first.alarm.id
    actions = [h["action"] for h in ops.alarm_history(db, first.alarm.id)]
    assert actions == ["raised", "upgraded", "acknowledged", "cleared"]
    with pytest.raises(Exception, match="is cleared; it cannot be acknowledged"):
        ops.acknowledge_alarm(db, first.alarm.id, actor="op1", at=T0 + timedelta(minutes=5))
    assert [a.id for a in ops.open_alarms(db, community)] == [third.alarm.id]
    changed = ops.open_alarms(db, community, changed_since=T0 + timedelta(minutes=2, seconds=30))
    assert {a.id for a in changed} == {first.alarm.id, third.alarm.id}


def test_a_work_order_goes_from_created_to_closed_with_its_history(db) -> None:
    device, building, community = _device(db)
    worker_id = db.execute(
        "SELECT id FROM staff WHERE community_id = %s AND role = 'engineer' LIMIT 1", (community,)
    ).fetchone()[0]
    worker = Actor(name="eng", role="grid_worker", staff_id=worker_id)
    order = ops.open_work_order(db, WorkOrderSpec(
        community_id=community, kind="co_leak", title="CO in garage", domain="safety",
        role="engineer", location=Point(114.0, 22.5), at=T0, building_id=building,
        device_id=device, priority="urgent", due_in=timedelta(minutes=30)), actor=SYSTEM)
    assert order.state == "created" and order.due_at == T0 + timedelta(minutes=30)
    route = LineString([(114.0, 22.5), (114.001, 22.5)])
    step = T0
    for action, kwargs, who in [
        ("assign", {"assignee": ops.Assignee(worker_id, route, 102.5, 85.0)}, SYSTEM),
        ("accept", {}, worker),
        ("arrive", {"photo": ops.Photo("image/png", b"\x89PNG fake bytes")}, worker),
        ("resolve", {"note": "fan restarted"}, worker),
        ("close", {}, OPERATOR),
    ]:
        step += timedelta(minutes=1)
        order = ops.act_on_work_order(db, order.id, action, actor=who, at=step, **kwargs)
    assert order.state == "closed" and order.assignee_id == worker_id
    assert order.route_m == pytest.approx(102.5) and order.route.equals(route)
    assert [e.action for e in order.history] == ["created", "assign", "accept", "arrive", "resolve", "close"]
    assert order.history[4].note == "fan restarted"
    assert ops.work_order_photos(db, order.id)[0].data == b"\x89PNG fake bytes"
    assert ops.open_orders_by_staff(db, community) == {}


def test_decline_and_escalate_free_the_order_for_the_next_one(db) -> None:
    _, building, community = _device(db)
    grid_worker = db.execute(
        "SELECT id FROM staff WHERE community_id = %s AND role = 'grid_worker' LIMIT 1", (community,)
    ).fetchone()[0]
    me = Actor(name="gw", role="grid_worker", staff_id=grid_worker)
    order = ops.open_work_order(db, WorkOrderSpec(
        community_id=community, kind="welfare_check", title="check on flat", domain="service",
        role="grid_worker", location=Point(114.0, 22.5), at=T0, building_id=building), actor=SYSTEM)
    order = ops.act_on_work_order(db, order.id, "assign", actor=SYSTEM, at=T0,
                                  assignee=ops.Assignee(grid_worker))
    assert ops.open_orders_by_staff(db, community) == {grid_worker: 1}
    order = ops.act_on_work_order(db, order.id, "decline", actor=me, at=T0, note="off sick")
    assert order.state == "created" and order.assignee_id is None
    assert order.declined_by == (grid_worker,)
    order = ops.act_on_work_order(db, order.id, "escalate", actor=SYSTEM, at=T0)
    # the next tier open at 16:00 on a Tuesday: the sample's duty officers, round the clock
    assert order.state == "escalated" and order.spec.role == "duty_officer"
    assert order.escalation_level == 1 and order.tier == "duty_officer"
    with pytest.raises(TransitionError, match="cannot be accepted"):
        ops.act_on_work_order(db, order.id, "accept", actor=me, at=T0)
    # a failed step writes nothing
    assert [e.action for e in ops.get_work_order(db, order.id).history] == [
        "created", "assign", "decline", "escalate"]


def test_notifications_go_to_the_outbox(db) -> None:
    _, _, community = _device(db)
    nid = ops.notify(db, community_id=community, channel="family", recipient="138****5678",
                     message="Your father has not gone out for 36 hours", at=T0)
    assert db.execute("SELECT channel, sent_at FROM notification WHERE id = %s", (nid,)).fetchone() == (
        "family", None)
    with pytest.raises(ValueError, match="unknown notification channel"):
        ops.notify(db, community_id=community, channel="fax", recipient="x", message="m", at=T0)


def _fields(spec: AlarmSpec) -> dict:
    return {f: getattr(spec, f) for f in spec.__dataclass_fields__}


def test_a_repeat_by_another_rule_of_the_place_keeps_the_titles_parameters(db) -> None:
    """The bins' alarm, titled with the fill, repeated by the station's camera (same place,
    same type, its own text): the title keeps the fill it was written with (it read "?")."""
    device, building, community = _device(db)
    bins = AlarmSpec(community_id=community, type="trash_full", domain="environment",
                     severity="minor", source_kind="facility", source_id="f1",
                     title="bins full", at=T0, device_id=device, building_id=building,
                     location=Point(114.0, 22.5), text_key="trash-bin-full/alarm",
                     text_params={"value": 96})
    first = ops.raise_alarm(db, bins)
    camera = ops.raise_alarm(db, AlarmSpec(**{**_fields(bins), "at": T0 + timedelta(minutes=1),
                                              "text_key": "trash-overflow-seen/alarm",
                                              "text_params": {"camera": device}}))
    assert camera.alarm.id == first.alarm.id and not camera.upgraded
    assert camera.alarm.spec.text_key == "trash-bin-full/alarm"
    assert camera.alarm.spec.text_params == {"value": 96}
    fuller = ops.raise_alarm(db, AlarmSpec(**{**_fields(bins), "at": T0 + timedelta(minutes=2),
                                              "text_params": {"value": 99}}))
    assert fuller.alarm.spec.text_params == {"value": 99}  # its own rule's repeat: the news


def test_a_note_keeps_the_order_where_it_is_and_is_not_repeated(db) -> None:
    _, building, community = _device(db)
    order = ops.open_work_order(db, WorkOrderSpec(
        community_id=community, kind="welfare_check", title="check", domain="service",
        role="grid_worker", location=Point(114.0, 22.5), at=T0, building_id=building), actor=SYSTEM)
    later = T0 + timedelta(minutes=1)
    assert ops.note_on_work_order(db, order.id, actor=SYSTEM, at=later, note="nobody on shift")
    assert not ops.note_on_work_order(db, order.id, actor=SYSTEM, at=later, note="nobody on shift")
    again = ops.get_work_order(db, order.id)
    assert again.state == "created" and again.updated_at == T0  # the escalation clock runs on
    assert [(e.action, e.note) for e in again.history] == [("created", ""), ("note", "nobody on shift")]
