"""Staff positions as live data, against the real Mosquitto and PostgreSQL.

A badge's fix published through the broker lands in ``staff_position`` and
moves the staff member's latest position forward (never back); fixes of a
badge issued to nobody, of a device that is no badge, or out of range are
dead-lettered with their reason. Dispatch starts a staff member whose newest
fix is stale from their post, and the order's history says so. At 03:00 in
Wuhan, with the simulator's night patrols reporting through the broker, a CO
leak's order goes to the engineer on call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import psycopg
import pytest
from shapely.geometry import Point

from ingest import contract
from ingest.simulator import Simulation
from ingest.simulator.load import load_community
from tests.mqtt_helpers import wait_until
from twin.dispatch import on_shift
from twin.rules import store
from twin.rules.compile import library_dir, load_directory
from twin.services.broker_accounts import INGEST
from twin.store import operations as ops
from twin.store.connection import connect
from twin.work_orders import Actor, WorkOrderSpec

C = "wh-guanggu"
NIGHT_GUARD, FIRE_GUARD = "wh-guanggu-s11", "wh-guanggu-s12"  # night security; s12 has 'fire'
ON_CALL = "wh-guanggu-s27"  # the night engineer on call: plumbing, hvac
CO = "wh-guanggu-d01273"    # a CO sensor of 1号地库
SECURITY_ROOM = "wh-guanggu-f005"


def _three_am() -> datetime:
    """03:00 in Wuhan (19:00 UTC the day before), at least an hour ago."""
    now = datetime.now(UTC)
    t = now.replace(hour=19, minute=0, second=0, microsecond=0)
    while t > now - timedelta(hours=1):
        t -= timedelta(days=1)
    return t


def _fix(badge: str, ts: datetime, lon: float, lat: float, **extra: object) -> tuple[str, bytes]:
    return (contract.topic(C, badge, "position"),
            orjson.dumps({"ts": contract.fmt_time(ts), "lon": lon, "lat": lat,
                          "accuracy_m": 5.0, **extra}))


def _one(url: str, sql: str, *params: object) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchone()


def _badge(url: str, staff_id: str) -> str:
    return _one(url, "SELECT badge_id FROM staff WHERE id = %s", staff_id)[0]


def test_a_badge_fix_through_the_broker_lands_in_staff_position_and_staff(
        twin_db_url, broker, start_ingest, publisher) -> None:
    url = twin_db_url
    start_ingest(url, broker.service_url(INGEST))
    badge = _badge(url, NIGHT_GUARD)
    t = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)
    publisher.send(*_fix(badge, t, 114.41, 30.493, floor=2))
    wait_until(lambda: _one(url, "SELECT count(*) FROM staff_position")[0] == 1, timeout=20)
    row = _one(url, """SELECT staff_id, time, ST_X(geom), ST_Y(geom), accuracy_m, floor, source,
                              device_id FROM staff_position""")
    assert row == (NIGHT_GUARD, t, 114.41, 30.493, 5.0, 2, "badge", badge)
    assert _one(url, "SELECT ST_X(position), ST_Y(position), position_at FROM staff "
                     "WHERE id = %s", NIGHT_GUARD) == (114.41, 30.493, t)

    # the same fix again adds nothing; an older one is history only: the newer one stays
    publisher.send(*_fix(badge, t, 114.41, 30.493, floor=2))
    publisher.send(*_fix(badge, t - timedelta(minutes=1), 114.40, 30.490))
    wait_until(lambda: _one(url, "SELECT count(*) FROM staff_position")[0] == 2, timeout=20)
    assert _one(url, "SELECT ST_X(position), position_at FROM staff WHERE id = %s",
                NIGHT_GUARD) == (114.41, t)

    # refused, each with its reason, and nothing written for anyone
    other = _badge(url, FIRE_GUARD)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE staff SET badge_id = NULL WHERE id = %s", (FIRE_GUARD,))
    publisher.send(*_fix(other, t, 114.41, 30.493))                      # issued to nobody now
    publisher.send(*_fix(CO, t, 114.41, 30.493))                         # a CO sensor
    publisher.send(*_fix(badge, t + timedelta(seconds=1), 514.41, 30.493))  # no such longitude
    publisher.send(contract.topic(C, badge, "position"),
                   orjson.dumps({"lon": 114.41, "lat": 30.49, "accuracy_m": 3}))  # no time
    wait_until(lambda: _one(url, "SELECT count(*) FROM dead_letter")[0] == 4, timeout=20)
    with psycopg.connect(url) as conn:
        reasons = dict(conn.execute("SELECT reason, detail FROM dead_letter").fetchall())
    assert set(reasons) == {"unissued_badge", "not_a_badge", "schema"}
    assert other in reasons["unissued_badge"] and CO in reasons["not_a_badge"]
    assert _one(url, "SELECT count(*) FROM staff_position")[0] == 2
    assert _one(url, "SELECT position_at FROM staff WHERE id = %s", FIRE_GUARD)[0] != t


def _security_order(conn: psycopg.Connection, at: datetime, skill: str | None) -> ops.WorkOrder:
    (lon, lat) = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM facility WHERE id = %s",
                              (SECURITY_ROOM,)).fetchone()
    return ops.open_work_order(conn, WorkOrderSpec(
        community_id=C, kind="patrol_check", title="Check the south gate", domain="safety",
        role="security", skill=skill, location=Point(lon + 0.0015, lat + 0.0005), at=at),
        actor=Actor(name="operator", role="operator"))


def test_a_stale_fix_falls_back_to_the_post_and_the_history_says_so(twin_db_url) -> None:
    at = _three_am()
    assert on_shift("night", at)
    with connect(twin_db_url) as conn:
        # the fire-trained night guard was last seen 30 minutes ago, far off, in the north
        conn.execute("""UPDATE staff SET position = ST_SetSRID(ST_MakePoint(114.4105, 30.4965),
                        4326), position_at = %s WHERE id = %s""",
                     (at - timedelta(minutes=30), FIRE_GUARD))
        post = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM facility WHERE id = %s",
                            (SECURITY_ROOM,)).fetchone()
        dispatcher = store.Dispatcher(max_fix_age=timedelta(minutes=10))
        order = _security_order(conn, at, "fire")
        assigned = dispatcher.assign(conn, order, now=at, outcome=store.Outcome())
        assert assigned.assignee_id == FIRE_GUARD
        step = ops.get_work_order(conn, order.id).history[-1]
        assert step.action == "assign"
        assert "from their post (newest fix 30 min old)" in step.note
        assert step.detail["origin"] == "post"
        assert step.detail["fix_age_s"] == pytest.approx(1800)
        # the walk starts at the security room, not where the stale fix says
        start = assigned.route.coords[0] if assigned.route is not None else None
        assert start == pytest.approx(post, abs=3e-4)

        # a fresh fix (2 minutes old) is used as it is, and the history says that instead
        conn.execute("UPDATE staff SET position_at = %s WHERE id = %s",
                     (at - timedelta(minutes=2), FIRE_GUARD))
        again = _security_order(conn, at, "fire")
        assigned = dispatcher.assign(conn, again, now=at, outcome=store.Outcome())
        step = ops.get_work_order(conn, again.id).history[-1]
        assert assigned.assignee_id == FIRE_GUARD
        assert step.detail == {**step.detail, "origin": "fix", "fix_age_s": 120.0}
        assert "from their position fix 2 min old" in step.note
        assert assigned.route is not None
        assert assigned.route.coords[0] == pytest.approx((114.4105, 30.4965), abs=3e-4)
        conn.rollback()


def test_an_order_raised_at_3am_goes_to_an_on_shift_qualified_person(
        twin_db_url, broker, start_ingest, start_rules, publisher) -> None:
    """The simulator's night patrols report through the broker; a CO leak's order (engineer
    with HVAC) goes to the engineer on call, from where their badge says they are."""
    url, at = twin_db_url, _three_am()
    start_ingest(url, broker.service_url(INGEST))
    with connect(url) as conn:
        community = load_community(conn, C)
    sim = Simulation(community, start=at - timedelta(minutes=3), seed=3, tick_s=5)
    fixes = [m for m in sim.advance(at) if m[0].endswith("/position")]
    night_badges = {b for b, s in zip(community.staff["badge_id"], community.staff["shift"])
                    if s == "night"}
    assert {topic.split("/")[3] for topic, _ in fixes} == night_badges
    for topic, payload in fixes:
        publisher.send(topic, payload)
    wait_until(lambda: _one(url, "SELECT count(*) FROM staff_position")[0] == len(fixes),
               timeout=30)
    assert _one(url, "SELECT count(*) FROM staff WHERE position_at > %s",
                at - timedelta(minutes=5))[0] == len(night_badges)

    rules = {r.id: r for r in load_directory(library_dir())}
    with psycopg.connect(url) as conn:
        store.store_rules(conn, [rules["garage-co"]], at=at, replace_all=True)
    start_rules(url, lambda: at)
    publisher.send(contract.topic(C, CO, "telemetry"), orjson.dumps(
        {"ts": contract.fmt_time(at - timedelta(seconds=5)), "readings": {"co": 12.0}}))
    publisher.send(contract.topic(C, CO, "telemetry"), orjson.dumps(
        {"ts": contract.fmt_time(at), "readings": {"co": 120.0, "temperature": 18.0}}))
    wait_until(lambda: _one(url, "SELECT count(*) FROM work_order WHERE state = 'assigned'")[0]
               == 1, timeout=30)
    with psycopg.connect(url) as conn:
        (order_id,) = conn.execute("SELECT id FROM work_order").fetchone()
        order = ops.get_work_order(conn, order_id)
        shift, skills = conn.execute("SELECT shift, skills FROM staff WHERE id = %s",
                                     (order.assignee_id,)).fetchone()
    assert order.assignee_id == ON_CALL
    assert on_shift(shift, at) and "hvac" in skills
    step = order.history[-1]
    assert step.detail["origin"] == "fix" and step.detail["fix_age_s"] < 60
