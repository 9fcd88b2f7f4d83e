"""The control room in a real browser: Debian's Chromium driven by Playwright.

The app is served as production serves it (`twin dashboard` on gunicorn, two
workers, as a subprocess on a free port: tests/dashboard_process.py), against a fresh
copy of the sample community with the demo's logins, alarms and orders (seeded, so that each
interaction has a known order in a known state), while the device simulator
publishes through Mosquitto into a running ingest. No browser is downloaded:
Playwright drives /usr/bin/chromium (installed by scripts/install-system.sh).
Screenshots go to a temporary folder; the README's come from the live pipeline
(tests/test_live_screens.py).
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import shapely

from tests.dashboard_process import dashboard_process

#: The seeded pages are photographed for review only; the README's screenshots come
#: from the live pipeline (tests/test_live_screens.py).
SHOTS = Path(os.environ.get("TWIN_E2E_SHOTS", Path(tempfile.gettempdir()) / "twin-e2e-shots"))
FULL_HD = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
#: What the browser refused under the Content-Security-Policy on the pages a test opened.
_REFUSED: list[str] = []


@pytest.fixture(autouse=True)
def _nothing_refused_by_the_csp():
    """Every test is also a check that the CSP lets Dash, plotly and deck.gl run."""
    _REFUSED.clear()
    yield
    assert not _REFUSED, "refused under the Content-Security-Policy:\n" + "\n".join(_REFUSED)


def new_page(browser, *, viewport=FULL_HD):
    """A page whose CSP refusals fail the test. Under the CSP (no 'unsafe-eval') Playwright
    can poll `wait_for_function` only with a function ("() => ..."), which it evaluates once:
    a bare expression is eval'd again on every poll, and refused."""
    page = browser.new_page(viewport=viewport)
    page.on("console", lambda message: _REFUSED.append(message.text)
            if "Content Security Policy" in message.text else None)
    return page


@pytest.fixture(scope="module")
def served(pg, sample_template, broker):
    """(base URL, database URL, demo ids): the app over live simulated data."""
    from dashboard.demo import seed_operations, seed_users
    from ingest.broker import forget_session
    from ingest.service import IngestOptions, IngestService
    from ingest.simulator import run_simulation
    from twin.services.broker_accounts import INGEST, SIMULATOR
    from twin.store.connection import connect

    name = f"e2e_{os.getpid()}"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
        ids = seed_operations(conn)
    ingest = IngestService(url, broker.service_url(INGEST), IngestOptions(
        client_id=f"e2e-{uuid.uuid4().hex[:6]}", group=f"e2e{uuid.uuid4().hex[:6]}",
        metrics_port=None))
    ingest.start()
    stop = threading.Event()
    simulator_url = broker.service_url(SIMULATOR)

    def simulate() -> None:
        # An hour of community life in 30 s, then real time until the tests end.
        run_simulation(url, simulator_url, speed=120, duration=30, rate=2000, seed=3)
        while not stop.is_set():
            run_simulation(url, simulator_url, speed=1, duration=5, seed=4)

    simulator = threading.Thread(target=simulate, daemon=True)
    simulator.start()
    with dashboard_process(url, secret="e2e") as dashboard:
        _wait_for_data(url)
        yield dashboard.base, url, ids
    stop.set()
    simulator.join(timeout=30)
    ingest.stop()
    forget_session(broker.service_url(INGEST), ingest.options.client_id)
    # the simulator's retained status messages would greet the next test's subscribers
    from ingest.contract import topic
    from tests.mqtt_helpers import clear_retained

    with connect(url) as conn:
        devices = conn.execute("SELECT community_id, id FROM device").fetchall()
    clear_retained(broker.admin_url, [topic(c, d, "status") for c, d in devices])
    pg.drop_database(name)


#: How long a first page may take to draw (plotly and the deck bundle, WebGL in software).
FIRST_PAINT_MS = 120_000


def login(browser, base: str, user: str, *, viewport=FULL_HD):
    from dashboard.demo import DEMO_PASSWORD

    page = new_page(browser, viewport=viewport)
    page.goto(f"{base}/login")
    page.fill("#username", user)
    page.fill("#password", DEMO_PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state("networkidle")
    return page


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # generous: Chromium draws WebGL in software here, on a machine shared with other jobs
    page.screenshot(path=str(SHOTS / f"{name}.png"), timeout=120_000)


def test_each_role_logs_in_to_its_own_page(served, browser) -> None:
    base, _, _ = served
    page = new_page(browser)
    page.goto(f"{base}/")
    assert "/login" in page.url
    shot(page, "login")
    page.fill("#username", "operator")
    page.fill("#password", "wrong password")
    page.click("#login-submit")
    assert page.locator("#login-error").inner_text().strip() == "用户名或密码错误"
    page.close()
    expectations = {"admin": ("/", "#ls-map"), "operator": ("/", "#ls-map"),
                    "planner": ("/planner", "#whatif-note"), "worker1": ("/worker", "#w-tasks")}
    for user, (path, marker) in expectations.items():
        page = login(browser, base, user)
        assert page.url == f"{base}{path}", user
        # a first page fetches plotly (3.5 MB) and draws WebGL in software: on a loaded
        # 2-core machine that took 47 s, so the first wait is generous
        page.wait_for_selector(marker, timeout=FIRST_PAINT_MS)
        page.close()
    page = login(browser, base, "planner")
    page.goto(f"{base}/")
    page.wait_for_selector("#denied")
    page.close()


def test_large_screen_draws_the_map_and_shows_numbers_from_the_database(served, browser) -> None:
    from twin.store.connection import connect

    base, url, _ = served
    page = login(browser, base, "operator")
    page.wait_for_selector("#ls-map canvas", timeout=20_000)
    page.wait_for_function(
        "() => Number(document.getElementById('ls-map').dataset.frames || 0) > 0",
        timeout=20_000)
    layers = page.evaluate("window.__twinDecks['ls-map'].props.layers.map(l => l.id)")
    assert {"ground", "buildings", "walkways", "attention", "staff", "routes"} <= set(layers)
    box = page.locator("#ls-map canvas").bounding_box()
    assert box["width"] > 900 and box["height"] > 800

    with connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM device").fetchone()[0]
        critical = conn.execute("SELECT count(*) FROM alarm WHERE state <> 'cleared' "
                                "AND severity = 'critical'").fetchone()[0]
    page.wait_for_function(
        "() => document.getElementById('kpi-online').innerText.split('/')[0].replace(',', '') > 0",
        timeout=20_000)
    online, shown_total = page.locator("#kpi-online").inner_text().replace(",", "").split("/")
    assert int(shown_total) == total and 0 < int(online) <= total
    assert int(page.locator("#kpi-critical").inner_text()) == critical
    # no scrolling on the wall: 1920x1080 and 4K
    for size in (FULL_HD, {"width": 3840, "height": 2160}):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)
        assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1")
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.set_viewport_size(FULL_HD)
    page.wait_for_timeout(2500)  # the charts' first answer and a few live ticks
    shot(page, "large-screen")
    page.close()


def test_a_new_alarm_appears_on_an_open_large_screen_within_2_seconds(served, browser) -> None:
    from twin.alarms import AlarmSpec
    from twin.store.connection import connect
    from twin.store.operations import raise_alarm

    base, url, _ = served
    page = login(browser, base, "operator")
    page.wait_for_selector("#ls-feed")
    page.wait_for_timeout(1500)  # the page is settled and polling
    title = f"E2E 烟感 {uuid.uuid4().hex[:6]}"
    with connect(url) as conn:
        device = conn.execute("SELECT id, building_id, ST_X(geom), ST_Y(geom) FROM device "
                              "WHERE type = 'smoke_detector' ORDER BY id DESC LIMIT 1").fetchone()
        raise_alarm(conn, AlarmSpec(
            community_id="wh-guanggu", type="e2e_smoke", domain="safety", severity="critical",
            source_kind="device", source_id=device[0], title=title,
            at=datetime.now(UTC), building_id=device[1], device_id=device[0],
            location=shapely.Point(device[2], device[3])))
        conn.commit()
    raised = time.monotonic()
    page.wait_for_selector(f"#ls-feed >> text={title}", timeout=5_000)
    elapsed = time.monotonic() - raised
    assert elapsed < 2.0, f"the alarm took {elapsed:.2f} s to appear"
    colour = page.evaluate(
        f"window.__twinDecks['ls-map'].props.layers.find(l => l.id === 'buildings')"
        f".props.getFillColor({{id: '{device[1]}'}})")
    assert colour[:3] == [235, 64, 72]
    # the operator acknowledges it from the feed: the row shows it at the next tick
    row = page.locator(".feed-row", has_text=title)
    row.locator(".btn-ack").click()
    page.wait_for_selector(f"#ls-ack-message >> text={title}", timeout=5_000)
    page.wait_for_selector(f".feed-row.state-acknowledged >> text={title}", timeout=5_000)
    with connect(url) as conn:
        assert conn.execute("SELECT state FROM alarm WHERE title = %s", (title,)).fetchone() == (
            "acknowledged",)
    page.close()


def test_clicking_a_building_opens_its_drill_down_with_its_floors(served, browser) -> None:
    from twin.store.connection import connect

    base, url, _ = served
    with connect(url) as conn:
        building_id, floors, lon, lat, height = conn.execute(
            "SELECT id, floors, ST_X(ST_PointOnSurface(footprint)), "
            "ST_Y(ST_PointOnSurface(footprint)), height_m FROM building "
            "ORDER BY height_m DESC, id LIMIT 1").fetchone()
    page = login(browser, base, "operator")
    page.wait_for_selector("#ls-map canvas", timeout=20_000)
    page.wait_for_function(
        "() => Number(document.getElementById('ls-map').dataset.frames || 0) > 0",
        timeout=20_000)
    page.wait_for_timeout(500)
    x, y, *_ = page.evaluate(
        f"window.__twinDecks['ls-map'].getViewports()[0].project([{lon}, {lat}, {height}])")
    box = page.locator("#ls-map canvas").bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    page.wait_for_timeout(400)
    assert page.locator(".twin-deck-tooltip").count() == 1  # hover tooltip on the building
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_function(f"() => location.pathname === '/building/{building_id}'",
                           timeout=10_000)
    page.wait_for_selector("#floors")
    assert page.locator("#floors .floor-row").count() == floors
    page.wait_for_timeout(1500)
    shot(page, "building")
    page.close()


def test_a_work_order_from_created_to_closed_with_the_grid_worker_view(served, browser) -> None:
    from twin.store.connection import connect
    from twin.store.operations import get_work_order

    base, url, ids = served
    order_id = ids["order_bin"]
    ops = login(browser, base, "operator")
    ops.goto(f"{base}/work-orders?id={order_id}")
    ops.wait_for_selector("#wo-title")
    ops.click("#wo-staff")
    ops.click(".dash-dropdown-option:has-text('李雪霞')")
    ops.keyboard.press("Escape")
    ops.click("#wo-detail button.btn-assign")
    ops.wait_for_selector("#wo-message >> text=已派", timeout=10_000)
    ops.wait_for_timeout(1500)
    shot(ops, "work-orders")

    phone = login(browser, base, "worker1", viewport=PHONE)
    card = f"#task-{order_id}"
    phone.wait_for_selector(card, timeout=FIRST_PAINT_MS)  # the phone page's first paint
    for label, state in (("接单", "已接"), ("到场", "到场")):
        phone.click(f"{card} button:text-is('{label}')")
        phone.wait_for_selector(f"#task-state-{order_id} >> text={state}", timeout=10_000)
    phone.fill(f"{card} textarea", "已清运，桶已复位")
    png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
           b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe"
           b"\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")
    phone.set_input_files(f"{card} input[type=file]",
                          files=[{"name": "site.png", "mimeType": "image/png", "buffer": png}])
    phone.wait_for_selector(f"{card} >> text=site.png")
    shot(phone, "worker-phone")
    phone.click(f"{card} button:has-text('处置完成')")
    phone.wait_for_selector(card, state="detached", timeout=10_000)
    phone.close()

    ops.reload()
    ops.wait_for_selector("#wo-state >> text=已处置", timeout=10_000)
    ops.click("#wo-detail button.btn-close")
    ops.wait_for_selector("#wo-message >> text=已关闭", timeout=10_000)
    ops.close()
    with connect(url) as conn:
        order = get_work_order(conn, order_id)
        photos = conn.execute("SELECT count(*) FROM work_order_photo WHERE work_order_id = %s",
                              (order_id,)).fetchone()[0]
    assert order.state == "closed" and photos == 1
    assert [e.action for e in order.history] == ["created", "assign", "accept", "arrive",
                                                 "resolve", "close"]
    assert order.history[4].note == "已清运，桶已复位"


def test_a_grid_worker_cannot_open_another_grids_households(served, browser) -> None:
    from twin.store.connection import connect

    base, url, _ = served
    with connect(url) as conn:
        other_building, other_name = conn.execute(
            "SELECT b.id, b.name FROM building b JOIN unit u ON u.building_id = b.id "
            "WHERE b.grid_id <> 'wh-guanggu-g1' ORDER BY b.id LIMIT 1").fetchone()
        mine = conn.execute("SELECT b.name, u.number FROM building b JOIN unit u "
                            "ON u.building_id = b.id WHERE b.grid_id = 'wh-guanggu-g1' "
                            "ORDER BY b.id, u.number LIMIT 1").fetchone()
    phone = login(browser, base, "worker1", viewport=PHONE)
    phone.goto(f"{base}/building/{other_building}")
    phone.wait_for_selector("#denied")
    assert "residents-table" not in phone.content()
    phone.goto(f"{base}/worker")
    phone.fill("#w-lookup", f"{other_name} 101")
    phone.press("#w-lookup", "Enter")
    phone.wait_for_selector("#w-found >> text=在您的网格内未找到", timeout=10_000)
    phone.fill("#w-lookup", f"{mine[0]} {mine[1]}")
    phone.press("#w-lookup", "Enter")
    phone.click(f"#w-found >> text={mine[0]} {mine[1]}")
    phone.wait_for_selector("#household .res-name", timeout=10_000)
    assert "*" not in phone.locator("#household .res-name").first.inner_text()
    phone.close()
    with connect(url) as conn:
        audited = conn.execute("SELECT count(*) FROM audit_log WHERE user_name = 'worker1' "
                               "AND action = 'view_residents_unmasked'").fetchone()[0]
    assert audited >= 1


def test_an_admin_reads_the_audit_log_and_an_operator_may_not(served, browser) -> None:
    base, _, _ = served
    page = login(browser, base, "admin")
    # (not clicked: the large screen's map, drawn in software, keeps Chromium too busy)
    assert page.locator("#nav-audit").get_attribute("href") == "/audit"
    page.goto(f"{base}/audit")
    page.wait_for_selector("#au-rows", timeout=15_000)
    page.fill("#au-actor", "admin")
    page.press("#au-actor", "Enter")
    # every row left is the admin's, and the admin's own login is among them
    page.wait_for_function(
        "() => [...document.querySelectorAll('#au-rows tbody tr')].length > 0 && "
        "[...document.querySelectorAll('#au-rows tbody tr')]"
        ".every(r => r.cells[1].innerText === 'admin')", timeout=10_000)
    assert "登录" in page.locator("#au-rows").inner_text()
    assert "Asia/Shanghai" in page.locator("#au-note").inner_text()
    shot(page, "audit")
    page.close()
    page = login(browser, base, "operator")
    assert page.locator("#nav-audit").count() == 0
    page.goto(f"{base}/audit")
    page.wait_for_selector("#denied")
    assert page.locator("#au-rows").count() == 0
    page.close()


def test_planner_page_and_english_labels(served, browser) -> None:
    base, _, _ = served
    page = login(browser, base, "planner")
    page.wait_for_selector("#p-grids")
    assert "地图上点击道路" in page.locator("#whatif-note").inner_text()
    page.click("#lang-toggle")
    page.wait_for_selector("#whatif-note >> text=Click walkways on the map")
    assert page.locator("#nav-planner").inner_text() == "Planner"
    page.click("#lang-toggle")  # back to zh-CN for the other tests' user
    page.close()


def test_planner_runs_a_scenario_and_shows_the_comparison(served, browser) -> None:
    """A saved scenario is picked, run against the twin as it is, compared and exported."""
    from twin.store.connection import connect
    from twin.store.scenarios import compare_coverage, save_scenario
    from twin.whatif.scenario import Scenario

    base, url, _ = served
    away = Scenario(name="guards-away", staff_removed=("wh-guanggu-s07", "wh-guanggu-s08"))

    def expected():
        # the twin is live: the guards' badges move them while the page runs, so the page's
        # answer is the one computed just before it ran or just after
        with connect(url) as conn:
            return compare_coverage(conn, "wh-guanggu", away, role="security", shifts=["day"],
                                    sla_s=180)["day"]

    with connect(url) as conn:
        save_scenario(conn, "wh-guanggu", away, actor="test")
        names = dict(conn.execute("SELECT id, name FROM building").fetchall())
    page = login(browser, base, "planner")
    page.wait_for_selector("#wi-map canvas")
    page.click("#wi-scenario")
    page.click(".dash-dropdown-option:has-text('guards-away')")
    page.wait_for_function("() => document.querySelector('#wi-name').value === 'guards-away'")
    before = expected()
    page.click("#wi-run")
    page.wait_for_selector("#wi-comparison", timeout=30_000)
    after = expected()
    table = page.locator("#wi-comparison").inner_text()
    newly = page.locator("#wi-newly").inner_text()
    shown = [e for e in (before, after)
             if f"{e.summary()['over_target_baseline']}\t{e.summary()['over_target_scenario']}"
             in table]
    assert shown, f"the page's comparison is neither the twin's before nor after: {table}"
    assert any(all(names[b] in newly for b in e.newly_over) for e in shown)
    with page.expect_download() as download:
        page.click("#wi-export-csv")
    assert download.value.suggested_filename == "coverage-guards-away.csv"
    page.wait_for_timeout(800)
    shot(page, "planner")
    page.close()


def _wait_for_data(url: str, timeout: float = 60) -> None:
    from twin.store.connection import connect

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connect(url) as conn:
            if conn.execute("SELECT count(*) FILTER (WHERE online) FROM device_state"
                            ).fetchone()[0] > 1000:
                return
        time.sleep(0.5)
    raise TimeoutError("the simulator's data never reached the twin")


def test_an_ended_session_sends_the_screen_to_the_login_page(served, browser) -> None:
    from twin.store.connection import connect

    base, url, _ = served
    page = login(browser, base, "operator")
    page.wait_for_selector("#ls-feed")
    with connect(url) as conn:  # the session ends on the server (as on expiry)
        conn.execute("DELETE FROM app_session WHERE user_name = 'operator'")
        conn.commit()
    page.wait_for_url(re.compile(r"/login\?expired=1"), timeout=5_000)
    assert "会话已过期" in page.locator("#login-error").inner_text()
    page.close()
