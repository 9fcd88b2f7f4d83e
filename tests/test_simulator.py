"""The device simulator: its stream (pure) and its publishing to the real broker.

Every message is checked the way ingest checks it (:func:`ingest.decode.decode`
parses each payload with the contract's models and refuses readings outside the
registry's ranges), so "no dead letters" means valid and in range.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import numpy as np
import orjson
import paho.mqtt.client as mqtt
import pandas as pd
import psycopg
import pytest
import shapely

from gis_data.dataset import Dataset
from ingest import contract
from ingest.broker import forget_session
from ingest.decode import Decoded, decode
from ingest.service import IngestOptions, IngestService
from ingest.simulator import (
    INCIDENTS,
    RELAYED_TYPES,
    REPORT_INTERVAL_S,
    Community,
    Message,
    Simulation,
    run_simulation,
)
from ingest.simulator.simulation import DOMAINS
from tests.mqtt_helpers import Publisher, clear_retained, wait_until
from twin.device_types import (
    ACCESS_METHODS,
    BADGE_TYPE,
    CAMERA_CLASSES,
    DEVICE_TYPES,
    GRANTED_BY_TWIN,
)
from twin.model import DeviceInfo
from twin.services.broker_accounts import ADMIN, INGEST, RULES, SIMULATOR
from twin.walkgraph import WalkGraph, from_rows

SHANGHAI = timezone(timedelta(hours=8))
#: Monday 2 June 2025, local midnight.
MONDAY = datetime(2025, 6, 2, tzinfo=SHANGHAI)
#: Buildings kept in the small community: 洋房 1栋, the clubhouse, tower 5栋 (two lifts).
BUILDINGS = ("wh-guanggu-b01", "wh-guanggu-b03", "wh-guanggu-b07")
#: Facilities left out of the small community, to keep the day quick.
LEFT_OUT = ("2号充电棚", "3号充电棚", "4号垃圾站", "5号垃圾站", "6号垃圾站", "7号垃圾站",
            "8号垃圾站", "9号垃圾站", "10号垃圾站", "北侧绿地", "西南绿地", "东南绿地")


def community_of(dataset: Dataset, *, buildings: tuple[str, ...] | None = None,
                 left_out: tuple[str, ...] = (), staff: bool = False) -> Community:
    """The simulator's frames from a dataset, optionally only some buildings and facilities;
    with ``staff``, the staff, their badges and the walkways they patrol (without, no badges:
    the other domains' streams stay as their seeds made them)."""
    tables = dict(dataset.tables())
    device = pd.DataFrame(tables["device"].drop(columns="geometry"))
    if not staff:
        device = device[device["type"] != BADGE_TYPE]
    facility = pd.DataFrame(tables["facility"][["id", "kind", "name", "building_id"]])
    if buildings is not None:
        device = device[device["building_id"].isna() | device["building_id"].isin(buildings)]
    dropped = facility.loc[facility["name"].isin(left_out), "id"]
    device = device[~device["facility_id"].isin(dropped)]
    unit_building = tables["unit"].set_index("id")["building_id"]
    r = tables["resident"]
    residents = pd.DataFrame({
        "id": r["id"], "unit_id": r["unit_id"], "building_id": r["unit_id"].map(unit_building),
        "care_flags": r["care_flags"], "age_band": r["age_band"],
    })
    roster, walkway = (_staff_frame(tables), _walkway(tables)) if staff else (None, None)
    return Community(devices=device.reset_index(drop=True), residents=residents,
                     facilities=facility,
                     buildings=pd.DataFrame(tables["building"][["id", "name"]]),
                     staff=roster, walkway=walkway)


def _staff_frame(tables: dict) -> pd.DataFrame:
    s, posts = tables["staff"], tables["facility"].set_index("id").geometry
    where = posts.reindex(s["post_id"]).to_numpy()
    return pd.DataFrame({"id": s["id"], "shift": s["shift"], "badge_id": s["badge_id"],
                         "post_lon": shapely.get_x(where), "post_lat": shapely.get_y(where)})


def _walkway(tables: dict) -> WalkGraph:
    srid = int(tables["community"]["local_srid"].iloc[0])
    n, e = tables["walk_node"].to_crs(srid), tables["walk_edge"].to_crs(srid)
    return from_rows(
        list(zip(n["id"], n["kind"], n["ref_id"], n.geometry.x, n.geometry.y)),
        list(zip(e["id"], e["source"], e["target"], e["kind"], e["length_m"],
                 shapely.to_wkb(e.geometry.to_numpy()))), crs=srid)


def accepted(community: Community, messages: list[Message], *,
             received_at: datetime) -> Decoded:
    """What ingest makes of the messages (rows, or dead letters with the reason)."""
    d = community.devices
    directory = {i: DeviceInfo(i, t, c)
                 for i, t, c in zip(d["id"], d["type"], d["community_id"])}
    into = Decoded()
    for topic, payload in messages:
        decode(topic, payload, received_at, directory.get, into)
    return into


def readings_frame(decoded: Decoded, community: Community) -> pd.DataFrame:
    r = pd.DataFrame(decoded.readings,
                     columns=["time", "device", "metric", "value", "text", "received"])
    r["time"] = pd.to_datetime(r["time"], utc=True)
    r["type"] = r["device"].map(dict(zip(community.devices["id"], community.devices["type"])))
    r["hour"] = _local_hours(r["time"])
    return r


def events_frame(decoded: Decoded, community: Community) -> pd.DataFrame:
    e = pd.DataFrame(decoded.events, columns=[
        "time", "device", "event_id", "kind", "class", "confidence", "method", "direction",
        "subject", "value", "attrs", "received"])
    e["time"] = pd.to_datetime(e["time"], utc=True)
    e["type"] = e["device"].map(dict(zip(community.devices["id"], community.devices["type"])))
    e["hour"] = _local_hours(e["time"])
    return e


def _local_hours(times: pd.Series) -> pd.Series:
    local = times.dt.tz_convert("Asia/Shanghai")
    return local.dt.hour + local.dt.minute / 60


@pytest.fixture(scope="module")
def small(sample: Dataset) -> Community:
    return community_of(sample, buildings=BUILDINGS, left_out=LEFT_OUT)


@pytest.fixture(scope="module")
def day(small: Community) -> dict:
    """One simulated Monday of the small community, from local midnight, a tick a minute."""
    sim = Simulation(small, start=MONDAY, seed=3, tick_s=60)
    messages = sim.opening() + sim.advance(MONDAY + timedelta(days=1))
    decoded = accepted(small, messages, received_at=MONDAY + timedelta(days=1, minutes=1))
    return {"messages": messages, "decoded": decoded,
            "readings": readings_frame(decoded, small), "events": events_frame(decoded, small)}


# --- the stream is valid ---------------------------------------------------------------

def test_every_payload_validates_and_every_reading_is_in_range(day: dict) -> None:
    for topic, payload in day["messages"]:
        parts = contract.parse_topic(topic)
        assert parts is not None, topic
        contract.PAYLOADS[parts[2]].model_validate_json(payload)
    decoded = day["decoded"]
    assert decoded.dead == [], decoded.dead[:3]
    assert len(decoded.readings) > 50_000 and len(decoded.events) > 1_000


def test_every_device_type_has_a_reporting_interval() -> None:
    assert set(REPORT_INTERVAL_S) == set(DEVICE_TYPES)


def test_each_device_type_is_played_by_one_domain_module_of_its_registry_domain() -> None:
    played = [code for domain in DOMAINS for code in domain.types]
    assert sorted(played) == sorted(DEVICE_TYPES)  # every type, once
    for domain in DOMAINS:
        assert len({DEVICE_TYPES[code].domain for code in domain.types}) <= 1, domain


def test_every_device_of_every_type_speaks_in_a_day(day: dict, small: Community) -> None:
    # staff badges walk with their wearers: see the patrol tests at the end
    types = set(DEVICE_TYPES) - {BADGE_TYPE}
    assert set(small.devices["type"]) == types
    r = day["readings"]
    assert set(r["type"]) == types
    assert set(r["device"]) == set(small.devices["id"])
    statuses = day["decoded"].statuses
    assert set(statuses) == set(small.devices["id"])
    assert all(online for online, _ in statuses.values())
    for code, spec in DEVICE_TYPES.items():
        if code == BADGE_TYPE:
            continue
        assert set(r.loc[r["type"] == code, "metric"]) == set(spec.metrics), code


def test_access_peaks_at_commuting_hours_and_is_quiet_at_night(day: dict,
                                                               small: Community) -> None:
    e = day["events"]
    access = e[e["kind"] == "access"]
    h = access["hour"]
    rush = (h.between(7, 9, inclusive="left") | h.between(17, 19, inclusive="left")).sum()
    night = h.between(2, 4, inclusive="left").sum()
    assert rush > 15 * max(night, 1)
    morning = access[h.between(7, 9, inclusive="left")]
    evening = access[h.between(17, 19, inclusive="left")]
    assert (morning["direction"] == "out").mean() > 0.7
    assert (evening["direction"] == "in").mean() > 0.7
    shares = access["method"].value_counts(normalize=True)
    # residents' own credentials in a realistic mix; remote and visitor QR openings only
    # ever come from the twin's commands
    assert set(shares.index) <= set(ACCESS_METHODS) - GRANTED_BY_TWIN
    assert {"face", "card", "nfc", "qr", "intercom", "exit_button"} <= set(shares.index)
    assert shares.idxmax() == "face" and shares["face"] > 0.4
    assert (access.loc[access["method"] == "exit_button", "direction"] == "out").all()
    # A door lets in the residents of its building; a visitor on the intercom is anonymous.
    doors = access[access["type"] == "access_door"]
    building_of = small.devices.set_index("id")["building_id"]
    lives_in = small.residents.set_index("id")["building_id"]
    known = doors[doors["subject"].notna()]
    residential = known["device"].map(building_of).isin(small.residents["building_id"])
    assert (known.loc[residential, "subject"].map(lives_in)
            == known.loc[residential, "device"].map(building_of)).all()
    assert access.loc[access["method"] == "intercom", "subject"].isna().all()


def test_residents_come_and_go_in_turn_and_nobody_with_care_stays_out_too_long(
        day: dict, small: Community) -> None:
    """The special-care rules read a resident's passages: on a normal day they go out
    and come back in turn, and nobody with a care flag is out for as long as a rule
    would worry about (6 h for a child, 12 h for elderly living alone)."""
    e = day["events"]
    known = e[(e["kind"] == "access") & e["subject"].notna()].sort_values("time")
    ways = known.groupby("subject")["direction"].agg(list)
    assert all(a != b for way in ways for a, b in pairwise(way))  # out, in, out ...
    assert (ways.str[0] == "out").all()  # everybody starts the day at home
    end = MONDAY + timedelta(days=1)
    limits = {"child": 6, "elderly_alone": 12}
    flags = small.residents.set_index("id")["care_flags"]
    last = known.groupby("subject").tail(1).set_index("subject")
    out = last[last["direction"] == "out"]
    for who, row in out.iterrows():
        hours = [limits[f] for f in flags.get(who, []) if f in limits]
        if hours:
            assert (end - row["time"]).total_seconds() / 3600 < min(hours), who
    # and within the day, no out-and-back of a child lasted 6 h
    children = [who for who, f in flags.items() if "child" in list(f)]
    for who in set(children) & set(ways.index):
        times = known.loc[known["subject"] == who, "time"].tolist()
        assert all((b - a).total_seconds() < 6 * 3600 for a, b in zip(times[::2], times[1::2]))


def test_a_normal_day_has_only_guesses_from_the_cameras(day: dict) -> None:
    """Without an incident the cameras' detections are low-confidence guesses, which
    every rule's ``min_confidence`` (0.6 and up) sets aside; dogs are real."""
    e = day["events"]
    seen = e[(e["kind"] == "detection") & (e["class"] != "unleashed_dog")]
    assert len(seen) > 0 and (seen["confidence"] < 0.6).all()


def test_chargers_are_plugged_in_in_the_evening_and_stop_hours_later(day: dict) -> None:
    e = day["events"]
    starts = e[e["kind"] == "charge_start"]
    stops = e[e["kind"] == "charge_stop"]
    evening = starts["hour"].between(18, 23, inclusive="left")
    # five evening hours hold most plug-ins (a fifth of the day would be 0.21)
    assert evening.mean() > 0.5 and len(starts) > 10
    session = e["attrs"].str.extract(r'"session":"([^"]+)"', expand=False)
    started_at = e.loc[e["kind"] == "charge_start"].assign(session=session)
    started_at = started_at.set_index("session")["time"]
    stopped = stops.assign(session=session[stops.index])
    known = stopped[stopped["session"].isin(started_at.index)]
    assert len(known) > 5
    began = started_at.loc[known["session"]].reset_index(drop=True)
    hours = (known["time"].reset_index(drop=True) - began).dt.total_seconds() / 3600
    assert hours.between(2, 6).all()
    assert (known["value"] > 0.3).all()  # energy_kwh
    r = day["readings"]
    status = r[(r["type"] == "ev_charger") & (r["metric"] == "status")]
    charging = status.assign(on=status["text"] == "charging").groupby(
        status["hour"].astype(int))["on"].mean()
    assert charging[21] > 3 * charging[11]


def test_bins_fill_through_the_day_and_are_emptied_morning_and_evening(day: dict) -> None:
    r = day["readings"]
    fill = r[(r["type"] == "trash_bin_sensor") & (r["metric"] == "fill")]
    by_hour = fill.groupby(fill["hour"].astype(int))["value"].mean()
    assert by_hour[6] > by_hour[8] + 5       # emptied around 07:00
    assert by_hour[18] > by_hour[8] + 20     # filling all day
    assert by_hour[18] > by_hour[20] + 20    # emptied around 19:00


def test_soil_dries_by_day_and_is_wetted_by_irrigation(day: dict) -> None:
    r = day["readings"]
    soil = r[(r["type"] == "soil_sensor") & (r["metric"] == "soil_moisture")]
    by_hour = soil.groupby(soil["hour"].astype(int))["value"].mean()
    assert by_hour[17] < by_hour[8] - 2      # dries through the day
    assert by_hour[20] > by_hour[17] + 1     # watered at 18:30
    valves = r[(r["type"] == "irrigation_valve") & (r["metric"] == "valve")]
    opened = valves.loc[valves["text"] == "open", "hour"]
    assert len(opened) > 0 and (opened.between(6, 7.5) | opened.between(18.5, 20)).all()


def test_garage_co_is_low_with_rush_hour_peaks_and_smoke_is_quiet(day: dict) -> None:
    r = day["readings"]
    co = r[(r["type"] == "co_sensor") & (r["metric"] == "co")]
    assert co["value"].max() < 50
    by_hour = co.groupby(co["hour"].astype(int))["value"].mean()
    assert by_hour[8] > 2 * by_hour[3] and by_hour[18] > 2 * by_hour[14]
    smoke = r[(r["type"] == "smoke_detector") & (r["metric"] == "smoke_obscuration")]
    assert smoke["value"].max() < 1.0
    assert not (day["events"]["kind"] == "smoke_alarm").any()


def test_meters_follow_the_day_and_count_up(day: dict) -> None:
    r = day["readings"]
    power = r[(r["type"] == "power_meter") & (r["metric"] == "power")]
    by_hour = power.groupby(power["hour"].astype(int))["value"].mean()
    assert by_hour[20] > 2 * by_hour[3]
    total = r[(r["type"] == "water_meter") & (r["metric"] == "total")].sort_values("time")
    assert (total.groupby("device")["value"].diff().dropna() >= 0).all()


def test_homes_are_armed_away_during_working_hours(day: dict) -> None:
    r = day["readings"]
    away = r[(r["type"] == "smart_home_hub") & (r["metric"] == "away_mode")]
    on = away.assign(on=away["text"] == "on").groupby(away["hour"].astype(int))["on"].mean()
    assert 0.2 < on[11] < 1.0
    assert on[23] == 0 and on[3] == 0


def test_cameras_detect_rarely_and_only_known_classes(day: dict, small: Community) -> None:
    e = day["events"]
    detections = e[e["kind"] == "detection"]
    cameras = (small.devices["type"] == "ai_camera").sum()
    assert 0 < len(detections) < 3 * cameras
    assert set(detections["class"]) <= set(CAMERA_CLASSES)
    assert (detections["type"] == "ai_camera").all()


def test_gateways_count_the_devices_they_relay(day: dict, small: Community) -> None:
    d = small.devices
    r = day["readings"]
    connected = r[(r["type"] == "iot_gateway") & (r["metric"] == "connected_devices")]
    reported = connected.groupby("device")["value"].last()
    gateways = d[(d["type"] == "iot_gateway") & d["building_id"].notna()]
    relayed = d[d["type"].isin(RELAYED_TYPES)].groupby("building_id").size()
    for gateway, building in zip(gateways["id"], gateways["building_id"]):
        assert reported[gateway] == relayed[building]


# --- batching --------------------------------------------------------------------------

def test_gateways_batch_what_they_relay_and_nothing_is_lost(small: Community) -> None:
    start = MONDAY + timedelta(hours=7)
    end = start + timedelta(hours=2)
    plain = Simulation(small, start=start, seed=5, tick_s=30)
    one_by_one = plain.advance(end)
    batched = Simulation(small, start=start, seed=5, tick_s=30, batch_size=20)
    grouped = batched.advance(end) + batched.flush()
    d = small.devices.set_index("id")
    kinds = [contract.parse_topic(t) for t, _ in grouped]
    batches = [(device, payload) for (_, device, kind), (_, payload) in zip(kinds, grouped)
               if kind == "batch"]
    assert batches
    for device, payload in batches:
        items = contract.Batch.model_validate_json(payload).items
        assert d.loc[device, "type"] == "iot_gateway" and len(items) <= 20
        assert {d.loc[i.device, "building_id"] for i in items} == {d.loc[device, "building_id"]}
        assert {d.loc[i.device, "type"] for i in items} <= set(RELAYED_TYPES)
    own = {device for _, device, kind in kinds if kind in ("telemetry", "event")}
    assert not any(d.loc[device, "type"] in RELAYED_TYPES and pd.notna(d.loc[device, "building_id"])
                   for device in own)
    received = end + timedelta(minutes=1)
    a = accepted(small, one_by_one, received_at=received)
    b = accepted(small, grouped, received_at=received)
    assert a.dead == [] and b.dead == []
    assert sorted(a.readings, key=repr) == sorted(b.readings, key=repr)
    assert len(grouped) < len(one_by_one)


# --- incidents -------------------------------------------------------------------------

def _incident(community: Community, spec: str, *, minutes: float = 40,
              seed: int = 11) -> tuple[pd.DataFrame, pd.DataFrame, Decoded, Simulation]:
    """Ten in the morning on Monday, then ``spec`` injected, for ``minutes``."""
    start = MONDAY + timedelta(hours=10)
    sim = Simulation(community, start=start, seed=seed, tick_s=20)
    sim.inject(spec)
    end = start + timedelta(minutes=minutes)
    decoded = accepted(community, sim.advance(end) + sim.flush(),
                       received_at=end + timedelta(minutes=1))
    assert decoded.dead == []
    return readings_frame(decoded, community), events_frame(decoded, community), decoded, sim


def _at(community: Community, facility_name: str, code: str) -> set[str]:
    f = community.facilities
    place = f.loc[f["name"] == facility_name, "id"].item()
    d = community.devices
    return set(d.loc[(d["facility_id"] == place) & (d["type"] == code), "id"])


def test_co_leak_raises_that_garages_co_far_over_50_ppm(small: Community) -> None:
    r, *_ = _incident(small, "co-leak:1号地库")
    co = r[(r["type"] == "co_sensor") & (r["metric"] == "co")]
    leaking = co[co["device"].isin(_at(small, "1号地库", "co_sensor"))]
    assert leaking["value"].max() > 120
    assert (leaking.groupby("device")["value"].max() > 50).all()
    over = leaking[leaking["value"] > 50]
    assert over["time"].max() - over["time"].min() > timedelta(minutes=10)
    assert co.loc[~co["device"].isin(_at(small, "1号地库", "co_sensor")), "value"].max() < 50
    fans = r[(r["type"] == "exhaust_fan") & (r["metric"] == "running")
             & r["device"].isin(_at(small, "1号地库", "exhaust_fan"))]
    leak_start = MONDAY + timedelta(hours=10)
    during = fans["time"].between(leak_start + timedelta(minutes=8),
                                  leak_start + timedelta(minutes=25))
    assert during.sum() >= 4 and (fans.loc[during, "text"] == "on").all()


@pytest.mark.parametrize("target", ["南门(主入口)", "fire-lane camera"])
def test_fire_lane_parking_is_detected_again_and_again(small: Community, target: str) -> None:
    """One parked car, seen by one camera: the gate's first, or the camera named."""
    d = small.devices
    if target == "fire-lane camera":
        outdoor = d[(d["type"] == "ai_camera") & d["building_id"].isna()
                    & d["facility_id"].isna()]
        target = outdoor["id"].iloc[0]
        camera = target
    else:
        camera = min(_at(small, target, "ai_camera"))
    _, e, *_ = _incident(small, f"fire-lane-parking:{target}", minutes=20)
    parked = e[(e["kind"] == "detection") & (e["class"] == "fire_lane_parking")]
    assert set(parked["device"]) == {camera}
    assert len(parked) >= 10


def test_high_altitude_throw_is_seen_by_that_buildings_camera(small: Community) -> None:
    b = small.buildings.set_index("id")
    _, e, *_ = _incident(small, f"high-altitude-throw:{b.loc['wh-guanggu-b07', 'name']}",
                         minutes=5)
    throws = e[(e["kind"] == "detection") & (e["class"] == "high_altitude_throw")]
    d = small.devices.set_index("id")
    assert len(throws) >= 1
    assert set(d.loc[throws["device"], "building_id"]) == {"wh-guanggu-b07"}
    assert throws["attrs"].str.contains("floor_estimate").all()


@pytest.mark.parametrize("target", ["wh-guanggu-b07", "5栋2号电梯"])
def test_ebike_in_lift_is_seen_by_one_lift_camera(small: Community, target: str) -> None:
    """One e-bike, in one lift: the building's first lift, or the lift named."""
    _, e, *_ = _incident(small, f"ebike-in-lift:{target}", minutes=15)
    ebikes = e[(e["kind"] == "detection") & (e["class"] == "ebike_in_lift")]
    f = small.facilities.set_index("id")
    lifts = f[(f["kind"] == "elevator") & (f["building_id"] == "wh-guanggu-b07")]
    lift = lifts.index.min() if target.startswith("wh-") else \
        lifts.index[lifts["name"] == target].item()
    d = small.devices.set_index("id")
    assert set(d.loc[ebikes["device"], "facility_id"]) == {lift}
    assert len(ebikes) >= 5  # every 2 min for 10 min


def test_charger_overheat_takes_one_charger_over_80_degrees(small: Community) -> None:
    r, *_ = _incident(small, "charger-overheat:1号充电棚")
    temperature = r[(r["type"] == "ev_charger") & (r["metric"] == "temperature")]
    hot = temperature[temperature["value"] > 80]
    assert hot["device"].nunique() == 1
    assert hot["device"].iloc[0] in _at(small, "1号充电棚", "ev_charger")
    assert temperature["value"].max() < 100
    status = r[(r["device"] == hot["device"].iloc[0]) & (r["metric"] == "status")]
    assert (status["text"] == "charging").all()


def test_trash_overflow_fills_the_bins_and_the_camera_sees_it(small: Community) -> None:
    r, e, *_ = _incident(small, "trash-overflow:1号垃圾站", minutes=30)
    bins = _at(small, "1号垃圾站", "trash_bin_sensor")
    fill = r[(r["metric"] == "fill") & r["device"].isin(bins)]
    assert set(fill["device"]) == bins and (fill["value"] == 100).all()
    overflow = e[(e["kind"] == "detection") & (e["class"] == "garbage_overflow")]
    assert set(overflow["device"]) == _at(small, "1号垃圾站", "ai_camera")
    assert len(overflow) >= 2


@pytest.mark.parametrize("place", ["1号泵房", "2号地库", "sensor"])
def test_water_leak_turns_one_sensor_there_wet(small: Community, place: str) -> None:
    """The water reaches one sensor of the place (its first), or the sensor named."""
    sensor = min(_at(small, "2号地库", "water_leak_sensor")) if place == "sensor" else \
        min(_at(small, place, "water_leak_sensor"))
    r, *_ = _incident(small, f"water-leak:{sensor if place == 'sensor' else place}",
                      minutes=5)
    leak = r[r["metric"] == "leak"]
    assert set(leak.loc[leak["text"] == "wet", "device"]) == {sensor}


def test_device_offline_says_so_then_falls_silent(small: Community) -> None:
    d = small.devices
    sensor = d.loc[d["type"] == "co_sensor", "id"].iloc[0]
    r, e, decoded, _ = _incident(small, f"device-offline:{sensor}", minutes=20)
    assert decoded.statuses[sensor][0] is False
    assert sensor not in set(r["device"]) and sensor not in set(e["device"])
    assert len(r) > 1000


def test_a_resident_not_seen_has_no_access_events(small: Community, day: dict) -> None:
    access = day["events"][day["events"]["kind"] == "access"]
    busiest = access["subject"].value_counts().index[0]
    sim = Simulation(small, start=MONDAY, seed=3, tick_s=60)
    sim.inject(f"elderly-not-seen:{busiest}")
    decoded = accepted(small, sim.advance(MONDAY + timedelta(days=1)),
                       received_at=MONDAY + timedelta(days=1, minutes=1))
    e = events_frame(decoded, small)
    assert not (e["subject"] == busiest).any()
    assert (e["kind"] == "access").sum() > 0.8 * len(access)


def test_smoke_in_a_building_sounds_one_detector_until_it_clears(small: Community) -> None:
    r, e, _, sim = _incident(small, "smoke:5栋", minutes=20)
    detector = sim.started_incidents[0].devices[0]
    d = small.devices.set_index("id")
    floors = d.loc[(d["type"] == "smoke_detector") & (d["building_id"] == "wh-guanggu-b07"),
                   "floor"].astype(float)
    assert d.loc[detector, "building_id"] == "wh-guanggu-b07"
    assert float(d.loc[detector, "floor"]) == sorted(floors)[len(floors) // 2]
    alarms = e[e["kind"] == "smoke_alarm"]
    assert set(alarms["device"]) == {detector} and len(alarms) == 5  # every 2 min for 10 min
    smoke = r[r["metric"] == "smoke_obscuration"]
    mine = smoke[smoke["device"] == detector].sort_values("time")
    assert mine["value"].iloc[0] > 10 and mine["value"].iloc[-1] < 1  # then clear again
    assert smoke.loc[smoke["device"] != detector, "value"].max() < 1


def test_smoke_at_an_ev_shed_is_seen_by_its_camera(small: Community) -> None:
    _, e, *_ = _incident(small, "smoke:1号充电棚", minutes=15)
    fire = e[(e["kind"] == "detection") & (e["class"] == "smoke_fire")]
    assert set(fire["device"]) == _at(small, "1号充电棚", "ai_camera")
    assert len(fire) == 10 and (fire["confidence"] > 0.8).all()  # every minute for 10 min
    assert not (e["kind"] == "smoke_alarm").any()


def test_a_resident_not_back_goes_out_and_is_not_seen_again(small: Community,
                                                           day: dict) -> None:
    access = day["events"][day["events"]["kind"] == "access"]
    door_of = small.devices.set_index("id")["building_id"]
    at_doors = access[access["type"] == "access_door"]
    busiest = at_doors["subject"].value_counts().index[0]
    home = small.residents.set_index("id").loc[busiest, "building_id"]
    _, e, *_ = _incident(small, f"elderly-not-back:{busiest}", minutes=60)
    theirs = e[e["subject"] == busiest].sort_values("time")
    assert list(theirs["direction"]) == ["out", "out"]
    assert list(theirs["type"]) == ["access_door", "access_gate"]
    assert door_of[theirs["device"].iloc[0]] == home
    assert (theirs["time"].diff().dropna() == timedelta(minutes=1)).all()
    assert (e["kind"] == "access").sum() > 20  # the others still come and go


@pytest.mark.parametrize("hour", [10, 2])
def test_an_intrusion_moves_in_an_armed_flat(small: Community, hour: int) -> None:
    """At 10:00 the household is out at work already; at 02:00 it is at home, so it goes
    out and arms the flat first, and comes back (disarming first) when the incident ends."""
    hub = _of(small, "smart_home_hub")[0]
    unit = small.devices.set_index("id").loc[hub, "unit_id"]
    start = MONDAY + timedelta(hours=hour)
    sim = Simulation(small, start=start, seed=11, tick_s=20)
    sim.inject(f"intrusion:{unit}")
    end = start + timedelta(minutes=30)
    decoded = accepted(small, sim.advance(end), received_at=end + timedelta(minutes=1))
    assert decoded.dead == []
    r, e = readings_frame(decoded, small), events_frame(decoded, small)
    mode = r[(r["device"] == hub) & (r["metric"] == "away_mode")].sort_values("time")
    during = mode[mode["time"] < start + timedelta(minutes=20, seconds=-1)]
    assert len(during) >= 2 and (during["text"] == "on").all()
    seen = e[e["device"] == hub].sort_values("time")
    inside = seen[seen["time"].between(start + timedelta(minutes=5),
                                       start + timedelta(minutes=20), inclusive="left")]
    assert list(inside["kind"][:3]) == ["door_contact", "intrusion", "motion"]
    assert (inside["kind"] == "motion").sum() == 14  # every minute until it ends
    assert not (e.loc[e["device"] != hub, "kind"] == "intrusion").any()
    before = seen[seen["time"] < start + timedelta(minutes=5)]
    after = seen[seen["time"] >= start + timedelta(minutes=20)]
    if hour == 10:
        assert before.empty and after.empty and mode["text"].iloc[-1] == "on"
        return
    assert list(before["attrs"]) == ['{"contact":"open","occupants":"leave"}']
    assert list(after["attrs"]) == ['{"contact":"open","occupants":"return"}']
    off = mode[mode["text"] == "off"]
    assert off["time"].min() < after["time"].iloc[0]  # disarmed as they open the door
    assert mode.loc[mode["time"] > start + timedelta(minutes=20), "text"].eq("off").all()


def test_street_vending_is_seen_by_one_gate_camera(small: Community) -> None:
    _, e, *_ = _incident(small, "street-vending:南门(主入口)", minutes=60)
    stalls = e[(e["kind"] == "detection") & (e["class"] == "street_vending")
               & (e["confidence"] >= 0.7)]  # not the cameras' guesses elsewhere
    assert set(stalls["device"]) == {min(_at(small, "南门(主入口)", "ai_camera"))}
    assert len(stalls) >= 11 and (stalls["confidence"] > 0.8).all()  # every 5 min for 1 h


def test_charger_full_stops_a_pile_that_then_reads_full(small: Community) -> None:
    r, e, _, sim = _incident(small, "charger-full:1号充电棚", minutes=20)
    pile = sim.started_incidents[0].devices[0]
    assert pile in _at(small, "1号充电棚", "ev_charger")
    stops = e[(e["device"] == pile) & (e["kind"] == "charge_stop")]
    assert len(stops) == 1
    assert stops["time"].iloc[0] <= MONDAY + timedelta(hours=10, minutes=10)
    status = r[(r["device"] == pile) & (r["metric"] == "status")].sort_values("time")
    after = status[status["time"] > stops["time"].iloc[0]]
    assert len(after) >= 1 and (after["text"] == "full").all()


def test_dry_soil_dries_that_green_area_under_20_percent(small: Community) -> None:
    r, *_ = _incident(small, "dry-soil:中心花园西", minutes=45)
    soil = r[r["metric"] == "soil_moisture"]
    probes = _at(small, "中心花园西", "soil_sensor")
    late = soil[soil["time"] >= MONDAY + timedelta(hours=10, minutes=30)]
    assert set(late["device"]) >= probes
    assert (late.loc[late["device"].isin(probes), "value"] < 20).all()
    assert (late.loc[~late["device"].isin(probes), "value"] > 25).all()


def test_unknown_incidents_and_targets_are_named(small: Community) -> None:
    sim = Simulation(small, start=MONDAY, seed=1)
    with pytest.raises(ValueError, match=r"unknown incident 'gas-leak'.*co-leak, "
                                         r"fire-lane-parking.*device-offline"):
        sim.inject("gas-leak:1号地库")
    with pytest.raises(ValueError, match=r"no garage '9号地库'.*1号地库, 2号地库"):
        sim.inject("co-leak:9号地库")
    with pytest.raises(ValueError, match=r"'co-leak' needs a target"):
        sim.inject("co-leak")
    with pytest.raises(ValueError, match=r"no resident 'r-nobody'"):
        sim.inject("elderly-not-seen:r-nobody")
    with pytest.raises(ValueError, match=r"no building '99栋'"):
        sim.inject("high-altitude-throw:99栋")
    with pytest.raises(ValueError, match=r"no device 'nothing'"):
        sim.inject("device-offline:nothing")
    with pytest.raises(ValueError, match=r"no building, EV shed or garage '99栋'.*1号地库"):
        sim.inject("smoke:99栋")
    with pytest.raises(ValueError, match=r"no flat 'u-nowhere' with a smart-home hub"):
        sim.inject("intrusion:u-nowhere")
    with pytest.raises(ValueError, match=r"is a co_sensor, not a smoke_detector"):
        sim.inject(f"smoke:{_of(small, 'co_sensor')[0]}")
    with pytest.raises(ValueError, match=r"no green area '沙漠'"):
        sim.inject("dry-soil:沙漠")
    assert sim.incidents == ()
    assert len(INCIDENTS) == 15


def test_the_same_seed_gives_the_same_stream_however_time_is_sliced(small: Community) -> None:
    start = MONDAY + timedelta(hours=8)
    whole = Simulation(small, start=start, seed=9, tick_s=30)
    whole.inject("co-leak:2号地库")
    one_go = whole.advance(start + timedelta(hours=1))
    sliced = Simulation(small, start=start, seed=9, tick_s=30)
    sliced.inject("co-leak:2号地库")
    pieces: list[Message] = []
    for minutes in np.arange(7, 61, 7).tolist() + [60]:
        pieces += sliced.advance(start + timedelta(minutes=minutes))
    assert pieces == one_go
    other = Simulation(small, start=start, seed=10, tick_s=30)
    assert other.advance(start + timedelta(hours=1)) != one_go


# --- publishing to the broker ----------------------------------------------------------

def test_run_simulation_publishes_every_message_to_the_broker(broker, sample_db_url,
                                                             sample: Dataset) -> None:
    topics: list[str] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sim-test-listener",
                         protocol=mqtt.MQTTv5)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: topics.append(message.topic)
    client.on_connect = lambda c, *_: c.subscribe("twin/v1/#", qos=1)
    client.username_pw_set(*broker.credentials(ADMIN))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        report = run_simulation(sample_db_url, broker.service_url(SIMULATOR), messages=500, batch_size=10,
                                speed=60.0, seed=2, inject=["co-leak:1号地库"])
        deadline = time.monotonic() + 20
        while len(topics) < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        client.disconnect()
        client.loop_stop()
        clear_retained(broker.admin_url, [t for t in topics if t.endswith("/status")])
    assert report.total == 500 and report.community_id == "wh-guanggu"
    assert report.devices == len(sample.device)
    assert report.incidents[0].place == "wh-guanggu-f022"
    assert len(topics) == 500
    parsed = [contract.parse_topic(t) for t in topics]
    assert all(p is not None and p[0] == "wh-guanggu" for p in parsed)
    assert {p[2] for p in parsed} == set(report.published)


# --- commands: actuators obey and acknowledge ------------------------------------------

def _obey(sim: Simulation, device: str, command: str, **args: object) -> contract.Ack:
    """Send ``command`` to ``device`` as the twin does; the device's ack."""
    payload = orjson.dumps({"id": f"cmd-{command}", "ts": contract.fmt_time(sim.clock),
                            "command": command, "args": args})
    answer = sim.obey(contract.topic("wh-guanggu", device, "cmd"), payload)
    assert [topic for topic, _ in answer] == [contract.topic("wh-guanggu", device, "ack")]
    ack = contract.Ack.model_validate_json(answer[0][1])
    assert ack.id == f"cmd-{command}" and ack.ts == sim.clock
    return ack


def _said(messages: list[Message], device: str, kind: str = "telemetry") -> list[dict]:
    """What ``device`` published on its own ``kind`` topic, in order."""
    return [orjson.loads(payload) for topic, payload in messages
            if topic == contract.topic("wh-guanggu", device, kind)]


def _of(community: Community, code: str, facility_name: str | None = None) -> list[str]:
    d = community.devices
    d = d[d["type"] == code]
    if facility_name is not None:
        f = community.facilities
        d = d[d["facility_id"] == f.loc[f["name"] == facility_name, "id"].item()]
    return sorted(d["id"])


def test_an_exhaust_fan_stops_on_command_until_its_automation_changes(
        small: Community) -> None:
    fan = _of(small, "exhaust_fan", "1号地库")[0]
    sim = Simulation(small, start=MONDAY + timedelta(hours=8), seed=2, tick_s=30)
    before = _said(sim.advance(MONDAY + timedelta(hours=8, minutes=10)), fan)
    assert before and before[-1]["readings"]["running"] == "on"  # the morning rush
    ack = _obey(sim, fan, "stop")
    assert ack.ok and ack.detail == "fan stopped"
    after = _said(sim.advance(MONDAY + timedelta(hours=8, minutes=11)), fan)
    assert after[0]["readings"] == {"running": "off", "power": 0.0}  # reported at once
    rush = _said(sim.advance(MONDAY + timedelta(hours=9, minutes=20)), fan)
    assert {r["readings"]["running"] for r in rush} == {"off"}  # the command holds
    # The automation stops the fans itself at 09:30 and starts them again for the evening.
    evening = _said(sim.advance(MONDAY + timedelta(hours=17, minutes=10)), fan)
    assert evening[-1]["readings"]["running"] == "on"
    assert _obey(sim, fan, "start").detail == "fan running (was running)"


def test_an_exhaust_fan_starts_on_command_outside_the_rush_hours(small: Community) -> None:
    fans = _of(small, "exhaust_fan", "1号地库")
    sim = Simulation(small, start=MONDAY + timedelta(hours=10), seed=2, tick_s=30)
    sim.advance(MONDAY + timedelta(hours=10, minutes=10))
    assert _obey(sim, fans[0], "start").detail == "fan running"
    stream = sim.advance(MONDAY + timedelta(hours=10, minutes=30))
    started = _said(stream, fans[0])
    assert {r["readings"]["running"] for r in started} == {"on"}
    assert all(r["readings"]["power"] > 4 for r in started)
    assert {r["readings"]["running"] for r in _said(stream, fans[1])} == {"off"}


def test_a_charger_cut_off_ends_its_session_and_cools_down(small: Community) -> None:
    start = MONDAY + timedelta(hours=10)
    sim = Simulation(small, start=start, seed=15, tick_s=20)
    incident = sim.inject("charger-overheat:1号充电棚")
    pile = incident.devices[0]
    hot = _said(sim.advance(start + timedelta(minutes=10)), pile)
    assert hot[-1]["readings"]["temperature"] > 75  # over the 70 °C rule, whenever it reports
    assert hot[-1]["readings"]["status"] == "charging"
    ack = _obey(sim, pile, "cut_off")
    assert ack.ok and ack.detail.startswith("cut off: session ")
    stream = sim.advance(start + timedelta(minutes=40))
    stop = _said(stream, pile, "event")[0]
    assert stop["kind"] == "charge_stop" and stop["energy_kwh"] > 0
    assert stop["session"] in ack.detail
    after = [r["readings"] for r in _said(stream, pile)]
    assert after[0]["status"] == "idle" and after[0]["power"] == 0.0
    assert all(r["power"] == 0.0 for r in after)
    assert after[-1]["temperature"] < 50  # no more heat once the power is off
    assert _obey(sim, pile, "cut_off").detail == "cut off: no session was running"
    assert _obey(sim, pile, "start").ok  # the bike is still plugged in


def test_an_irrigation_valve_opens_and_closes_on_command(small: Community) -> None:
    valve = _of(small, "irrigation_valve", "中心花园西")[0]
    probes = _of(small, "soil_sensor", "中心花园西")
    elsewhere = _of(small, "soil_sensor", "中心花园东")
    start = MONDAY + timedelta(hours=10)
    sim = Simulation(small, start=start, seed=4, tick_s=60)
    first = sim.advance(start + timedelta(minutes=15))
    assert _said(first, valve)[-1]["readings"] == {"valve": "closed", "flow": 0.0}
    assert _obey(sim, valve, "open").detail == "valve open"
    watered = sim.advance(start + timedelta(hours=1, minutes=15))
    opened = [r["readings"] for r in _said(watered, valve)]
    assert opened[0]["valve"] == "open" and all(2.5 < r["flow"] < 4 for r in opened)

    def rise(devices: list[str]) -> float:
        before = np.mean([_said(first, p)[-1]["readings"]["soil_moisture"] for p in devices])
        after = np.mean([_said(watered, p)[-1]["readings"]["soil_moisture"] for p in devices])
        return float(after - before)

    assert rise(probes) > 5 and rise(elsewhere) < 0  # watered here, drying over there
    assert _obey(sim, valve, "close").detail == "valve closed"
    closed = _said(sim.advance(start + timedelta(hours=1, minutes=30)), valve)
    assert {r["readings"]["valve"] for r in closed} == {"closed"}


def test_a_speaker_acks_a_broadcast_and_takes_a_volume(small: Community) -> None:
    speaker = _of(small, "speaker", "1号地库")[0]
    sim = Simulation(small, start=MONDAY + timedelta(hours=10), seed=1, tick_s=30)
    text = "1号地库一氧化碳超标，请立即离开地库。"
    ack = _obey(sim, speaker, "broadcast", text=text)
    assert ack.ok and ack.detail.endswith(text)
    assert _obey(sim, speaker, "stop_broadcast").detail == f"broadcast stopped: {text}"
    refused = _obey(sim, speaker, "broadcast")
    assert not refused.ok and "args.text" in refused.detail
    assert _obey(sim, speaker, "set_volume", volume=85).detail == "volume 85 %"
    assert not _obey(sim, speaker, "set_volume", volume=140).ok
    volumes = _said(sim.advance(MONDAY + timedelta(hours=10, minutes=1)), speaker)
    assert volumes[0]["readings"] == {"volume": 85.0}


def test_unknown_commands_are_refused_with_a_reason(small: Community) -> None:
    fan = _of(small, "exhaust_fan")[0]
    sim = Simulation(small, start=MONDAY, seed=1, tick_s=30)
    ack = _obey(sim, fan, "open")
    assert not ack.ok
    assert ack.detail == "unknown command 'open' for a exhaust_fan; it obeys: start, stop"
    sensor = _of(small, "co_sensor")[0]
    assert "no commands" in _obey(sim, sensor, "start").detail
    # Nothing to answer: another community, a device it does not have, a payload that
    # is no command (no id to acknowledge).
    cmd = orjson.dumps({"id": "x", "ts": "2025-06-02T00:00:00Z", "command": "stop"})
    assert sim.obey(contract.topic("elsewhere", fan, "cmd"), cmd) == []
    assert sim.obey(contract.topic("wh-guanggu", "no-such-device", "cmd"), cmd) == []
    assert sim.obey(contract.topic("wh-guanggu", fan, "cmd"), b"stop") == []


@pytest.mark.parametrize(("code", "command"), [
    (code, command) for code, spec in DEVICE_TYPES.items() for command in spec.commands])
def test_every_command_of_the_registry_is_understood(small: Community, code: str,
                                                     command: str) -> None:
    device = _of(small, code)[0]
    sim = Simulation(small, start=MONDAY + timedelta(hours=21), seed=6, tick_s=30)
    args = {"broadcast": {"text": "测试"}, "set_volume": {"volume": 40}}.get(command, {})
    ack = _obey(sim, device, command, **args)
    assert "unknown command" not in ack.detail, ack.detail
    # The world goes on, and every message is still one ingest accepts.
    end = MONDAY + timedelta(hours=21, minutes=10)
    assert accepted(small, sim.advance(end), received_at=end).dead == []


def test_pumps_hubs_and_doors_follow_their_commands(small: Community) -> None:
    pump = _of(small, "pump_monitor")[0]
    hub = _of(small, "smart_home_hub")[0]
    door = _of(small, "access_door")[0]
    # At three in the morning nobody comes through the door to open it again.
    sim = Simulation(small, start=MONDAY + timedelta(hours=3), seed=8, tick_s=30)
    sim.advance(MONDAY + timedelta(hours=3, minutes=20))
    assert _obey(sim, pump, "stop").detail == "pump stopped"
    assert _obey(sim, hub, "arm_away").detail == "away mode on"
    assert _obey(sim, door, "unlock").ok
    stream = sim.advance(MONDAY + timedelta(hours=3, minutes=21))
    pumped = _said(stream, pump)[0]["readings"]
    assert pumped["running"] == "off" and pumped["pressure"] < 1.5
    assert _said(stream, hub)[0]["readings"] == {"away_mode": "on"}
    assert _said(stream, door)[0]["readings"] == {"door_state": "open"}
    assert _obey(sim, door, "lock").detail == "door closed and locked"
    assert _said(sim.advance(MONDAY + timedelta(hours=3, minutes=22)), door)[0][
        "readings"] == {"door_state": "closed"}


def test_the_same_commands_at_the_same_times_give_the_same_stream(small: Community) -> None:
    fan = _of(small, "exhaust_fan")[0]

    def run() -> list[Message]:
        sim = Simulation(small, start=MONDAY + timedelta(hours=10), seed=3, tick_s=30)
        out = sim.advance(MONDAY + timedelta(hours=10, minutes=5))
        _obey(sim, fan, "start")
        return out + sim.advance(MONDAY + timedelta(hours=10, minutes=20))

    assert run() == run()


def test_a_start_command_turns_a_fan_on_through_the_broker_and_ingest(
        twin_db_url: str, broker, sample: Dataset) -> None:
    """The twin commands a fan as its rules do (a device_command row, then cmd on the
    broker); the simulated fan obeys, its next telemetry says so, and ingest stores the ack."""
    devices = dict(sample.tables())["device"]
    fan = min(devices.loc[devices["type"] == "exhaust_fan", "id"])
    ingest = IngestService(twin_db_url, broker.service_url(INGEST), IngestOptions(
        group=f"g{uuid.uuid4().hex[:6]}", client_id=f"ingest-{uuid.uuid4().hex[:6]}",
        flush_interval_s=0.05))
    ingest.start()
    stop = threading.Event()
    reports: list = []
    # Ten in the morning: no rush hour and clean air, so the garage's fans are off.
    simulate = threading.Thread(target=lambda: reports.append(run_simulation(
        twin_db_url, broker.service_url(SIMULATOR), speed=30,
        start=MONDAY + timedelta(hours=10), seed=5, duration=180, stop=stop)))
    simulate.start()

    def running(after: datetime | None = None) -> list[tuple[datetime, str]]:
        with psycopg.connect(twin_db_url) as conn:
            return conn.execute(
                "SELECT time, value_text FROM reading WHERE device_id = %s AND metric = "
                "'running' AND time > %s ORDER BY time",
                (fan, after or datetime(2000, 1, 1, tzinfo=UTC))).fetchall()

    def command() -> tuple:
        with psycopg.connect(twin_db_url) as conn:
            return conn.execute("SELECT acked_at, ok, detail FROM device_command "
                                "WHERE id = 'cmd-fan-start'").fetchone()

    publisher = Publisher(broker.service_url(RULES))
    try:
        wait_until(lambda: bool(running()), timeout=90)
        assert running()[-1][1] == "off"
        with psycopg.connect(twin_db_url) as conn:
            conn.execute("INSERT INTO device_command (id, device_id, command, issued_by) "
                         "VALUES ('cmd-fan-start', %s, 'start', 'test')", (fan,))
        publisher.send(contract.topic("wh-guanggu", fan, "cmd"), orjson.dumps({
            "id": "cmd-fan-start", "ts": contract.fmt_time(datetime.now(UTC)),
            "command": "start", "args": {}}))
        wait_until(lambda: command()[0] is not None, timeout=60)
        acked_at, ok, detail = command()
        assert ok is True and detail == "fan running"
        wait_until(lambda: bool(running(acked_at)), timeout=60)
        assert running(acked_at)[0][1] == "on"  # the very next telemetry
    finally:
        stop.set()
        simulate.join(60)
        publisher.close()
        ingest.stop()
        forget_session(broker.service_url(INGEST), ingest.options.client_id)
        clear_retained(broker.admin_url, [contract.topic("wh-guanggu", d, "status")
                                          for d in devices["id"]])
    assert reports and reports[0].commands == {"start": 1}
    assert reports[0].published["ack"] == 1


def test_an_incident_scheduled_for_a_local_time_starts_then(small: Community) -> None:
    """A scripted day: `co-leak:1号地库@03:00` starts at 03:00 Wuhan time, not at the start."""
    from ingest.simulator.runner import parse_injection

    start = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 01:00 in Wuhan
    spec, at = parse_injection("co-leak:1号地库@03:00", start)
    assert spec == "co-leak:1号地库" and at == datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
    assert parse_injection("trash-overflow:1号垃圾站@+90m", start)[1] == \
        start + timedelta(minutes=90)
    with pytest.raises(ValueError, match="after '@'"):
        parse_injection("co-leak:1号地库@soon", start)
    sim = Simulation(small, start=start, seed=1, tick_s=60)
    sim.schedule(spec, at)
    with pytest.raises(ValueError, match="unknown incident"):
        sim.schedule("gas-leak:1号地库", at)
    sim.advance(at - timedelta(seconds=5))
    assert sim.incidents == () and len(sim.scheduled) == 1
    sim.advance(at + timedelta(seconds=5))
    assert [i.name for i in sim.incidents] == ["co-leak"]
    assert sim.incidents[0].start == at and sim.scheduled == ()


# --- staff on patrol ------------------------------------------------------------------------

def test_night_staff_patrol_the_walkways_and_their_badges_report_fixes(sample) -> None:
    community = community_of(sample, buildings=BUILDINGS, left_out=LEFT_OUT, staff=True)
    start = MONDAY + timedelta(days=1, hours=3)  # Tuesday 03:00 local
    sim = Simulation(community, start=start, seed=5, tick_s=5)
    messages = sim.advance(start + timedelta(minutes=10))
    fixes = [(topic.split("/")[3], orjson.loads(payload)) for topic, payload in messages
             if topic.endswith("/position")]
    roster = community.staff
    night = set(roster.loc[roster["shift"] == "night", "badge_id"])
    assert {badge for badge, _ in fixes} == night  # the day shift's badges are in the locker
    # every fix is one ingest accepts, and nothing else is refused either
    rows = accepted(community, messages, received_at=start + timedelta(minutes=10))
    assert rows.dead == [] and len(rows.positions) == len(fixes)
    # one fix every 30 s each, walking the walkways at a patrol's pace
    per_badge: dict[str, list[dict]] = {}
    for badge, fix in fixes:
        per_badge.setdefault(badge, []).append(fix)
    assert all(19 <= len(f) <= 21 for f in per_badge.values())
    graph = community.walkway
    assert graph is not None
    lines = shapely.MultiLineString(list(graph.edge_lines))
    for badge, track in per_badge.items():
        xy = graph.to_metric([shapely.Point(f["lon"], f["lat"]) for f in track])
        off = [lines.distance(shapely.Point(x, y)) for x, y in xy]
        assert max(off) < 1.0, badge  # on the walkway (or its straight leg from the post)
        steps = np.hypot(*np.diff(xy, axis=0).T)
        assert steps.max() <= 30.5 and steps.mean() > 15, badge  # 1 m/s, corners cut


def test_a_patrol_is_the_same_however_the_time_is_sliced(sample) -> None:
    community = community_of(sample, buildings=BUILDINGS, left_out=LEFT_OUT, staff=True)
    start = MONDAY + timedelta(hours=21)
    whole = Simulation(community, start=start, seed=2).advance(start + timedelta(minutes=3))
    sliced = Simulation(community, start=start, seed=2)
    parts = [m for k in range(1, 7)
             for m in sliced.advance(start + timedelta(seconds=30 * k))]
    assert [m for m in whole if m[0].endswith("/position")] == \
        [m for m in parts if m[0].endswith("/position")]
