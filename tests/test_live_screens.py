"""The control room over the live pipeline, in a real browser: the README's screenshots.

Nothing is seeded. The last hour of the sample community is lived through the
real broker, ingest, the rules (on the data's clock), dispatch and the
notification worker, with a CO leak, a car in the fire lane and a full trash
station scripted into it; then Debian's Chromium logs in as an operator (zh-CN,
residents masked), a planner and a grid worker, and photographs each page into
docs/screenshots/. The seeded interaction tests (tests/test_dashboard_e2e.py)
photograph into a temporary folder only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.dashboard_process import dashboard_process
from tests.day_in_the_life import live_loop
from tests.test_dashboard_e2e import FIRST_PAINT_MS, FULL_HD, PHONE, login

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
INCIDENTS = ("co-leak:1号地库@+10m", "fire-lane-parking:东门@+20m",
             "trash-overflow:1号垃圾站@+30m")


@pytest.fixture(scope="module")
def live(pg, sample_template, broker) -> Iterator[tuple[str, str]]:
    """(base URL, database URL): the app over an hour the live loop has just lived."""
    from dashboard.demo import seed_users
    from twin.store.connection import connect

    url = pg.create_database("live_screens", template=sample_template)
    with connect(url) as conn:
        seed_users(conn)  # logins only: every alarm and order below is made by the rules
    end = datetime.now(UTC) - timedelta(minutes=2)
    with live_loop(url, broker) as loop:
        loop.live_through(end - timedelta(minutes=60), end, speed=120.0, inject=list(INCIDENTS))
        with dashboard_process(url, secret="live-screens") as dashboard:  # as production
            yield dashboard.base, url
    pg.drop_database("live_screens")


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(3)  # the map draws in software WebGL here
    page.screenshot(path=str(SHOTS / f"{name}.png"), timeout=120_000)


def test_the_screens_of_a_lived_hour(live, browser) -> None:
    from twin.store.connection import connect

    base, url = live
    with connect(url) as conn:
        alarms = conn.execute("SELECT count(*), count(*) FILTER (WHERE rule_id IS NULL) "
                              "FROM alarm").fetchone()
        # the building of the first alarm that has one, else the one with most residents
        # in special care (its page must mask them for an operator)
        (building,) = conn.execute(
            """SELECT coalesce(
                   (SELECT building_id FROM alarm WHERE building_id IS NOT NULL
                    ORDER BY raised_at LIMIT 1),
                   (SELECT u.building_id FROM resident r JOIN unit u ON u.id = r.unit_id
                    WHERE cardinality(r.care_flags) > 0
                    GROUP BY u.building_id ORDER BY count(*) DESC, u.building_id LIMIT 1))"""
        ).fetchone()
        names = [r[0] for r in conn.execute("SELECT name FROM resident")]
    assert alarms[0] > 0 and alarms[1] == 0, "every alarm on the screen is made by a rule"

    page = login(browser, base, "operator")
    page.wait_for_selector("#ls-map", timeout=FIRST_PAINT_MS)
    # a function, evaluated once: under the CSP a bare expression is refused on each poll
    page.wait_for_function("() => document.querySelectorAll('#ls-feed .feed-row').length > 0",
                           timeout=30_000)
    _shot(page, "large-screen")
    page.goto(f"{base}/building/{building}")
    page.wait_for_load_state("networkidle")
    _shot(page, "building")
    html = page.content()
    assert not any(n in html for n in names if len(n) > 1), \
        "an operator sees residents' names masked"
    page.goto(f"{base}/work-orders")
    page.wait_for_load_state("networkidle")
    _shot(page, "work-orders")
    page.close()

    planner = login(browser, base, "planner")
    planner.wait_for_selector("#whatif-note", timeout=FIRST_PAINT_MS)
    _shot(planner, "planner")
    planner.close()

    phone = login(browser, base, "worker1", viewport=PHONE)
    phone.wait_for_selector("#w-tasks", timeout=FIRST_PAINT_MS)
    _shot(phone, "worker-phone")
    phone.close()
    assert FULL_HD["width"] == 1920
