"""Escalation tiers: calendars, the tier walk, SLAs in open hours, retries when something changes.

Pure tests of the calendars and the walk at 03:00, on a Sunday and in office
hours; then against the real PostgreSQL with the sample community: an order
nobody takes at 03:00 climbs from the front line to the duty officer and on
to the department for its category, with the notification written; an HVAC
order handed up drops its skill; a waiting order is retried when a shift
starts, or a position arrives, and not on every tick.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest
from shapely.geometry import Point

from ingest import contract
from tests.mqtt_helpers import wait_until
from twin.calendars import WorkingHours
from twin.escalation import (
    DEFAULT_PATH,
    EscalationConfigError,
    climb,
    config_for,
    load_config,
    next_retry,
    parse_config,
)
from twin.notify.config import parse_config as parse_notify
from twin.notify.routing import recipient_addresses
from twin.rules import store
from twin.rules.compile import library_dir, load_directory
from twin.rules.store import Dispatcher, Outcome, follow_up
from twin.store import operations as ops
from twin.store.connection import connect
from twin.store.reads.texts import wording
from twin.texts import Viewer
from twin.work_orders import SYSTEM, WorkOrderSpec, escalation_due

C = "wh-guanggu"
TZ = "Asia/Shanghai"
#: Monday 23 November 2026 in Wuhan (UTC+8)
MON_0300 = datetime(2026, 11, 22, 19, 0, tzinfo=UTC)
SUN_1000 = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
TUE_1000 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
FRI_1750 = datetime(2026, 11, 27, 9, 50, tzinfo=UTC)
ALL_ROLES = {"grid_worker", "security", "cleaning", "engineer", "manager", "duty_officer"}
CONFIG = load_config(DEFAULT_PATH)


# --- calendars ------------------------------------------------------------------------------

def test_the_office_calendar_at_three_on_a_sunday_and_in_office_hours() -> None:
    office = CONFIG.calendar("office")
    assert not office.is_open(MON_0300)
    assert not office.is_open(SUN_1000)
    assert office.is_open(TUE_1000)
    assert office.is_open(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))       # 09:00 opens
    assert not office.is_open(datetime(2026, 11, 24, 10, 0, tzinfo=UTC))  # 18:00 closed
    assert not office.is_open(datetime(2026, 10, 1, 2, 0, tzinfo=UTC))    # National Day
    assert office.next_opening(MON_0300) == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    # thirty open minutes from Friday 17:50 are due on Monday at 09:20
    assert office.add(FRI_1750, timedelta(minutes=30)) == datetime(2026, 11, 30, 1, 20, tzinfo=UTC)
    assert office.working_time(FRI_1750, datetime(2026, 11, 30, 1, 20, tzinfo=UTC)) == \
        timedelta(minutes=30)
    duty = CONFIG.calendar("duty_24h")
    assert duty.is_open(MON_0300) and duty.is_open(SUN_1000)


def test_a_night_shift_runs_past_midnight() -> None:
    night = WorkingHours.from_shift(time(20), time(8), range(7), tz=TZ)
    assert night.is_open(MON_0300)
    assert not night.is_open(TUE_1000)
    # from 03:00, the next change is the end of the night at 08:00
    assert night.next_change(MON_0300) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert night.working_time(MON_0300, MON_0300 + timedelta(hours=6)) == timedelta(hours=5)


# --- the tier walk ---------------------------------------------------------------------------

def test_at_three_the_walk_passes_the_closed_office_and_reaches_the_department() -> None:
    up = climb(CONFIG, level=0, role="grid_worker", skill=None, kind="street_vending",
               now=MON_0300, staffed=ALL_ROLES)
    assert (up.tier, up.role, up.level) == ("duty_officer", "duty_officer", 1)
    up = climb(CONFIG, level=1, role="duty_officer", skill=None, kind="street_vending",
               now=MON_0300, staffed=ALL_ROLES)
    assert (up.tier, up.department, up.level) == ("street", "urban_management", 3)
    assert up.skipped == (("community_office", "closed (mon-fri 09:00-18:00)"),)
    assert "城管值班 <10012319001>" in up.contacts[0].recipients()
    assert climb(CONFIG, level=3, role="duty_officer", skill=None, kind="street_vending",
                 now=MON_0300, staffed=ALL_ROLES) is None


def test_by_category_fire_goes_to_the_fire_service_and_an_unknown_kind_to_the_street() -> None:
    def dept(kind: str, now: datetime) -> str | None:
        return climb(CONFIG, level=2, role="manager", skill=None, kind=kind, now=now,
                     staffed=ALL_ROLES).department

    assert dept("fire_lane_parking", SUN_1000) == "fire_service"
    assert dept("garage_ventilation", MON_0300) == "fire_service"
    assert dept("empty_bins", MON_0300) == "urban_management"
    assert dept("intrusion_check", SUN_1000) == "police"
    assert dept("water_leak", MON_0300) == "water_utility"
    assert dept("charger_overheat", MON_0300) == "power_utility"
    assert dept("welfare_check", TUE_1000) == "street_office"


def test_in_office_hours_the_community_office_takes_it_and_on_sunday_it_does_not() -> None:
    at_office = climb(CONFIG, level=1, role="duty_officer", skill=None, kind="welfare_check",
                      now=TUE_1000, staffed=ALL_ROLES)
    assert (at_office.tier, at_office.role) == ("community_office", "manager")
    on_sunday = climb(CONFIG, level=1, role="duty_officer", skill=None, kind="welfare_check",
                      now=SUN_1000, staffed=ALL_ROLES)
    assert on_sunday.tier == "street" and on_sunday.department == "street_office"


def test_a_tier_nobody_holds_is_passed_over_and_a_skill_it_lacks_is_dropped() -> None:
    up = climb(CONFIG, level=0, role="engineer", skill="hvac", kind="garage_ventilation",
               now=TUE_1000, staffed=ALL_ROLES - {"duty_officer"})
    assert up.tier == "community_office" and up.skill is None and up.dropped_skill == "hvac"
    assert up.skipped == (("duty_officer", "nobody in the community is duty_officer"),)
    assert "dropped skill hvac" in up.note("nobody took it")
    kept = climb(CONFIG, level=0, role="security", skill="fire", kind="fire_check",
                 now=MON_0300, staffed=ALL_ROLES)
    assert kept.tier == "duty_officer" and kept.skill == "fire" and kept.dropped_skill is None


def test_the_sla_counts_only_the_tiers_open_hours() -> None:
    office = CONFIG.policy(2, "welfare_check")  # community office: response 15 min
    waiting = {"due_at": None, "eta_s": None, "policy": office}
    assert escalation_due("escalated", now=FRI_1750 + timedelta(hours=1), updated_at=FRI_1750,
                          **waiting) is None
    monday_0906 = datetime(2026, 11, 30, 1, 6, tzinfo=UTC)
    assert escalation_due("escalated", now=monday_0906, updated_at=FRI_1750, **waiting) == \
        "nobody took it within 15 min"
    duty = CONFIG.policy(1, "welfare_check")  # 24 h: every minute counts
    assert escalation_due("escalated", now=MON_0300 + timedelta(minutes=6), updated_at=MON_0300,
                          due_at=None, eta_s=None, policy=duty) == "nobody took it within 5 min"
    # resolution at the tier, from when the tier got it (120 min for the duty officer)
    assert escalation_due("accepted", now=MON_0300 + timedelta(minutes=121),
                          updated_at=MON_0300 + timedelta(minutes=120), due_at=None, eta_s=60,
                          tier_since=MON_0300, policy=duty) == \
        "not resolved within 120 min at this tier"


def test_the_next_retry_is_the_next_shift_change() -> None:
    assert next_retry(shifts=["day"], now=MON_0300, tz=TZ) == \
        datetime(2026, 11, 23, 0, 0, tzinfo=UTC)   # 08:00, the day shift starts
    assert next_retry(shifts=["office"], now=datetime(2026, 11, 28, 2, 0, tzinfo=UTC), tz=TZ) == \
        datetime(2026, 11, 30, 1, 0, tzinfo=UTC)   # Saturday -> Monday 09:00


# --- the configuration ----------------------------------------------------------------------

def _broken(old: str, new: str) -> str:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize(("old", "new", "message"), [
    ("role: duty_officer", "role: night_porter",
     "key 'tiers.1.role': unknown staff role 'night_porter'"),
    ("calendar: office\n    sla: {response_min: 15",
     "calendar: offfice\n    sla: {response_min: 15",
     ("key 'tiers.2.calendar': there is no calendar 'offfice'; the calendars are "
      "['duty_24h', 'office']")),
    ("sla: {response_min: 5,", "sla: {response_min: soon,",
     "key 'tiers.1.sla.response_min': Input should be a valid number"),
    ("street_vending: urban_management", "street_vendors: urban_management",
     "key 'tiers.3.departments.street_vendors': there is no category 'street_vendors'"),
    ('mon-fri: ["09:00-18:00"]', 'mon-fri: ["18:00-09:00"]',
     "key 'calendars.office.hours': hours run forwards within one day"),
    ("timezone: Asia/Shanghai", "timezone: Asia/Wuhan",
     "key 'timezone': unknown time zone 'Asia/Wuhan'"),
])
def test_errors_name_the_file_and_the_key(old: str, new: str, message: str) -> None:
    with pytest.raises(EscalationConfigError) as e:
        parse_config(_broken(old, new), origin="esc.yaml")
    assert str(e.value).startswith("esc.yaml: ")
    assert message in str(e.value)


def test_a_community_file_replaces_the_default(tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text(_broken("response_min: 2,", "response_min: 30,"),
                                         encoding="utf-8")
    assert config_for("other", directory=tmp_path).policy(0, "x").unassigned == \
        timedelta(minutes=30)
    assert config_for(C, directory=tmp_path).policy(0, "x").unassigned == timedelta(minutes=2)


def test_departments_are_routed_by_the_notify_config_to_their_own_addresses() -> None:
    assert recipient_addresses("department", "城管值班 <10012319001>", {}) == \
        {"phone": ("10012319001",)}
    assert recipient_addresses("department", "街道办 <street@example.cn>", {}) == \
        {"email": ("street@example.cn",)}
    config = parse_notify(Path("docs/notify.example.yaml").read_text(encoding="utf-8"))
    # without a route of its own, 'department' takes the staff transports, no duty addresses
    route = config.route(C, "department")
    assert route.via == config.route(C, "staff").via and not route.duty.gives()


# --- against the database -------------------------------------------------------------------

def _duty_officer(conn: psycopg.Connection, at: datetime) -> str:
    """The sample's night duty officer, seen at ``at`` where the first grid worker is."""
    conn.execute(
        """UPDATE staff SET position = (SELECT position FROM staff WHERE id = 'wh-guanggu-s01'),
                            position_at = %s
           WHERE id = 'wh-guanggu-s28' AND role = 'duty_officer' AND shift = 'night'""", (at,))
    return "wh-guanggu-s28"


def _order(conn: psycopg.Connection, kind: str, role: str, at: datetime,
           skill: str | None = None) -> int:
    (lon, lat) = conn.execute(
        "SELECT ST_X(position), ST_Y(position) FROM staff WHERE id = 'wh-guanggu-s03'").fetchone()
    order = ops.open_work_order(conn, WorkOrderSpec(
        community_id=C, kind=kind, title=kind, domain="environment", role=role, skill=skill,
        location=Point(lon + 0.0003, lat), at=at), actor=SYSTEM)
    return order.id


def _tick(conn: psycopg.Connection, dispatcher: Dispatcher, at: datetime) -> Outcome:
    outcome = Outcome()
    with conn.transaction():
        follow_up(conn, [C], now=at, dispatcher=dispatcher, outcome=outcome)
    return outcome


def test_an_order_nobody_takes_at_three_climbs_to_the_duty_officer_then_the_department(
        twin_db_url: str) -> None:
    dispatcher = Dispatcher()
    with connect(twin_db_url) as conn:
        officer = _duty_officer(conn, MON_0300)
        order_id = _order(conn, "street_vending", "grid_worker", MON_0300)
        _tick(conn, dispatcher, MON_0300)
        assert ops.get_work_order(conn, order_id).state == "created"  # grid workers: day shift
        _tick(conn, dispatcher, MON_0300 + timedelta(minutes=3))
        order = ops.get_work_order(conn, order_id)
        assert (order.tier, order.spec.role, order.assignee_id) == (
            "duty_officer", "duty_officer", officer)
        # not accepted in 5 min: taken back; nobody else; 5 more min: the next tier
        _tick(conn, dispatcher, MON_0300 + timedelta(minutes=9))
        assert ops.get_work_order(conn, order_id).state == "created"
        _tick(conn, dispatcher, MON_0300 + timedelta(minutes=15))
        order = ops.get_work_order(conn, order_id)
        assert (order.state, order.tier, order.department, order.escalation_level) == (
            "escalated", "street", "urban_management", 3)
        told = conn.execute("SELECT channel, recipient, message FROM notification "
                            "WHERE work_order_id = %s", (order_id,)).fetchall()
        climbs = [e for e in order.history if e.action == "escalate"]
    assert [(c, r) for c, r, _ in told] == [("department", "城管值班 <10012319001>")]
    # 03:00 on the 23rd in Wuhan (the 22nd in UTC): the code carries the local date
    assert f"WO-20261123-{order_id} street_vending" in told[0][2]
    assert [e.detail["tier"] for e in climbs] == ["duty_officer", "street"]
    assert climbs[0].note.startswith("to 物业值班经理 (duty_officer): nobody took it within 2 min")
    assert "passed over community_office: closed" in climbs[1].note
    assert climbs[1].detail["reason"] == "nobody took it within 5 min"
    # every system line of the history reads in the viewer's language
    with connect(twin_db_url) as conn:
        said = [e.detail["said"] for e in order.history if "said" in e.detail]
        words = wording(conn, [(s["key"], s["params"]) for s in said])
    zh = [words.render(s["key"], s["params"], viewer=Viewer("zh-CN")) for s in said]
    en = [words.render(s["key"], s["params"], viewer=Viewer("en")) for s in said]
    assert "升级至物业值班经理：2 分钟内无人接单" in zh
    assert "escalated to 物业值班经理: nobody took it within 2 min" in en
    assert any(line.startswith("按步行距离最近的值班主管") for line in zh)  # assigned
    assert "5 分钟内未接单" in zh  # taken back
    assert not any(c.isascii() and c.isalpha() for line in zh for c in line)


def test_an_hvac_order_handed_up_drops_the_skill(twin_db_url: str) -> None:
    dispatcher = Dispatcher()
    with connect(twin_db_url) as conn:
        officer = _duty_officer(conn, MON_0300)
        # the night engineers (the one on call has hvac) are away tonight
        conn.execute("UPDATE staff SET shift = 'day' WHERE role = 'engineer' AND shift = 'night'")
        order_id = _order(conn, "garage_ventilation", "engineer", MON_0300, skill="hvac")
        _tick(conn, dispatcher, MON_0300)
        _tick(conn, dispatcher, MON_0300 + timedelta(minutes=3))
        order = ops.get_work_order(conn, order_id)
    assert order.spec.skill is None and order.assignee_id == officer
    climbed = next(e for e in order.history if e.action == "escalate")
    assert climbed.detail["dropped_skill"] == "hvac"
    assert "dropped skill hvac: duty_officer has ['first_aid', 'fire']" in climbed.note


def test_a_waiting_order_is_retried_when_a_shift_starts_or_a_position_arrives(
        twin_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the front line waits 10 hours here, so the order waits for the day shift
    (tmp_path / f"{C}.yaml").write_text(_broken("response_min: 2,", "response_min: 600,"),
                                        encoding="utf-8")
    monkeypatch.setenv("TWIN_ESCALATION_DIR", str(tmp_path))
    dispatcher = Dispatcher()
    with connect(twin_db_url) as conn:
        order_id = _order(conn, "empty_bins", "cleaning", MON_0300)
        _tick(conn, dispatcher, MON_0300)
        assert dispatcher.tries == 1
        for minutes in (1, 5, 60, 240, 299):
            _tick(conn, dispatcher, MON_0300 + timedelta(minutes=minutes))
        assert dispatcher.tries == 1          # nothing changed: not retried
        notes = [e for e in ops.get_work_order(conn, order_id).history if e.action == "note"]
        assert len(notes) == 1
        # a night security guard's position arrives: not a cleaner, not retried
        conn.execute("UPDATE staff SET position_at = %s WHERE id = 'wh-guanggu-s11'",
                     (MON_0300 + timedelta(hours=4),))
        _tick(conn, dispatcher, MON_0300 + timedelta(hours=4, minutes=1))
        assert dispatcher.tries == 1
        # a cleaner's position arrives: that can change the answer
        conn.execute("UPDATE staff SET position_at = %s WHERE id = 'wh-guanggu-s15'",
                     (MON_0300 + timedelta(hours=4, minutes=30),))
        _tick(conn, dispatcher, MON_0300 + timedelta(hours=4, minutes=31))
        assert dispatcher.tries == 2
        assert ops.get_work_order(conn, order_id).state == "created"  # still off shift
        _tick(conn, dispatcher, MON_0300 + timedelta(hours=4, minutes=59))
        assert dispatcher.tries == 2
        _tick(conn, dispatcher, MON_0300 + timedelta(hours=5))        # 08:00: the day shift
        order = ops.get_work_order(conn, order_id)
    assert dispatcher.tries == 3
    assert order.state == "assigned" and order.assignee_id is not None


def test_the_sample_config_loads() -> None:
    assert [t.id for t in CONFIG.tiers] == ["front_line", "duty_officer", "community_office",
                                            "street"]
    assert CONFIG.category_of("street_vending") == "street_vending"
    assert date(2026, 10, 1) in CONFIG.calendar("office").holidays


# --- through the broker and the rule service -------------------------------------------------

def _three_at_night() -> datetime:
    """03:00 in Wuhan, at least an hour ago (device times may not be in the future)."""
    now = datetime.now(UTC)
    t = now.replace(hour=19, minute=0, second=0, microsecond=0)
    return t if t <= now - timedelta(hours=1) else t - timedelta(days=1)


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_street_vending_at_three_reaches_urban_management_through_the_live_loop(
        twin_db_url: str, start_rules, publisher) -> None:
    rule = next(r for r in load_directory(library_dir()) if r.id == "camera-street-vending")
    clock = _Clock(_three_at_night())
    with connect(twin_db_url) as conn:
        store.store_rules(conn, [rule], at=datetime.now(UTC), replace_all=True)
        officer = _duty_officer(conn, clock.now)
        (camera,) = conn.execute("SELECT id FROM device WHERE type = 'ai_camera' "
                                 "AND building_id IS NULL ORDER BY id LIMIT 1").fetchone()
    service = start_rules(twin_db_url, clock)
    publisher.send(contract.topic(C, camera, "event"), orjson.dumps({
        "ts": contract.fmt_time(clock.now), "id": "sv-1", "kind": "detection",
        "class": "street_vending", "confidence": 0.93}))

    def order():
        with connect(twin_db_url) as conn:
            row = conn.execute("SELECT id FROM work_order WHERE kind = 'street_vending'").fetchone()
            return ops.get_work_order(conn, row[0]) if row else None

    wait_until(lambda: order() is not None, timeout=20)
    assert order().state == "created"          # the grid workers are on the day shift
    clock.now += timedelta(minutes=3)
    service.tick_now()
    assert (order().tier, order().assignee_id) == ("duty_officer", officer)
    clock.now += timedelta(minutes=6)           # not accepted: taken back
    service.tick_now()
    clock.now += timedelta(minutes=6)           # nobody took it at the duty tier
    service.tick_now()
    got = order()
    assert (got.state, got.tier, got.department) == ("escalated", "street", "urban_management")
    with connect(twin_db_url) as conn:
        told = conn.execute("SELECT channel, recipient FROM notification "
                            "WHERE work_order_id = %s", (got.id,)).fetchall()
    assert told == [("department", "城管值班 <10012319001>")]
    assert [e.detail.get("tier") for e in got.history if e.action == "escalate"] == [
        "duty_officer", "street"]
    assert service.errors == []
