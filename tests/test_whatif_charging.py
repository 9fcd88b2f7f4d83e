"""Charging capacity: the FIFO queue by hand (pure), and sessions read back from stored events."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import orjson
import pytest

from twin.store.connection import connect
from twin.store.whatif_queries import shed_demand
from twin.whatif.charging import ShedDemand, charging_capacity, fifo_starts, shed_queue

LOCAL = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 2, tzinfo=LOCAL)
T10 = (DAY + timedelta(hours=10)).timestamp()
MIN = 60.0


def _three(piles: int) -> ShedDemand:
    """10:00 for an hour, 10:10 and 10:20 for half an hour each."""
    return ShedDemand(shed_id="c", name="shed C", piles=piles,
                      arrivals=np.array([T10, T10 + 10 * MIN, T10 + 20 * MIN]),
                      service_s=np.array([60 * MIN, 30 * MIN, 30 * MIN]))


# --- pure ----------------------------------------------------------------------------------

def test_one_pile_makes_the_second_and_third_wait_exactly() -> None:
    d = _three(1)
    starts = fifo_starts(d.arrivals, d.service_s, servers=1)
    # the pile is free at 11:00 and 11:30
    assert (starts - d.arrivals).tolist() == [0.0, 50 * MIN, 70 * MIN]
    whole, today = shed_queue(d, piles=1, start=DAY, end=DAY + timedelta(days=1))
    assert whole.day is None and today.day == DAY.date()
    assert whole.sessions == 3 and whole.waited == 2
    assert whole.share_waited == pytest.approx(2 / 3)
    assert whole.mean_wait_s == pytest.approx(40 * MIN)
    assert whole.max_wait_s == 70 * MIN
    assert whole.p90_wait_s == pytest.approx(66 * MIN)  # linear between 50 and 70
    assert whole.peak_queue == 2  # 10:20 to 11:00
    assert whole.utilisation == pytest.approx(120 / 1440)
    assert whole.full_share == pytest.approx(120 / 1440)  # one pile, busy 10:00-12:00


def test_a_second_pile_leaves_one_wait_and_a_third_none() -> None:
    two = shed_queue(_three(1), piles=2, start=DAY, end=DAY + timedelta(days=1))[0]
    # 10:20: one pile until 11:00, the other until 10:40
    assert (two.waited, two.max_wait_s, two.peak_queue) == (1, 20 * MIN, 1)
    three = shed_queue(_three(1), piles=3, start=DAY, end=DAY + timedelta(days=1))[0]
    assert (three.waited, three.max_wait_s, three.peak_queue) == (0, 0.0, 0)
    assert three.full_share == pytest.approx(20 / 1440)  # all three busy 10:20-10:40
    assert three.utilisation == pytest.approx(120 / (3 * 1440))


def test_days_are_local_and_warm_up_sessions_hold_piles_uncounted() -> None:
    # one session the evening before holds the single pile until 10:30 of the day
    d = ShedDemand(shed_id="c", name="shed C", piles=1,
                   arrivals=np.array([T10 - 11 * 3600, T10]),
                   service_s=np.array([11.5 * 3600, 600.0]))
    whole, first, second = shed_queue(d, piles=1, start=DAY, end=DAY + timedelta(days=2))
    assert [first.day.isoformat(), second.day.isoformat()] == ["2026-03-02", "2026-03-03"]
    assert (whole.sessions, whole.waited, whole.max_wait_s) == (1, 1, 30 * MIN)
    assert second.sessions == 0 and second.utilisation == 0.0
    # busy from midnight (warm-up clipped) to 10:40
    assert first.utilisation == pytest.approx((10 * 60 + 40) / 1440)


def test_the_report_puts_baseline_and_scenario_side_by_side() -> None:
    report = charging_capacity([_three(3)], start=DAY, end=DAY + timedelta(days=1),
                               piles_added={"c": -2})
    rows = report.rows()
    assert [r["day"] for r in rows] == ["all", "2026-03-02"]
    assert (rows[0]["base_piles"], rows[0]["base_waited"]) == (3, 0)
    assert (rows[0]["scen_piles"], rows[0]["scen_waited"], rows[0]["scen_max_wait_min"]) == \
        (1, 2, 70.0)
    assert report.notes == ()


def test_bad_scenarios_are_refused_with_the_shed_named() -> None:
    with pytest.raises(ValueError, match="piles_added names x, which is not an EV shed"):
        charging_capacity([_three(1)], start=DAY, end=DAY + timedelta(days=1),
                          piles_added={"x": 2})
    with pytest.raises(ValueError, match=r"shed c \(shed C\) would have 0 piles"):
        charging_capacity([_three(1)], start=DAY, end=DAY + timedelta(days=1),
                          piles_added={"c": -1})


def test_a_baseline_that_shows_waits_is_flagged() -> None:
    report = charging_capacity([_three(1)], start=DAY, end=DAY + timedelta(days=1))
    assert "overlap more than its 1 piles" in report.notes[0]


# --- stored sessions -----------------------------------------------------------------------

def test_sessions_are_rebuilt_from_stored_events(twin_db_url: str) -> None:
    with connect(twin_db_url) as conn:
        shed = "wh-guanggu-f007"
        piles = [r[0] for r in conn.execute(
            "SELECT id FROM device WHERE facility_id = %s AND type = 'ev_charger' ORDER BY id",
            (shed,))]
        assert len(piles) == 26
        at = DAY + timedelta(hours=10)
        events = [  # three sessions on three piles, as _three(); one never stops
            (at, piles[0], "charge_start", "s1"), (at + timedelta(minutes=60), piles[0],
                                                   "charge_stop", "s1"),
            (at + timedelta(minutes=10), piles[1], "charge_start", "s2"),
            (at + timedelta(minutes=40), piles[1], "charge_stop", "s2"),
            (at + timedelta(minutes=20), piles[2], "charge_start", "s3"),
            (at + timedelta(minutes=50), piles[2], "charge_stop", "s3"),
            (at + timedelta(hours=13), piles[3], "charge_start", "s4"),  # 23:00, no stop
            (at - timedelta(days=3), piles[4], "charge_start", "s0"),  # long before: not read
        ]
        for t, device, kind, session in events:
            conn.execute(
                "INSERT INTO event (time, device_id, event_id, kind, value, attrs) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (t, device, f"{session}-{kind}", kind, 1.0 if kind == "charge_stop" else None,
                 orjson.dumps({"session": session}).decode()))
        conn.commit()
        demands = shed_demand(conn, start=DAY, end=DAY + timedelta(days=1),
                              community_id="wh-guanggu")
    assert [d.shed_id for d in demands] == ["wh-guanggu-f007", "wh-guanggu-f008",
                                            "wh-guanggu-f009"]
    c = demands[0]
    assert c.piles == 26 and len(demands[1].arrivals) == 0
    assert (c.arrivals - T10).tolist() == [0.0, 10 * MIN, 20 * MIN, 13 * 3600]
    # the open session runs to the end of the period (midnight)
    assert c.service_s.tolist() == [60 * MIN, 30 * MIN, 30 * MIN, 3600.0]
    report = charging_capacity(demands, start=DAY, end=DAY + timedelta(days=1),
                               piles_added={shed: -25})
    base, scen = report.rows()[0], report.rows()[1]
    assert (base["shed_id"], base["day"], base["base_waited"], base["scen_piles"]) == \
        (shed, "all", 0, 1)
    assert (base["scen_waited"], base["scen_max_wait_min"], base["scen_peak_queue"]) == \
        (2, 70.0, 2)
    assert scen["day"] == "2026-03-02"
    assert base["base_utilisation"] == round(180 / (26 * 1440), 3)
