"""Alarms that mean something, in the pure core: meter baselines, one incident seen by
several sources, orders settled when their alarm clears, a camera's floor estimate.

No I/O: rules are compiled from text, the engine runs over a hand-made snapshot,
and the lifecycle is the pure `transition`. The same behaviour through the
broker and the database is in tests/test_alarms_service.py.
"""

from __future__ import annotations

import math
import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from twin.model import DeviceInfo
from twin.rules import actions as act
from twin.rules import schema
from twin.rules.compile import RuleError, compile_text
from twin.rules.engine import Engine, Observation, bucket_hours, bucket_of, robust_z
from twin.rules.snapshot import BuildingInfo, Snapshot
from twin.work_orders import SYSTEM, Actor, TransitionError, transition

C = "c1"
#: Wednesday 02:00 in Wuhan.
NIGHT = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)

METER_RULE = """
id: meters
title: A meter far above its own usual
domain: service
key: building
nodes:
  - id: meter
    source: {device_types: [power_meter], metrics: [power]}
  - id: high
    after: meter
    baseline: {metric: power, z: 5, min_deviation: 2, min_ratio: 0.5, consecutive: 2}
  - id: alarm
    after: high
    raise_alarm: {type: power_abnormal, severity: minor, title: {zh-CN: "{value} kW，平时 {usual}", en: "{value} kW, usually {usual}"}}
  - id: normal
    after: high
    when: cleared
    clear_alarm: {type: power_abnormal}
"""


def _snapshot() -> Snapshot:
    snap = Snapshot()
    snap.buildings["b1"] = BuildingInfo("b1", C, "1栋", None, 114.4, 30.5)
    for device_id, unit in (("flat", "u1"), ("master", None), ("flat2", "u2")):
        snap.devices[device_id] = DeviceInfo(device_id, "power_meter", C, device_id, 114.4,
                                             30.5, "b1", 3 if unit else None, unit, None, None)
    for cam, lon in (("cam-a", 114.40000), ("cam-b", 114.40040), ("cam-far", 114.41000)):
        snap.devices[cam] = DeviceInfo(cam, "ai_camera", C, cam, lon, 30.5, None, None, None,
                                       None, None)
    snap.index()
    return snap


def _usual(engine: Engine, rule: str, node: str, **meters: tuple[float, float]) -> None:
    engine.seed(rule, node, {m: {h: (med, mad, 16) for h in range(168)}
                             for m, (med, mad) in meters.items()})


def _power(engine: Engine, device: str, at: datetime, kw: float) -> list[act.Intent]:
    obs = Observation(C, device, at, "telemetry", {"power": kw})
    return [i for f in engine.observe(obs) for i in f.intents]


# --- the baseline condition --------------------------------------------------------------

def test_robust_z_measures_by_the_meters_own_spread_and_minimums() -> None:
    spec = schema.Baseline(metric="power", z=5, min_deviation=2, min_ratio=0.5)
    # 0.5 kW usual, MAD 0.08: 4.5 kW is (4.5 - 0.5) / (1.4826 * 0.08) = 33.7 sigma away
    assert robust_z(spec, 4.5, 0.5, 0.08) == pytest.approx(4.0 / (1.4826 * 0.08))
    assert robust_z(spec, 2.4, 0.5, 0.08) is None         # far in z, but under 2 kW more
    assert robust_z(spec, 44.0, 30.0, 3.0) is None         # a master meter: under half again
    assert robust_z(spec, 95.0, 30.0, 3.0) == pytest.approx(65 / (1.4826 * 3.0))
    assert robust_z(spec, 47.0, 30.0, 4.0) is None         # half again, but only 2.9 sigma
    assert robust_z(spec.model_copy(update={"z": 2.0}), 47.0, 30.0, 4.0) == pytest.approx(
        17 / (1.4826 * 4.0))
    assert robust_z(spec, 4.0, 1.0, 0.0) == math.inf       # a steady meter: past the minimum
    below = spec.model_copy(update={"direction": "below", "min_ratio": 0.0})
    assert robust_z(below, 0.0, 30.0, 3.0) == pytest.approx(30 / (1.4826 * 3.0))


def test_buckets_are_local_hours_of_the_week_or_day() -> None:
    assert bucket_of("hour_of_week", NIGHT, 8.0) == 2 * 24 + 2   # Wednesday 02:00 local
    assert bucket_of("hour_of_day", NIGHT, 8.0) == 2
    assert bucket_of("hour_of_week", NIGHT + timedelta(days=4, hours=22), 8.0) == 0  # Mon 00h


def test_a_buckets_past_hours_are_the_same_local_hour_a_week_or_a_day_before() -> None:
    at = NIGHT + timedelta(minutes=20)  # 02:20 local
    since, until = NIGHT - timedelta(days=28), NIGHT + timedelta(minutes=20)
    weekly = bucket_hours("hour_of_week", at, offset_h=8.0, since=since, until=until)
    assert weekly == [(NIGHT - timedelta(days=7 * k), NIGHT - timedelta(days=7 * k, hours=-1))
                      for k in (1, 2, 3, 4)]
    assert len(bucket_hours("hour_of_day", at, offset_h=8.0, since=since, until=until)) == 28
    # India (+5:30): local hours begin on the half hour in UTC
    (first, *_) = bucket_hours("hour_of_day", at, offset_h=5.5, since=since, until=until)
    assert first == (NIGHT - timedelta(days=1, minutes=30), NIGHT - timedelta(days=1, minutes=-30))


def test_a_meter_is_measured_by_its_own_usual_after_k_readings_in_a_row() -> None:
    engine = Engine([compile_text(METER_RULE)], _snapshot(), started=NIGHT)
    _usual(engine, "meters", "high", flat=(0.4, 0.06), master=(30.0, 3.0))
    assert _power(engine, "master", NIGHT, 40.0) == []      # 40 kW: normal for 70 flats
    assert _power(engine, "flat", NIGHT, 5.0) == []         # one reading is not enough
    assert _power(engine, "flat", NIGHT + timedelta(minutes=15), 0.5) == []  # back: reset
    assert _power(engine, "flat", NIGHT + timedelta(minutes=30), 5.0) == []
    got = _power(engine, "flat", NIGHT + timedelta(minutes=45), 5.0)
    alarm = next(i for i in got if isinstance(i, act.RaiseAlarm)).spec
    assert (alarm.source_kind, alarm.source_id, alarm.title) == ("building", "b1",
                                                                 "5 kW，平时 0.4")
    # another flat of the building is unusual too: the same key, no second alarm
    assert _power(engine, "flat2", NIGHT + timedelta(minutes=46), 0.3) == []
    # the alarm clears when every meter of the building is back to its usual
    got = _power(engine, "flat", NIGHT + timedelta(minutes=60), 0.45)
    assert [type(i).__name__ for i in got] == ["ClearAlarm"]


def test_no_learnt_baseline_or_too_few_samples_says_nothing() -> None:
    engine = Engine([compile_text(METER_RULE)], _snapshot(), started=NIGHT)
    engine.seed("meters", "high", {"flat": {h: (0.4, 0.06, 3) for h in range(168)}})
    for k in range(6):  # three samples per bucket (min_samples 4): still learning
        assert _power(engine, "flat", NIGHT + timedelta(minutes=15 * k), 14.0) == []
        assert _power(engine, "master", NIGHT + timedelta(minutes=15 * k), 900.0) == []


def test_baseline_state_is_json_and_small() -> None:
    import orjson

    engine = Engine([compile_text(METER_RULE)], _snapshot(), started=NIGHT)
    _usual(engine, "meters", "high", flat=(1.0, 0.0))
    for k in range(3):
        _power(engine, "flat", NIGHT + timedelta(minutes=15 * k), 9.0)
    state = engine.all_state()
    assert state[("meters", "high", "b1")] == {"hits": {"flat": 3}, "z": 999.0, "usual": 1.0,
                                                "on": True}
    assert orjson.loads(orjson.dumps(state[("meters", "high", "b1")]))  # no Infinity


# --- validation --------------------------------------------------------------------------

def _refused(text: str) -> str:
    with pytest.raises(RuleError) as caught:
        compile_text(textwrap.dedent(text))
    return str(caught.value)


def test_a_baseline_needs_a_number_and_a_minimum_that_matters() -> None:
    assert _refused(METER_RULE.replace("min_deviation: 2, min_ratio: 0.5, ", "")) == (
        "rule meters: node 'high' field 'baseline.min_deviation': say how far from its usual "
        "a reading must be to matter (min_deviation in the metric's units, or min_ratio of the "
        "median): a meter that is always steady would otherwise fire on a crumb")
    assert "power_meter has no metric 'flow'" in _refused(
        METER_RULE.replace("baseline: {metric: power", "baseline: {metric: flow"))
    assert "node 'high' field 'baseline.consecutive'" in _refused(
        METER_RULE.replace("consecutive: 2", "consecutive: 0"))
    assert "node 'high' field 'baseline.bucket'" in _refused(
        METER_RULE.replace("baseline: {", "baseline: {bucket: minute, "))


def test_group_and_orders_on_clear_are_checked() -> None:
    assert "field 'group.radius_m'" in _refused(
        METER_RULE.replace("key: building", "key: building\ngroup: {radius_m: 0, window_s: 60}"))
    assert "field 'group.window_s'" in _refused(
        METER_RULE.replace("key: building", "key: building\ngroup: {radius_m: 50}"))
    assert _refused(METER_RULE.replace("key: building", "key: building\norders_on_clear: close")
                    ) == ("rule meters field 'orders_on_clear': orders_on_clear: close acts on "
                          "the work orders an alarm opened when it clears: the rule needs a "
                          "work_order and a clear_alarm node")
    assert "field 'orders_on_clear'" in _refused(
        METER_RULE.replace("key: building", "key: building\norders_on_clear: maybe"))


# --- one incident, several cameras -------------------------------------------------------

CAMERAS = """
id: lane
title: Fire lane
domain: safety
group: {radius_m: 100, window_s: 600}
orders_on_clear: cancel
nodes:
  - id: camera
    source: {device_types: [ai_camera], classes: [fire_lane_parking]}
  - id: standing
    after: camera
    for_duration: {seconds: 180, gap_s: 150}
  - id: alarm
    after: standing
    raise_alarm: {type: fire_lane_parking, severity: major, title: {zh-CN: 消防通道被占, en: Fire lane}}
  - id: guard
    after: alarm
    work_order: {kind: fire_lane_parking, title: {zh-CN: 移车, en: Move the car}, role: security}
  - id: gone
    after: standing
    when: cleared
    clear_alarm: {type: fire_lane_parking, reason: no car seen}
"""


def test_the_rules_group_and_order_policy_reach_the_intents() -> None:
    engine = Engine([compile_text(CAMERAS)], _snapshot(), started=NIGHT)
    got = []
    for k in range(4):
        obs = Observation(C, "cam-a", NIGHT + timedelta(seconds=80 * k), "event",
                          event="detection", cls="fire_lane_parking", confidence=0.9)
        got += [i for f in engine.observe(obs) for i in f.intents]
    raised = next(i for i in got if isinstance(i, act.RaiseAlarm))
    assert raised.group is not None and (raised.group.radius_m, raised.group.window_s) == (
        100, 600)
    cleared = [i for f in engine.tick(NIGHT + timedelta(seconds=400)) for i in f.intents]
    assert [(type(i).__name__, getattr(i, "orders", None)) for i in cleared] == [
        ("ClearAlarm", "cancel")]


# --- a camera's floor estimate ------------------------------------------------------------

def test_a_cameras_floor_estimate_is_the_alarms_floor() -> None:
    rule = compile_text("""
        id: throw
        title: Thrown
        domain: safety
        nodes:
          - id: camera
            source: {device_types: [ai_camera], classes: [high_altitude_throw]}
          - id: alarm
            after: camera
            raise_alarm: {type: throw, severity: major, title: {zh-CN: "{floor_estimate} 层抛物", en: "from floor {floor_estimate}"}}
        """.replace("\n        ", "\n"))
    engine = Engine([rule], _snapshot(), started=NIGHT)
    obs = Observation(C, "cam-a", NIGHT, "event", event="detection", cls="high_altitude_throw",
                      confidence=0.9, attrs={"floor_estimate": 12})
    (intent,) = [i for f in engine.observe(obs) for i in f.intents]
    assert isinstance(intent, act.RaiseAlarm)
    assert intent.spec.floor == 12 and intent.spec.detail["floor_estimate"] == 12
    assert intent.spec.title == "12 层抛物"


# --- the lifecycle ---------------------------------------------------------------------------

@pytest.mark.parametrize("state", ["created", "assigned", "accepted", "arrived", "escalated",
                                   "resolved"])
def test_the_system_settles_an_order_whose_alarm_cleared(state: str) -> None:
    assert transition(1, state, "settle", SYSTEM, assignee_id="s1") == "closed"


def test_only_the_system_settles() -> None:
    operator = Actor(name="王", role="operator")
    with pytest.raises(TransitionError, match="only the system may settle it"):
        transition(1, "assigned", "settle", operator, assignee_id="s1")
    with pytest.raises(TransitionError, match="cannot be settled from there"):
        transition(1, "closed", "settle", SYSTEM, assignee_id=None)
