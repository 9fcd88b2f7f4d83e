"""Named incidents: where they happen, which devices show them, and which are active.

This module resolves ``name:target`` to a place and its devices and keeps the
active incidents; what an incident does to the stream is played by the
domain module of the devices that show it (a CO leak by
:mod:`~ingest.simulator.safety`, an overheating charger by
:mod:`~ingest.simulator.charging`, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from ingest.simulator.world import World, listing, optional

#: The incidents :meth:`Simulation.inject` knows, written ``name:target``.
INCIDENTS: tuple[str, ...] = (
    "co-leak",              # target: a garage
    "fire-lane-parking",    # a gate or a camera
    "elderly-not-seen",     # a resident
    "high-altitude-throw",  # a building
    "ebike-in-lift",        # a building or an elevator
    "charger-overheat",     # an EV shed or a charger
    "trash-overflow",       # a trash station
    "water-leak",           # a pump room or a garage, or a leak sensor
    "device-offline",       # a device
    "smoke",                # a building or a smoke detector; an EV shed, a garage or a camera
    "elderly-not-back",     # a resident
    "intrusion",            # a flat (unit id) or its smart-home hub
    "street-vending",       # a gate or a camera
    "charger-full",         # an EV shed or a charger
    "dry-soil",             # a green area or a soil probe
)

#: How long each incident lasts (simulated seconds); None: until the simulation ends.
DURATION_S: dict[str, float | None] = {
    "co-leak": 1800, "fire-lane-parking": 1200, "elderly-not-seen": None,
    "high-altitude-throw": 120, "ebike-in-lift": 600, "charger-overheat": 1800,
    "trash-overflow": 3600, "water-leak": 3600, "device-offline": None,
    "smoke": 600, "elderly-not-back": None, "intrusion": 1200, "street-vending": 3600,
    "charger-full": 600, "dry-soil": 1800,
}
#: Incidents that take one charging pile of a shed.
CHARGER_INCIDENTS = ("charger-overheat", "charger-full")


@dataclass(frozen=True, slots=True)
class Incident:
    """An injected incident: what, where (as given and as resolved), which devices show it."""

    name: str
    target: str
    place: str
    devices: tuple[str, ...]
    start: datetime
    end: datetime | None


@dataclass(slots=True)
class Active:
    """An incident in progress: its device rows (and as a mask over all devices), its span."""

    incident: Incident
    rows: np.ndarray
    mask: np.ndarray
    start: float
    end: float


class Incidents:
    """The incidents injected so far, and which devices they cover when."""

    def __init__(self) -> None:
        self.active: list[Active] = []

    def of(self, name: str) -> Iterator[Active]:
        return (a for a in self.active if a.incident.name == name)

    def covering(self, name: str, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether an incident ``name`` covers each device of ``rows`` at its time ``t``."""
        out = np.zeros(len(rows), dtype=bool)
        for a in self.of(name):
            out |= a.mask[rows] & (t >= a.start) & (t < a.end)
        return out

    def covering_one(self, name: str, i: int, t: float) -> Active | None:
        """The incident ``name`` that covers device row ``i`` at ``t``, if any."""
        for a in self.of(name):
            if a.mask[i] and a.start <= t < a.end:
                return a
        return None


def repeats(first: float, every: float, t0: float, t1: float, end: float) -> list[float]:
    """The times ``first``, ``first + every``, ... that fall in the tick ``(t0, t1]``, before
    ``end``: what an incident shows again and again while it lasts."""
    n0 = max(math.floor((t0 - first) / every) + 1, 0)
    n1 = math.floor((t1 - first) / every)
    out = []
    for t in (first + n * every for n in range(n0, n1 + 1)):
        if t >= end:
            break
        out.append(t)
    return out


def resolve(world: World, name: str, target: str, *, charging: np.ndarray,
            free: np.ndarray) -> tuple[str, np.ndarray]:
    """The place an incident happens at and the rows of the devices that show it.

    ``charging`` marks the chargers with a session in progress, ``free`` those
    with nothing plugged in: an overheat or a full battery takes a pile that
    is charging when it can. Raises ValueError naming an unknown target.
    """
    if name in ("elderly-not-seen", "elderly-not-back"):
        r = world.community.residents
        homes = dict(zip(r["id"], optional(r["building_id"])))
        if target not in homes:
            raise ValueError(f"{name}: no resident {target!r} in {world.cid} (give a resident"
                             f" id, e.g. {next(iter(homes), '...')})")
        doors = world.rows["access_door"]
        doors = doors[world.building[doors] == homes[target]]
        if name == "elderly-not-seen":
            return target, np.concatenate([world.rows["access_gate"], doors])
        # Out through their building's door, then the main gate; never back.
        gates = world.rows["access_gate"]
        if not len(gates):
            raise ValueError(f"{name}: {world.cid} has no gate to go out by")
        return target, np.concatenate([doors[:1], gates[:1]])
    if name == "device-offline":
        return target, np.array([_device(world, name, target, None)])
    if name == "high-altitude-throw":
        building = _place_building(world, name, target)
        return building, _cameras(world, lambda i: world.building[i] == building
                                  and world.facility[i] is None, name, target)
    if name == "ebike-in-lift":
        facility = _facility_id(world, target, ("elevator",))
        if facility is not None:
            return facility, _cameras(world, lambda i: world.facility[i] == facility, name,
                                      target)
        # One e-bike, in one lift at a time: the building's first lift.
        building = _place_building(world, name, target)
        return building, _cameras(
            world, lambda i: world.facility_kind.get(world.facility[i]) == "elevator"
            and world.facility_building.get(world.facility[i]) == building, name, target)[:1]
    if name in ("fire-lane-parking", "street-vending"):
        # One car, one stall: seen by one camera (the rules raise one alarm per camera).
        if target in world.index:
            return target, np.array([_device(world, name, target, "ai_camera")])
        gate = _place_facility(world, name, target, ("gate",))
        return gate, _cameras(world, lambda i: world.facility[i] == gate, name, target)[:1]
    if name in CHARGER_INCIDENTS:
        if target in world.index:
            return target, np.array([_device(world, name, target, "ev_charger")])
        shed = _place_facility(world, name, target, ("ev_shed",))
        return shed, _pile(world, name, target, shed, charging, free)
    if name == "water-leak":
        # The water reaches one sensor: the rule raises one alarm per wet sensor.
        if target in world.index:
            return target, np.array([_device(world, name, target, "water_leak_sensor")])
        place = _place_facility(world, name, target, ("pump_room", "garage"))
        sensors = world.at(place, "water_leak_sensor")
        if not len(sensors):
            raise ValueError(f"{name}: {target!r} has no water_leak_sensor")
        return place, sensors[:1]
    if name == "smoke":
        return _smoke(world, target)
    if name == "intrusion":
        hubs = world.rows["smart_home_hub"]
        if target in world.index:
            return target, np.array([_device(world, name, target, "smart_home_hub")])
        flat = hubs[world.unit[hubs] == target]
        if not len(flat):
            raise ValueError(f"{name}: no flat {target!r} with a smart-home hub in {world.cid}"
                             f" (give a unit id or a hub id, e.g. "
                             f"{world.unit[hubs[0]] if len(hubs) else '...'})")
        return target, flat[:1]
    if name == "dry-soil" and target in world.index:
        return target, np.array([_device(world, name, target, "soil_sensor")])
    kinds, types = {
        "co-leak": (("garage",), ("co_sensor",)),
        "trash-overflow": (("trash_station",), ("trash_bin_sensor", "ai_camera")),
        "dry-soil": (("green_area",), ("soil_sensor",)),
    }[name]
    place = _place_facility(world, name, target, kinds)
    rows = np.concatenate([world.at(place, code) for code in types])
    if not len(rows):
        raise ValueError(f"{name}: {target!r} has no {' or '.join(types)}")
    return place, rows


def _smoke(world: World, target: str) -> tuple[str, np.ndarray]:
    """Smoke in a building (the detector of its middle floor), at a detector, or seen by a
    camera (an EV shed's or garage's first, or the camera named)."""
    name = "smoke"
    if target in world.index:
        i = _device(world, name, target, None)
        if world.type[i] not in ("smoke_detector", "ai_camera"):
            raise ValueError(f"{name}: {target} is a {world.type[i]}, not a smoke_detector "
                             f"or an ai_camera")
        return target, np.array([i])
    facility = _facility_id(world, target, ("ev_shed", "garage"))
    if facility is not None:
        return facility, _cameras(world, lambda i: world.facility[i] == facility, name,
                                  target)[:1]
    b = world.community.buildings
    hit = b[(b["id"] == target) | (b["name"] == target)]
    if hit.empty:
        f = world.community.facilities
        sheds = f.loc[f["kind"].isin(("ev_shed", "garage")), "name"].tolist()
        raise ValueError(f"{name}: no building, EV shed or garage {target!r} in {world.cid}; "
                         f"there are: {listing(sheds + b['name'].tolist())}")
    building = str(hit["id"].iloc[0])
    detectors = world.rows["smoke_detector"]
    detectors = detectors[world.building[detectors] == building]
    if not len(detectors):
        raise ValueError(f"{name}: {target!r} has no smoke_detector")
    by_floor = detectors[np.argsort(world.floor[detectors], kind="stable")]
    return building, np.array([by_floor[len(by_floor) // 2]])


def _pile(world: World, name: str, target: str, shed: str, charging: np.ndarray,
          free: np.ndarray) -> np.ndarray:
    """One pile of ``shed`` for a charger incident, not taken by another one in progress:
    charging if one is; for a full battery, else one with nothing plugged in."""
    chargers = world.at(shed, "ev_charger")
    if not len(chargers):
        raise ValueError(f"{name}: {target!r} has no charger")
    now = world.clock.now
    taken = np.zeros(len(chargers), dtype=bool)
    for other in CHARGER_INCIDENTS:
        taken |= world.incidents.covering(other, chargers, np.full(len(chargers), now))
    order = [charging[chargers], free[chargers]] if name == "charger-full" \
        else [charging[chargers]]
    for pick in [*order, np.ones(len(chargers), dtype=bool)]:
        if (pick & ~taken).any():
            return chargers[pick & ~taken][:1]
    return chargers[:1]


def _cameras(world: World, where: Callable[[int], bool], name: str,
             target: str) -> np.ndarray:
    cameras = world.rows["ai_camera"]
    rows = cameras[np.array([where(int(i)) for i in cameras], dtype=bool)]
    if not len(rows):
        raise ValueError(f"{name}: {target!r} has no camera for it")
    return rows


def _device(world: World, name: str, target: str, code: str | None) -> int:
    i = world.index.get(target)
    if i is None:
        raise ValueError(f"{name}: no device {target!r} in {world.cid}")
    if code is not None and world.type[i] != code:
        raise ValueError(f"{name}: {target} is a {world.type[i]}, not a {code}")
    return i


def _facility_id(world: World, target: str, kinds: tuple[str, ...]) -> str | None:
    f = world.community.facilities
    f = f[f["kind"].isin(kinds)]
    hit = f[(f["id"] == target) | (f["name"] == target)]
    return None if hit.empty else str(hit["id"].iloc[0])


def _place_facility(world: World, name: str, target: str, kinds: tuple[str, ...]) -> str:
    found = _facility_id(world, target, kinds)
    if found is None:
        f = world.community.facilities
        names = f.loc[f["kind"].isin(kinds), "name"].tolist()
        what = " or ".join(k.replace("_", " ") for k in kinds)
        raise ValueError(f"{name}: no {what} {target!r} in {world.cid}; "
                         f"there are: {listing(names)}")
    return found


def _place_building(world: World, name: str, target: str) -> str:
    b = world.community.buildings
    hit = b[(b["id"] == target) | (b["name"] == target)]
    if hit.empty:
        raise ValueError(f"{name}: no building {target!r} in {world.cid}; there are: "
                         f"{listing(b['name'].tolist())}")
    return str(hit["id"].iloc[0])
