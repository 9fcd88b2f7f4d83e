"""The resident and family apps at phone size in Debian's Chromium, through the live loop
(issue 13): the simulator publishes a night at 03:00 community time through Mosquitto,
ingest stores it, the rules (on the data's clock) act on it, the notification worker
delivers, and the app shows it.

A resident finds the nearest free pile on foot, starts a session from the app (a ``start``
command the rules service's outbox publishes; the simulated pile obeys and reports
charge_start), follows its energy and power, and at the cut-off (the simulator's
``charger-full`` fills the battery; the pile stops and reads full; the ``ev-charger-full``
rule cuts it off) is told in the app's inbox by the notification worker. The screenshots
are docs/residents.md's (docs/img/residents/)."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.test_dashboard_e2e import FIRST_PAINT_MS, PHONE, new_page

#: Where docs/residents.md finds its screenshots.
SHOTS = Path(__file__).resolve().parent.parent / "docs" / "img" / "residents"
#: The simulated night runs this many times faster than real time.
SPEED = 3.0
#: The battery of the chosen pile is made full this long (simulated) after the start: time
#: enough for the browser to start the session first, on a busy machine.
FULL_AFTER_S = 600


def _night_start(now: datetime) -> datetime:
    """The last 03:00 in Wuhan before now (the simulated night starts there)."""
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    at = local.replace(hour=3, minute=0, second=0, microsecond=0)
    if at > local - timedelta(minutes=30):
        at -= timedelta(days=1)
    return at.astimezone(UTC)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), timeout=120_000, full_page=True)


def _login(browser, base: str, name: str):
    from dashboard.demo import DEMO_PASSWORD

    page = new_page(browser, viewport=PHONE)
    page.set_default_timeout(FIRST_PAINT_MS)
    page.goto(f"{base}/login")
    page.fill("#username", name)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")
    return page


@pytest.mark.timeout(1500)
def test_a_resident_charges_at_night_and_is_told_at_the_cut_off(pg, sample_template, broker,
                                                                  browser) -> None:
    import os

    from dashboard import auth, people
    from dashboard.demo import DEMO_PASSWORD, seed_users
    from ingest.simulator import run_simulation
    from tests.dashboard_process import dashboard_process
    from tests.day_in_the_life import live_loop
    from twin.store.connection import connect
    from twin.store.graph import walk_routing_graph

    name = f"resident_e2e_{os.getpid()}"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
        me, phone = conn.execute(
            """SELECT r.id, r.phone FROM resident r JOIN unit u ON u.id = r.unit_id
                WHERE r.phone <> '' ORDER BY u.building_id, r.id LIMIT 1""").fetchone()
        (cared,) = conn.execute("""SELECT id FROM resident WHERE cardinality(care_flags) > 0
                                   ORDER BY id LIMIT 1""").fetchone()
        resident = auth.add_user(conn, phone, DEMO_PASSWORD, "resident", resident_id=me)
        auth.add_user(conn, "family-e2e", DEMO_PASSWORD, "family", resident_id=cared)
        conn.commit()
        # the pile the resident will take: the first of the shed nearest on foot
        sheds = people.charging_piles(conn, resident, me,
                                      graph=walk_routing_graph(conn, resident.community_id))
        pile = sheds[0]["piles"][0]["device_id"]
    begin = _night_start(datetime.now(UTC))
    stop = threading.Event()
    try:
        with dashboard_process(url, secret="resident-e2e", workers=1) as served, \
                live_loop(url, broker) as loop:
            base = served.base
            simulating = threading.Thread(target=lambda: run_simulation(
                url, loop.mqtt_url, start=begin, speed=SPEED, seed=5, stop=stop,
                inject=[f"charger-full:{pile}@+{FULL_AFTER_S}s"]), daemon=True)
            simulating.start()
            _wait(lambda: _pile_free(url, pile), 120, "the pile to report itself free")

            page = _login(browser, base, phone)
            assert page.url.endswith("/m")
            page.wait_for_selector("#m-household .m-member")
            _shot(page, "01-home")
            page.click("#m-go-m-charging")
            page.wait_for_selector(".m-shed")
            start = page.locator(f'button[id*="rc-start"][id*="{pile}"]')
            start.wait_for()
            _shot(page, "02-charging-sheds")
            walks = [int(m) for m in re.findall(r"(\d+) 米", page.inner_text("#rc-sheds"))]
            assert walks and walks == sorted(walks)
            start.click()
            # the start goes out through the rules' outbox; the pile reports charge_start
            page.wait_for_function(
                "() => (document.querySelector('#rc-state') || {}).innerText === '充电中'",
                timeout=180_000)
            page.wait_for_function(
                "() => parseFloat((document.querySelector('#rc-energy') || {}).innerText) > 0",
                timeout=180_000)
            started = page.inner_text("#rc-at")
            assert started.split()[-1] < "06:00", started  # a night on the community's clock
            _shot(page, "03-charging-live")
            # charger-full: the battery fills, the pile stops; the rules cut it off
            page.wait_for_function(
                "() => ((document.querySelector('#rc-state') || {}).innerText || '')"
                ".includes('充满自停')", timeout=600_000)
            _shot(page, "04-charging-full")
            with connect(url) as conn:
                kwh, reason = conn.execute(
                    """SELECT energy_kwh, end_reason FROM charging_session
                        WHERE resident_id = %s""", (me,)).fetchone()
                assert reason == "full" and kwh > 0
            # the pile reads full: the ev-charger-full rule cuts it off, and the pile acks
            _wait(lambda: _cut_off(url, pile), 180, "the rules to cut the full pile off")
            # the notification worker put it in the resident's inbox
            page.click("#m-tab-m")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#m-inbox .m-message-text')]"
                ".some(e => e.innerText.includes('已充满自停'))", timeout=120_000)
            _shot(page, "05-home-notified")
            # the one-key SOS asks first
            page.click("#m-sos")
            page.wait_for_selector("#m-sos-ask:not([hidden])")
            _shot(page, "06-sos-confirm")
            page.click("#m-sos-yes")
            page.wait_for_function(
                "() => (document.querySelector('#m-sos-done') || {}).innerText"
                ".startsWith('✓')", timeout=60_000)
            _shot(page, "07-sos-sent")
            page.close()

            family = _login(browser, base, "family-e2e")
            assert family.url.endswith("/family")
            family.wait_for_selector("#f-not-out")
            _shot(family, "08-family-night")
            family.close()
            with connect(url) as conn:
                sos = conn.execute("""SELECT severity, state FROM alarm WHERE type = 'sos'
                                      AND resident_id = %s""", (me,)).fetchone()
            assert sos is not None and sos[0] == "critical"
            stop.set()
            simulating.join(timeout=60)
    finally:
        stop.set()
        pg.drop_database(name)


@pytest.mark.timeout(1200)
def test_a_family_member_receives_their_relatives_care_alert(pg, sample_template, broker,
                                                             browser) -> None:
    """In the day (quiet hours hold care alerts at night): a special-care resident living
    alone whose own limit is a few minutes (care_override, as a grid worker sets it) is not
    seen going out; the special-care-not-out rule raises its alarm and tells the family,
    the worker delivers it to the family login, and the family page shows it."""
    import os

    from dashboard import auth
    from dashboard.demo import DEMO_PASSWORD, seed_users
    from ingest.simulator import run_simulation
    from tests.dashboard_process import dashboard_process
    from tests.day_in_the_life import live_loop
    from twin.store.connection import connect

    name = f"family_e2e_{os.getpid()}"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
        (cared,) = conn.execute(
            """SELECT id FROM resident WHERE 'elderly_alone' = ANY(care_flags)
                ORDER BY id LIMIT 1""").fetchone()
        auth.add_user(conn, "family-day", DEMO_PASSWORD, "family", resident_id=cared)
        conn.execute("""INSERT INTO care_override (resident_id, not_out_h, note)
                        VALUES (%s, 0.05, 'e2e: three minutes')""", (cared,))
        conn.commit()
    begin = _day_start(datetime.now(UTC))
    stop = threading.Event()
    try:
        with dashboard_process(url, secret="family-e2e", workers=1) as served, \
                live_loop(url, broker) as loop:
            base = served.base
            simulating = threading.Thread(target=lambda: run_simulation(
                url, loop.mqtt_url, start=begin, speed=SPEED, seed=9, stop=stop,
                inject=[f"elderly-not-seen:{cared}"]), daemon=True)
            simulating.start()
            page = _login(browser, base, "family-day")
            assert page.url.endswith("/family")
            page.wait_for_selector("#f-not-out")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#f-alerts .m-message-text')]"
                ".some(e => e.innerText.includes('未出门'))", timeout=420_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('#f-inbox .m-message-text')]"
                ".some(e => e.innerText.includes('未出门'))", timeout=180_000)
            _shot(page, "09-family-alert")
            page.close()
            with connect(url) as conn:
                told = conn.execute(
                    """SELECT n.state, a.type, a.resident_id FROM notification n
                         JOIN alarm a ON a.id = n.alarm_id
                        WHERE n.channel = 'app' AND n.recipient = 'family-day'""").fetchall()
            assert told == [("delivered", "care_not_out", cared)]
            stop.set()
            simulating.join(timeout=60)
    finally:
        stop.set()
        pg.drop_database(name)


def _day_start(now: datetime) -> datetime:
    """The last 10:00 in Wuhan at least an hour before now (a weekday morning's light)."""
    local = now.astimezone(ZoneInfo("Asia/Shanghai"))
    at = local.replace(hour=10, minute=0, second=0, microsecond=0)
    if at > local - timedelta(hours=1):
        at -= timedelta(days=1)
    return at.astimezone(UTC)


def _pile_free(url: str, pile: str) -> bool:
    from twin.store.connection import connect
    from twin.store.reads.household import pile as read_pile

    with connect(url) as conn:
        found = read_pile(conn, pile)
    return found is not None and found["online"] and found["status"] == "idle"


def _cut_off(url: str, pile: str) -> bool:
    from twin.store.connection import connect

    with connect(url) as conn:
        return conn.execute(
            """SELECT count(*) FROM device_command WHERE device_id = %s AND command = 'cut_off'
                  AND issued_by = 'rule:ev-charger-full' AND ok""", (pile,)).fetchone()[0] > 0


def _wait(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1.0)
    pytest.fail(f"timed out waiting for {what}")
