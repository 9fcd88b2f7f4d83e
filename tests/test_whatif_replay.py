"""Rule replay: which rules translate (pure), and firings counted in SQL from known readings."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from twin.alarms import AlarmSpec
from twin.rules import actions as act
from twin.rules.compile import compile_text, library_dir, load_directory
from twin.rules.engine import Engine, Observation
from twin.rules.store import load_snapshot
from twin.store import operations as ops
from twin.store.connection import connect
from twin.store.whatif_queries import replay_rule, threshold_firings
from twin.whatif.replay import NotReplayable, ThresholdSpec, apply_params, threshold_spec

LOCAL = ZoneInfo("Asia/Shanghai")
D0 = datetime(2026, 3, 1, tzinfo=LOCAL)  # the day before the period
D1 = D0 + timedelta(days=1)
D2 = D0 + timedelta(days=2)
D3 = D0 + timedelta(days=3)
A, B, C = "wh-guanggu-d01273", "wh-guanggu-d01274", "wh-guanggu-d01275"  # CO, garage f022
OTHER_GARAGE = "wh-guanggu-d01295"
LIBRARY = {r.id: r for r in load_directory(library_dir())}

LASTING = """
id: co-lasting
title: CO high for half an hour
domain: safety
nodes:
  - {id: co, source: {device_types: [co_sensor], metrics: [co]}}
  - {id: high, after: co, threshold: {metric: co, above: 50}}
  - {id: lasting, after: high, for_duration: {seconds: 1800}}
  - {id: alarm, after: lasting, raise_alarm: {type: co_lasting, severity: major, title: {zh-CN: 一氧化碳, en: CO}}}
  - {id: order, after: alarm, work_order: {kind: co, title: {zh-CN: 一氧化碳, en: CO}, role: engineer}}
  - {id: clear, after: lasting, when: cleared, clear_alarm: {type: co_lasting}}
"""


def at(day: datetime, hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return day + timedelta(hours=int(h), minutes=int(m))


def insert(conn, rows: list[tuple[str, datetime, float]]) -> None:
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO reading (time, device_id, metric, value) "
                        "VALUES (%s, %s, 'co', %s)", [(t, d, v) for d, t, v in rows])
    conn.commit()


# --- pure ----------------------------------------------------------------------------------

def test_the_garage_co_rule_becomes_a_threshold_spec_and_takes_parameters() -> None:
    spec = threshold_spec(LIBRARY["garage-co"])
    assert spec == ThresholdSpec(rule_id="garage-co", device_types=("co_sensor",), metric="co",
                                 above=50.0, key="facility", place={"facility_kind": "garage"},
                                 work_orders=1, clears_itself=True)
    assert threshold_spec(LIBRARY["garage-co"], {"high.above": 35}).above == 35
    assert threshold_spec(LIBRARY["garage-co"], {"above": 35}).above == 35
    lasting = threshold_spec(compile_text(LASTING), {"lasting.seconds": 600})
    assert (lasting.for_s, lasting.work_orders) == (600, 1)


def test_bad_parameters_name_the_rule_and_the_field() -> None:
    rule = LIBRARY["garage-co"].rule
    with pytest.raises(ValueError, match="garage-co: parameter 'hgh.above': there is no node"):
        apply_params(rule, {"hgh.above": 35})
    with pytest.raises(ValueError, match="'seconds' is not a field of any node"):
        apply_params(rule, {"seconds": 35})
    with pytest.raises(ValueError, match="a threshold node has no field 'abov'"):
        apply_params(rule, {"high.abov": 35})


@pytest.mark.parametrize(("rule_id", "node", "kind", "why"), [
    ("water-leak", "wet", "threshold", "not equality"),
    ("camera-smoke-fire", None, "source", "not events, detections or status"),
    ("device-silent", "silent", "no_signal", "does not replay in SQL"),
    ("ev-charger-heating-fast", "rising", "rate_of_change", "does not replay in SQL"),
    ("access-tailgating", "repeated", "count_in_window", "either suffices"),
])
def test_rules_that_do_not_replay_say_which_node_and_why(rule_id, node, kind, why) -> None:
    got = threshold_spec(LIBRARY[rule_id])
    assert isinstance(got, NotReplayable)
    assert (got.rule_id, got.kind) == (rule_id, kind) and why in got.reason
    if node is not None:
        assert got.node_id == node
    assert str(got).startswith(f"rule {rule_id} cannot be replayed")


def test_every_shipped_rule_either_replays_or_says_why() -> None:
    for rule in LIBRARY.values():
        got = threshold_spec(rule)
        assert isinstance(got, ThresholdSpec | NotReplayable)
        if isinstance(got, NotReplayable):
            assert got.reason and got.kind


# --- SQL against known readings ----------------------------------------------------------

def test_a_lower_co_threshold_fires_on_the_episodes_only_it_sees(twin_db_url: str) -> None:
    with connect(twin_db_url) as conn:
        insert(conn, [
            # over 50 already before the period: it fired on D0, not in the period
            (A, at(D0, "23:55"), 60), (A, at(D1, "00:05"), 60), (A, at(D1, "00:10"), 10),
            # 40-45: only over 35
            (A, at(D1, "10:00"), 20), (A, at(D1, "10:05"), 40), (A, at(D1, "10:10"), 45),
            (A, at(D1, "10:15"), 30),
            # A and B over 50 at overlapping times: one episode of the garage
            (A, at(D1, "12:00"), 60), (A, at(D1, "12:05"), 70), (A, at(D1, "12:10"), 20),
            (B, at(D1, "12:03"), 55), (B, at(D1, "12:20"), 10),
            # the other garage, the next day
            (OTHER_GARAGE, at(D2, "08:00"), 52), (OTHER_GARAGE, at(D2, "08:30"), 3),
        ])
        # what the live system did: two alarms raised, one of them repeated, one work order
        for t in (at(D1, "12:00"), at(D1, "12:30"), at(D2, "08:00")):
            ops.raise_alarm(conn, AlarmSpec(
                community_id="wh-guanggu", type="garage_co", domain="safety",
                severity="critical", source_kind="facility",
                source_id="wh-guanggu-f022" if t.day == D1.day else "wh-guanggu-f023",
                title="CO", at=t, rule_id="garage-co"))
        conn.execute("""INSERT INTO work_order (community_id, rule_id, kind, title, domain, role,
                            geom, created_at, updated_at)
                        VALUES ('wh-guanggu', 'garage-co', 'garage_ventilation', 'x', 'safety',
                                'engineer', ST_MakePoint(114.41, 30.49)::geometry(Point, 4326),
                                %s, %s)""", (at(D1, "12:01"), at(D1, "12:01")))
        conn.commit()
        got = replay_rule(conn, LIBRARY["garage-co"], start=D1, end=D3,
                          params={"high.above": 35})
    assert not isinstance(got, NotReplayable)
    rows = got.rows()
    assert [r["day"] for r in rows] == ["2026-03-02", "2026-03-03", "all"]
    assert [(r["baseline_alarms"], r["scenario_alarms"]) for r in rows] == [(1, 2), (1, 1), (2, 3)]
    assert [(r["baseline_work_orders"], r["scenario_work_orders"]) for r in rows] == \
        [(1, 2), (1, 1), (2, 3)]
    assert [(r["did_alarms"], r["did_opened"], r["did_work_orders"]) for r in rows] == \
        [(2, 1, 1), (1, 1, 0), (3, 2, 1)]


def test_for_duration_episodes_fire_on_the_day_they_last_long_enough(twin_db_url: str) -> None:
    rule = compile_text(LASTING)
    with connect(twin_db_url) as conn:
        readings = [
            (A, at(D1, "22:00"), 60), (A, at(D1, "22:20"), 10),   # 20 min: only under 10 min
            (B, at(D1, "23:50"), 60), (B, at(D2, "00:11"), 60),   # straddles midnight ...
            (B, at(D2, "00:31"), 10),                             # ... 41 min: fires at 00:20
            (C, at(D2, "23:00"), 80),                             # still over at the end
            (A, at(D0, "23:00"), 90), (A, at(D1, "00:40"), 5),    # fired on D0
        ]
        insert(conn, readings)
        got = replay_rule(conn, rule, start=D1, end=D3, params={"lasting.seconds": 600})
        baseline = {d.day.isoformat(): d.baseline_alarms for d in got.days}
        scenario = {d.day.isoformat(): d.scenario_alarms for d in got.days}
        # 30 min: B at 00:20 on D2, C at 23:30 on D2
        assert baseline == {"2026-03-02": 0, "2026-03-03": 2}
        # 10 min: A at 22:10 on D1; B at 00:00 on D2 (midnight is the new day); C at 23:10
        assert scenario == {"2026-03-02": 1, "2026-03-03": 2}
        # the rule engine itself, fed the same readings with a one-minute clock, agrees
        assert _engine_days(conn, rule, readings, start=D1, end=D3) == \
            Counter({"2026-03-03": 2})


def test_count_in_window_fires_on_the_count_th_episode(twin_db_url: str) -> None:
    spec = ThresholdSpec(rule_id="x", device_types=("co_sensor",), metric="co", above=50,
                         count=2, window_s=3600)
    with connect(twin_db_url) as conn:
        rows = []
        for hhmm in ("10:00", "10:30", "10:50", "12:00", "12:10"):
            t = at(D1, hhmm)
            rows += [(A, t, 60), (A, t + timedelta(minutes=5), 0)]
        insert(conn, rows)
        # 10:30 is the second within an hour; 10:50 the third; 12:10 the second again
        assert threshold_firings(conn, spec, start=D1, end=D2) == {D1.date(): 2}
        # a period starting at 10:40 still counts 10:00 and 10:30 towards 10:50 (a third)
        assert threshold_firings(conn, spec, start=at(D1, "10:40"), end=D2) == {D1.date(): 1}


def test_a_reading_under_the_threshold_hours_away_still_ends_the_episode(twin_db_url: str) -> None:
    """A device that reports rarely: what lies between its readings over the threshold counts."""
    spec = ThresholdSpec(rule_id="x", device_types=("co_sensor",), metric="co", above=50,
                         for_s=7200)
    with connect(twin_db_url) as conn:
        insert(conn, [(A, at(D1, "10:00"), 60), (A, at(D1, "13:00"), 5),
                      (A, at(D1, "16:00"), 60), (B, at(D1, "09:00"), 3)])
        # 10:00-13:00 lasts 3 h and fires at 12:00; 16:00 is still over at 18:00
        assert threshold_firings(conn, spec, start=D1, end=D2) == {D1.date(): 2}
        insert(conn, [(A, at(D1, "11:30"), 5)])  # now 10:00-11:30 is too short
        assert threshold_firings(conn, spec, start=D1, end=D2) == {D1.date(): 1}


def _engine_days(conn, rule, readings, *, start: datetime, end: datetime) -> Counter:
    """Alarms the live engine raises over the readings, per local day (ticking every minute)."""
    engine = Engine([rule], load_snapshot(conn), started=start - timedelta(days=2))
    feed = sorted(readings, key=lambda r: r[1])
    fired: Counter = Counter()
    t, i = start - timedelta(days=2), 0
    while t < end:
        firings = []
        while i < len(feed) and feed[i][1] <= t:
            d, when, v = feed[i]
            firings += engine.observe(Observation("wh-guanggu", d, when, "telemetry", {"co": v}))
            i += 1
        firings += engine.tick(t)
        for f in firings:
            if any(isinstance(x, act.RaiseAlarm) for x in f.intents) and start <= f.at < end:
                fired[f.at.astimezone(LOCAL).date().isoformat()] += 1
        t += timedelta(minutes=1)
    return fired
