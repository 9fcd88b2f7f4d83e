"""Doors, visitor passes and cloud broadcast through the live loop, in Debian's Chromium.

The stack is the live center's: the simulator publishes the sample community at 03:00
Wuhan time (a night) to Mosquitto, ingest stores it, the rules service (the shipped
library) answers gates and publishes the twin's commands from its outbox, and the
control room is `twin dashboard` as production serves it (tests/dashboard_process.py). Nothing is seeded but the logins: a resident
(logging in by the phone number the twin holds) opens their building's entrance and
issues a visitor pass on a phone-sized screen; a visitor shows the pass at a simulated
gate twice; an operator broadcasts to a grid from the large screen. Each is checked on
the screen and in the twin. Screenshots go to docs/img/residents/.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import shapely

from tests.test_dashboard_e2e import FIRST_PAINT_MS, FULL_HD, PHONE, new_page

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img" / "residents"
#: 03:00 in Wuhan on the day before the test runs: the community asleep.
NIGHT_START = (datetime.now(UTC).replace(hour=19, minute=0, second=0, microsecond=0)
               - timedelta(days=1))
#: How long the live loop may take to answer on a shared two-core machine (ms).
LOOP_MS = 60_000


@pytest.fixture(scope="module")
def live(pg, sample_template, broker):
    """(base URL, database URL, resident login, visitors queue): the control room over the
    live loop at night."""
    from dashboard import auth
    from dashboard.demo import DEMO_PASSWORD, seed_users
    from ingest.broker import forget_session
    from ingest.contract import topic
    from ingest.rules import RulesOptions, RulesService
    from ingest.service import IngestOptions, IngestService
    from ingest.simulator import run_simulation
    from tests.dashboard_process import dashboard_process
    from tests.mqtt_helpers import clear_retained
    from twin.clock import wall_clock
    from twin.rules.store import store_library_if_empty
    from twin.services.broker_accounts import INGEST, RULES, SIMULATOR
    from twin.store.connection import connect

    name = f"doors_{os.getpid()}"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
        resident, phone = conn.execute(
            """SELECT r.id, r.phone FROM resident r JOIN unit u ON u.id = r.unit_id
               WHERE EXISTS (SELECT 1 FROM device d WHERE d.building_id = u.building_id
                             AND d.type = 'access_door')
               ORDER BY r.id LIMIT 1""").fetchone()
        community = conn.execute("SELECT id FROM community").fetchone()[0]
        auth.add_user(conn, phone, DEMO_PASSWORD, "resident", community_id=community,
                      resident_id=resident)
        store_library_if_empty(conn, at=datetime.now(UTC))
        conn.commit()
    tag = uuid.uuid4().hex[:6]
    ingest = IngestService(url, broker.service_url(INGEST), IngestOptions(
        client_id=f"doors-i-{tag}", group=f"doorsi{tag}", flush_interval_s=0.05,
        metrics_port=None))
    ingest.start()
    rules = RulesService(url, broker.service_url(RULES), RulesOptions(
        client_id=f"doors-r-{tag}", group=f"doorsr{tag}", tick_s=5, reload_s=0.5,
        metrics_port=None), clock=wall_clock)
    rules.start()
    stop = threading.Event()
    visitors: queue.Queue[tuple[str, str]] = queue.Queue()
    simulator = threading.Thread(daemon=True, target=lambda: run_simulation(
        url, broker.service_url(SIMULATOR), start=NIGHT_START, speed=1, seed=7, stop=stop,
        visitors=visitors))
    simulator.start()
    with dashboard_process(url, secret="doors-e2e") as dashboard:  # as production serves it
        _wait(lambda: _scalar(url, "SELECT count(*) FILTER (WHERE online) FROM device_state")
              > 1000, 120, "the simulator's data never reached the twin")
        yield {"base": dashboard.base, "url": url, "phone": phone, "resident": resident,
               "visitors": visitors, "community": community}
    stop.set()
    simulator.join(timeout=30)
    rules.stop()
    ingest.stop()
    forget_session(broker.service_url(INGEST), ingest.options.client_id)
    forget_session(broker.service_url(RULES), rules.options.client_id)
    with connect(url) as conn:
        devices = conn.execute("SELECT community_id, id FROM device").fetchall()
    clear_retained(broker.admin_url, [topic(c, d, "status") for c, d in devices])
    pg.drop_database(name)


def _scalar(url: str, sql: str, *params: object) -> object:
    from twin.store.connection import connect

    with connect(url) as conn:
        row = conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise TimeoutError(what)


def _login(browser, base: str, user: str, *, viewport=PHONE):
    from dashboard.demo import DEMO_PASSWORD

    page = new_page(browser, viewport=viewport)
    # a machine shared with other jobs draws slowly: every step may take as long as a
    # first paint (the waits for the live loop have their own bounds)
    page.set_default_timeout(FIRST_PAINT_MS)
    page.set_default_navigation_timeout(FIRST_PAINT_MS)
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")
    return page


def _shot(page, name: str, at: str | None = None) -> None:
    """The screen as the user sees it (the phone's tab bar stays put), scrolled to ``at``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if at is not None:
        page.locator(at).scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"), timeout=120_000)


def test_a_remote_door_opening_is_acknowledged_by_the_simulated_device(live, browser) -> None:
    base, url = live["base"], live["url"]
    page = _login(browser, base, live["phone"])
    page.goto(f"{base}/m/doors")
    page.wait_for_selector(".dr-door", timeout=FIRST_PAINT_MS)
    door = _scalar(url, """SELECT d.id FROM device d JOIN unit u ON u.building_id = d.building_id
                           JOIN resident r ON r.unit_id = u.id
                           WHERE r.id = %s AND d.type = 'access_door' ORDER BY d.id LIMIT 1""",
                   live["resident"])
    gates = _scalar(url, "SELECT count(*) FROM device WHERE type = 'access_gate'")
    assert page.locator(".dr-door").count() == gates + _scalar(
        url, "SELECT count(*) FROM device WHERE type = 'access_door' AND building_id = "
             "(SELECT building_id FROM device WHERE id = %s)", door)
    card = page.locator(".dr-door", has=page.locator(f"text={_name(url, door)}"))
    card.locator("button").click()
    card.locator(".dr-status >> text=门已打开").wait_for(timeout=LOOP_MS)
    _shot(page, "doors")
    # recorded: the command and its ack, and the door's own access event naming the actor
    by = f"resident:{live['resident']}"
    ok, detail = _row(url, "SELECT ok, detail FROM device_command WHERE device_id = %s AND "
                           "issued_by = %s AND acked_at IS NOT NULL", door, by)
    assert ok is True and by in detail
    _wait(lambda: _scalar(url, "SELECT count(*) FROM event WHERE device_id = %s AND kind = "
                               "'access' AND method = 'remote' AND subject_id = %s AND "
                               "attrs ->> 'by' = %s", door, live["resident"], by), 30,
          "the door never reported its remote opening")
    assert live["phone"] not in str(_row(url, "SELECT args, issued_by FROM device_command "
                                              "WHERE issued_by = %s", by))
    page.reload()
    page.wait_for_selector(".ah-list >> text=远程开门", timeout=FIRST_PAINT_MS)
    _shot(page, "access-history", at=".ah-list")
    page.close()


def test_a_visitor_pass_opens_a_simulated_gate_once_and_is_refused_the_second_time(
        live, browser) -> None:
    base, url = live["base"], live["url"]
    page = _login(browser, base, live["phone"])
    page.goto(f"{base}/m/doors")
    page.wait_for_selector("#vp-issue", timeout=FIRST_PAINT_MS)
    page.click("#vp-issue")
    page.wait_for_selector("#vp-qr", timeout=30_000)
    token = page.inner_text("#vp-token").strip()
    valid = page.inner_text("#vp-valid")
    pass_id, valid_from, valid_until = _row(
        url, "SELECT id, valid_from, valid_until FROM visitor_pass WHERE resident_id = %s "
             "ORDER BY issued_at DESC LIMIT 1", live["resident"])
    # the validity on the community's clock (Asia/Shanghai), not the server's
    from zoneinfo import ZoneInfo

    assert valid_until.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M") in valid
    assert valid_until - valid_from == timedelta(hours=4)
    _shot(page, "visitor-pass", at="#vp-valid")
    gate = _scalar(url, "SELECT id FROM device WHERE type = 'access_gate' ORDER BY id LIMIT 1")
    live["visitors"].put((gate, token))
    _wait(lambda: _scalar(url, "SELECT count(*) FROM event WHERE device_id = %s AND kind = "
                               "'access' AND method = 'visitor_qr' AND attrs ->> 'pass' = %s",
                          gate, pass_id), LOOP_MS / 1000, "the gate never let the visitor in")
    assert _scalar(url, "SELECT used_device FROM visitor_pass WHERE id = %s", pass_id) == gate
    live["visitors"].put((gate, token))  # the same code again
    _wait(lambda: _scalar(url, "SELECT count(*) FROM event WHERE device_id = %s AND kind = "
                               "'access_denied' AND method = 'visitor_qr' AND "
                               "attrs ->> 'reason' = 'used'", gate), LOOP_MS / 1000,
          "the gate never refused the used pass")
    assert _scalar(url, "SELECT count(*) FROM event WHERE kind = 'access' AND method = "
                        "'visitor_qr' AND attrs ->> 'pass' = %s", pass_id) == 1
    answers = _scalar(url, "SELECT array_agg(command || ':' || ok ORDER BY sent_at) FROM "
                           "device_command WHERE issued_by = 'pass-check' AND device_id = %s",
                      gate)
    assert answers == ["open:true", "deny:true"]
    # the resident sees the pass used, at the gate
    page.reload()
    page.wait_for_selector(".vp-used", timeout=FIRST_PAINT_MS)
    page.close()


def test_an_operator_broadcast_to_an_area_reaches_exactly_the_speakers_inside_it(
        live, browser) -> None:
    base, url = live["base"], live["url"]
    grid, grid_name, area = _row(url, """SELECT g.id, g.name, ST_AsText(g.area) FROM grid g
                                         WHERE EXISTS (SELECT 1 FROM device d WHERE d.type =
                                             'speaker' AND ST_Contains(g.area, d.geom))
                                         ORDER BY g.id LIMIT 1""")
    from twin.store.connection import connect

    with connect(url) as conn:
        speakers = conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM device "
                                "WHERE type = 'speaker'").fetchall()
    polygon = shapely.from_wkt(area)
    inside = sorted(s for s, x, y in speakers if polygon.contains(shapely.Point(x, y)))
    assert 0 < len(inside) < len(speakers)
    page = _login(browser, base, "operator", viewport=FULL_HD)
    page.wait_for_selector("#bc-open", timeout=FIRST_PAINT_MS)
    page.click("#bc-open")
    _pick(page, "#bc-grid", grid_name)
    _pick(page, "#bc-preset", "消防演习")
    page.wait_for_function("() => document.querySelector('#bc-text').value.includes('消防演习')")
    page.click("#bc-send")
    n = len(inside)
    page.wait_for_selector(f"#bc-status >> text={n} / {n} 已应答", timeout=LOOP_MS)
    rows = _rows(url, "SELECT device_id, ok, issued_by FROM device_command WHERE command = "
                      "'broadcast' AND issued_by = 'user:operator' ORDER BY device_id")
    assert [r[0] for r in rows] == inside
    assert all(ok for _, ok, _ in rows)
    _shot(page, "broadcast")
    page.close()
    del grid


def test_a_broadcast_to_an_area_drawn_on_the_map_reaches_exactly_the_speakers_inside(
        live, browser) -> None:
    base, url = live["base"], live["url"]
    boundary = shapely.from_wkt(_scalar(url, "SELECT ST_AsText(boundary) FROM community"))
    speakers = {s: shapely.Point(x, y) for s, x, y in _rows(
        url, "SELECT id, ST_X(geom), ST_Y(geom) FROM device WHERE type = 'speaker'")}
    page = _login(browser, base, "operator", viewport=FULL_HD)
    page.wait_for_selector("#ls-map canvas", timeout=FIRST_PAINT_MS)
    page.wait_for_function(
        "() => Number(document.getElementById('ls-map').dataset.frames || 0) > 0",
        timeout=FIRST_PAINT_MS)
    page.wait_for_timeout(500)

    def screen(lon: float, lat: float) -> tuple[float, float]:
        x, y, *_ = page.evaluate(
            f"window.__twinDecks['ls-map'].getViewports()[0].project([{lon}, {lat}, 0])")
        return x, y

    page.click("#bc-open")
    page.click("#bc-kind label:has-text('地图上圈选的区域')")
    box = page.locator("#ls-map canvas").bounding_box()

    def on_ground(lon: float, lat: float) -> bool:
        """Bare ground under the tap: not a building, not the panel over the map."""
        x, y = screen(lon, lat)
        layer = page.evaluate(f"(() => {{ const o = window.__twinDecks['ls-map'].pickObject("
                              f"{{x: {x}, y: {y}, radius: 0}}); return o && o.layer.id; }})()")
        top = page.evaluate(f"document.elementFromPoint({box['x'] + x}, {box['y'] + y})"
                            f".tagName")
        return layer == "ground-pick" and top == "CANVAS"

    # a rectangle whose corners are bare ground (a tap there is a corner, not a building),
    # with speakers inside and out, none near its edges (a tap lands within a pixel)
    x0, y0, x1, y1 = boundary.bounds
    for fx0, fx1, fy0, fy1 in [(a, a + w, b, b + h) for w in (0.4, 0.3, 0.5)
                               for a in (0.3, 0.2, 0.1, 0.4) for b, h in ((0.1, 0.8),
                                                                         (0.05, 0.6),
                                                                         (0.3, 0.6))]:
        area = shapely.box(x0 + fx0 * (x1 - x0), y0 + fy0 * (y1 - y0),
                           x0 + fx1 * (x1 - x0), y0 + fy1 * (y1 - y0))
        inside = sorted(s for s, pt in speakers.items() if area.contains(pt))
        corners = list(area.exterior.coords)[:-1]
        if 0 < len(inside) < len(speakers) and all(
                area.exterior.distance(pt) > 5e-5 for pt in speakers.values()) \
                and all(on_ground(*c) for c in corners):
            break
    else:
        pytest.fail("no rectangle on bare ground splits the community's speakers")
    for n, (lon, lat) in enumerate(corners, start=1):
        x, y = screen(lon, lat)
        page.mouse.click(box["x"] + x, box["y"] + y)
        page.wait_for_selector(f"#bc-point-count >> text={n}", timeout=10_000)
    assert page.url.rstrip("/") == base  # a tap while drawing opens no building
    page.fill("#bc-text", "测试广播 drawn area")
    page.click("#bc-send")
    n = len(inside)
    page.wait_for_selector(f"#bc-status >> text={n} / {n} 已应答", timeout=LOOP_MS)
    got = [r[0] for r in _rows(url, "SELECT device_id FROM device_command WHERE command = "
                                    "'broadcast' AND args ->> 'text' = '测试广播 drawn area' "
                                    "ORDER BY device_id")]
    assert got == inside
    _shot(page, "broadcast-drawn")
    page.close()


def test_an_operator_opens_a_door_from_the_building_page_and_reads_its_history_masked(
        live, browser) -> None:
    base, url = live["base"], live["url"]
    building, door = _row(url, "SELECT building_id, id FROM device WHERE type = 'access_door' "
                               "ORDER BY id LIMIT 1")
    page = _login(browser, base, "operator", viewport=FULL_HD)
    page.goto(f"{base}/building/{building}")
    page.wait_for_selector("#bd-door-open", timeout=FIRST_PAINT_MS)
    page.click("#bd-door-open")
    page.wait_for_selector("#bd-door-status >> text=门已打开", timeout=LOOP_MS)
    assert _scalar(url, "SELECT ok FROM device_command WHERE device_id = %s AND issued_by = "
                        "'user:operator' AND acked_at IS NOT NULL", door) is True
    # the door's own report of the opening shows in its history (redrawn after the ack)
    page.wait_for_selector("#door-history-table >> text=远程开门", timeout=LOOP_MS)
    names = [r[0] for r in _rows(url, "SELECT r.name FROM resident r JOIN unit u ON "
                                      "u.id = r.unit_id WHERE u.building_id = %s", building)]
    table = page.inner_text("#door-history-table")
    assert not any(n in table for n in names)  # an operator sees residents masked
    assert page.locator("#bd-resident").count() == 0  # and no resident's own history
    # an admin reads a resident's passages (whole, and the view is audited)
    admin = _login(browser, base, "admin", viewport=FULL_HD)
    admin.goto(f"{base}/building/{building}")
    admin.wait_for_selector("#bd-resident", timeout=FIRST_PAINT_MS)
    _pick(admin, "#bd-resident")
    admin.wait_for_selector("#bd-resident-history table, #bd-resident-history .empty",
                            timeout=30_000)
    page.close()
    admin.close()


def _pick(page, dropdown: str, text: str | None = None) -> None:
    """Open a dropdown and pick the option with ``text`` (the first if None), opening it
    again if a busy page missed the tap."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    option = ".dash-dropdown-option" + (f":has-text('{text}')" if text else "")
    for _ in range(3):
        page.click(dropdown)
        try:
            page.wait_for_selector(option, timeout=10_000)
            break
        except PlaywrightTimeout:
            continue
    page.locator(option).first.click()
    page.keyboard.press("Escape")


def _name(url: str, device_id: str) -> str:
    return str(_scalar(url, "SELECT name FROM device WHERE id = %s", device_id))


def _row(url: str, sql: str, *params: object) -> tuple:
    from twin.store.connection import connect

    with connect(url) as conn:
        return conn.execute(sql, params).fetchone()  # type: ignore[arg-type,return-value]


def _rows(url: str, sql: str, *params: object) -> list[tuple]:
    from twin.store.connection import connect

    with connect(url) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
