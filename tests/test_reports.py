"""Residents' reports, notices and operators' hand-made orders and clears, through the
service functions the pages call (`dashboard.reports`, `dashboard.notices`,
`dashboard.operator_actions`), on a real PostGIS twin of the sample community, at 03:00
community time and at midday. Each refusal is checked to change nothing and to be in the
audit log, as a forged request would meet it.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dashboard import auth, notices, operator_actions, reports
from dashboard.demo import DEMO_PASSWORD
from dashboard.photos import NotAPhoto
from tests.control_room import as_user
from twin.access import AccessDenied
from twin.errors import TwinError
from twin.reports import ReportRefused, load_catalogue
from twin.rules.store import Dispatcher
from twin.store.connection import connect
from twin.store.graph import walk_routing_graph
from twin.store.operations import alarm_history, get_alarm, get_work_order, open_alarms

WUHAN = ZoneInfo("Asia/Shanghai")
NIGHT = datetime(2026, 11, 25, 3, 0, tzinfo=WUHAN).astimezone(UTC)
NOON = datetime(2026, 11, 25, 12, 0, tzinfo=WUHAN).astimezone(UTC)
#: A real 1x1 PNG.
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
       b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe"
       b"\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()


@pytest.fixture
def twin(room):
    """(app, url, resident login, another resident login, family login) on the sample."""
    app, _users, _ids, url = room
    with connect(url) as conn:
        two = conn.execute(
            """SELECT r.id, r.phone FROM resident r JOIN unit u ON u.id = r.unit_id
               JOIN building b ON b.id = u.building_id WHERE b.grid_id = 'wh-guanggu-g1'
                 AND r.age_band = '18-59'
                 AND r.phone NOT IN (SELECT name FROM app_user)
               ORDER BY r.id LIMIT 2""").fetchall()
        care = conn.execute("SELECT id FROM resident WHERE care_flags <> '{}' ORDER BY id "
                            "LIMIT 1").fetchone()[0]
        for rid, phone in two:
            auth.add_user(conn, phone, DEMO_PASSWORD, "resident", resident_id=rid)
        auth.add_user(conn, "family1", DEMO_PASSWORD, "family", resident_id=care)
        conn.commit()
    return app, url, two[0][1], two[1][1], "family1"


def _graphs(conn):
    cache: dict = {}
    return lambda c: cache.setdefault(c, walk_routing_graph(conn, c))


def _submit(app, url, login, *, category="water_leak", text="楼道水管漏水", place="unit",
            photo=None, at=NIGHT, limit=5):
    with as_user(app, login) as user, connect(url) as conn:
        return reports.submit_report(conn, user, category=category, text=text, place=place,
                                     photo=photo, at=at, graph_for=_graphs(conn),
                                     dispatcher=Dispatcher(), limit=limit)


def _refusals(url, user: str) -> int:
    with connect(url) as conn:
        return conn.execute("SELECT count(*) FROM audit_log WHERE user_name = %s "
                            "AND action = 'denied'", (user,)).fetchone()[0]


def test_the_service_list_matches_the_dispatcher_and_the_escalation_tiers() -> None:
    from twin.escalation import DEFAULT_PATH, load_config

    tiers = load_config(DEFAULT_PATH)
    street = next(t for t in tiers.tiers if t.external)
    skills = {"plumbing", "electrical", "elevator", "hvac", "first_aid", "fire"}
    for cid, c in load_catalogue().categories.items():
        assert tiers.department_for(street, c.kind)[0] == c.department, cid
        assert c.skill is None or c.skill in skills, cid


def test_a_report_at_night_becomes_an_order_dispatched_to_the_night_engineer(twin) -> None:
    app, url, resident, _, _ = twin
    done = _submit(app, url, resident, photo=PNG_URL)
    with connect(url) as conn:
        order = get_work_order(conn, done.order_id)
        staff = conn.execute("SELECT role, shift, skills FROM staff WHERE id = %s",
                             (order.assignee_id,)).fetchone()
        report = conn.execute(
            "SELECT category, snap_m, ST_Distance(snapped::geography, geom::geography), "
            "work_order_id, text FROM report WHERE id = %s", (done.report_id,)).fetchone()
        photo = conn.execute(
            "SELECT p.content_type, e.action FROM work_order_photo p JOIN work_order_event e "
            "ON e.id = p.event_id WHERE p.work_order_id = %s", (done.order_id,)).fetchone()
        logged = conn.execute("SELECT detail::text FROM audit_log WHERE action = 'report.submit'"
                              ).fetchone()[0]
    assert order.state == "assigned" and order.spec.kind == "water_leak"
    assert order.spec.role == "engineer" and order.spec.skill == "plumbing"
    assert staff[0] == "engineer" and staff[1] == "night" and "plumbing" in staff[2]
    # the resident's words are the staff's description, never the order's title
    assert order.spec.description == "楼道水管漏水" and "漏水" not in order.spec.title
    assert order.spec.text_key == "report/water_leak"
    assert report[0] == "water_leak" and report[3] == done.order_id
    assert abs(report[1] - report[2]) < 0.5  # snapped onto the walkway, that far off
    assert photo == ("image/png", "created")  # the order's first photo, where staff see it
    assert "楼道" not in logged  # the audit log has ids, not the resident's words
    # the history names the resident by id (their login is their phone), then the dispatcher
    assert [e.action for e in order.history] == ["created", "assign"]
    with connect(url) as conn:
        resident_id = conn.execute("SELECT resident_id FROM app_user WHERE name = %s",
                                   (resident,)).fetchone()[0]
    assert order.history[0].actor == f"resident:{resident_id}" != resident


def test_a_resident_follows_and_rates_only_their_own_report(twin) -> None:
    app, url, resident, other, _ = twin
    done = _submit(app, url, resident, at=NOON)
    with as_user(app, other) as user, connect(url) as conn:
        with pytest.raises(AccessDenied):
            reports.my_report(conn, user, done.report_id)
        with pytest.raises(AccessDenied):
            reports.rate_report(conn, user, done.report_id, stars=1, comment="", at=NOON)
        with pytest.raises(AccessDenied):
            reports.report_photo(conn, user, done.report_id)
        assert reports.my_reports(conn, user) == []
    assert _refusals(url, other) == 3
    with as_user(app, resident) as user, connect(url) as conn:
        [mine] = reports.my_reports(conn, user)
        assert mine.id == done.report_id and mine.status == "in_progress"
        assert mine.assignee_id == done.assignee_id and mine.assignee_role == "engineer"
        with pytest.raises(ReportRefused):  # not done yet
            reports.rate_report(conn, user, done.report_id, stars=5, comment="", at=NOON)
    # the assignee works it through the same service as the worker's phone
    with connect(url) as conn:
        auth.add_user(conn, "eng", DEMO_PASSWORD, "grid_worker", grid_id="wh-guanggu-g1",
                      staff_id=done.assignee_id)
        conn.commit()
    from dashboard import scoped

    with as_user(app, "eng") as user, connect(url) as conn:
        for step in ("accept", "arrive", "resolve"):
            scoped.act_on_order(conn, user, done.order_id, step, at=NOON + timedelta(minutes=9))
        conn.commit()
    with as_user(app, resident) as user, connect(url) as conn:
        row, history = reports.my_report(conn, user, done.report_id)
        assert row.status == "done" and [e.action for e in history][-1] == "resolve"
        with pytest.raises(ReportRefused):
            reports.rate_report(conn, user, done.report_id, stars=9, comment="", at=NOON)
        rated = reports.rate_report(conn, user, done.report_id, stars=4, comment="修得快",
                                    at=NOON + timedelta(minutes=20))
        assert (rated.rating, rated.rating_comment) == (4, "修得快")
        with pytest.raises(ReportRefused):  # once only
            reports.rate_report(conn, user, done.report_id, stars=1, comment="", at=NOON)


def test_reports_are_rate_limited_and_bad_input_is_refused_and_audited(twin) -> None:
    app, url, resident, _, _ = twin
    for _ in range(2):
        _submit(app, url, resident, category="other", text="路灯不亮", limit=2)
    with pytest.raises(ReportRefused) as refused:
        _submit(app, url, resident, category="other", text="路灯不亮", limit=2)
    assert refused.value.key == "rpt.err.rate"
    with pytest.raises(NotAPhoto):
        _submit(app, url, resident, photo="data:image/png;base64,"
                + base64.b64encode(b"MZ\x90\x00 not a picture").decode())
    with pytest.raises(ReportRefused):  # a point far outside the community
        _submit(app, url, resident, place={"lon": 116.39, "lat": 39.9})
    with pytest.raises(ReportRefused):
        _submit(app, url, resident, category="no-such-thing")
    with pytest.raises(ReportRefused):
        _submit(app, url, resident, text=" ")
    with connect(url) as conn:
        kept = conn.execute("SELECT count(*) FROM report").fetchone()[0]
        orders = conn.execute("SELECT count(*) FROM work_order WHERE kind = 'resident_report'"
                              ).fetchone()[0]
    assert (kept, orders) == (2, 2)  # nothing of the refused ones was kept
    assert _refusals(url, resident) == 5


def test_a_place_picked_on_the_map_snaps_to_the_walkway_and_finds_its_building(twin) -> None:
    app, url, resident, _, _ = twin
    with connect(url) as conn:
        building, x, y = conn.execute(
            "SELECT id, ST_X(ST_PointOnSurface(footprint)), ST_Y(ST_PointOnSurface(footprint)) "
            "FROM building WHERE grid_id = 'wh-guanggu-g2' ORDER BY id LIMIT 1").fetchone()
    done = _submit(app, url, resident, category="sanitation", text="垃圾桶满了",
                   place={"lon": x, "lat": y}, at=NOON)
    with connect(url) as conn:
        row = conn.execute("SELECT building_id, grid_id, place_source, unit_id FROM report "
                           "WHERE id = %s", (done.report_id,)).fetchone()
        order = get_work_order(conn, done.order_id)
    assert row == (building, "wh-guanggu-g2", "map", None)
    assert order.spec.building_id == building and order.spec.role == "cleaning"


@pytest.mark.parametrize("who", ["resident", "family", "planner", "worker1"])
def test_people_and_planners_may_not_act_as_operators(twin, who) -> None:
    app, url, resident, _, family = twin
    login = {"resident": resident, "family": family}.get(who, who)
    with connect(url) as conn:
        alarm = open_alarms(conn, "wh-guanggu")[0]
        before = (conn.execute("SELECT count(*) FROM work_order").fetchone()[0],
                  conn.execute("SELECT count(*) FROM notice").fetchone()[0])
    with as_user(app, login) as user, connect(url) as conn:
        with pytest.raises(AccessDenied):
            operator_actions.create_order(conn, user, source="alarm", category="other",
                                          alarm_id=alarm.id, community_id="wh-guanggu",
                                          at=NOON, dispatcher=Dispatcher())
        with pytest.raises(AccessDenied):
            operator_actions.clear_alarm_by_hand(conn, user, alarm.id, reason="x", at=NOON)
        with pytest.raises(AccessDenied):
            notices.publish_notice(conn, user, kind="notice", scope_kind="community",
                                   scope_id="wh-guanggu", title={"zh-CN": "停水"}, body={},
                                   at=NOON)
        with pytest.raises(AccessDenied):
            reports.report_queue(conn, user, ["wh-guanggu"])
        with pytest.raises(AccessDenied):
            notices.notice_counts(conn, user, ["wh-guanggu"])
    with connect(url) as conn:
        after = (conn.execute("SELECT count(*) FROM work_order").fetchone()[0],
                 conn.execute("SELECT count(*) FROM notice").fetchone()[0])
        assert get_alarm(conn, alarm.id).state != "cleared"
    assert after == before
    assert _refusals(url, login) == 5
    if who != "resident":  # and nobody but a resident reports
        with pytest.raises(AccessDenied):
            _submit(app, url, login)
        assert _refusals(url, login) == 6


def test_an_operator_makes_orders_by_hand_and_clears_an_alarm_with_a_reason(twin) -> None:
    app, url, _, _, _ = twin
    now = datetime.now(UTC)  # after the seeded alarm was raised
    with connect(url) as conn:
        alarm = next(a for a in open_alarms(conn, "wh-guanggu") if a.spec.location is not None)
        building = conn.execute("SELECT id FROM building ORDER BY id LIMIT 1").fetchone()[0]
    with as_user(app, "operator") as user, connect(url) as conn:
        from_alarm, _ = operator_actions.create_order(
            conn, user, source="alarm", category="fire_hazard", role="security",
            alarm_id=alarm.id, text="请到场核查", community_id="wh-guanggu", at=now,
            dispatcher=Dispatcher())
        from_building, _ = operator_actions.create_order(
            conn, user, source="building", category="electrical", building_id=building,
            priority="urgent", community_id="wh-guanggu", at=now, dispatcher=Dispatcher())
        with pytest.raises(TwinError):
            operator_actions.clear_alarm_by_hand(conn, user, alarm.id, reason=" ", at=now)
        operator_actions.clear_alarm_by_hand(conn, user, alarm.id, reason="现场核实为误报",
                                             at=now + timedelta(minutes=5))
    with connect(url) as conn:
        a = get_work_order(conn, from_alarm.id)
        b = get_work_order(conn, from_building.id)
        cleared = get_alarm(conn, alarm.id)
        log = alarm_history(conn, alarm.id)
    assert a.spec.alarm_id == alarm.id and a.spec.kind == alarm.spec.type
    assert a.spec.text_key == alarm.spec.text_key and a.history[0].actor == "operator"
    assert a.history[1].action == "assign" and a.history[1].actor == "operator"
    # the alarm's order follows its clearing, as when its rule clears it
    assert a.state == "closed" and a.history[-1].action == "settle"
    assert b.spec.building_id == building and b.spec.priority == "urgent"
    assert b.spec.role == "engineer" and b.spec.text_key == "manual/electrical"
    assert cleared.state == "cleared" and cleared.cleared_by == "operator"
    assert log[-1]["action"] == "cleared" and log[-1]["detail"]["reason"] == "现场核实为误报"


def test_notices_reach_their_building_grid_or_community_and_count_reads(twin) -> None:
    app, url, resident, _, family = twin
    with connect(url) as conn:
        home = conn.execute("SELECT u.building_id FROM app_user a JOIN resident r ON "
                            "r.id = a.resident_id JOIN unit u ON u.id = r.unit_id "
                            "WHERE a.name = %s", (resident,)).fetchone()[0]
        elsewhere = conn.execute("SELECT id FROM building WHERE id <> %s AND grid_id <> "
                                 "'wh-guanggu-g1' ORDER BY id LIMIT 1", (home,)).fetchone()[0]
        in_home = conn.execute("SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id "
                               "WHERE u.building_id = %s", (home,)).fetchone()[0]
    with as_user(app, "operator") as user, connect(url) as conn:
        mine = notices.publish_notice(
            conn, user, kind="notice", scope_kind="building", scope_id=home,
            title={"zh-CN": "明日停水", "en": "No water tomorrow"}, body={"zh-CN": "9:00-12:00"},
            at=NOON)
        notices.publish_notice(conn, user, kind="notice", scope_kind="building",
                               scope_id=elsewhere, title={"zh-CN": "电梯检修"}, body={}, at=NOON)
        party = notices.publish_notice(
            conn, user, kind="activity", scope_kind="community", scope_id="wh-guanggu",
            title={"zh-CN": "社区联欢会"}, body={}, starts="2026-12-01 19:00",
            ends="2026-12-01 21:00", at=NOON)
        with pytest.raises(TwinError):
            notices.publish_notice(conn, user, kind="notice", scope_kind="grid",
                                   scope_id="no-such-grid", title={"zh-CN": "x"}, body={},
                                   at=NOON)
    with as_user(app, resident) as user, connect(url) as conn:
        shown = notices.my_notices(conn, user)
        assert {n.id for n in shown} == {mine, party}
        notices.read_notice(conn, user, mine, at=NOON)
        notices.read_notice(conn, user, mine, at=NOON)  # counted once
        with pytest.raises(AccessDenied):
            notices.read_notice(conn, user, mine + 1, at=NOON)  # not theirs to read
    # a family login has their relative's care, nothing else
    with as_user(app, family) as user, connect(url) as conn, pytest.raises(AccessDenied):
        notices.my_notices(conn, user)
    with as_user(app, "operator") as user, connect(url) as conn:
        counts = {n.id: (n.reached, n.read_count) for n in
                  notices.notice_counts(conn, user, ["wh-guanggu"])}
        total = conn.execute("SELECT count(*) FROM resident").fetchone()[0]
    assert counts[mine] == (in_home, 1)
    assert counts[party] == (total, 0)
    assert _refusals(url, resident) == 1


def test_the_live_loop_at_3am_from_badge_fixes_to_a_rating(twin, broker, start_ingest,
                                                           publisher) -> None:
    """At 03:00 in Wuhan the night staff's badges report through Mosquitto into ingest; a
    resident's leak goes to the engineer on call from where their badge says they are; the
    simulated staff work it on the simulated clock; the resident sees it done and rates it."""
    from ingest.simulator import Simulation
    from ingest.simulator.load import load_community
    from ingest.simulator.staff_work import StaffAtWork
    from tests.mqtt_helpers import wait_until
    from twin.services.broker_accounts import INGEST

    app, url, resident, _, _ = twin
    now = datetime.now(UTC)
    at = now.replace(hour=19, minute=0, second=0, microsecond=0)  # 03:00 in Wuhan
    while at > now - timedelta(hours=1):
        at -= timedelta(days=1)
    assert at.astimezone(WUHAN).hour == 3
    start_ingest(url, broker.service_url(INGEST))
    with connect(url) as conn:
        community = load_community(conn, "wh-guanggu")
    sim = Simulation(community, start=at - timedelta(minutes=3), seed=3, tick_s=5)
    fixes = [m for m in sim.advance(at) if m[0].endswith("/position")]
    for topic, payload in fixes:
        publisher.send(topic, payload)

    def landed() -> bool:
        with connect(url) as conn:
            return conn.execute("SELECT count(*) FROM staff_position").fetchone()[0] == len(fixes)

    wait_until(landed, timeout=30)
    done = _submit(app, url, resident, at=at)
    with connect(url) as conn:
        order = get_work_order(conn, done.order_id)
        shift = conn.execute("SELECT shift FROM staff WHERE id = %s",
                             (order.assignee_id,)).fetchone()[0]
    assert order.state == "assigned" and shift == "night"
    assert order.history[-1].detail["origin"] == "fix"  # from the badge, not the post
    staff = StaffAtWork("wh-guanggu")
    with connect(url) as conn:
        for minutes in (5, 30, 90, 240):
            staff.step(conn, at + timedelta(minutes=minutes))
            conn.commit()
    with as_user(app, resident) as user, connect(url) as conn:
        row, history = reports.my_report(conn, user, done.report_id)
        assert row.status == "done" and row.order_state == "resolved"
        assert [e.action for e in history if e.action != "note"] == [
            "created", "assign", "accept", "arrive", "resolve"]
        rated = reports.rate_report(conn, user, done.report_id, stars=5, comment="半夜也来了",
                                    at=at + timedelta(hours=5))
    assert rated.rating == 5


def test_a_report_nobody_can_take_at_night_escalates_like_any_order(twin) -> None:
    """'Something else' asks for a grid worker, and grid workers work days: at 03:00 the
    order waits, then the rules' clock hands it to the night duty officer."""
    from twin.rules.store import Outcome, follow_up

    app, url, resident, _, _ = twin
    done = _submit(app, url, resident, category="other", text="单元门禁坏了")
    assert done.not_dispatched is not None and done.state == "created"
    dispatcher = Dispatcher()
    with connect(url) as conn:
        follow_up(conn, ["wh-guanggu"], now=NIGHT + timedelta(minutes=3),
                  dispatcher=dispatcher, outcome=Outcome())
        conn.commit()
        order = get_work_order(conn, done.order_id)
        role = conn.execute("SELECT role FROM staff WHERE id = %s",
                            (order.assignee_id,)).fetchone()
    assert order.tier == "duty_officer" and order.state == "assigned"
    assert role == ("duty_officer",)
    with as_user(app, resident) as user, connect(url) as conn:
        [mine] = reports.my_reports(conn, user)
    assert mine.status == "in_progress" and mine.assignee_role == "duty_officer"


def test_each_page_is_refused_to_the_roles_it_is_not_for(twin) -> None:
    from dashboard.pages import reports_queue, resident_notices, resident_report

    app, _, resident, _, family = twin
    for login, pages in ((resident, [reports_queue]),
                         (family, [reports_queue, resident_report, resident_notices]),
                         ("operator", [resident_report, resident_notices]),
                         ("planner", [reports_queue, resident_report, resident_notices])):
        for page in pages:
            with as_user(app, login, page.PATH):
                assert page.layout().id == "denied", (login, page.PATH)
    with as_user(app, resident, resident_report.PATH):  # and a forged report id, as the page
        assert "✗" in resident_report.rate_report("999999", 5, "")


def test_the_rules_of_a_report_without_a_database() -> None:
    from twin.escalation import DEFAULT_PATH, load_config
    from twin.reports import CatalogueError, check_rate, checked_rating, parse_catalogue

    check_rate(4, limit=5)
    with pytest.raises(ReportRefused) as e:
        check_rate(5, limit=5)
    assert e.value.values == {"limit": 5, "minutes": 60}
    assert checked_rating("4", " 好 ", state="closed", rated=False) == (4, "好")
    for stars, state, rated in ((0, "closed", False), (True, "closed", False),
                                (3, "accepted", False), (3, "resolved", True)):
        with pytest.raises(ReportRefused):
            checked_rating(stars, "", state=state, rated=rated)
    wrong = """categories:
  leak: {name: {zh-CN: 漏水, en: Leak}, role: engineer, skill: plumbing, kind: water_leak,
         department: police, domain: equipment}
"""
    with pytest.raises(CatalogueError, match=r"categories\.leak\.department.*water_utility"):
        parse_catalogue(wrong, origin="x.yaml", escalation=load_config(DEFAULT_PATH))
    with pytest.raises(CatalogueError, match="role"):
        parse_catalogue(wrong.replace("engineer", "plumber").replace("police", "water_utility"),
                        origin="x.yaml", escalation=load_config(DEFAULT_PATH))
