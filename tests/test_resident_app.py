"""The resident and family apps' service functions, called directly as each role (issue 13):
a resident reaches only their own household, charging sessions and SOS; a family member
only their relative's care status and alerts; staff roles none of it. Refusals are
audited under the real login. The charging session and the family's care alert travel the
real path: the pile's events through migration 0024's trigger, the notification worker's
inbox transport, the inbox read back in the login's language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dashboard import auth, people
from dashboard.demo import DEMO_PASSWORD
from ingest.notify import build_transports
from twin.access import AccessDenied, User
from twin.errors import TwinError
from twin.notify.config import parse_config
from twin.notify.worker import Worker
from twin.rules.store import Dispatcher
from twin.store.connection import connect
from twin.store.graph import walk_routing_graph

#: A night hour on the community's clock (Wuhan): 03:00.
NIGHT = datetime(2026, 11, 30, 3, 0, tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)

#: Every staff channel by mail to a closed port (nobody reads it here); 'app' is built in.
CONFIG = """
transports:
  mail: {kind: smtp, host: 127.0.0.1, port: 9, sender: twin@example.cn, timeout_s: 1}
retry: {max_attempts: 3, base_s: 60, max_s: 600, jitter: 0.5, lease_s: 10}
default:
  family: {via: [mail], duty: {email: f@example.cn}}
  grid_worker: {via: [mail], duty: {email: g@example.cn}}
  security_desk: {via: [mail], duty: {email: d@example.cn}}
  staff: {via: [mail], duty: {email: s@example.cn}}
  broadcast: {via: [mail], duty: {email: b@example.cn}}
"""


@pytest.fixture
def logins(room):
    """(conn, the resident's login, a neighbour in another unit, a family login and its
    relative, the operator, a grid worker, the database's URL), on the sample twin."""
    _app, users, _ids, url = room
    with connect(url) as conn:
        me, other = conn.execute(
            """SELECT DISTINCT ON (r.unit_id) r.id FROM resident r
                WHERE r.phone <> '' ORDER BY r.unit_id, r.id LIMIT 2""").fetchall()
        (cared,) = conn.execute(
            "SELECT id FROM resident WHERE 'elderly_alone' = ANY(care_flags) ORDER BY id LIMIT 1"
        ).fetchone()
        phone = conn.execute("SELECT phone FROM resident WHERE id = %s", me).fetchone()[0]
        resident = auth.add_user(conn, phone, DEMO_PASSWORD, "resident", resident_id=me[0])
        family = auth.add_user(conn, "family-1", DEMO_PASSWORD, "family", resident_id=cared,
                               lang="en")
        conn.commit()
        yield (conn, resident, other[0], family, cared, auth.get_user(conn, users.operator),
               auth.get_user(conn, users.worker), url)


def _denials(conn, login: str) -> list[tuple[str, str]]:
    return conn.execute(
        """SELECT subject_kind, detail->>'asked' FROM audit_log
            WHERE user_name = %s AND action = 'denied' ORDER BY id""", (login,)).fetchall()


def test_a_resident_sees_their_own_household_whole_and_no_other(logins) -> None:
    conn, resident, other, *_ = logins
    home = people.household(conn, resident, resident.resident_id)
    members = conn.execute(
        """SELECT r.id FROM resident r JOIN resident me ON me.unit_id = r.unit_id
            WHERE me.id = %s ORDER BY r.id""", (resident.resident_id,)).fetchall()
    assert [m["id"] for m in home["members"]] == [m[0] for m in members]
    assert all("*" not in m["name"] for m in home["members"])  # whole: their own
    assert conn.execute("""SELECT count(*) FROM audit_log WHERE user_name = %s
                           AND action = 'view_household'""", (resident.name,)).fetchone()[0] == 1
    for forged in (other, [other], None, "r-nobody"):
        with pytest.raises(AccessDenied):
            people.household(conn, resident, forged)
    assert len(_denials(conn, resident.name)) == 4
    assert conn.execute("""SELECT count(*) FROM audit_log WHERE user_name = %s
                           AND action = 'view_household'""", (resident.name,)).fetchone()[0] == 1


def test_staff_and_family_cannot_use_the_residents_functions(logins) -> None:
    conn, resident, _other, family, cared, operator, worker, _url = logins
    graph = walk_routing_graph(conn, resident.community_id)
    for user in (operator, worker, family):
        rid = cared if user is family else resident.resident_id
        calls = [
            lambda u=user, r=rid: people.household(conn, u, r),
            lambda u=user, r=rid: people.charging_piles(conn, u, r, graph=graph),
            lambda u=user, r=rid: people.my_sessions(conn, u, r),
            lambda u=user, r=rid: people.start_charging(conn, u, r, "x", at=NIGHT),
            lambda u=user, r=rid: people.raise_sos(conn, u, r, at=NIGHT,
                                                   dispatcher=Dispatcher()),
        ]
        for call in calls:
            with pytest.raises(AccessDenied):
                call()
        assert len(_denials(conn, user.name)) == len(calls), user.role
    assert conn.execute("SELECT count(*) FROM charging_session").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM alarm WHERE type = 'sos'").fetchone()[0] == 0
    # nor may a resident, an operator or a grid worker read a special-care resident's status
    for user in (resident, operator, worker):
        with pytest.raises(AccessDenied):
            people.care_status(conn, user, cared, now=NIGHT)
    with pytest.raises(AccessDenied):
        people.my_inbox(conn, operator)


def _piles_report(conn, community_id: str, *, status: str = "idle") -> None:
    """Every pile has reported (as ingest stores a pile's status message)."""
    conn.execute(
        """INSERT INTO device_state (device_id, online, status_at, last_seen, metrics)
           SELECT id, true, now(), now(),
                  jsonb_build_object('status', jsonb_build_object('v', %s::text),
                                     'power', jsonb_build_object('v', 0))
             FROM device WHERE type = 'ev_charger' AND community_id = %s
           ON CONFLICT (device_id) DO UPDATE SET online = true, metrics = excluded.metrics""",
        (status, community_id))
    conn.commit()


def test_free_piles_nearest_first_and_a_session_of_ones_own(logins) -> None:
    conn, resident, other, family, *_, url = logins
    _piles_report(conn, resident.community_id)
    graph = walk_routing_graph(conn, resident.community_id)
    sheds = people.charging_piles(conn, resident, resident.resident_id, graph=graph)
    metres = [s["metres"] for s in sheds]
    assert len(sheds) > 1 and metres == sorted(metres) and all(m < 5000 for m in metres)
    assert all(s["free"] == len(s["piles"]) for s in sheds)
    pile = sheds[0]["piles"][0]["device_id"]
    # a neighbour's login, and a forged id for them, reach none of it
    neighbour = User(name="n", role="resident", community_id=resident.community_id,
                     resident_id=other)
    session = people.start_charging(conn, resident, resident.resident_id, pile, at=NIGHT)
    assert session["state"] == "requested" and session["device_id"] == pile
    command = conn.execute(
        """SELECT c.command, c.args, o.published_at FROM device_command c
             JOIN rule_outbox o ON o.command_id = c.id WHERE c.device_id = %s""",
        (pile,)).fetchone()
    assert command[0] == "start" and command[1]["subject"] == resident.resident_id
    assert command[2] is None  # the rules service's outbox publishes it
    with pytest.raises(TwinError):  # one open session each
        people.start_charging(conn, resident, resident.resident_id, pile, at=NIGHT)
    for call in (lambda: people.charging_session(conn, neighbour, session["id"]),
                 lambda: people.stop_charging(conn, neighbour, other, session["id"], at=NIGHT),
                 lambda: people.stop_charging(conn, resident, other, session["id"], at=NIGHT),
                 lambda: people.my_sessions(conn, resident, other)):
        with pytest.raises(AccessDenied):
            call()
    assert people.my_sessions(conn, neighbour, other) == []
    # the pile starts, charges and stops full: its events move the session and tell its owner
    _event(conn, pile, "charge_start", NIGHT + timedelta(seconds=5), subject=resident.resident_id)
    assert people.my_sessions(conn, resident, resident.resident_id)[0]["state"] == "charging"
    _event(conn, pile, "charge_stop", NIGHT + timedelta(minutes=47), kwh=0.31)
    [ended] = people.my_sessions(conn, resident, resident.resident_id)
    assert (ended["state"], ended["end_reason"], ended["energy_kwh"]) == ("ended", "full", 0.31)
    config = parse_config(CONFIG)
    with connect(url, autocommit=True) as db:
        Worker(db, config, build_transports(config, origin="t", conn=db, mqtt_client=None),
               clock=lambda: NIGHT + timedelta(hours=1)).run_once()
    [message] = people.my_inbox(conn, resident)
    assert "0.31" in message["text"] and "47" in message["text"] and "充满" in message["text"]
    assert people.my_inbox(conn, family) == []  # nobody else's inbox


def test_sos_at_night_raises_one_critical_alarm_dispatched_to_the_nearest_guard(logins) -> None:
    conn, resident, *_ = logins
    dispatcher = Dispatcher()
    first = people.raise_sos(conn, resident, resident.resident_id, at=NIGHT,
                             dispatcher=dispatcher)
    assert first["new"] and first["order_id"] is not None
    alarm = conn.execute("""SELECT severity, source_kind, resident_id, text_key, title,
                                   text_params FROM alarm WHERE id = %s""",
                         (first["alarm_id"],)).fetchone()
    assert alarm[:4] == ("critical", "resident", resident.resident_id, "sys/sos")
    name = conn.execute("SELECT name FROM resident WHERE id = %s",
                        (resident.resident_id,)).fetchone()[0]
    assert name not in alarm[4] and name not in str(alarm[5])  # keys and ids, no names
    order = conn.execute("""SELECT w.role, w.state, w.assignee_id, s.role, s.shift
                              FROM work_order w LEFT JOIN staff s ON s.id = w.assignee_id
                             WHERE w.id = %s""", (first["order_id"],)).fetchone()
    # at 03:00 a guard of the night shift has it, chosen by walking distance
    assert order[:2] == ("security", "assigned") and order[3] == "security", order
    assert order[2] == first["assignee"]
    print("SOS at 03:00 went to", order[2], "on shift", order[4])
    # pressed again while it is open: counted on the same alarm, nothing new opens
    again = people.raise_sos(conn, resident, resident.resident_id,
                             at=NIGHT + timedelta(seconds=20), dispatcher=dispatcher)
    assert (again["alarm_id"], again["new"], again["count"], again["order_id"]) == (
        first["alarm_id"], False, 2, None)
    assert conn.execute("SELECT count(*) FROM work_order WHERE kind = 'sos'").fetchone()[0] == 1


def test_a_family_member_sees_only_their_relative_and_receives_the_care_alerts(logins) -> None:
    """The special-care-not-out rule itself, on the twin's snapshot: its alarm, raised by
    the rule store, reaches the family login's inbox through the notification worker."""
    from twin.rules.compile import library_dir, load_directory
    from twin.rules.engine import Engine, Observation
    from twin.rules.store import Outcome, execute, load_snapshot, store_texts

    conn, resident, other, family, cared, *_, url = logins
    for forged in (other, resident.resident_id):
        with pytest.raises(AccessDenied):
            people.care_status(conn, family, forged, now=NIGHT)
    assert len(_denials(conn, family.name)) == 2
    rule = next(r for r in load_directory(library_dir()) if r.id == "special-care-not-out")
    store_texts(conn, [rule])
    conn.commit()
    # the relative came home through a gate the evening before, and did not go out again
    (gate,) = conn.execute("""SELECT id FROM device WHERE type = 'access_gate'
                              ORDER BY id LIMIT 1""").fetchone()
    came_in = NIGHT - timedelta(hours=40)
    conn.execute("""INSERT INTO event (time, device_id, event_id, kind, method, direction,
                                       subject_id) VALUES (%s, %s, 'e-in', 'access', 'face',
                                                           'in', %s)""",
                 (came_in, gate, cared))
    conn.commit()
    engine = Engine([rule], load_snapshot(conn), started=came_in)
    engine.observe(Observation(resident.community_id, gate, came_in, "event", event="access",
                               direction="in", subject=cared))
    # quiet hours hold it (22:00-07:00): the morning after, on the community's clock
    morning = NIGHT + timedelta(hours=5)
    firings = [f for f in engine.tick(morning) if f.key == cared]
    assert firings, "the care rule did not fire"
    with conn.transaction():
        for firing in firings:
            execute(conn, firing, now=morning, dispatcher=Dispatcher(), outcome=Outcome())
    conn.commit()
    assert conn.execute("""SELECT count(*) FROM notification WHERE channel = 'app'
                           AND recipient = %s""", (family.name,)).fetchone()[0] == 1
    config = parse_config(CONFIG)
    with connect(url, autocommit=True) as db:
        Worker(db, config, build_transports(config, origin="t", conn=db, mqtt_client=None),
               clock=lambda: morning + timedelta(minutes=1)).run_once()
    [message] = people.my_inbox(conn, family)
    name = conn.execute("SELECT name FROM resident WHERE id = %s", (cared,)).fetchone()[0]
    assert "going out" in message["text"] and name in message["text"]  # English, as set
    status = people.care_status(conn, family, cared, now=morning)
    assert status["last_in"] == came_in and status["last_out"] is None
    [alert] = status["alarms"]
    assert alert["type"] == "care_not_out" and "going out" in alert["title"]
    assert people.my_inbox(conn, resident) == []
    assert conn.execute("""SELECT count(*) FROM audit_log WHERE user_name = %s
                           AND action = 'view_care_status'""", (family.name,)).fetchone()[0] == 1


def test_a_pile_that_refuses_the_start_ends_the_session_and_says_so(logins) -> None:
    conn, resident, *_, url = logins
    _piles_report(conn, resident.community_id)
    (pile,) = conn.execute("""SELECT id FROM device WHERE type = 'ev_charger'
                              ORDER BY id LIMIT 1""").fetchone()
    session = people.start_charging(conn, resident, resident.resident_id, pile, at=NIGHT)
    # the pile answers the start: nothing is plugged in (as ingest records an ack)
    conn.execute("""UPDATE device_command SET acked_at = %s, ok = false,
                           detail = 'nothing is plugged in'
                     WHERE device_id = %s AND command = 'start'""",
                 (NIGHT + timedelta(seconds=2), pile))
    conn.commit()
    [refused] = people.my_sessions(conn, resident, resident.resident_id)
    assert (refused["id"], refused["state"], refused["end_reason"]) == (
        session["id"], "refused", "refused")
    config = parse_config(CONFIG)
    with connect(url, autocommit=True) as db:
        Worker(db, config, build_transports(config, origin="t", conn=db, mqtt_client=None),
               clock=lambda: NIGHT + timedelta(hours=1)).run_once()
    [message] = people.my_inbox(conn, resident)
    assert "未能开始充电" in message["text"]
    # the pile is free again: a new session may start
    again = people.start_charging(conn, resident, resident.resident_id, pile, at=NIGHT)
    assert again["state"] == "requested"


def _event(conn, device_id: str, kind: str, at: datetime, *, subject: str | None = None,
           kwh: float | None = None) -> None:
    """A pile's event as ingest stores it (its session id in attrs, energy in value)."""
    conn.execute(
        """INSERT INTO event (time, device_id, event_id, kind, subject_id, value, attrs)
           VALUES (%s, %s, %s, %s, %s, %s, '{"session": "s-test-1"}')""",
        (at, device_id, f"{kind}-{at.timestamp()}", kind, subject, kwh))
    conn.commit()


def test_the_charging_callbacks_posted_as_another_role_or_for_another_session(logins, room
                                                                             ) -> None:
    """A forged request to the page's own callback, as the browser would post it: an
    operator starting a pile, a resident stopping someone else's session."""
    from tests.test_dashboard_authz import login, pattern, post

    app = room[0]
    conn, resident, other, *_ = logins
    _piles_report(conn, resident.community_id)
    (pile,) = conn.execute("""SELECT id FROM device WHERE type = 'ev_charger'
                              ORDER BY id LIMIT 1""").fetchone()
    start = {"pile": pile, "type": "rc-start"}
    resp = post(login(app, "operator"), app, output="rc-done.data",
                trigger=pattern(start, "n_clicks"),
                values={'{"pile":["ALL"],"type":"rc-start"}.n_clicks': [(start, 1)],
                        '{"session":["ALL"],"type":"rc-stop"}.n_clicks': [],
                        "rc-done.data": None})
    assert resp.status_code == 403 or "✗" in resp.get_data(as_text=True)
    assert conn.execute("SELECT count(*) FROM charging_session").fetchone()[0] == 0
    assert ("resident", "charging.use") in _denials(conn, "operator")
    # a neighbour's session, stopped from this resident's page
    (phone,) = conn.execute("SELECT phone FROM resident WHERE id = %s", (other,)).fetchone()
    neighbour = auth.add_user(conn, phone, DEMO_PASSWORD, "resident", resident_id=other)
    conn.commit()
    theirs = people.start_charging(conn, neighbour, other, pile, at=NIGHT)
    _event(conn, pile, "charge_start", NIGHT + timedelta(seconds=5), subject=other)
    stop = {"session": theirs["id"], "type": "rc-stop"}
    resp = post(login(app, resident.name), app, output="rc-done.data",
                trigger=pattern(stop, "n_clicks"),
                values={'{"pile":["ALL"],"type":"rc-start"}.n_clicks': [],
                        '{"session":["ALL"],"type":"rc-stop"}.n_clicks': [(stop, 1)],
                        "rc-done.data": None})
    assert resp.status_code == 403 or "✗" in resp.get_data(as_text=True)
    assert people.my_sessions(conn, neighbour, other)[0]["stop_requested_at"] is None
    assert ("charging_session", "charging.use") in _denials(conn, resident.name)


def test_the_pages_speak_the_logins_language_and_refuse_other_roles(logins, room) -> None:
    """The pages as their callbacks build them: zh-CN by default, English for a login set
    to it; a control-room login gets a refusal, not the resident's data."""
    from dash import html

    from dashboard.pages import family as family_page
    from dashboard.pages import resident_charging, resident_home
    from tests.control_room import as_user

    app = room[0]
    conn, resident, _other, family, *_ = logins

    def text(component) -> str:
        if isinstance(component, str | int | float):
            return str(component)
        if isinstance(component, list | tuple):
            return " ".join(text(c) for c in component)
        children = getattr(component, "children", None)
        return "" if children is None else text(children)

    with as_user(app, resident.name, "/m"):
        home = text(resident_home.layout())
        assert "一键报警" in home and "家庭成员" in home
        sessions, sheds = resident_charging.charging_view()
        assert "当前没有充电" in text(sessions)
    auth.set_language(conn, resident.name, "en")
    conn.commit()
    with as_user(app, resident.name, "/m"):
        home = text(resident_home.layout())
        assert "SOS" in home and "Members" in home and "一键报警" not in home
    with as_user(app, family.name, "/family"):  # set to English in the fixture
        status, _inbox = family_page.family_view()
        assert "Your relative" in text(status)
        assert isinstance(resident_home.layout(), html.Div)  # the page's own refusal
        assert "My household" not in text(resident_home.layout())
    with as_user(app, "operator", "/m"):
        assert "一键报警" not in text(resident_home.layout())
        sessions, sheds = resident_charging.charging_view()
        assert "✗" in text(sessions) and sheds == []
