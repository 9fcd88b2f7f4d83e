"""Reports and notices in a real browser at phone size (Debian's Chromium, Playwright), over
the live loop: the simulator publishes through Mosquitto into a running ingest (the staff's
badges give the dispatcher their positions), and `twin dashboard` serves the pages as in
production (gunicorn workers, tests/dashboard_process.py).

A resident reports a leak with a photo and a place tapped on the map; it becomes a work
order, dispatched to the nearest engineer with the skill by walkway, at whatever hour the
test runs (an engineer with plumbing is on shift day and night); that staff member accepts,
arrives and resolves it with a photo on the worker's phone page; the resident sees the
status move and rates the result. Then an operator publishes a notice, the resident reads
it, and the operator's page counts the read. Screenshots go to docs/img/residents/.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import pytest

from tests.dashboard_process import dashboard_process
from tests.test_dashboard_e2e import (  # noqa: F401  (the CSP check is an autouse fixture)
    FIRST_PAINT_MS,
    PHONE,
    _nothing_refused_by_the_csp,
    _wait_for_data,
    login,
)

SHOTS = Path(__file__).resolve().parents[1] / "docs" / "img" / "residents"
PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
       b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe"
       b"\x92\xef\x00\x00\x00\x00IEND\xaeB`\x82")


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), timeout=120_000)


@pytest.fixture(scope="module")
def served(pg, sample_template, broker):
    """(base URL, database URL, resident's login) over live simulated data."""
    from dashboard import auth
    from dashboard.demo import DEMO_PASSWORD, seed_operations, seed_users
    from ingest.broker import forget_session
    from ingest.contract import topic
    from ingest.service import IngestOptions, IngestService
    from ingest.simulator import run_simulation
    from tests.mqtt_helpers import clear_retained
    from twin.services.broker_accounts import INGEST, SIMULATOR
    from twin.store.connection import connect

    name = f"e2e_reports_{os.getpid()}"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
        seed_operations(conn)
        rid, phone = conn.execute(
            """SELECT r.id, r.phone FROM resident r JOIN unit u ON u.id = r.unit_id
               JOIN building b ON b.id = u.building_id WHERE b.grid_id = 'wh-guanggu-g1'
                 AND r.age_band = '18-59' ORDER BY r.id LIMIT 1""").fetchone()
        auth.add_user(conn, phone, DEMO_PASSWORD, "resident", resident_id=rid)
        conn.commit()
    ingest = IngestService(url, broker.service_url(INGEST), IngestOptions(
        client_id=f"e2er-{uuid.uuid4().hex[:6]}", group=f"e2er{uuid.uuid4().hex[:6]}",
        metrics_port=None))
    ingest.start()
    stop = threading.Event()
    simulator_url = broker.service_url(SIMULATOR)

    def simulate() -> None:
        # the staff work by hand here (the worker's page), not as the simulation's staff
        run_simulation(url, simulator_url, speed=120, duration=30, rate=2000, seed=5,
                       staff_work=False)
        while not stop.is_set():
            run_simulation(url, simulator_url, speed=1, duration=5, seed=6, staff_work=False)

    simulator = threading.Thread(target=simulate, daemon=True)
    simulator.start()
    # served as production serves it: `twin dashboard` (gunicorn workers) on a free port
    with dashboard_process(url, secret="e2e-reports") as dashboard:
        _wait_for_data(url)
        yield dashboard.base, url, phone
    stop.set()
    simulator.join(timeout=30)
    ingest.stop()
    forget_session(broker.service_url(INGEST), ingest.options.client_id)
    with connect(url) as conn:
        devices = conn.execute("SELECT community_id, id FROM device").fetchall()
    clear_retained(broker.admin_url, [topic(c, d, "status") for c, d in devices])
    pg.drop_database(name)


def test_a_report_becomes_an_order_that_is_worked_and_rated(served, browser) -> None:
    from dashboard import auth
    from dashboard.demo import DEMO_PASSWORD
    from twin.store.connection import connect
    from twin.store.operations import get_work_order

    base, url, phone = served
    me = login(browser, base, phone, viewport=PHONE)
    me.goto(f"{base}/m/report")
    me.wait_for_selector("#r-category", timeout=FIRST_PAINT_MS)
    assert me.locator("#m-tab-m-report").count() == 1  # the tab at the foot of the phone
    me.click("#r-category label:has-text('漏水')")
    me.fill("#r-text", "3楼楼道水管漏水，地面有积水")
    me.set_input_files("#r-photo input[type=file]",
                       files=[{"name": "leak.png", "mimeType": "image/png", "buffer": PNG}])
    me.wait_for_selector("#r-photo-name >> text=leak.png")
    # the place: tapped on the small map
    me.wait_for_selector("#r-map canvas", timeout=FIRST_PAINT_MS)
    me.wait_for_function(
        "() => Number(document.getElementById('r-map').dataset.frames || 0) > 0",
        timeout=FIRST_PAINT_MS)
    box = me.locator("#r-map canvas").bounding_box()
    me.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    me.wait_for_selector("#r-picked >> text=已选位置", timeout=20_000)
    shot(me, "report-form")
    me.click("#r-submit")
    me.wait_for_selector("#r-message >> text=已提交", timeout=30_000)

    with connect(url) as conn:
        report_id, order_id, source = conn.execute(
            "SELECT id, work_order_id, place_source FROM report ORDER BY id DESC LIMIT 1"
        ).fetchone()
        order = get_work_order(conn, order_id)
        photos = conn.execute("SELECT count(*) FROM work_order_photo WHERE work_order_id = %s",
                              (order_id,)).fetchone()[0]
    assert source == "map" and photos == 1  # the resident's, on the order
    assert order.state == "assigned", order.history
    assert order.spec.role == "engineer" and order.spec.skill == "plumbing"
    card = f"#report-{report_id}"
    me.wait_for_selector(f"#report-handler-{report_id} >> text={order.assignee_id}",
                         timeout=20_000)
    assert "工程人员" in me.locator(f"#report-handler-{report_id}").inner_text()
    me.locator(card).scroll_into_view_if_needed()
    shot(me, "report-assigned")

    # the engineer it went to works it on the worker's phone page
    with connect(url) as conn:
        auth.add_user(conn, "eng-e2e", DEMO_PASSWORD, "grid_worker", grid_id="wh-guanggu-g1",
                      staff_id=order.assignee_id, display_name="工程 E2E")
        conn.commit()
    worker = login(browser, base, "eng-e2e", viewport=PHONE)
    task = f"#task-{order_id}"
    worker.wait_for_selector(task, timeout=FIRST_PAINT_MS)
    assert "地面有积水" in worker.locator(task).inner_text()  # the resident's words
    for label, state in (("接单", "已接"), ("到场", "到场")):
        worker.click(f"{task} button:text-is('{label}')")
        worker.wait_for_selector(f"#task-state-{order_id} >> text={state}", timeout=20_000)
    worker.fill(f"{task} textarea", "已更换阀门")
    worker.set_input_files(f"{task} input[type=file]",
                           files=[{"name": "fixed.png", "mimeType": "image/png", "buffer": PNG}])
    worker.wait_for_selector(f"{task} >> text=fixed.png")
    worker.click(f"{task} button:has-text('处置完成')")
    worker.wait_for_selector(task, state="detached", timeout=20_000)
    worker.close()

    # the resident sees it move, and rates it
    me.wait_for_selector(f"#report-state-{report_id} >> text=已处置", timeout=30_000)
    me.click(f"{card} .m-stars label:has-text('4★')")
    me.fill(f"{card} textarea", "处理及时")
    me.click(f"{card} button:has-text('评价')")
    me.wait_for_selector(f"#r-rated-{report_id}", timeout=20_000)
    me.click(f"{card} summary")  # the history, in community time
    me.evaluate(f"document.getElementById('r-rated-{report_id}')"
                ".scrollIntoView({block: 'center'})")
    shot(me, "report-rated")
    me.click("#lang-toggle")  # the same page in English
    me.wait_for_selector(f"#report-{report_id} >> text=Done", timeout=FIRST_PAINT_MS)
    me.evaluate(f"document.getElementById('report-{report_id}').scrollIntoView()")
    shot(me, "report-rated-en")
    me.click("#lang-toggle")
    me.wait_for_selector(f"#report-{report_id} >> text=已完成", timeout=FIRST_PAINT_MS)
    me.close()
    with connect(url) as conn:
        order = get_work_order(conn, order_id)
        rating = conn.execute("SELECT rating, rating_comment FROM report WHERE id = %s",
                              (report_id,)).fetchone()
        kept = conn.execute("SELECT count(*) FROM work_order_photo WHERE work_order_id = %s",
                            (order_id,)).fetchone()[0]
        resident_id = conn.execute("SELECT resident_id FROM app_user WHERE name = %s",
                                   (phone,)).fetchone()[0]
    assert [e.action for e in order.history if e.action != "note"] == [
        "created", "assign", "accept", "arrive", "resolve"]
    # the resident opened it, named by id: their login is their phone number
    assert order.history[0].actor == f"resident:{resident_id}"
    assert rating == (4, "处理及时") and kept == 2  # the resident's and the engineer's


def test_a_notice_is_read_on_the_phone_and_counted_for_the_operator(served, browser) -> None:
    from datetime import UTC, datetime

    from dashboard import notices
    from tests.control_room import as_user  # noqa: F401
    from twin.access import User
    from twin.store.connection import connect

    base, url, phone = served
    operator = login(browser, base, "operator")
    operator.goto(f"{base}/reports")
    operator.wait_for_selector("#p-publish", timeout=FIRST_PAINT_MS)
    operator.fill("#p-title-zh", "周六上午停水通知")
    operator.fill("#p-title-en", "Water off on Saturday morning")
    operator.fill("#p-body-zh", "因管网检修，周六 9:00-12:00 停水。")
    operator.click("#p-publish")
    operator.wait_for_selector("#p-message >> text=已发布", timeout=20_000)
    with connect(url) as conn:
        (nid,) = conn.execute("SELECT max(id) FROM notice").fetchone()
        # an activity for the resident's own building, through the service as an operator
        building = conn.execute(
            "SELECT u.building_id FROM app_user a JOIN resident r ON r.id = a.resident_id "
            "JOIN unit u ON u.id = r.unit_id WHERE a.name = %s", (phone,)).fetchone()[0]
        notices.publish_notice(conn, User("operator", "operator", community_id="wh-guanggu"),
                               kind="activity", scope_kind="building", scope_id=building,
                               title={"zh-CN": "楼栋邻里茶话会", "en": "Neighbours' tea"},
                               body={"zh-CN": "一楼大厅"}, starts="2026-12-05 15:00",
                               ends="2026-12-05 17:00", at=datetime.now(UTC))

    me = login(browser, base, phone, viewport=PHONE)
    me.goto(f"{base}/m/notices")
    me.wait_for_selector(f"#notice-{nid}", timeout=FIRST_PAINT_MS)
    assert me.locator(".m-card.notice").count() == 2
    me.click(f"#notice-{nid} button")
    me.wait_for_selector(f"#notice-{nid} .notice-body >> text=停水", timeout=20_000)
    shot(me, "notices")
    me.close()

    operator.reload()
    operator.wait_for_selector(f"#p-reach-{nid}", timeout=FIRST_PAINT_MS)
    assert "已读 1 人" in operator.locator(f"#p-reach-{nid}").inner_text()
    operator.wait_for_selector("#q-in_progress, #q-done")
    shot(operator, "operator-reports")
    operator.close()


def test_an_operator_makes_an_order_from_an_alarm_and_clears_it_on_the_large_screen(
        served, browser) -> None:
    from twin.store.connection import connect
    from twin.store.operations import alarm_history, get_alarm, get_work_order

    base, url, _ = served
    with connect(url) as conn:  # open ground: inside the boundary, 25 m from any building
        candidates = conn.execute(
            """SELECT ST_X(g.geom), ST_Y(g.geom) FROM (SELECT (ST_Dump(ST_GeneratePoints(
                   ST_Difference(c.boundary, (SELECT ST_Union(ST_Buffer(
                       footprint::geography, 25)::geometry) FROM building)), 60, 7))).geom
               FROM community c) g""").fetchall()
    page = login(browser, base, "operator")
    page.wait_for_selector("#ls-feed .feed-row", timeout=FIRST_PAINT_MS)
    page.wait_for_function(
        "() => Number(document.getElementById('ls-map').dataset.frames || 0) > 0",
        timeout=FIRST_PAINT_MS)
    page.click("#hand-panel summary")
    # a point on the map: a tap on open ground fills the form, and makes an order there
    box = page.locator("#ls-map canvas").bounding_box()
    for lon, lat in candidates:  # one a tower does not hide from the camera
        x, y = page.evaluate(
            f"window.__twinDecks['ls-map'].getViewports()[0].project([{lon}, {lat}, 0])")[:2]
        if not (20 < x < box["width"] - 20 and 20 < y < box["height"] - 20) \
                or x < 400:  # the folded-out panel covers the map's left
            continue
        hit = page.evaluate(f"(window.__twinDecks['ls-map'].pickObject("
                            f"{{x: {x}, y: {y}, radius: 3}}) || {{}}).layer?.id || null")
        if hit == "ground-pick":
            break
    else:
        pytest.fail("no open ground in sight on the large screen's map")
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_function("() => document.getElementById('h-lon').value !== ''",
                           timeout=20_000)
    page.click("#h-create")
    page.wait_for_selector("#h-message >> text=已创建", timeout=30_000)
    page.evaluate("() => { window.__firstOrder = "
                  "document.getElementById('h-message').innerText; }")
    with connect(url) as conn:
        point_order = conn.execute(
            "SELECT ST_Distance(geom::geography, ST_SetSRID(ST_MakePoint(%s, %s), 4326)"
            "::geography), alarm_id FROM work_order ORDER BY id DESC LIMIT 1",
            (lon, lat)).fetchone()
    assert point_order[0] < 15 and point_order[1] is None
    row = page.locator("#ls-feed .feed-row").first
    alarm_id = int(row.get_attribute("id").split('"id":')[1].split("}")[0].split(",")[0])
    row.locator(".feed-time").click()  # the alarm fills the form
    page.wait_for_function(
        f"() => document.getElementById('h-alarm').value === '{alarm_id}'", timeout=20_000)
    page.fill("#h-text", "请到场核查")
    page.click("#h-create")
    page.wait_for_function(
        "() => document.getElementById('h-message').innerText.includes('已创建') && "
        "document.getElementById('h-message').innerText !== window.__firstOrder",
        timeout=30_000)
    page.fill("#h-reason", "现场核实为误报")
    page.click("#h-clear")
    page.wait_for_selector(f"#h-clear-message >> text=#{alarm_id}", timeout=30_000)
    page.wait_for_timeout(1500)
    shot(page, "large-screen-by-hand")
    page.close()
    with connect(url) as conn:
        (order_id,) = conn.execute("SELECT max(id) FROM work_order WHERE alarm_id = %s",
                                   (alarm_id,)).fetchone()
        order = get_work_order(conn, order_id)
        alarm = get_alarm(conn, alarm_id)
        log = alarm_history(conn, alarm_id)
    assert order.history[0].actor == "operator" and order.spec.description == "请到场核查"
    assert order.state == "closed" and order.history[-1].action == "settle"
    assert alarm.state == "cleared" and alarm.cleared_by == "operator"
    assert log[-1]["detail"]["reason"] == "现场核实为误报"
