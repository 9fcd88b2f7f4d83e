"""The control room over the live pipeline, in a real browser: the README's screenshots.

Nothing is seeded. The last night hour (02:30-03:30 on the community's clock) of the
sample community is lived through the
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
from zoneinfo import ZoneInfo

import pytest

from dashboard.demo import DemoUsers
from tests.dashboard_process import dashboard_process
from tests.day_in_the_life import live_loop
from tests.test_dashboard_e2e import FIRST_PAINT_MS, FULL_HD, PHONE, login

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
INCIDENTS = ("co-leak:1号地库@+10m", "fire-lane-parking:东门@+20m",
             "trash-overflow:1号垃圾站@+30m")


@pytest.fixture(scope="module")
def live(pg, sample_template, broker) -> Iterator[tuple[str, str, DemoUsers]]:
    """(base URL, database URL, logins): the app over a night hour the live loop has just
    lived: the screens must hold at 03:00, not only in office hours."""
    from dashboard.demo import seed_users
    from twin.store.connection import connect
    from twin.store.reads.texts import community_timezone

    url = pg.create_database("live_screens", template=sample_template)
    with connect(url) as conn:
        users = seed_users(conn)  # logins only: every alarm and order below is made by the rules
        zone = ZoneInfo(community_timezone(conn, "wh-guanggu"))
    end = last_night(datetime.now(UTC) - timedelta(minutes=2), zone)
    with live_loop(url, broker) as loop:
        loop.live_through(end - timedelta(minutes=60), end, speed=120.0, inject=list(INCIDENTS))
        with dashboard_process(url, secret="live-screens") as dashboard:  # as production
            yield dashboard.base, url, users
    pg.drop_database("live_screens")


def last_night(now: datetime, zone: ZoneInfo) -> datetime:
    """The latest 03:30 on the community's clock before ``now`` (devices report no future)."""
    local = now.astimezone(zone)
    night = local.replace(hour=3, minute=30, second=0, microsecond=0)
    return (night if night <= local else night - timedelta(days=1)).astimezone(UTC)


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    time.sleep(3)  # the map draws in software WebGL here
    page.screenshot(path=str(SHOTS / f"{name}.png"), timeout=120_000)


def test_the_screens_of_a_lived_hour(live, browser) -> None:
    from twin.store.connection import connect

    base, url, users = live
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

    # the people's apps, at the same hour: a resident's home (their household whole, and
    # nobody else's) and a family member's view of their relative
    resident = login(browser, base, users.resident, viewport=PHONE)
    resident.wait_for_selector("#m-household", timeout=FIRST_PAINT_MS)
    _shot(resident, "resident-home")
    with connect(url) as conn:
        home = conn.execute("SELECT unit_id FROM resident WHERE phone = %s LIMIT 1",
                            (users.resident,)).fetchone()[0]
        household = [r[0] for r in conn.execute(
            "SELECT name FROM resident WHERE unit_id = %s", (home,))]
        # names of other households: a synthetic name may also be, or be part of, a
        # household member's ("林萱" in "林萱颖")
        others = [r[0] for r in conn.execute(
            "SELECT DISTINCT name FROM resident WHERE unit_id <> %s", (home,))
            if len(r[0]) > 1 and not any(r[0] in h for h in household)]
    page_text = resident.locator("body").inner_text()
    assert all(h in page_text for h in household), "a resident sees their household whole"
    seen = [n for n in others if n in page_text]
    assert not seen, f"a resident sees only their own household, not {seen}"
    resident.close()
    family = login(browser, base, users.family, viewport=PHONE)
    family.wait_for_selector("#f-relative", timeout=FIRST_PAINT_MS)
    _shot(family, "family")
    family.close()
    assert FULL_HD["width"] == 1920
