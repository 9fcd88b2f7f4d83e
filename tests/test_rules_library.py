"""Every shipped rule: feed its trigger to the engine and check every action it asks for.

Pure apart from the snapshot, which is read once from the sample community in
the real database (`twin.rules.store.load_snapshot`); the engine, the clock
and the intents are all in memory.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from twin.privacy import mask_name
from twin.rules import actions as act
from twin.rules.compile import library_dir, load_directory
from twin.rules.engine import Engine, Observation
from twin.rules.snapshot import Snapshot
from twin.rules.store import load_snapshot
from twin.texts import Viewer, render

C = "wh-guanggu"
#: Tuesday 10:00 in Wuhan.
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)
LIBRARY = {r.id: r for r in load_directory(library_dir())}
TESTED: set[str] = set()


@pytest.fixture(scope="module")
def base(sample_db_url: str) -> Snapshot:
    import psycopg

    with psycopg.connect(sample_db_url) as conn:
        return load_snapshot(conn, C)


class Run:
    """One shipped rule in an engine of its own, over a private copy of the snapshot."""

    def __init__(self, rule_id: str, base: Snapshot, *, started: datetime = T0) -> None:
        TESTED.add(rule_id)
        # its own residents too: a test may give one of them their own hours
        self.snap = dataclasses.replace(base, latest={}, last_seen={}, last_access={},
                                        residents=dict(base.residents))
        self.engine = Engine([LIBRARY[rule_id]], self.snap, started=started)

    def tele(self, device: str, at: datetime, **values) -> list[act.Intent]:
        return self._go(Observation(C, device, at, "telemetry", values))

    def event(self, device: str, at: datetime, kind: str, **kw) -> list[act.Intent]:
        return self._go(Observation(C, device, at, "event", event=kind, **kw))

    def detect(self, device: str, at: datetime, cls: str, confidence: float = 0.9
               ) -> list[act.Intent]:
        return self.event(device, at, "detection", cls=cls, confidence=confidence)

    def status(self, device: str, at: datetime, online: bool) -> list[act.Intent]:
        return self._go(Observation(C, device, at, "status", {"online": online}))

    def tick(self, at: datetime) -> list[act.Intent]:
        return [i for f in self.engine.tick(at) for i in f.intents]

    def _go(self, obs: Observation) -> list[act.Intent]:
        return [i for f in self.engine.observe(obs) for i in f.intents]

    # devices of the sample, chosen by what they are
    def device(self, code: str, *, facility_kind: str | None = None, unit: bool = False,
               building: bool = False, nth: int = 0) -> str:
        found = [d for d in self.snap.of_type(code)
                 if (facility_kind is None or self.kind_of(d) == facility_kind)
                 and (not unit or self.snap.devices[d].unit_id)
                 and (not building or self.snap.devices[d].building_id)]
        return sorted(found)[nth]

    def kind_of(self, device_id: str) -> str | None:
        f = self.snap.facilities.get(self.snap.devices[device_id].facility_id or "")
        return f.kind if f else None


def shape(intents: list[act.Intent]) -> list[tuple[str, str]]:
    return [(type(i).__name__, i.node) for i in intents]


def one(intents: list[act.Intent], cls: type, node: str | None = None):
    found = [i for i in intents if isinstance(i, cls) and (node is None or i.node == node)]
    assert len(found) == 1, shape(intents)
    return found[0]


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# --- safety ------------------------------------------------------------------------------

def test_garage_co(base) -> None:
    run = Run("garage-co", base)
    co = run.device("co_sensor", facility_kind="garage")
    garage = run.snap.devices[co].facility_id
    assert run.tele(co, T0, co=12.0) == []
    got = run.tele(co, T0 + s(60), co=86.0)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Broadcast", "announce"),
                          ("OpenWorkOrder", "engineer"), ("SendCommand", "fans")]
    fans = one(got, act.SendCommand)
    assert fans.command == "start" and len(fans.device_ids) == 4
    assert {run.snap.devices[f].facility_id for f in fans.device_ids} == {garage}
    assert {run.snap.devices[f].type for f in fans.device_ids} == {"exhaust_fan"}
    speakers = one(got, act.Broadcast).speaker_ids
    assert speakers and {run.snap.devices[x].facility_id for x in speakers} == {garage}
    alarm = one(got, act.RaiseAlarm).spec
    assert (alarm.type, alarm.severity, alarm.source_kind, alarm.source_id) == (
        "garage_co", "critical", "facility", garage)
    assert en(run, one(got, act.RaiseAlarm)) == "CO 86 ppm in 1号地库"
    assert alarm.title == "1号地库 一氧化碳 86 ppm"
    assert alarm.text_key == "garage-co/alarm"
    assert one(got, act.Broadcast).message == "1号地库一氧化碳超标，请立即离开地库。"
    assert one(got, act.RaiseAlarm).escalate_after_s == 300
    order = one(got, act.OpenWorkOrder)
    assert order.after_alarm == "alarm"
    assert (order.spec.role, order.spec.skill, order.spec.priority) == ("engineer", "hvac",
                                                                        "urgent")
    # a second sensor of the same garage does not fire again; the fans stop when both are low
    other = run.device("co_sensor", facility_kind="garage", nth=1)
    assert run.tele(other, T0 + s(70), co=70.0) == []
    assert run.tele(co, T0 + s(120), co=20.0) == []
    got = run.tele(other, T0 + s(130), co=21.0)
    assert shape(got) == [("ClearAlarm", "clear"), ("SendCommand", "fans-stop")]
    assert one(got, act.SendCommand).command == "stop"
    assert one(got, act.ClearAlarm).source_id == garage


def test_access_tailgating(base) -> None:
    run = Run("access-tailgating", base)
    gate = run.device("access_gate")
    # one slip at a busy gate is everyday life
    assert run.event(gate, T0, "tailgating") == []
    run.event(gate, T0 + s(60), "tailgating")
    got = run.event(gate, T0 + s(120), "tailgating")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk"),
                          ("OpenWorkOrder", "guard")]
    assert one(got, act.Notify).channel == "security_desk"
    assert one(got, act.OpenWorkOrder).spec.role == "security"
    assert en(run, one(got, act.OpenWorkOrder)).endswith("(3 in 10 min)")
    # cameras count too: the fourth report, from the gate's camera, only counts
    cam = run.device("ai_camera", facility_kind="gate")
    assert run.detect(cam, T0 + s(130), "tailgating") == []
    # ten quiet minutes later the window empties and the alarm clears
    assert shape(run.tick(T0 + s(800))) == [("ClearAlarm", "calm")]


def test_access_door_forced(base) -> None:
    run = Run("access-door-forced", base)
    door = run.device("access_door", building=True)
    got = run.event(door, T0, "door_forced")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk"),
                          ("OpenWorkOrder", "guard")]
    assert one(got, act.RaiseAlarm).spec.severity == "major"
    assert one(got, act.OpenWorkOrder).spec.priority == "urgent"


def test_access_door_held_open(base) -> None:
    run = Run("access-door-held-open", base)
    door = run.device("access_door")
    assert run.tele(door, T0, door_state="held_open") == []
    assert run.tele(door, T0 + s(60), door_state="held_open") == []
    got = run.tick(T0 + s(125))
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk"), ("SendCommand", "lock")]
    assert one(got, act.SendCommand).device_ids == (door,)
    assert one(got, act.SendCommand).command == "lock"
    assert shape(run.tele(door, T0 + s(200), door_state="closed")) == [("ClearAlarm", "closed")]


def test_camera_high_altitude_throw(base) -> None:
    run = Run("camera-high-altitude-throw", base)
    cam = run.device("ai_camera", building=True)
    assert run.detect(cam, T0, "high_altitude_throw", 0.5) == []  # below the confidence asked
    got = run.detect(cam, T0, "high_altitude_throw", 0.93)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "grid"), ("OpenWorkOrder", "guard")]
    alarm = one(got, act.RaiseAlarm).spec
    assert alarm.source_kind == "building" and alarm.source_id == run.snap.devices[cam].building_id
    grid = run.snap.buildings[alarm.building_id].grid_id
    assert one(got, act.Notify).recipients == (run.snap.grids[grid].worker_id,)


def test_camera_ebike_in_lift(base) -> None:
    run = Run("camera-ebike-in-lift", base)
    cam = run.device("ai_camera", facility_kind="elevator")
    got = run.detect(cam, T0, "ebike_in_lift")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Broadcast", "announce"), ("Notify", "desk")]
    assert 1 <= len(one(got, act.Broadcast).speaker_ids) <= 2
    assert run.detect(cam, T0 + s(30), "ebike_in_lift") == []  # cooldown of 2 minutes
    assert run.detect(cam, T0 + s(130), "ebike_in_lift") != []
    # ten minutes without an e-bike: the alarm clears, and the next one is a new alarm
    assert shape(run.tick(T0 + s(130 + 601))) == [("ClearAlarm", "gone")]
    outdoor = run.device("ai_camera", facility_kind="gate")
    assert run.detect(outdoor, T0, "ebike_in_lift") == []  # not a lift camera


def test_camera_fire_lane_parking(base) -> None:
    run = Run("camera-fire-lane-parking", base)
    cam = run.device("ai_camera", facility_kind="gate")
    for k in range(3):
        assert run.detect(cam, T0 + s(80 * k), "fire_lane_parking") == []
    got = run.detect(cam, T0 + s(240), "fire_lane_parking")  # standing for 3 min and more
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "guard")]
    assert one(got, act.OpenWorkOrder).spec.role == "security"
    group = one(got, act.RaiseAlarm).group  # a second camera on the same car: one incident
    assert group is not None and (group.radius_m, group.window_s) == (100, 600)
    gone = run.tick(T0 + s(240 + 151))
    assert shape(gone) == [("ClearAlarm", "gone")]
    assert one(gone, act.ClearAlarm).orders == "close"  # the car left: the guard's order too


def test_camera_smoke_fire(base) -> None:
    run = Run("camera-smoke-fire", base)
    cam = run.device("ai_camera", facility_kind="ev_shed")
    got = run.detect(cam, T0, "smoke_fire", 0.8)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Broadcast", "announce"),
                          ("OpenWorkOrder", "guard"), ("Notify", "tell"), ("Notify", "tell")]
    assert one(got, act.OpenWorkOrder).spec.skill == "fire"
    channels = {i.channel: i.recipients for i in got if isinstance(i, act.Notify)}
    assert channels["security_desk"] == ("security_desk",)
    assert channels["staff"] == ("wh-guanggu-s26",)  # the manager
    assert one(got, act.Broadcast).speaker_ids


def test_smoke_detector_alarm(base) -> None:
    run = Run("smoke-detector-alarm", base)
    # the detector of a floor where a resident with family contacts lives
    cared = next(r for r in sorted(run.snap.residents.values(), key=lambda r: r.id)
                 if r.family_contacts)
    unit = run.snap.units[cared.unit_id]
    det = next(d for d in sorted(run.snap.of_type("smoke_detector"))
               if (run.snap.devices[d].building_id, run.snap.devices[d].floor)
               == (unit.building_id, unit.floor))
    got = run.event(det, T0, "smoke_alarm")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "family"),
                          ("OpenWorkOrder", "guard"), ("Notify", "tell"), ("Notify", "tell")]
    family = one(got, act.Notify, "family")
    assert family.channel == "family"
    assert family.recipients[0].endswith(f"<{cared.family_contacts[0]['phone']}>")
    assert "special-care residents there" in en(run, next(i for i in got if i.node == "tell"))


def test_camera_no_helmet(base) -> None:
    run = Run("camera-no-helmet", base)
    cam = run.device("ai_camera", facility_kind="ev_shed")
    got = run.detect(cam, T0, "no_helmet")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk")]
    assert one(got, act.RaiseAlarm).spec.severity == "info"


def test_water_leak(base) -> None:
    run = Run("water-leak", base)
    sensor = run.device("water_leak_sensor", facility_kind="pump_room")
    got = run.tele(sensor, T0, leak="wet")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "plumber")]
    assert one(got, act.OpenWorkOrder).spec.skill == "plumbing"
    group = one(got, act.RaiseAlarm).group  # the room's other sensors: the same leak
    assert group is not None and (group.radius_m, group.window_s) == (50, 3600)
    assert run.tele(sensor, T0 + s(60), leak="wet") == []
    assert shape(run.tele(sensor, T0 + s(600), leak="dry")) == [("ClearAlarm", "dry")]


# --- environment -------------------------------------------------------------------------

def test_camera_garbage_overflow(base) -> None:
    run = Run("camera-garbage-overflow", base)
    cam = run.device("ai_camera", facility_kind="trash_station")
    got = run.detect(cam, T0, "garbage_overflow")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "cleaner")]
    assert one(got, act.RaiseAlarm).spec.source_kind == "facility"
    assert one(got, act.OpenWorkOrder).spec.role == "cleaning"


def test_trash_bin_full(base) -> None:
    run = Run("trash-bin-full", base)
    b = run.device("trash_bin_sensor")
    assert run.tele(b, T0, fill=40.0) == []
    got = run.tele(b, T0 + s(600), fill=96.0)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "cleaner")]
    assert en(run, one(got, act.RaiseAlarm)).endswith("(96 %)")
    assert shape(run.tele(b, T0 + s(1200), fill=5.0)) == [("ClearAlarm", "emptied")]


def test_camera_unleashed_dog(base) -> None:
    run = Run("camera-unleashed-dog", base)
    cam = run.device("ai_camera", facility_kind="playground")
    assert run.detect(cam, T0, "unleashed_dog") == []  # one sighting is a guess
    assert run.detect(cam, T0 + s(120), "unleashed_dog") == []
    got = run.detect(cam, T0 + s(240), "unleashed_dog")  # three in ten minutes: loose
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Broadcast", "announce"), ("Notify", "grid")]
    assert len(one(got, act.Broadcast).speaker_ids) == 1
    assert one(got, act.Notify).channel == "grid_worker"
    assert run.detect(cam, T0 + s(300), "unleashed_dog") == []  # still the same dog
    assert shape(run.tick(T0 + s(300 + 601))) == [("ClearAlarm", "gone")]


def test_camera_street_vending(base) -> None:
    run = Run("camera-street-vending", base)
    cam = run.device("ai_camera", facility_kind="gate")
    got = run.detect(cam, T0, "street_vending")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "grid")]
    assert one(got, act.OpenWorkOrder).spec.role == "grid_worker"


def test_irrigation_dry_soil(base) -> None:
    run = Run("irrigation-dry-soil", base)
    soil = run.device("soil_sensor")
    area = run.snap.devices[soil].facility_id
    morning = T0 - timedelta(hours=3)  # 07:00 local
    got = run.tele(soil, morning, soil_moisture=18.0, soil_temperature=14.0)
    opened = one(got, act.SendCommand, "open")
    assert opened.command == "open"
    assert {run.snap.devices[v].facility_id for v in opened.device_ids} == {area}
    assert {run.snap.devices[v].type for v in opened.device_ids} == {"irrigation_valve"}
    got = run.tele(soil, morning + s(900), soil_moisture=31.0, soil_temperature=14.0)
    assert one(got, act.SendCommand, "close").command == "close"
    # at noon, or on frozen soil, nothing opens
    other = Run("irrigation-dry-soil", base)
    assert other.tele(soil, T0 + timedelta(hours=2), soil_moisture=10.0,
                      soil_temperature=20.0) == []
    assert other.tele(soil, morning + timedelta(days=1), soil_moisture=10.0,
                      soil_temperature=2.0) == []


def test_air_quality_pm25(base) -> None:
    run = Run("air-quality-pm25", base)
    station = run.device("air_quality_sensor")
    assert run.tele(station, T0, pm25=180.0) == []
    assert run.tele(station, T0 + s(900), pm25=190.0) == []
    got = run.tele(station, T0 + s(1800), pm25=175.0)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Broadcast", "announce")]
    assert shape(run.tele(station, T0 + s(2400), pm25=60.0)) == [("ClearAlarm", "better")]


# --- service -----------------------------------------------------------------------------

def test_ev_charger_full(base) -> None:
    run = Run("ev-charger-full", base)
    pile = run.device("ev_charger")
    assert run.tele(pile, T0, status="charging") == []
    got = run.tele(pile, T0 + s(300), status="full")
    assert shape(got) == [("SendCommand", "cut")]
    assert one(got, act.SendCommand).device_ids == (pile,)
    assert one(got, act.SendCommand).command == "cut_off"
    assert run.tele(pile, T0 + s(600), status="full") == []  # once per session


def test_ev_charger_overheat(base) -> None:
    run = Run("ev-charger-overheat", base)
    pile = run.device("ev_charger")
    got = run.tele(pile, T0, temperature=88.0)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("SendCommand", "cut"), ("Notify", "desk"),
                          ("OpenWorkOrder", "engineer")]
    assert one(got, act.SendCommand).command == "cut_off"
    assert one(got, act.OpenWorkOrder).spec.skill == "electrical"
    assert shape(run.tele(pile, T0 + s(900), temperature=35.0)) == [("ClearAlarm", "cooled")]


def test_ev_charger_heating_fast(base) -> None:
    run = Run("ev-charger-heating-fast", base)
    pile = run.device("ev_charger")
    assert run.tele(pile, T0, temperature=30.0) == []
    got = run.tele(pile, T0 + s(300), temperature=42.0)  # 24 °C per 10 min
    assert shape(got) == [("RaiseAlarm", "alarm")]
    assert "24 °C per 10 min" in en(run, one(got, act.RaiseAlarm))
    assert shape(run.tele(pile, T0 + s(600), temperature=43.0)) == [("ClearAlarm", "steady")]
    # a report off schedule seconds later (a pile answering a command) is not compared:
    # its sensor's noise of 1 °C over 10 s is no 60 °C per 10 min
    assert run.tele(pile, T0 + s(610), temperature=44.0) == []
    assert run.tele(pile, T0 + s(900), temperature=44.5) == []


def test_ev_shed_no_free_pile(base) -> None:
    run = Run("ev-shed-no-free-pile", base)
    shed = "wh-guanggu-f009"
    piles = sorted(d for d in run.snap.of_type("ev_charger")
                   if run.snap.devices[d].facility_id == shed)
    got: list = []
    for k, pile in enumerate(piles):
        got = run.tele(pile, T0 + s(k), status="charging")
        if k < len(piles) - 1:
            assert got == []
    assert shape(got) == [("RaiseAlarm", "alarm")]
    assert en(run, one(got, act.RaiseAlarm)) == f"3号充电棚: 0 of {len(piles)} piles free"
    got = run.tele(piles[0], T0 + s(600), status="idle")
    assert shape(got) == [("ClearAlarm", "free-again")]


def test_smart_home_intrusion(base) -> None:
    run = Run("smart-home-intrusion", base)
    hub = run.device("smart_home_hub", unit=True)
    assert run.event(hub, T0, "motion") == []  # nobody armed it
    run.tele(hub, T0 + s(10), away_mode="on")
    got = run.event(hub, T0 + s(20), "motion")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk"),
                          ("OpenWorkOrder", "guard")]
    spec = one(got, act.RaiseAlarm).spec
    assert spec.source_kind == "device" and spec.source_id == hub
    assert spec.unit_id == run.snap.devices[hub].unit_id
    run.tele(hub, T0 + s(30), away_mode="off")
    assert run.event(hub, T0 + s(40), "door_contact") == []


def _usual(run: Run, rule_id: str, node: str, meters: dict[str, tuple[float, float]]) -> None:
    """Seed a baseline node as the store would: every hour of the week of each meter has
    this median and MAD, learnt from four weeks (16 fifteen-minute means)."""
    run.engine.seed(rule_id, node, {m: {h: (med, mad, 16) for h in range(168)}
                                    for m, (med, mad) in meters.items()})


def _master(run: Run, code: str, building: str) -> str:
    return next(d for d in sorted(run.snap.of_type(code))
                if run.snap.devices[d].building_id == building
                and run.snap.devices[d].unit_id is None)


def test_water_meter_night_flow(base) -> None:
    run = Run("water-meter-night-flow", base)
    meter = run.device("water_meter", unit=True)
    building = run.snap.devices[meter].building_id
    master = _master(run, "water_meter", building)
    _usual(run, "water-meter-night-flow", "flowing",
           {meter: (0.008, 0.002), master: (0.45, 0.05)})
    night = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)  # 02:00 local
    for k in range(6):  # a building's master meter at its own usual night flow: nothing
        assert run.tele(master, night + s(900 * k), flow=0.5) == []
    got = []
    for k in range(6):  # the flat draws 0.6 m³/h all night: two readings, then an hour
        got += run.tele(meter, night + s(900 * k + 10), flow=0.6)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "grid")]
    alarm = one(got, act.RaiseAlarm).spec
    assert (alarm.source_kind, alarm.source_id, alarm.unit_id) == (
        "building", building, run.snap.devices[meter].unit_id)
    assert one(got, act.Notify).channel == "grid_worker"
    assert shape(run.tele(meter, night + s(6000), flow=0.01)) == [("ClearAlarm", "stopped")]
    day = Run("water-meter-night-flow", base)
    _usual(day, "water-meter-night-flow", "flowing", {meter: (0.008, 0.002)})
    for k in range(10):
        day.tele(meter, T0 + s(900 * k), flow=0.6)
    assert day.tick(T0 + s(9000)) == []  # in the day a running tap is normal


def test_power_meter_abnormal(base) -> None:
    run = Run("power-meter-abnormal", base)
    meter = run.device("power_meter", unit=True)
    building = run.snap.devices[meter].building_id
    master = _master(run, "power_meter", building)
    _usual(run, "power-meter-abnormal", "high", {meter: (0.5, 0.08), master: (30.0, 3.0)})
    for k in range(4):  # the master meter draws 40 kW: a lot for a flat, normal for 70
        assert run.tele(master, T0 + s(900 * k), power=40.0) == []
    assert run.tele(meter, T0, power=4.5) == []
    assert run.tele(meter, T0 + s(900), power=4.5) == []  # two in a row: unusual ...
    got = run.tick(T0 + s(1801))                          # ... for 15 minutes
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "grid")]
    alarm = one(got, act.RaiseAlarm).spec
    assert (alarm.source_kind, alarm.source_id) == ("building", building)
    assert alarm.detail["usual"] == "0.5" and alarm.detail["z"] > 5
    assert "special-care residents" in en(run, one(got, act.Notify))
    assert shape(run.tele(meter, T0 + s(2700), power=0.6)) == [("ClearAlarm", "normal")]
    # the master meter far above its own usual is abnormal too, on the same building
    for k in range(3):
        got = run.tele(master, T0 + s(3600 + 900 * k), power=95.0)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "grid")]


def test_a_meter_with_no_history_raises_nothing(base) -> None:
    run = Run("power-meter-abnormal", base)
    meter = run.device("power_meter", unit=True)
    for k in range(8):
        assert run.tele(meter, T0 + s(900 * k), power=14.0) == []
    assert run.tick(T0 + s(9000)) == []


# --- activity ----------------------------------------------------------------------------

def _cared(run: Run, flag: str):
    return next(r for r in sorted(run.snap.residents.values(), key=lambda r: r.id)
                if flag in r.care_flags and r.family_contacts)


def test_special_care_not_out(base) -> None:
    run = Run("special-care-not-out", base)
    person = _cared(run, "elderly_alone")
    gate = run.device("access_gate")
    run.event(gate, T0, "access", direction="in", subject=person.id)
    assert run.tick(T0 + timedelta(hours=35)) == []
    # 36 h later it is 22:00 in Wuhan: quiet hours, so it waits for the morning
    assert [i for i in run.tick(T0 + timedelta(hours=36, minutes=5))
            if getattr(i, "spec", None) and i.spec.resident_id == person.id] == []
    got = [i for i in run.tick(T0 + timedelta(hours=45, minutes=5))
           if _about(run, i, person.id)]
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "tell"), ("Notify", "tell"),
                          ("OpenWorkOrder", "visit")]
    alarm = one(got, act.RaiseAlarm).spec
    assert (alarm.source_kind, alarm.source_id, alarm.type) == ("resident", person.id,
                                                                 "care_not_out")
    assert "not seen going out for 36 h" in en(run, one(got, act.RaiseAlarm))
    assert en(run, one(got, act.RaiseAlarm)).startswith(person.name)
    # kept as a key and ids: the resident's name is in no text, parameter or detail
    for intent in got:
        kept = repr(getattr(intent, "spec", intent))
        assert person.name not in kept, intent.node
    assert alarm.text_params["resident"] == person.id
    assert alarm.title.startswith(mask_name(person.name))
    tell = {i.channel: i for i in got if isinstance(i, act.Notify)}
    assert tell["family"].recipients == tuple(
        f"{c['name']} <{c['phone']}>" for c in person.family_contacts)
    _, building = run.snap.resident_place(person.id)
    assert tell["grid_worker"].recipients == (run.snap.grids[building.grid_id].worker_id,)
    visit = one(got, act.OpenWorkOrder).spec
    assert (visit.kind, visit.role, visit.resident_id) == ("welfare_check", "grid_worker",
                                                           person.id)
    assert run.tick(T0 + timedelta(hours=46)) == [] or all(
        not _about(run, i, person.id) for i in run.tick(T0 + timedelta(hours=46)))
    got = run.event(gate, T0 + timedelta(hours=46), "access", direction="out",
                    subject=person.id)
    assert shape(got) == [("ClearAlarm", "seen")]
    assert got[0].source_id == person.id


def test_special_care_own_hours_win(base) -> None:
    run = Run("special-care-not-out", base)
    person = _cared(run, "elderly_alone")
    run.snap.residents[person.id] = dataclasses.replace(person, care_hours={"out": 4.0})
    got = [i for i in run.tick(T0 + timedelta(hours=4, minutes=1)) if _about(run, i, person.id)]
    assert "for 4 h" in en(run, one(got, act.RaiseAlarm))


def test_special_care_not_back(base) -> None:
    run = Run("special-care-not-back", base)
    child = next(r for r in sorted(run.snap.residents.values(), key=lambda r: r.id)
                 if "child" in r.care_flags)
    gate = run.device("access_gate")
    run.event(gate, T0, "access", direction="out", subject=child.id)
    assert [i for i in run.tick(T0 + timedelta(hours=5)) if _about(run, i, child.id)] == []
    got = [i for i in run.tick(T0 + timedelta(hours=6, minutes=1)) if _about(run, i, child.id)]
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "search"),
                          ("Notify", "tell")]  # grid worker only: no family contacts on file
    assert one(got, act.RaiseAlarm).spec.type == "care_not_back"
    got = run.event(gate, T0 + timedelta(hours=7), "access", direction="in", subject=child.id)
    assert shape(got) == [("ClearAlarm", "back")]
    assert one(got, act.ClearAlarm).orders == "close"  # back home: nobody searches on


def test_camera_person_fall(base) -> None:
    run = Run("camera-person-fall", base)
    cam = run.device("ai_camera", facility_kind="playground")
    got = run.detect(cam, T0, "person_fall")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "aid"), ("Notify", "desk")]
    assert one(got, act.OpenWorkOrder).spec.skill == "first_aid"


def test_gate_night_traffic(base) -> None:
    run = Run("gate-night-traffic", base)
    gate = run.device("access_gate")
    night = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 01:00 local
    got: list = []
    for k in range(30):
        got = run.event(gate, night + s(10 * k), "access", direction="in")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk")]
    assert en(run, one(got, act.Notify)).startswith("Unusual night traffic at ")
    assert "30 passes" in en(run, one(got, act.Notify))
    assert shape(run.tick(night + s(1200))) == [("ClearAlarm", "quiet")]
    day = Run("gate-night-traffic", base)
    assert all(day.event(gate, T0 + s(k), "access", direction="in") == [] for k in range(40))


# --- equipment ---------------------------------------------------------------------------

def test_device_offline(base) -> None:
    run = Run("device-offline", base)
    cam = run.device("ai_camera")
    got = run.status(cam, T0, False)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "engineer")]
    assert shape(run.status(cam, T0 + s(60), True)) == [("ClearAlarm", "back")]


def test_device_silent(base) -> None:
    run = Run("device-silent", base)
    co = run.device("co_sensor")
    watched = len(run.snap.of_type("co_sensor") + run.snap.of_type("elevator_monitor")
                  + run.snap.of_type("pump_monitor"))
    assert run.tick(T0 + s(60)) == []
    run.tele(co, T0 + s(600), co=3.0)
    got = run.tick(T0 + s(901))  # everyone else has been silent since the start
    assert len([i for i in got if isinstance(i, act.RaiseAlarm)]) == watched - 1
    got = run.tick(T0 + s(1501))
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "engineer")]
    assert one(got, act.RaiseAlarm).spec.device_id == co
    assert shape(run.tele(co, T0 + s(1600), co=3.0)) == [("ClearAlarm", "heard-again")]


def test_silence_is_measured_from_when_the_twin_heard_the_device(base) -> None:
    """A message stamped an hour ago but received now is news: the device is not silent
    (replays, a gateway's backlog, a simulator running in the past)."""
    run = Run("device-silent", base)
    co = run.device("co_sensor")
    received = T0 + s(800)
    run._go(Observation(C, co, T0 - timedelta(hours=1), "telemetry", {"co": 3.0},
                        received=received))
    got = run.tick(T0 + s(901))
    assert co not in {i.spec.device_id for i in got if isinstance(i, act.RaiseAlarm)}
    got = run.tick(received + s(901))
    assert co in {i.spec.device_id for i in got if isinstance(i, act.RaiseAlarm)}


def test_elevator_trapped(base) -> None:
    run = Run("elevator-trapped", base)
    lift = run.device("elevator_monitor")
    got = run.event(lift, T0, "trapped")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("Notify", "desk"), ("Notify", "desk"),
                          ("OpenWorkOrder", "engineer")]
    assert one(got, act.OpenWorkOrder).spec.skill == "elevator"


def test_elevator_fault(base) -> None:
    run = Run("elevator-fault", base)
    got = run.event(run.device("elevator_monitor"), T0, "fault")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "engineer")]


def test_pump_pressure_low(base) -> None:
    run = Run("pump-pressure-low", base)
    pump = run.device("pump_monitor")
    run.tele(pump, T0, pressure=0.8)
    got = run.tele(pump, T0 + s(130), pressure=0.7)
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "engineer"),
                          ("SendCommand", "start")]
    assert one(got, act.SendCommand).device_ids == (pump,)
    assert shape(run.tele(pump, T0 + s(300), pressure=3.1)) == [("ClearAlarm", "ok")]


def test_pump_fault(base) -> None:
    run = Run("pump-fault", base)
    got = run.event(run.device("pump_monitor"), T0, "fault")
    assert shape(got) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "engineer")]


def test_gateway_weak_signal(base) -> None:
    run = Run("gateway-weak-signal", base)
    gw = run.device("iot_gateway")
    run.tele(gw, T0, rssi=-118.0)
    got = run.tick(T0 + s(601))
    assert shape(got) == [("RaiseAlarm", "alarm")]
    assert shape(run.tele(gw, T0 + s(700), rssi=-80.0)) == [("ClearAlarm", "better")]


# --- the engine's state ------------------------------------------------------------------

def test_state_round_trips_through_json(base) -> None:
    """What the service stores after a batch brings an engine back where it was."""
    import orjson

    run = Run("camera-fire-lane-parking", base)
    cam = run.device("ai_camera", facility_kind="gate")
    run.detect(cam, T0, "fire_lane_parking")
    run.detect(cam, T0 + s(90), "fire_lane_parking")
    stored = {k: orjson.loads(orjson.dumps(v)) for k, v in run.engine.all_state().items()}
    again = Engine([LIBRARY["camera-fire-lane-parking"]], run.snap, state=stored, started=T0)
    fired = [i for f in again.observe(Observation(C, cam, T0 + s(190), "event",
                                                  event="detection", cls="fire_lane_parking",
                                                  confidence=0.9)) for i in f.intents]
    assert shape(fired) == [("RaiseAlarm", "alarm"), ("OpenWorkOrder", "guard")]


def test_every_shipped_rule_has_a_test() -> None:
    """Runs last in this module (pytest keeps file order)."""
    assert set(LIBRARY) - TESTED == set()


def _about(run: Run, intent: act.Intent, resident: str) -> bool:
    spec = getattr(intent, "spec", None)
    if spec is not None:
        return spec.resident_id == resident
    if isinstance(intent, act.ClearAlarm):
        return intent.source_id == resident
    return getattr(intent, "text_params", {}).get("resident") == resident


def en(run: Run, intent: act.Intent) -> str:
    """The intent's text as an admin reading English sees it (names whole)."""
    spec = getattr(intent, "spec", None)
    key = spec.text_key if spec is not None else getattr(intent, "text_key", None)
    params = spec.text_params if spec is not None else getattr(intent, "text_params", {})
    assert key is not None
    rule_id, _, _ = key.partition("/")
    return render(LIBRARY[rule_id].texts()[key], params, viewer=Viewer("en", whole=True),
                  names=run.engine.names(params))


# --- the simulator's incidents ----------------------------------------------------------

#: Each incident the simulator plays, and the rule that must fire for it: one alarm about it
#: (or, for a rule that only commands, one firing).
INCIDENT_RULES = {
    "co-leak:1号地库": "garage-co",
    "fire-lane-parking:南门(主入口)": "camera-fire-lane-parking",
    "charger-overheat:1号充电棚": "ev-charger-overheat",
    "trash-overflow:1号垃圾站": "trash-bin-full",
    "water-leak:1号泵房": "water-leak",
    "high-altitude-throw:5栋": "camera-high-altitude-throw",
    "ebike-in-lift:5栋": "camera-ebike-in-lift",
    "smoke:5栋": "smoke-detector-alarm",
    "smoke:2号充电棚": "camera-smoke-fire",
    "intrusion:wh-guanggu-b01-u0101": "smart-home-intrusion",
    "street-vending:东门": "camera-street-vending",
}
#: Incidents whose rule only sends a command: it fires once.
INCIDENT_COMMANDS = {"charger-full:3号充电棚": "ev-charger-full"}


def _simulate(sample_db_url: str, base: Snapshot, specs: list[str], *, start: datetime,
              minutes: int, seed: int = 3, step: int = 1, tick_s: float = 1.0,
              only: tuple[str, ...] | None = None
              ) -> tuple[list[act.Firing], dict[str, set[str]]]:
    """The incidents injected at ``start``, the stream decoded as ingest decodes it, and the
    whole library listening, ``step`` minutes at a time: the firings, and what each
    incident is about (its place and devices). ``only``: simulate these device types."""
    import psycopg

    from ingest.decode import Decoded, decode
    from ingest.rules import observations
    from ingest.simulator import Simulation, load_community

    with psycopg.connect(sample_db_url) as conn:
        community = load_community(conn, C)
    if only is not None:
        devices = community.devices
        community = dataclasses.replace(community, devices=devices[
            devices["type"].isin(only)].reset_index(drop=True))
    sim = Simulation(community, start=start, seed=seed, tick_s=tick_s)
    sim.opening()
    about = {}
    for spec in specs:
        incident = sim.inject(spec)
        about[spec] = {incident.place, *incident.devices}
    snap = dataclasses.replace(base, latest={}, last_seen={}, last_access={})
    engine = Engine(LIBRARY.values(), snap, started=start)
    directory = snap.devices
    firings: list[act.Firing] = []
    for minute in range(step, minutes + 1, step):
        now = start + timedelta(minutes=minute)
        rows = Decoded()
        for topic, payload in sim.advance(now):
            decode(topic, payload, now, directory.get, rows)
        assert rows.dead == []
        for obs in observations(rows, directory.get):
            firings += engine.observe(obs)
        firings += engine.tick(now)
    return firings, about


def _fired(firings: list[act.Firing], rule_id: str, about: set[str]) -> list[act.Firing]:
    """The firings of ``rule_id`` about an incident (its key is the incident's place or one
    of its devices) when its condition was raised."""
    return [f for f in firings if f.rule_id == rule_id and f.key in about
            and f.edge == "raised"]


def _alarms(firings: list[act.Firing], rule_id: str, about: set[str]) -> list[str]:
    """The sources of the alarms ``rule_id`` opened about an incident, as the store opens
    them: a repeat while one is open counts on it, a raise after a clear is a new alarm."""
    open_, opened = set(), []
    for f in firings:
        if f.rule_id != rule_id:
            continue
        for i in f.intents:
            if isinstance(i, act.RaiseAlarm) and i.spec.source_id in about:
                if (i.spec.type, i.spec.source_id) not in open_:
                    open_.add((i.spec.type, i.spec.source_id))
                    opened.append(i.spec.source_id)
            elif isinstance(i, act.ClearAlarm):
                open_.discard((i.type, i.source_id))
    return opened


def test_the_simulators_incidents_fire_their_rules(base, sample_db_url) -> None:
    """`twin simulate --inject ...` incidents, decoded as ingest decodes them, fire the
    library's rules for them, once each (the whole library listening, 20 simulated
    minutes): a CO leak is one garage_co alarm, not one per sensor."""
    firings, about = _simulate(sample_db_url, base,
                               [*INCIDENT_RULES, *INCIDENT_COMMANDS], start=T0, minutes=20)
    for spec, rule_id in INCIDENT_RULES.items():
        assert len(_alarms(firings, rule_id, about[spec])) == 1, (spec, rule_id)
    for spec, rule_id in INCIDENT_COMMANDS.items():
        cut = _fired(firings, rule_id, about[spec])
        assert [i.command for f in cut for i in f.intents] == ["cut_off"], spec
    fans = [i for f in firings if f.rule_id == "garage-co" for i in f.intents
            if isinstance(i, act.SendCommand)]
    assert fans[0].command == "start" and len(fans[0].device_ids) == 4
    assert any(isinstance(i, act.SendCommand) and i.command == "cut_off"
               for f in firings if f.rule_id == "ev-charger-overheat" for i in f.intents)


def test_dry_soil_in_the_cool_hours_opens_that_areas_valves_once(base, sample_db_url
                                                                 ) -> None:
    """At 07:00 (the rule waters in the cool hours only), a dry green area: one firing."""
    spec = "dry-soil:中心花园西"
    firings, about = _simulate(sample_db_url, base, [spec], start=T0 - timedelta(hours=3),
                               minutes=40, tick_s=5.0)
    opened = _fired(firings, "irrigation-dry-soil", about[spec])
    assert len(opened) == 1
    valves = one(list(opened[0].intents), act.SendCommand, "open").device_ids
    assert {base.devices[v].facility_id for v in valves} == {"wh-guanggu-f083"}


def test_a_resident_not_seen_raises_one_alarm_after_their_hours(base, sample_db_url
                                                                ) -> None:
    """An elderly resident living alone not seen from Tuesday 10:00: 36 h later it is 22:00,
    quiet hours, so one care_not_out alarm on Thursday at 07:00 (gates and doors alone)."""
    person = _cared(Run("special-care-not-out", base), "elderly_alone")
    spec = f"elderly-not-seen:{person.id}"
    firings, _ = _simulate(sample_db_url, base, [spec], start=T0, minutes=46 * 60,
                           step=10, tick_s=60.0, only=("access_gate", "access_door"))
    assert _alarms(firings, "special-care-not-out", {person.id}) == [person.id]
    raised = _fired(firings, "special-care-not-out", {person.id})
    assert [f.at for f in raised] == [T0 + timedelta(hours=45)]
    assert not _fired(firings, "special-care-not-back", {person.id})


def test_an_intrusion_at_night_raises_one_alarm_when_the_door_opens(base, sample_db_url
                                                                    ) -> None:
    """At 02:00 the household goes out and arms the flat (no alarm for their own door),
    someone opens it 5 min later (the alarm), and they come back disarming first."""
    spec = "intrusion:wh-guanggu-b01-u0101"
    start = T0 - timedelta(hours=8)
    firings, about = _simulate(sample_db_url, base, [spec], start=start, minutes=25,
                               tick_s=5.0)
    assert len(_alarms(firings, "smart-home-intrusion", about[spec])) == 1
    raised = _fired(firings, "smart-home-intrusion", {"wh-guanggu-b01-u0101"})
    assert raised and raised[0].at == start + timedelta(minutes=5)
    assert raised[-1].at < start + timedelta(minutes=20)  # not at their return


def test_a_resident_not_back_raises_one_alarm_after_their_hours(base, sample_db_url
                                                                ) -> None:
    """An elderly resident living alone goes out at 08:00 and is not back: one
    care_not_back alarm at 20:00, twelve hours later (gates and doors simulated alone)."""
    person = _cared(Run("special-care-not-back", base), "elderly_alone")
    spec = f"elderly-not-back:{person.id}"
    start = T0 - timedelta(hours=2)  # 08:00 in Wuhan
    firings, about = _simulate(sample_db_url, base, [spec], start=start, minutes=13 * 60,
                               step=10, tick_s=60.0, only=("access_gate", "access_door"))
    assert _alarms(firings, "special-care-not-back", about[spec]) == [person.id]
    raised = next(f for f in _fired(firings, "special-care-not-back", about[spec]))
    assert timedelta(hours=12) <= raised.at - start <= timedelta(hours=12, minutes=15)
    assert not _fired(firings, "special-care-not-out", about[spec])


def test_the_simulated_world_obeys_what_the_rules_send(base, sample_db_url) -> None:
    """Closing the loop: the commands and broadcasts the library sends for a CO leak and an
    overheating charger go back to the simulator, which acks them all and changes: the
    garage's fans run, the charger is cut off (0 kW, idle) and cools down."""
    import orjson
    import psycopg

    from ingest import contract
    from ingest.decode import Decoded, decode
    from ingest.rules import observations
    from ingest.simulator import Simulation, load_community

    with psycopg.connect(sample_db_url) as conn:
        community = load_community(conn, C)
    sim = Simulation(community, start=T0, seed=3)
    sim.opening()
    charger = sim.inject("charger-overheat:1号充电棚").devices[0]
    sim.inject("co-leak:1号地库")
    snap = dataclasses.replace(base, latest={}, last_seen={}, last_access={})
    engine = Engine(LIBRARY.values(), snap, started=T0)
    directory = snap.devices
    acks: list[tuple[str, str, contract.Ack]] = []
    telemetry: dict[str, list[tuple[datetime, dict]]] = {}
    sent = 0

    def carry_out(intents: list[act.Intent]) -> None:
        nonlocal sent
        for intent in intents:
            if isinstance(intent, act.SendCommand):
                todo = [(d, intent.command, intent.args) for d in intent.device_ids]
            elif isinstance(intent, act.Broadcast):
                todo = [(d, "broadcast", {"text": intent.message}) for d in intent.speaker_ids]
            else:
                continue
            for device, command, args in todo:
                sent += 1
                payload = orjson.dumps({"id": f"c{sent}", "ts": contract.fmt_time(sim.clock),
                                        "command": command, "args": args})
                for _, ack in sim.obey(contract.topic(C, device, "cmd"), payload):
                    acks.append((device, command, contract.Ack.model_validate_json(ack)))

    for minute in range(1, 41):
        now = T0 + timedelta(minutes=minute)
        rows = Decoded()
        for topic, payload in sim.advance(now):
            decode(topic, payload, now, directory.get, rows)
            if topic.endswith("/telemetry"):
                body = orjson.loads(payload)
                telemetry.setdefault(topic.split("/")[3], []).append(
                    (datetime.fromisoformat(body["ts"]), body["readings"]))
        assert rows.dead == []
        for obs in observations(rows, directory.get):
            for f in engine.observe(obs):
                carry_out(f.intents)
        for f in engine.tick(now):
            carry_out(f.intents)
    assert len(acks) == sent  # every command answered
    assert {command for _, command, _ in acks} == {"start", "stop", "broadcast", "cut_off"}
    assert all(a.ok for *_, a in acks), [a.detail for *_, a in acks if not a.ok]
    cut_at = next(a.ts for d, command, a in acks if d == charger and command == "cut_off")
    after = [r for ts, r in telemetry[charger] if ts > cut_at]
    assert after and after[0]["power"] == 0 and after[0]["status"] == "idle"
    assert after[-1]["temperature"] < 60
    started = {d: a.ts for d, command, a in acks if command == "start"}
    stopped = {d: a.ts for d, command, a in acks if command == "stop"}
    assert len(started) == 4 and started.keys() == stopped.keys()
    for fan, began in started.items():
        ran = {r["running"] for ts, r in telemetry[fan] if began < ts <= stopped[fan]}
        assert ran == {"on"}, fan
        assert telemetry[fan][-1][1]["running"] == "off"  # stopped once the air cleared


def test_geofence_and_weekday_windows(base) -> None:
    """Conditions no shipped rule uses yet: a geofence round a facility, and weekdays."""
    from twin.rules.compile import compile_text

    rule = compile_text("""
id: dog-in-playground
title: A dog in the playground on a school day afternoon
domain: environment
nodes:
  - id: cam
    source: {device_types: [ai_camera], classes: [unleashed_dog]}
  - id: near
    after: cam
    geofence: {facility_kind: playground, margin_m: 40}
  - id: school
    after: near
    time_window: {start: "08:00", end: "17:00", days: [mon, tue, wed, thu, fri]}
  - id: alarm
    after: school
    raise_alarm: {type: dog_in_playground, severity: info, title: {zh-CN: "{device_name} 有狗", en: "Dog at {device_name}"}}
""")
    snap = dataclasses.replace(base, latest={}, last_seen={}, last_access={})
    engine = Engine([rule], snap, started=T0)
    inside = next(d for d in sorted(snap.of_type("ai_camera"))
                  if snap.facilities.get(snap.devices[d].facility_id or "")
                  and snap.facilities[snap.devices[d].facility_id].kind == "playground")
    outside = next(d for d in sorted(snap.of_type("ai_camera"))
                   if snap.devices[d].facility_id is None)

    def fires(device: str, at: datetime, **attrs) -> bool:
        return bool(engine.observe(Observation(C, device, at, "event", event="detection",
                                               cls="unleashed_dog", confidence=0.9,
                                               attrs=attrs)))

    assert fires(inside, T0)                                  # Tuesday 10:00, in the playground
    assert not fires(outside, T0 + s(1))                      # elsewhere
    saturday = T0 + timedelta(days=(5 - T0.weekday()) % 7)
    assert not fires(inside, saturday + s(2))                 # not a school day
    f = snap.facilities[snap.devices[inside].facility_id]
    assert fires(outside, T0 + s(3), lon=f.lon, lat=f.lat)    # the event's own position wins


def test_a_quiet_weekday_evening_raises_no_intrusion(base, sample_db_url) -> None:
    """Commuters coming home disarm their hub as they open the door: no 'intrusion' from the
    simulator's ordinary evening (three simulated hours, the whole library listening)."""
    import psycopg

    from ingest.decode import Decoded, decode
    from ingest.rules import observations
    from ingest.simulator import Simulation, load_community

    evening = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)  # Tuesday 17:00 in Wuhan
    with psycopg.connect(sample_db_url) as conn:
        community = load_community(conn, C)
    sim = Simulation(community, start=evening, seed=5)
    sim.opening()
    snap = dataclasses.replace(base, latest={}, last_seen={}, last_access={})
    engine = Engine(LIBRARY.values(), snap, started=evening)
    directory = snap.devices
    fired: list[str] = []
    returns = 0
    for minute in range(1, 181):
        now = evening + timedelta(minutes=minute)
        rows = Decoded()
        for topic, payload in sim.advance(now):
            returns += b'"occupants":"return"' in payload
            decode(topic, payload, now, directory.get, rows)
        for obs in observations(rows, directory.get):
            fired += [f.rule_id for f in engine.observe(obs)]
    assert returns > 50, "the evening should bring commuters home"
    assert "smart-home-intrusion" not in fired


def test_a_normal_night_raises_no_alarm(base, sample_db_url) -> None:
    """The simulator's ordinary night (00:30-04:30, no incident), the whole library
    listening and every command carried back to the simulated devices: not one alarm.
    The meters have no learnt baseline here (a fresh twin), and the chargers plugged in
    and cut off when full do not trip the early over-temperature warning."""
    import orjson
    import psycopg

    from ingest import contract
    from ingest.decode import Decoded, decode
    from ingest.rules import observations
    from ingest.simulator import Simulation, load_community

    start = datetime(2026, 11, 24, 16, 30, tzinfo=UTC)  # Wednesday 00:30 in Wuhan
    with psycopg.connect(sample_db_url) as conn:
        community = load_community(conn, C)
    sim = Simulation(community, start=start, seed=11)
    sim.opening()
    snap = dataclasses.replace(base, latest={}, last_seen={}, last_access={})
    engine = Engine(LIBRARY.values(), snap, started=start)
    directory = snap.devices
    raised: list[tuple[str, str]] = []
    sent = 0

    def carry_out(intents: tuple[act.Intent, ...]) -> None:
        nonlocal sent
        for intent in intents:
            if isinstance(intent, act.RaiseAlarm):
                raised.append((intent.spec.rule_id or "", intent.spec.source_id))
            if isinstance(intent, act.SendCommand):
                for device in intent.device_ids:
                    sent += 1
                    sim.obey(contract.topic(C, device, "cmd"), orjson.dumps(
                        {"id": f"c{sent}", "ts": contract.fmt_time(sim.clock),
                         "command": intent.command, "args": intent.args}))

    for minute in range(1, 241):
        now = start + timedelta(minutes=minute)
        rows = Decoded()
        for topic, payload in sim.advance(now):
            decode(topic, payload, now, directory.get, rows)
        for obs in observations(rows, directory.get):
            for f in engine.observe(obs):
                carry_out(f.intents)
        for f in engine.tick(now):
            carry_out(f.intents)
    assert raised == []
