"""Where a community's devices are, by the rules a property company installs them.

Devices fixed to the site (gates, doors, corridors, garages, green areas ...)
are planned once per community plan; devices inside flats (smart-home hubs,
per-flat meters) are drawn per flat, for many communities at once, at rates
the district generator scales to reach a device count.

Every type comes from :data:`twin.device_types.DEVICE_TYPES`; device names
use the Chinese label of the type ('3栋 12层 烟感').
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from gis_data.layout import Layout, inward
from gis_data.walkway import road_crossings
from twin.device_types import DEVICE_TYPES

#: Devices per garage and per green area, by type.
_GARAGE_KIT = {"co_sensor": 8, "exhaust_fan": 4, "speaker": 3, "water_leak_sensor": 3,
               "ai_camera": 4}
_GREEN_KIT = {"soil_sensor": 3, "irrigation_valve": 1}
#: Outdoor loudspeakers on road crossings, and fire-lane cameras along the ring road.
_OUTDOOR_SPEAKERS = 12
_FIRE_LANE_SPOTS = ((-106, -160), (106, -160), (210, -80), (210, 80),
                    (106, 160), (-106, 160), (-210, 80), (-210, -80))
#: Devices of a flat, in the order they are numbered.
UNIT_DEVICE_TYPES = ("smart_home_hub", "water_meter", "power_meter")
_UNIT_DEVICE_OFFSETS = {"smart_home_hub": (0.0, 0.0), "water_meter": (-1.0, -1.0),
                        "power_meter": (1.0, -1.0)}

_COLUMNS = ("type", "name", "building_id", "floor", "unit_id", "facility_id", "x", "y")


def label(code: str) -> str:
    """The short Chinese label of a device type, taken from the registry's name."""
    found = re.search(r"\(([^)]*)\)", DEVICE_TYPES[code].name)
    return found.group(1).replace(" ", "") if found else code


def plan_devices(layout: Layout, rng: np.random.Generator) -> pd.DataFrame:
    """Place the devices fixed to the site of ``layout``.

    Returns type, name, building_id, floor, unit_id (always None),
    facility_id and the metric position x, y; ids are given when stamped.
    """
    f = layout.facilities
    blocks = [
        _gates(f[f["kind"] == "gate"]),
        _building_devices(layout),
        _gateways(layout),
        _elevators(layout),
        _trash_stations(f[f["kind"] == "trash_station"]),
        _ev_sheds(f[f["kind"] == "ev_shed"]),
        _kits(rng, f[f["kind"] == "garage"], _GARAGE_KIT, shrink=3.0),
        _pump_rooms(f[f["kind"] == "pump_room"]),
        _kits(rng, f[f["kind"] == "green_area"], _GREEN_KIT, shrink=2.0),
        _outdoor(layout, rng),
    ]
    frame = pd.concat(blocks, ignore_index=True)
    unknown = set(frame["type"]) - set(DEVICE_TYPES)
    if unknown:
        raise AssertionError(f"device types missing from the registry: {sorted(unknown)}")
    frame["floor"] = pd.array(frame["floor"], dtype="Int64")
    return frame


def draw_unit_devices(rng: np.random.Generator, units: pd.DataFrame, *, occupied: np.ndarray,
                      hub_rate: float, meter_rate: float) -> pd.DataFrame:
    """Draw smart-home hubs (occupied flats) and per-flat water + power meters.

    ``units`` needs id, building_id, floor, number, building_name, x, y; the
    result has the plan's device columns plus ``flat`` (row of ``units``),
    ordered by flat, then by :data:`UNIT_DEVICE_TYPES`.
    """
    n = len(units)
    hub = np.flatnonzero(occupied & (rng.random(n) < hub_rate))
    metered = np.flatnonzero(rng.random(n) < meter_rate)
    flat = np.concatenate([hub, metered, metered])
    rank = np.repeat(np.arange(3), [len(hub), len(metered), len(metered)])
    order = np.lexsort((rank, flat))
    flat, rank = flat[order], rank[order]
    types = np.array(UNIT_DEVICE_TYPES)[rank]
    dx = np.array([_UNIT_DEVICE_OFFSETS[t][0] for t in UNIT_DEVICE_TYPES])[rank]
    dy = np.array([_UNIT_DEVICE_OFFSETS[t][1] for t in UNIT_DEVICE_TYPES])[rank]
    labels = np.array([label(t) for t in UNIT_DEVICE_TYPES])[rank]
    place = np.strings.add(units["building_name"].to_numpy().astype(str)[flat],
                           np.strings.add(units["number"].to_numpy().astype(str)[flat], "室 "))
    return pd.DataFrame({
        "type": types,
        "name": np.strings.add(place, labels),
        "building_id": units["building_id"].to_numpy()[flat],
        "floor": units["floor"].to_numpy()[flat],
        "unit_id": units["id"].to_numpy()[flat],
        "facility_id": None,
        "x": units["x"].to_numpy()[flat] + dx,
        "y": units["y"].to_numpy()[flat] + dy,
        "flat": flat,
    })


def _block(code: str, names: object, x: object, y: object, *, building_id: object = None,
           floor: object = None, facility_id: object = None) -> pd.DataFrame:
    """One frame of devices of one type; scalars are broadcast, series are taken by position."""
    def plain(v: object) -> object:
        return v.to_numpy() if isinstance(v, pd.Series) else v

    x = np.atleast_1d(np.asarray(plain(x), dtype=float))
    frame = pd.DataFrame({
        "type": code, "name": plain(names), "building_id": plain(building_id),
        "floor": plain(floor), "unit_id": None, "facility_id": plain(facility_id),
        "x": x, "y": plain(y),
    }, index=np.arange(len(x)))
    return frame[list(_COLUMNS)]


def _join(*parts: object) -> np.ndarray:
    """Concatenate arrays and scalars element-wise as text (vectorised f-string)."""
    out = np.asarray(parts[0]).astype(str)
    for part in parts[1:]:
        out = np.strings.add(out, np.asarray(part).astype(str))
    return out


def _numbered(base: np.ndarray, code: str, k: np.ndarray) -> np.ndarray:
    """'<base> <label> <k + 1>', e.g. '南门(主入口) 人行/车行道闸 2'."""
    return _join(base, f" {label(code)} ", np.asarray(k) + 1)


def _within(n: np.ndarray) -> np.ndarray:
    """0, 1, ... n[i]-1 for each i, concatenated."""
    return np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)


def _gates(gates: pd.DataFrame) -> pd.DataFrame:
    xy = gates[["x", "y"]].to_numpy()
    into = inward(xy[:, 0], xy[:, 1])
    along = np.abs(into[:, ::-1])
    count = gates["count"].to_numpy()
    g = np.repeat(np.arange(len(gates)), count)
    k = _within(count)
    spread = (k - (count[g] - 1) / 2) * 2.5
    pos = xy[g] + into[g] * 2.0 + along[g] * spread[:, None]
    names = gates["name"].to_numpy()
    access = _block("access_gate", _numbered(names[g], "access_gate", k), pos[:, 0], pos[:, 1],
                    facility_id=gates["id"].to_numpy()[g])
    c = np.repeat(np.arange(len(gates)), 2)
    side = np.tile([-1.0, 1.0], len(gates))
    cam = xy[c] + into[c] * 4.0 + along[c] * side[:, None] * 5.0
    cameras = _block("ai_camera", _numbered(names[c], "ai_camera", np.tile([0, 1], len(gates))),
                     cam[:, 0], cam[:, 1], facility_id=gates["id"].to_numpy()[c])
    return pd.concat([access, cameras], ignore_index=True)


def _building_devices(layout: Layout) -> pd.DataFrame:
    b = layout.buildings
    e = layout.entrances
    name_of = b.set_index("id")["name"]
    doors = _block("access_door", _join(name_of.loc[e["building_id"]].to_numpy(), e["name"],
                                        f" {label('access_door')}"),
                   e["x"], e["y"] + 0.5, building_id=e["building_id"].to_numpy(), floor=1)
    first_door = e.groupby("building_id", sort=False)["x"].first().reindex(b["id"]).to_numpy()
    floors = b["floors"].to_numpy()
    owner = np.repeat(np.arange(len(b)), floors)
    floor = _within(floors) + 1
    smoke = _block("smoke_detector",
                   _join(b["name"].to_numpy()[owner], " ", floor, f"层 {label('smoke_detector')}"),
                   first_door[owner] + 1.0, b["y0"].to_numpy()[owner] + 7.0,
                   building_id=b["id"].to_numpy()[owner], floor=floor)
    meters = [
        _block(code, _join(b["name"], f" 总表 {label(code)}"), b["x0"] + dx, b["y0"] + 2.0,
               building_id=b["id"].to_numpy(), floor=1)
        for code, dx in (("water_meter", 2.0), ("power_meter", 3.5))
    ]
    towers = b[b["usage"] == "residential"]
    throw = _block("ai_camera", _join(towers["name"], f" 高空抛物 {label('ai_camera')}"),
                   towers["x0"] + 1.0, towers["y0"], building_id=towers["id"].to_numpy(), floor=1)
    return pd.concat([doors, smoke, *meters, throw], ignore_index=True)


def _gateways(layout: Layout) -> pd.DataFrame:
    """One gateway per building beside its master meters, and two site gateways.

    A building's gateway (floor 1, in the meter room) relays its meters and
    smoke detectors. The site gateways, for the outdoor sensors, stand at the
    security room and on the pole outside the property office's building;
    they belong to no building.
    """
    b = layout.buildings
    building = _block("iot_gateway", _join(b["name"], f" {label('iot_gateway')}"),
                      b["x0"] + 5.0, b["y0"] + 2.0, building_id=b["id"].to_numpy(), floor=1)
    f = layout.facilities.set_index("kind")
    guard = f.loc[["security_room"]]
    office = f.loc[["property_office"]]
    office_front = office["building_id"].map(b.set_index("id")["y0"]) - 2.0
    site = pd.concat([
        _block("iot_gateway", _join(guard["name"], f" {label('iot_gateway')}"),
               guard["x"] + 1.5, guard["y"] + 1.0, facility_id=guard["id"].to_numpy()),
        _block("iot_gateway", _join(office["name"], f" {label('iot_gateway')}"),
               office["x"], office_front, facility_id=office["id"].to_numpy()),
    ], ignore_index=True)
    return pd.concat([building, site], ignore_index=True)


def _elevators(layout: Layout) -> pd.DataFrame:
    f = layout.facilities
    lifts = f[f["kind"] == "elevator"]
    top = dict(zip(layout.buildings["id"], layout.buildings["floors"]))
    building = lifts["building_id"].to_numpy()
    camera = _block("ai_camera", _join(lifts["name"], f" 电动车入梯 {label('ai_camera')}"),
                    lifts["x"], lifts["y"] + 0.5, building_id=building, floor=1,
                    facility_id=lifts["id"].to_numpy())
    monitor = _block("elevator_monitor",
                     _join(lifts["name"], f" {label('elevator_monitor')}"),
                     lifts["x"], lifts["y"], building_id=building,
                     floor=np.array([top[b] for b in building]),
                     facility_id=lifts["id"].to_numpy())
    return pd.concat([camera, monitor], ignore_index=True)


def _trash_stations(stations: pd.DataFrame) -> pd.DataFrame:
    count = stations["count"].to_numpy()
    s = np.repeat(np.arange(len(stations)), count)
    k = _within(count)
    x = stations["x"].to_numpy()
    y = stations["y"].to_numpy()
    bins = _block("trash_bin_sensor",
                  _numbered(stations["name"].to_numpy()[s], "trash_bin_sensor", k),
                  x[s] + (k - (count[s] - 1) / 2) * 1.5, y[s] + 1.0,
                  facility_id=stations["id"].to_numpy()[s])
    cameras = _block("ai_camera", _join(stations["name"], f" {label('ai_camera')}"),
                     x, y + 3.0, facility_id=stations["id"].to_numpy())
    return pd.concat([bins, cameras], ignore_index=True)


def _ev_sheds(sheds: pd.DataFrame) -> pd.DataFrame:
    blocks = []
    for shed in sheds.itertuples(index=False):
        x0, y0, x1, y1 = shed.area.bounds
        t = (np.arange(shed.count) + 0.5) / shed.count
        if x1 - x0 >= y1 - y0:
            x, y = x0 + 1 + t * (x1 - x0 - 2), np.full(shed.count, (y0 + y1) / 2)
        else:
            x, y = np.full(shed.count, (x0 + x1) / 2), y0 + 1 + t * (y1 - y0 - 2)
        blocks.append(_block("ev_charger", _numbered(np.repeat(shed.name, shed.count), "ev_charger",
                                                      np.arange(shed.count)), x, y,
                             facility_id=shed.id))
        blocks.append(_block("ai_camera", _join([shed.name], f" {label('ai_camera')}"),
                             shed.x, shed.y, facility_id=shed.id))
    return pd.concat(blocks, ignore_index=True)


def _kits(rng: np.random.Generator, places: pd.DataFrame, kit: dict[str, int], *,
          shrink: float) -> pd.DataFrame:
    """The same set of devices spread at random over each place's area."""
    blocks = []
    for place in places.itertuples(index=False):
        x0, y0, x1, y1 = place.area.bounds
        for code, n in kit.items():
            x = rng.uniform(x0 + shrink, x1 - shrink, n).round(2)
            y = rng.uniform(y0 + shrink, y1 - shrink, n).round(2)
            blocks.append(_block(code, _numbered(np.repeat(place.name, n), code, np.arange(n)),
                                 x, y, facility_id=place.id, floor=place.floor))
    return pd.concat(blocks, ignore_index=True)


def _pump_rooms(rooms: pd.DataFrame) -> pd.DataFrame:
    x, y = rooms["x"].to_numpy(), rooms["y"].to_numpy()
    ids, names, floor = rooms["id"].to_numpy(), rooms["name"].to_numpy(), rooms["floor"].to_numpy()
    monitors = _block("pump_monitor", _join(names, f" {label('pump_monitor')}"), x, y,
                      facility_id=ids, floor=floor)
    r = np.repeat(np.arange(len(rooms)), 2)
    k = np.tile([0, 1], len(rooms))
    leaks = _block("water_leak_sensor", _numbered(names[r], "water_leak_sensor", k),
                   x[r] + np.where(k, 1.0, -1.0), y[r], facility_id=ids[r], floor=floor[r])
    return pd.concat([monitors, leaks], ignore_index=True)


def _outdoor(layout: Layout, rng: np.random.Generator) -> pd.DataFrame:
    f = layout.facilities
    crossings = road_crossings(layout.roads)
    k = np.arange(len(crossings))
    road_cams = _block("ai_camera", _join("路口", k + 1, f" {label('ai_camera')}"),
                       crossings[:, 0] + 1.5, crossings[:, 1] + 1.5)
    spots = np.sort(rng.choice(len(crossings), size=min(_OUTDOOR_SPEAKERS, len(crossings)),
                               replace=False))
    speakers = _block("speaker", _join("广播点", np.arange(len(spots)) + 1, f" {label('speaker')}"),
                      crossings[spots, 0] - 1.5, crossings[spots, 1] - 1.5)
    lane = np.array(_FIRE_LANE_SPOTS, dtype=float)
    fire = _block("ai_camera",
                  _join("消防通道", np.arange(len(lane)) + 1, f" {label('ai_camera')}"),
                  lane[:, 0], lane[:, 1])
    greens = f[f["kind"] == "green_area"].iloc[[0, 2, 3]]
    air = _block("air_quality_sensor",
                 _join(greens["name"], f" {label('air_quality_sensor')}"),
                 greens["x"] + 1.0, greens["y"] + 1.0, facility_id=greens["id"].to_numpy())
    play = f[f["kind"] == "playground"]
    playground = pd.concat([
        _block(code, _join(play["name"], f" {label(code)}"), play["x"] + dx, play["y"] + 2.0,
               facility_id=play["id"].to_numpy())
        for code, dx in (("ai_camera", 2.0), ("speaker", -2.0))
    ], ignore_index=True)
    return pd.concat([road_cams, speakers, fire, air, playground], ignore_index=True)
