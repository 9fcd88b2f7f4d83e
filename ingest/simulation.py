"""A community's devices as a stream of MQTT messages, with daily rhythms and incidents.

Pure: no broker, no database, no clock of its own. Given the device table of
one community (and its residents, facilities and buildings), a simulated start
time and a seed, :class:`Simulation` produces ``(topic, payload)`` pairs in the
v1 contract (:mod:`ingest.contract`), tick by tick, as a real site would send
them: each device type reports at its own interval, events follow the daily
life of the community in its local time (Asia/Shanghai, UTC+8) and named
incidents (:data:`INCIDENTS`) leave their signature in the stream.

Time advances in fixed ticks from the start, so the same community, start,
seed, tick and injections always give the same messages, however the caller
slices the time it asks for.

Readings stay inside the ranges of :data:`twin.device_types.DEVICE_TYPES`
(numbers are clipped to them, text comes from their choices) and events use
the types' event names, so ingest accepts every message.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import orjson
import pandas as pd

from ingest import contract
from twin.device_types import ACCESS_METHODS, CAMERA_CLASSES, DEVICE_TYPES

#: One MQTT message: topic and JSON payload.
Message = tuple[str, bytes]

#: The incidents :meth:`Simulation.inject` knows, written ``name:target``.
INCIDENTS: tuple[str, ...] = (
    "co-leak",              # target: a garage
    "fire-lane-parking",    # a gate or a camera
    "elderly-not-seen",     # a resident
    "high-altitude-throw",  # a building
    "ebike-in-lift",        # a building or an elevator
    "charger-overheat",     # an EV shed or a charger
    "trash-overflow",       # a trash station
    "water-leak",           # a pump room or a garage
    "device-offline",       # a device
)

#: The community's local time: Asia/Shanghai, UTC+8 all year (no daylight saving).
LOCAL_OFFSET_S = 8 * 3600

#: Seconds between two telemetry reports of a device, by type (heartbeats of real products).
REPORT_INTERVAL_S: dict[str, float] = {
    "access_gate": 600, "access_door": 600, "ai_camera": 600, "smoke_detector": 3600,
    "co_sensor": 60, "exhaust_fan": 300, "speaker": 1800, "water_leak_sensor": 1800,
    "trash_bin_sensor": 600, "soil_sensor": 900, "irrigation_valve": 300,
    "air_quality_sensor": 300, "ev_charger": 300, "water_meter": 900, "power_meter": 900,
    "smart_home_hub": 900, "elevator_monitor": 60, "iot_gateway": 300, "pump_monitor": 60,
}
#: Types a building's gateway relays (as ``batch`` messages when batching is on).
RELAYED_TYPES: tuple[str, ...] = ("smoke_detector", "water_meter", "power_meter")
#: Outdoor battery sensors on the site gateways (LoRaWAN: their server publishes per device).
SITE_SENSOR_TYPES: tuple[str, ...] = ("trash_bin_sensor", "soil_sensor", "water_leak_sensor")
#: A gateway sends what it holds once the oldest item is this old (simulated seconds).
BATCH_WINDOW_S = 300.0

_DAY = 86_400.0
_HOURS = np.arange(25.0)


def _daily(values: list[float], *, mean: float | None = None) -> np.ndarray:
    """A daily curve from one value per local hour (0 h .. 23 h); 24 h repeats 0 h."""
    curve = np.array(values + values[:1], dtype=float)
    return curve if mean is None else curve * (mean / np.mean(values))


# Daily curves, one value per local hour, interpolated in between.
#: Comings and goings (gates, doors, lifts, cameras): peaks at 08:00 and 18:00, mean 1.
_ACTIVITY = _daily([0.08, 0.04, 0.02, 0.02, 0.03, 0.12, 0.5, 1.6, 2.6, 1.2, 0.8, 0.9,
                    1.0, 0.8, 0.7, 0.8, 1.0, 1.9, 2.6, 1.6, 1.1, 0.8, 0.45, 0.2], mean=1.0)
#: Share of passages that go out: mornings out to work and school, evenings back in.
_OUT_SHARE = _daily([0.5, 0.5, 0.5, 0.5, 0.55, 0.7, 0.8, 0.85, 0.85, 0.75, 0.6, 0.5,
                     0.5, 0.5, 0.5, 0.45, 0.35, 0.2, 0.15, 0.25, 0.35, 0.4, 0.45, 0.5])
#: Sessions started per idle charger per hour: e-bikes are plugged in after work.
_PLUG_IN = _daily([0.01, 0.005, 0.003, 0.003, 0.003, 0.005, 0.01, 0.02, 0.03, 0.03, 0.02,
                   0.02, 0.03, 0.02, 0.02, 0.02, 0.03, 0.05, 0.2, 0.28, 0.3, 0.26, 0.2, 0.06])
#: Waste thrown away, relative: mornings and evenings.
_WASTE = _daily([0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 1.4, 1.8, 1.5, 1.0, 0.9, 1.2,
                 1.4, 1.0, 0.8, 0.8, 0.9, 1.3, 1.7, 1.8, 1.6, 1.2, 0.7, 0.4])
#: Water drawn by one flat (m³/h).
_WATER = _daily([0.01, 0.005, 0.004, 0.004, 0.006, 0.02, 0.08, 0.16, 0.12, 0.06, 0.05,
                 0.06, 0.08, 0.05, 0.04, 0.04, 0.05, 0.08, 0.12, 0.15, 0.14, 0.11, 0.07, 0.03])
#: Power drawn by one flat (kW).
_POWER = _daily([0.35, 0.3, 0.28, 0.27, 0.27, 0.3, 0.5, 0.8, 0.7, 0.5, 0.45, 0.5,
                 0.6, 0.5, 0.45, 0.45, 0.5, 0.8, 1.2, 1.5, 1.6, 1.5, 1.1, 0.6])

#: How gates and doors are opened (shares per method of ACCESS_METHODS).
_METHOD_SHARES = {
    "access_door": {"face": 0.58, "card": 0.18, "qr": 0.04, "remote": 0.08, "voice": 0.02,
                    "intercom": 0.06, "password": 0.04},
    "access_gate": {"face": 0.45, "card": 0.22, "qr": 0.16, "remote": 0.10, "voice": 0.01,
                    "intercom": 0.04, "password": 0.02},
}
#: Passages per device and day.
_PASSAGES_PER_DAY = {"access_door": 180.0, "access_gate": 450.0}
#: Visitors let in by a resident over the intercom carry no subject.
_ANONYMOUS_METHODS = frozenset({"intercom"})
#: Who goes through doors how often, by age band (relative).
_AGE_ACTIVITY = {"0-6": 0.3, "7-17": 1.0, "18-59": 1.2, "60-79": 0.8, "80+": 0.4}

#: Natural detections per camera and day by where the camera looks (fire-lane and
#: overflow detections also come from incidents and full bins).
_DETECTIONS_PER_DAY: dict[str, dict[str, float]] = {
    "elevator": {"ebike_in_lift": 0.3, "person_fall": 0.02},
    "tower": {"high_altitude_throw": 0.02},
    "gate": {"tailgating": 1.0, "street_vending": 0.2, "no_helmet": 0.5},
    "trash_station": {"unleashed_dog": 0.1},
    "ev_shed": {"no_helmet": 0.3, "smoke_fire": 0.002},
    "garage": {"person_fall": 0.05, "smoke_fire": 0.001},
    "playground": {"unleashed_dog": 0.5, "person_fall": 0.1},
    "outdoor": {"fire_lane_parking": 0.3, "street_vending": 0.1, "unleashed_dog": 0.3,
                "no_helmet": 0.3},
}
_CAMERA_ROLES = tuple(_DETECTIONS_PER_DAY)

#: How long each incident lasts (simulated seconds); None: until the simulation ends.
_INCIDENT_S: dict[str, float | None] = {
    "co-leak": 1800, "fire-lane-parking": 1200, "elderly-not-seen": None,
    "high-altitude-throw": 120, "ebike-in-lift": 600, "charger-overheat": 1800,
    "trash-overflow": 3600, "water-leak": 3600, "device-offline": None,
}
#: Incidents seen as camera detections repeated every so many seconds.
_REPEATED_DETECTIONS = {"fire-lane-parking": ("fire_lane_parking", 90.0),
                        "ebike-in-lift": ("ebike_in_lift", 120.0),
                        "high-altitude-throw": ("high_altitude_throw", 300.0)}
#: Garage CO during a leak (ppm), reached after the ramp (s), before the fall (s).
_LEAK_PPM, _LEAK_RAMP_S, _LEAK_FALL_S = 150.0, 360.0, 300.0
#: An overheating charger reaches this temperature (°C) over this many seconds.
_OVERHEAT_C, _OVERHEAT_RAMP_S = 88.0, 480.0
#: A full bin is filmed again after this many seconds.
_OVERFLOW_REPEAT_S = 600.0
#: State before the start is built by running this long in coarse steps.
_WARM_UP_S, _WARM_UP_STEP_S = 12 * 3600.0, 600.0

_CODES = tuple(DEVICE_TYPES)
_CHARGER_IDLE, _CHARGER_CHARGING, _CHARGER_FULL = 0, 1, 2
_CHARGER_STATUS = np.array(["idle", "charging", "full"], dtype=object)


@dataclass(frozen=True, slots=True)
class Community:
    """The frames of one community a simulation needs, with the twin's column names.

    devices: id, community_id, type, building_id, floor, unit_id, facility_id;
    residents: id, unit_id, building_id, care_flags, age_band;
    facilities: id, kind, name, building_id; buildings: id, name.
    Missing references are None (or NA).
    """

    devices: pd.DataFrame
    residents: pd.DataFrame
    facilities: pd.DataFrame
    buildings: pd.DataFrame

    def __post_init__(self) -> None:
        _require(self.devices, "devices", ("id", "community_id", "type", "building_id", "floor",
                                           "unit_id", "facility_id"))
        _require(self.residents, "residents", ("id", "unit_id", "building_id", "care_flags",
                                               "age_band"))
        _require(self.facilities, "facilities", ("id", "kind", "name", "building_id"))
        _require(self.buildings, "buildings", ("id", "name"))
        communities = self.devices["community_id"].unique()
        if len(communities) != 1:
            raise ValueError(f"the devices must belong to one community, not {len(communities)}"
                             f" ({', '.join(map(str, communities[:5]))})")
        unknown = set(self.devices["type"]) - set(DEVICE_TYPES)
        if unknown:
            raise ValueError(f"device types missing from the registry: {sorted(unknown)}")

    @property
    def id(self) -> str:
        return str(self.devices["community_id"].iloc[0])


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
class _Active:
    incident: Incident
    rows: np.ndarray
    mask: np.ndarray
    start: float
    end: float


class Simulation:
    """The devices of one community, stepping through simulated time.

    Parameters
    ----------
    community
        The community's frames.
    start
        Simulated time of the first tick (timezone-aware).
    seed
        Seed of ``numpy.random.default_rng``.
    batch_size
        Above 1, readings and events of the devices a building gateway relays
        (:data:`RELAYED_TYPES`) are sent by that gateway as ``batch`` messages
        of up to this many items; 1: every device publishes its own.
    tick_s
        Simulated seconds per step, at most the shortest report interval.
    """

    def __init__(self, community: Community, *, start: datetime, seed: int = 0,
                 batch_size: int = 1, tick_s: float = 1.0) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware (e.g. UTC)")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        shortest = min(REPORT_INTERVAL_S.values())
        if not 0 < tick_s <= shortest:
            raise ValueError(f"tick_s must be in (0, {shortest:g}] seconds, got {tick_s}")
        self.community = community
        self.batch_size = batch_size
        self.tick_s = float(tick_s)
        self._rng = np.random.default_rng(seed)
        self._start = start.timestamp()
        self._t = self._start
        self._tag = str(int(self._start))
        self._seq = 0
        self._sessions = 0
        self._cid = community.id
        d = community.devices.reset_index(drop=True)
        self._ids = d["id"].to_numpy(dtype=object)
        self._index = {device: i for i, device in enumerate(self._ids)}
        self._type = d["type"].to_numpy(dtype=object)
        self._building = _optional(d["building_id"])
        self._facility = _optional(d["facility_id"])
        self._unit = _optional(d["unit_id"])
        self._floor = pd.to_numeric(d["floor"], errors="coerce").to_numpy(dtype=float,
                                                                           na_value=np.nan)
        unplayed = sorted(c for c in set(self._type)
                          if c not in REPORT_INTERVAL_S or not hasattr(self, f"_read_{c}"))
        if unplayed:
            raise ValueError(f"the simulator has no behaviour for the device type(s) "
                             f"{', '.join(unplayed)}")
        n = len(d)
        self._rows = {code: np.flatnonzero(self._type == code) for code in DEVICE_TYPES}
        self._code = np.array([_CODES.index(c) for c in self._type], dtype=int)
        self._interval = np.array([REPORT_INTERVAL_S[c] for c in self._type], dtype=float)
        self._phase = self._rng.uniform(0, self._interval)
        self._silent = np.zeros(n, dtype=bool)
        self._report_now = np.zeros(n, dtype=bool)
        self._outbox: list[tuple[float, int, str, dict]] = []
        #: Readings a device sends out of its schedule (a hub reporting its new mode).
        self._extra_readings: list[tuple[float, int, dict]] = []
        self._active: list[_Active] = []
        f = community.facilities
        self._facility_kind = dict(zip(f["id"], f["kind"]))
        self._facility_building = dict(zip(f["id"], _optional(f["building_id"])))
        self._setup_people()
        self._setup_gateways()
        self._setup_devices()
        self._warm_up()

    # --- public ------------------------------------------------------------------------
    @property
    def clock(self) -> datetime:
        """Simulated time reached: the end of the last tick."""
        return datetime.fromtimestamp(self._t, timezone.utc)

    @property
    def devices(self) -> int:
        return len(self._ids)

    @property
    def incidents(self) -> tuple[Incident, ...]:
        return tuple(a.incident for a in self._active)

    def opening(self) -> list[Message]:
        """Every device's status, online, at the current clock (published retained)."""
        ts = _iso([self._t])[0]
        payload = orjson.dumps({"online": True, "ts": ts})
        return [(contract.topic(self._cid, device, "status"), payload)
                for device, silent in zip(self._ids, self._silent) if not silent]

    def advance(self, until: datetime) -> list[Message]:
        """Run every whole tick that ends at or before ``until``; their messages in time order."""
        end = until.timestamp()
        out: list[Message] = []
        while self._t + self.tick_s <= end + 1e-9:
            t0, t1 = self._t, self._t + self.tick_s
            out.extend(self._tick(t0, t1))
            self._t = t1
        return out

    def flush(self) -> list[Message]:
        """What the gateways still hold, as batches (at the end of a run)."""
        return [m for _, m in self._flush_batches(self._t, force=True)]

    def inject(self, spec: str) -> Incident:
        """Start the incident ``name:target`` at the current clock.

        The target is an id (device, facility, building, resident) or the name
        of a facility or building ('1号地库', '3栋'). Raises ValueError for an
        unknown incident or target, naming it.
        """
        name, _, target = spec.partition(":")
        name, target = name.strip(), target.strip()
        if name not in INCIDENTS:
            raise ValueError(f"unknown incident {name!r}; the incidents are: "
                             f"{', '.join(INCIDENTS)}")
        if not target:
            raise ValueError(f"incident {name!r} needs a target, written {name}:<target> "
                             f"(e.g. co-leak:1号地库)")
        place, rows = self._resolve(name, target)
        duration = _INCIDENT_S[name]
        end = np.inf if duration is None else self._t + duration
        incident = Incident(
            name=name, target=target, place=place,
            devices=tuple(self._ids[rows]),
            start=self.clock,
            end=None if duration is None else datetime.fromtimestamp(end, timezone.utc),
        )
        mask = np.zeros(len(self._ids), dtype=bool)
        mask[rows] = True
        active = _Active(incident, rows, mask, self._t, end)
        self._active.append(active)
        self._begin(active)
        return incident

    # --- one tick ----------------------------------------------------------------------
    def _tick(self, t0: float, t1: float) -> list[Message]:
        events = self._outbox
        self._outbox = []
        events += self._update(t0, t1)
        events += self._access_events(t0, t1)
        events += self._camera_events(t0, t1)
        events += self._hub_events(t0, t1)
        events += self._incident_events(t0, t1)
        readings = self._readings(t0, t1) + self._extra_readings
        self._extra_readings = []
        timed = self._route(readings, events)
        timed += self._flush_batches(t1, force=False)
        timed.sort(key=lambda m: m[0])
        return [m for _, m in timed]

    def _readings(self, t0: float, t1: float) -> list[tuple[float, int, dict]]:
        """Telemetry of every device whose report falls in (t0, t1]."""
        out: list[tuple[float, int, dict]] = []
        last = np.floor((t1 - self._phase) / self._interval)
        due = (last > np.floor((t0 - self._phase) / self._interval)) | self._report_now
        due &= ~self._silent
        self._report_now[:] = False
        rows = np.flatnonzero(due)
        when = np.maximum(last[rows] * self._interval[rows] + self._phase[rows], t0 + 1e-3)
        codes = self._code[rows]
        for c in np.unique(codes):
            mine = codes == c
            picked, at = rows[mine], when[mine]
            code = _CODES[c]
            values = getattr(self, f"_read_{code}")(picked, at)
            names = list(values)
            columns = [_in_range(code, name, values[name]) for name in names]
            for k, row in enumerate(zip(*columns)):
                out.append((float(at[k]), int(picked[k]), dict(zip(names, row))))
        return out

    def _route(self, readings: list[tuple[float, int, dict]],
               events: list[tuple[float, int, str, dict]]) -> list[tuple[float, Message]]:
        """Messages of devices that publish themselves; relayed items go to their gateway."""
        out: list[tuple[float, Message]] = []
        times = _iso([t for t, *_ in readings] + [t for t, *_ in events])
        relay = self.batch_size > 1
        for (t, i, values), ts in zip(readings, times):
            if self._silent[i]:
                continue
            g = self._gateway_of[i]
            if relay and g >= 0:
                self._held[g].append((t, {"device": self._ids[i], "ts": ts, "readings": values}))
            else:
                out.append((t, (contract.topic(self._cid, self._ids[i], "telemetry"),
                                orjson.dumps({"ts": ts, "readings": values}))))
        for (t, i, kind, fields), ts in zip(events, times[len(readings):]):
            if kind == "status":
                out.append((t, (contract.topic(self._cid, self._ids[i], "status"),
                                orjson.dumps({**fields, "ts": ts}))))
                continue
            if self._silent[i]:
                continue
            self._seq += 1
            body = {"ts": ts, "id": f"{self._tag}-{self._seq}", "kind": kind, **fields}
            g = self._gateway_of[i]
            if relay and g >= 0:
                self._held[g].append((t, {"device": self._ids[i], "event": body}))
            else:
                out.append((t, (contract.topic(self._cid, self._ids[i], "event"),
                                orjson.dumps(body))))
        return out

    def _flush_batches(self, now: float, *, force: bool) -> list[tuple[float, Message]]:
        out = []
        for g, held in self._held.items():
            if not held:
                continue
            held.sort(key=lambda item: item[0])
            while len(held) >= self.batch_size or (held and (
                    force or now - held[0][0] >= BATCH_WINDOW_S)):
                chunk, held[:] = held[:self.batch_size], held[self.batch_size:]
                out.append((chunk[-1][0], (
                    contract.topic(self._cid, self._ids[g], "batch"),
                    orjson.dumps({"items": [item for _, item in chunk]}))))
        return out

    # --- state that evolves ------------------------------------------------------------
    def _update(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        """Meters, bins, soil and chargers from t0 to t1; the events that produced."""
        dt = t1 - t0
        mid = (t0 + t1) / 2
        h = _local_hour(mid)
        meters = self._meter_rows
        self._total[meters] += (_profile(_WATER, h) * self._scale[meters] * dt / 3600.0)
        self._energy[meters] += (_profile(_POWER, h) * self._scale[meters] * dt / 3600.0)
        events = self._update_bins(t0, t1)
        self._update_soil(t0, t1)
        events += self._update_chargers(t0, t1)
        return events

    def _update_bins(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        bins = self._rows["trash_bin_sensor"]
        if not len(bins):
            return []
        h = _local_hour((t0 + t1) / 2)
        fill = self._fill[bins] + self._fill_rate[bins] * _profile(_WASTE, h) * (t1 - t0) / 3600
        emptied = (_crossed(t0, t1, self._empty_at[bins])
                   | _crossed(t0, t1, self._empty_at[bins] + _DAY / 2))
        fill = np.where(emptied, self._rng.uniform(0, 3, len(bins)), fill)
        fill = np.where(self._overflowing(bins, t1), 100.0, fill)
        self._fill[bins] = np.minimum(fill, 100.0)
        events = []
        for station, (members, camera) in self._stations.items():
            if camera < 0 or self._fill[members].max() < 99.0:
                continue
            if t1 - self._overflow_seen.get(station, -np.inf) < _OVERFLOW_REPEAT_S:
                continue
            self._overflow_seen[station] = t1
            events.append((t1, camera, "detection",
                           {"class": "garbage_overflow", "confidence": self._confidence()}))
        return events

    def _update_soil(self, t0: float, t1: float) -> None:
        soil = self._rows["soil_sensor"]
        if not len(soil):
            return
        mid = (t0 + t1) / 2
        h = _local_hour(mid)
        # Evaporation (%/h), strongest at midday; irrigation adds 12 %/h while a valve is open.
        drying = 0.1 + 0.6 * max(0.0, math.sin(math.pi * (h - 6) / 13)) if 6 <= h <= 19 else 0.1
        watered = self._watering(self._facility[soil], mid)
        change = np.where(watered, 12.0, 0.0) - drying * self._dry_factor[soil]
        self._moisture[soil] = np.clip(self._moisture[soil] + change * (t1 - t0) / 3600, 5, 60)

    def _update_chargers(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        rows = self._rows["ev_charger"]
        if not len(rows):
            return []
        rng = self._rng
        events: list[tuple[float, int, str, dict]] = []
        state = self._charger_state
        # Sessions that finish: the pile stops when the battery is full.
        done = rows[(state[rows] == _CHARGER_CHARGING) & (self._charge_end[rows] <= t1)]
        for i in done:
            if self._overheating(i, t1):
                continue  # thermal runaway: the pile does not stop by itself
            t = max(self._charge_end[i], t0 + 1e-3)
            kwh = self._power[i] * (t - self._charge_start[i]) / 3600.0
            events.append((t, int(i), "charge_stop", {"session": self._session[i],
                                                      "energy_kwh": round(float(kwh), 3)}))
            state[i] = _CHARGER_FULL
            self._unplug_at[i] = t + rng.uniform(0.3, 3.0) * 3600
        unplugged = rows[(state[rows] == _CHARGER_FULL) & (self._unplug_at[rows] <= t1)]
        state[unplugged] = _CHARGER_IDLE
        idle = rows[(state[rows] == _CHARGER_IDLE) & ~self._silent[rows]]
        rate = _profile(_PLUG_IN, _local_hour((t0 + t1) / 2)) * (t1 - t0) / 3600.0
        for i in idle[rng.random(len(idle)) < rate]:
            events.append(self._plug_in(int(i), t0 + rng.uniform(1e-3, t1 - t0)))
        return events

    def _plug_in(self, i: int, t: float) -> tuple[float, int, str, dict]:
        rng = self._rng
        self._sessions += 1
        self._session[i] = f"s{self._tag}-{self._sessions}"
        self._charger_state[i] = _CHARGER_CHARGING
        self._charge_start[i] = t
        self._charge_end[i] = t + rng.uniform(2.5, 5.5) * 3600
        self._power[i] = rng.uniform(0.2, 0.45)
        fields = {"session": self._session[i]}
        subject = self._subject(None)
        if subject is not None:
            fields["subject"] = subject
        return (t, i, "charge_start", fields)

    def _warm_up(self) -> None:
        """Bins, soil, meters and chargers as they are at the start (events of the past dropped)."""
        t = self._start - _WARM_UP_S
        while t < self._start:
            step = min(_WARM_UP_STEP_S, self._start - t)
            self._update(t, t + step)
            t += step

    # --- events ------------------------------------------------------------------------
    def _access_events(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        rows = self._access_rows
        if not len(rows):
            return []
        rng = self._rng
        h = _local_hour((t0 + t1) / 2)
        lam = self._passages[rows] / _DAY * _profile(_ACTIVITY, h) * (t1 - t0)
        lam[self._silent[rows]] = 0.0
        count = rng.poisson(lam)
        events: list[tuple[float, int, str, dict]] = []
        out_share = _profile(_OUT_SHARE, h)
        for i in np.repeat(rows, count):
            t = t0 + rng.uniform(1e-3, t1 - t0)
            method = ACCESS_METHODS[int(np.searchsorted(self._method_cdf[self._type[i]],
                                                        rng.random(), side="right"))]
            fields = {"method": method,
                      "direction": "out" if rng.random() < out_share else "in"}
            if method not in _ANONYMOUS_METHODS:
                subject = self._subject(self._building[i])
                if subject is not None:
                    fields["subject"] = subject
            self._last_access[i] = t
            events.append((t, int(i), "access", fields))
        # Rare: a door propped open, someone slipping through behind a resident.
        odd = rng.random(len(rows)) < (0.2 / _DAY) * _profile(_ACTIVITY, h) * (t1 - t0)
        for i in rows[odd & ~self._silent[rows]]:
            t = t0 + rng.uniform(1e-3, t1 - t0)
            if self._type[i] == "access_door":
                self._held_until[i] = t + 120.0
                events.append((t, int(i), "door_held_open", {}))
            else:
                events.append((t, int(i), "tailgating", {}))
        return events

    def _camera_events(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        rows = self._rows["ai_camera"]
        if not len(rows):
            return []
        rng = self._rng
        lam = self._detect_rate[rows] * (_profile(_ACTIVITY, _local_hour((t0 + t1) / 2))
                                         * (t1 - t0) / _DAY)
        lam[self._silent[rows]] = 0.0
        hits = np.argwhere(rng.random(lam.shape) < lam)
        return [(t0 + rng.uniform(1e-3, t1 - t0), int(rows[r]), "detection",
                 {"class": CAMERA_CLASSES[c], "confidence": self._confidence()})
                for r, c in hits]

    def _hub_events(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        rows = self._rows["smart_home_hub"]
        if not len(rows):
            return []
        rng = self._rng
        weekday = _weekday(t0) < 5
        events: list[tuple[float, int, str, dict]] = []
        if weekday:
            commuters = rows[self._commuter[rows]]
            for moment, state in ((self._leave_at, "leave"), (self._return_at, "return")):
                for i in commuters[_crossed(t0, t1, moment[commuters])]:
                    t = max(t1 - ((t1 + LOCAL_OFFSET_S - moment[i]) % _DAY), t0 + 2e-3)
                    events.append((t, int(i), "door_contact",
                                   {"attrs": {"contact": "open", "occupants": state}}))
                    # The hub reports its mode when it changes, not only on schedule:
                    # armed as the door closes behind them, disarmed at the door
                    # (keypad or app) just before it opens.
                    if state == "leave":
                        self._extra_readings.append((t + 30.0, int(i), {"away_mode": "on"}))
                    else:
                        self._extra_readings.append((t - 1e-3, int(i), {"away_mode": "off"}))
        h = _local_hour((t0 + t1) / 2)
        home = ~self._away(rows, (t0 + t1) / 2) & ~self._no_motion[rows]
        awake = 6.5 <= h < 23.0
        lam = np.where(home & awake, 0.4, 0.0) * (t1 - t0) / 3600.0
        for i in rows[rng.random(len(rows)) < lam]:
            events.append((t0 + rng.uniform(1e-3, t1 - t0), int(i), "motion", {}))
        return events

    def _incident_events(self, t0: float, t1: float) -> list[tuple[float, int, str, dict]]:
        events = []
        for a in self._active:
            repeated = _REPEATED_DETECTIONS.get(a.incident.name)
            if repeated is None:
                continue
            kind, every = repeated
            for k, i in enumerate(a.rows):
                # first, first + every, ... that fall in (t0, t1] and before the end
                first = a.start + 5.0 + 7.0 * k
                n0 = max(math.floor((t0 - first) / every) + 1, 0)
                n1 = math.floor((t1 - first) / every)
                for t in (first + n * every for n in range(n0, n1 + 1)):
                    if t >= a.end:
                        break
                    fields: dict = {"class": kind, "confidence": self._confidence(high=True)}
                    if kind == "high_altitude_throw":
                        top = self._tower_floors.get(self._building[i], 18)
                        fields["attrs"] = {"floor_estimate": int(self._rng.integers(3, top + 1))}
                    events.append((t, int(i), "detection", fields))
        return events

    # --- readings, by type -------------------------------------------------------------
    def _read_access_gate(self, rows: np.ndarray, t: np.ndarray) -> dict:
        held = self._held_until[rows] > t
        just_used = t - self._last_access[rows] < 8.0
        return {"door_state": np.where(held, "held_open", np.where(just_used, "open", "closed"))}

    _read_access_door = _read_access_gate

    def _read_ai_camera(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"fps": np.round(self._fps[rows] - self._rng.choice([0.0, 0.0, 1.0], len(rows)))}

    def _read_smoke_detector(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"smoke_obscuration": np.round(np.abs(self._rng.normal(0.01, 0.01, len(rows))), 3),
                "battery": np.round(self._battery[rows])}

    def _read_co_sensor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"co": np.round(self._co(rows, t), 1),
                "temperature": np.round(_garage_temperature(t)
                                        + self._rng.normal(0, 0.2, len(rows)), 1)}

    def _read_exhaust_fan(self, rows: np.ndarray, t: np.ndarray) -> dict:
        h = _local_hour(t)
        rush = ((h >= 7.0) & (h < 9.5)) | ((h >= 17.0) & (h < 20.0))
        foul = np.array([self._garage_co(self._facility[i], t[k]) > 30.0
                         for k, i in enumerate(rows)], dtype=bool)
        on = rush | foul
        power = np.where(on, self._rng.normal(5.5, 0.15, len(rows)), 0.0)
        return {"running": np.where(on, "on", "off"), "power": np.round(power, 2)}

    def _read_speaker(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"volume": self._volume[rows]}

    def _read_water_leak_sensor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        wet = self._incident_mask("water-leak", rows, t)
        return {"leak": np.where(wet, "wet", "dry"), "battery": np.round(self._battery[rows])}

    def _read_trash_bin_sensor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"fill": np.round(self._fill[rows], 1),
                "temperature": np.round(_outdoor_temperature(t) + 1.0, 1)}

    def _read_soil_sensor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        soil_t = 16.0 + 4.0 * np.sin(2 * np.pi * (_local_hour(t) - 11.0) / 24.0)
        return {"soil_moisture": np.round(self._moisture[rows], 1),
                "soil_temperature": np.round(soil_t, 1)}

    def _read_irrigation_valve(self, rows: np.ndarray, t: np.ndarray) -> dict:
        open_ = self._watering(self._facility[rows], t)
        flow = np.where(open_, self._rng.normal(3.2, 0.15, len(rows)), 0.0)
        return {"valve": np.where(open_, "open", "closed"), "flow": np.round(flow, 2)}

    def _read_air_quality_sensor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        h = _local_hour(t)
        n = len(rows)
        temperature = _outdoor_temperature(t)
        pm25 = 35 + 15 * _bump(h, 8.0, 1.0) + 12 * _bump(h, 19.0, 1.5) + self._rng.normal(0, 3, n)
        noise = 40 + 9 * _profile(_ACTIVITY, h) + self._rng.normal(0, 1.5, n)
        return {"pm25": np.round(pm25, 1), "temperature": np.round(temperature, 1),
                "humidity": np.round(75 - 2.0 * (temperature - 17) + self._rng.normal(0, 2, n)),
                "noise": np.round(noise, 1)}

    def _read_ev_charger(self, rows: np.ndarray, t: np.ndarray) -> dict:
        state = self._charger_state[rows]
        charging = state == _CHARGER_CHARGING
        power = np.where(charging, self._power[rows], np.where(state == _CHARGER_FULL, 0.02, 0.0))
        heat = np.where(charging, 6.0 + 20.0 * self._power[rows], 1.0)
        temperature = _outdoor_temperature(t) + heat + self._rng.normal(0, 0.4, len(rows))
        for k, i in enumerate(rows):
            a = self._overheating(i, t[k])
            if a is not None:
                ramp = min(1.0, (t[k] - a.start) / _OVERHEAT_RAMP_S)
                temperature[k] = max(temperature[k], temperature[k] + ramp * (
                    _OVERHEAT_C - temperature[k]) + self._rng.normal(0, 0.5))
        return {"status": _CHARGER_STATUS[state], "power": np.round(power, 3),
                "temperature": np.round(temperature, 1)}

    def _read_water_meter(self, rows: np.ndarray, t: np.ndarray) -> dict:
        flow = _profile(_WATER, _local_hour(t)) * self._scale[rows] \
            * self._rng.uniform(0.7, 1.3, len(rows))
        return {"flow": np.round(flow, 4), "total": np.round(self._total[rows], 3)}

    def _read_power_meter(self, rows: np.ndarray, t: np.ndarray) -> dict:
        power = _profile(_POWER, _local_hour(t)) * self._scale[rows] \
            * self._rng.uniform(0.8, 1.2, len(rows))
        return {"power": np.round(power, 3), "energy": np.round(self._energy[rows], 2)}

    def _read_smart_home_hub(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"away_mode": np.where(self._away(rows, t), "on", "off")}

    def _read_elevator_monitor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        rng = self._rng
        n = len(rows)
        running = rng.random(n) < np.clip(0.08 + 0.3 * _profile(_ACTIVITY, _local_hour(t)), 0, 0.9)
        top = np.nan_to_num(self._floor[rows], nan=18.0).astype(int)
        floor = np.floor(rng.uniform(1, top + 1)).astype(float)
        floor = np.where(~running & (rng.random(n) < 0.5), 1.0, floor)
        floor = np.where(rng.random(n) < 0.05, -1.0, floor)
        door_open = ~running & (rng.random(n) < 0.25)
        return {"floor": floor, "door_state": np.where(door_open, "open", "closed"),
                "running": np.where(running, "on", "off")}

    def _read_iot_gateway(self, rows: np.ndarray, t: np.ndarray) -> dict:
        return {"connected_devices": self._connected[rows].astype(float),
                "rssi": np.round(self._rng.normal(-68.0, 4.0, len(rows)))}

    def _read_pump_monitor(self, rows: np.ndarray, t: np.ndarray) -> dict:
        demand = _profile(_WATER, _local_hour(t)) / _WATER.max()
        n = len(rows)
        return {"pressure": np.round(4.0 + 0.6 * demand + self._rng.normal(0, 0.05, n), 2),
                "running": np.full(n, "on"),
                "water_level": np.round(3.2 - 0.6 * demand + self._rng.normal(0, 0.02, n), 2)}

    # --- setup -------------------------------------------------------------------------
    def _setup_people(self) -> None:
        r = self.community.residents
        self._hidden: set[str] = set()
        self._resident_building = dict(zip(r["id"], _optional(r["building_id"])))
        self._resident_unit = dict(zip(r["id"], r["unit_id"]))
        self._alone = set(r["unit_id"].value_counts().loc[lambda c: c == 1].index)
        self._weights = r["age_band"].map(_AGE_ACTIVITY).fillna(1.0).to_numpy(dtype=float)
        self._build_pools()

    def _build_pools(self) -> None:
        r = self.community.residents
        keep = ~r["id"].isin(self._hidden).to_numpy()
        ids = r["id"].to_numpy(dtype=object)[keep]
        weights = self._weights[keep]
        buildings = _optional(r["building_id"])[keep]
        self._pools: dict[object, tuple[np.ndarray, np.ndarray]] = {
            None: (ids, _cdf(weights))}
        for b in pd.unique(buildings):
            mine = buildings == b
            self._pools[b] = (ids[mine], _cdf(weights[mine]))

    def _subject(self, building: object) -> str | None:
        """A resident of ``building`` (anyone, for None or a building with nobody), by activity."""
        ids, cdf = self._pools.get(building, self._pools[None])
        if not len(ids):
            ids, cdf = self._pools[None]
            if not len(ids):
                return None
        return str(ids[min(int(np.searchsorted(cdf, self._rng.random(), side="right")),
                           len(ids) - 1)])

    def _setup_gateways(self) -> None:
        n = len(self._ids)
        gateways = self._rows["iot_gateway"]
        in_building = {self._building[g]: g for g in gateways if self._building[g] is not None}
        relayed = np.isin(self._type, RELAYED_TYPES)
        self._gateway_of = np.array([in_building.get(b, -1) if relayed[i] else -1
                                     for i, b in enumerate(self._building)], dtype=int)
        self._held: dict[int, list[tuple[float, dict]]] = {int(g): [] for g in
                                                           in_building.values()}
        self._connected = np.zeros(n, dtype=int)
        counts = np.bincount(self._gateway_of[self._gateway_of >= 0], minlength=n)
        self._connected[:] = counts
        site = [g for g in gateways if self._building[g] is None]
        outdoor = int((np.isin(self._type, SITE_SENSOR_TYPES)
                       & np.array([b is None for b in self._building])).sum())
        for k, g in enumerate(site):
            self._connected[g] = outdoor // len(site) + (k < outdoor % len(site))

    def _setup_devices(self) -> None:
        rng = self._rng
        n = len(self._ids)
        # gates and doors
        self._access_rows = np.concatenate([self._rows["access_gate"], self._rows["access_door"]])
        self._passages = np.array([_PASSAGES_PER_DAY.get(c, 0.0) for c in self._type])
        self._passages *= rng.uniform(0.7, 1.3, n)
        self._method_cdf = {code: np.cumsum([shares[m] for m in ACCESS_METHODS])
                            / sum(shares.values()) for code, shares in _METHOD_SHARES.items()}
        self._last_access = np.full(n, -np.inf)
        self._held_until = np.full(n, -np.inf)
        # cameras
        roles = np.array([self._camera_role(i) for i in range(n)], dtype=object)
        table = np.array([[_DETECTIONS_PER_DAY[role].get(c, 0.0) for c in CAMERA_CLASSES]
                          for role in _CAMERA_ROLES])
        role_index = {role: k for k, role in enumerate(_CAMERA_ROLES)}
        self._detect_rate = np.zeros((n, len(CAMERA_CLASSES)))
        cams = self._rows["ai_camera"]
        self._detect_rate[cams] = table[[role_index[roles[i]] for i in cams]]
        self._fps = rng.choice([15.0, 25.0, 25.0, 30.0], n)
        self._tower_floors = {}
        for i in self._rows["elevator_monitor"]:
            if not np.isnan(self._floor[i]):
                self._tower_floors[self._building[i]] = int(self._floor[i])
        # batteries, speakers
        self._battery = rng.uniform(55, 100, n)
        self._volume = rng.choice([50.0, 60.0, 70.0], n)
        # CO: each sensor reads the garage's air a little differently
        self._co_factor = rng.uniform(0.75, 1.3, n)
        self._leak_factor = rng.uniform(0.85, 1.12, n)
        # bins, emptied twice a day per station
        bins = self._rows["trash_bin_sensor"]
        self._fill = np.zeros(n)
        self._fill_rate = rng.uniform(2.5, 6.0, n)
        station_offset = {s: rng.uniform(0, 45 * 60) for s in pd.unique(self._facility[bins])}
        self._empty_at = np.array([7 * 3600 + station_offset.get(f, 0.0) for f in self._facility])
        cameras_at = {self._facility[c]: int(c) for c in self._rows["ai_camera"]}
        self._stations = {s: (bins[self._facility[bins] == s], cameras_at.get(s, -1))
                          for s in station_offset}
        self._overflow_seen: dict[object, float] = {}
        # soil and irrigation: each green area waters in its own slot
        soil = self._rows["soil_sensor"]
        self._moisture = rng.uniform(28, 36, n)
        self._dry_factor = rng.uniform(0.8, 1.2, n)
        areas = sorted({a for a in self._facility[np.concatenate(
            [soil, self._rows["irrigation_valve"]])] if a is not None}, key=str)
        self._water_slot = {a: k * 15 * 60.0 for k, a in enumerate(areas)}
        # meters: a flat, or a whole building (master meters, without unit)
        self._meter_rows = np.concatenate([self._rows["water_meter"], self._rows["power_meter"]])
        master = np.array([u is None for u in self._unit])
        self._scale = np.where(master, 70.0, 1.0) * rng.uniform(0.6, 1.4, n)
        self._total = np.where(master, rng.uniform(5e3, 8e4, n), rng.uniform(50, 900, n))
        self._energy = np.where(master, rng.uniform(2e5, 3e6, n), rng.uniform(2e3, 3e4, n))
        # chargers
        self._charger_state = np.zeros(n, dtype=int)
        self._session = np.full(n, None, dtype=object)
        self._charge_start = np.zeros(n)
        self._charge_end = np.full(n, np.inf)
        self._unplug_at = np.full(n, np.inf)
        self._power = np.zeros(n)
        # smart homes: commuting households arm away mode on working days
        self._commuter = rng.random(n) < 0.6
        self._leave_at = rng.uniform(7.2, 8.8, n) * 3600
        self._return_at = rng.uniform(17.2, 19.8, n) * 3600
        self._no_motion = np.zeros(n, dtype=bool)

    def _camera_role(self, i: int) -> str:
        facility = self._facility[i]
        if facility is not None:
            kind = self._facility_kind.get(facility)
            return kind if kind in _DETECTIONS_PER_DAY else "outdoor"
        return "tower" if self._building[i] is not None else "outdoor"

    # --- signals -----------------------------------------------------------------------
    def _co(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """What CO sensors read (ppm): the garage's air, their own bias, noise and any leak."""
        level = _garage_co_ppm(t) * self._co_factor[rows] \
            + self._rng.normal(0, 0.6, len(rows)) + self._leak(rows, t) * self._leak_factor[rows]
        return np.maximum(level, 0.0)

    def _garage_co(self, garage: object, t: float) -> float:
        """The mean CO (ppm) of a garage's sensors at t, without noise: what its fans go by."""
        rows = self._rows["co_sensor"]
        rows = rows[self._facility[rows] == garage]
        if not len(rows):
            return 0.0
        at = np.full(len(rows), t)
        return float(np.mean(_garage_co_ppm(at) * self._co_factor[rows] + self._leak(rows, at)))

    def _leak(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """CO added by leaks (ppm) at the sensors ``rows``."""
        extra = np.zeros(len(rows))
        for a in self._active:
            if a.incident.name == "co-leak":
                extra += a.mask[rows] * _leak_envelope(t - a.start, a.end - a.start) * _LEAK_PPM
        return extra

    def _watering(self, areas: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        """Whether each green area's valves are open at t: 06:00 and 18:30 slots of 20 min."""
        t = np.broadcast_to(np.asarray(t, dtype=float), np.shape(areas))
        slot = np.array([self._water_slot.get(a, np.nan) for a in areas], dtype=float)
        of_day = (t + LOCAL_OFFSET_S) % _DAY
        morning = (of_day - 6 * 3600 - slot) % _DAY < 20 * 60
        evening = (of_day - 18.5 * 3600 - slot) % _DAY < 20 * 60
        return ~np.isnan(slot) & (morning | evening)

    def _away(self, rows: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        t = np.broadcast_to(np.asarray(t, dtype=float), rows.shape)
        of_day = (t + LOCAL_OFFSET_S) % _DAY
        working = _weekday(t) < 5
        return (self._commuter[rows] & working & (of_day >= self._leave_at[rows])
                & (of_day < self._return_at[rows]))

    def _confidence(self, *, high: bool = False) -> float:
        return round(float(self._rng.uniform(0.82, 0.97) if high
                           else self._rng.uniform(0.6, 0.95)), 2)

    def _incident_mask(self, name: str, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        out = np.zeros(len(rows), dtype=bool)
        for a in self._active:
            if a.incident.name == name:
                out |= a.mask[rows] & (t >= a.start) & (t < a.end)
        return out

    def _overheating(self, i: int, t: float) -> _Active | None:
        for a in self._active:
            if a.incident.name == "charger-overheat" and a.mask[i] and a.start <= t < a.end:
                return a
        return None

    def _overflowing(self, rows: np.ndarray, t: float) -> np.ndarray:
        return self._incident_mask("trash-overflow", rows, np.full(len(rows), t))

    # --- incidents ---------------------------------------------------------------------
    def _begin(self, a: _Active) -> None:
        """What happens the moment an incident starts."""
        name, t = a.incident.name, self._t
        if name == "device-offline":
            for i in a.rows:
                self._outbox.append((t + 1e-3, int(i), "status",
                                     {"online": False, "reason": "no heartbeat"}))
                self._silent[i] = True
                if self._type[i] == "iot_gateway" and self.batch_size > 1:
                    self._silent[self._gateway_of == i] = True
                    self._held.get(int(i), []).clear()
        elif name == "elderly-not-seen":
            resident = a.incident.place
            self._hidden.add(resident)
            self._build_pools()
            unit = self._resident_unit[resident]
            if unit in self._alone:
                self._no_motion |= np.array([u == unit for u in self._unit])
        elif name == "charger-overheat":
            i = int(a.rows[0])
            if self._charger_state[i] != _CHARGER_CHARGING:
                self._outbox.append(self._plug_in(i, t + 1e-3))
            self._charge_end[i] = max(self._charge_end[i], a.end + 600.0)
        elif name == "trash-overflow":
            bins = a.rows[self._type[a.rows] == "trash_bin_sensor"]
            self._fill[bins] = 100.0
            self._report_now[bins] = True
            station = a.incident.place
            camera = self._stations.get(station, (bins, -1))[1]
            if camera >= 0:
                self._overflow_seen[station] = t
                self._outbox.append((t + 1e-3, camera, "detection",
                                     {"class": "garbage_overflow",
                                      "confidence": self._confidence(high=True)}))
        elif name == "water-leak":
            self._report_now[a.rows] = True

    def _resolve(self, name: str, target: str) -> tuple[str, np.ndarray]:
        """The place an incident happens at and the devices that show it."""
        if name == "elderly-not-seen":
            if target not in self._resident_building:
                raise ValueError(f"{name}: no resident {target!r} in {self._cid} (give a resident"
                                 f" id, e.g. {next(iter(self._resident_building), '...')})")
            rows = np.concatenate([self._rows["access_gate"], self._rows["access_door"][
                self._building[self._rows["access_door"]] == self._resident_building[target]]])
            return target, rows
        if name == "device-offline":
            return target, np.array([self._device(name, target, None)])
        if name == "high-altitude-throw":
            building = self._place_building(name, target)
            return building, self._cameras(lambda i: self._building[i] == building
                                           and self._facility[i] is None, name, target)
        if name == "ebike-in-lift":
            facility = self._facility_id(target, ("elevator",))
            if facility is not None:
                return facility, self._cameras(lambda i: self._facility[i] == facility, name,
                                               target)
            building = self._place_building(name, target)
            return building, self._cameras(
                lambda i: self._facility_kind.get(self._facility[i]) == "elevator"
                and self._facility_building.get(self._facility[i]) == building, name, target)
        if name == "fire-lane-parking":
            if target in self._index:
                return target, np.array([self._device(name, target, "ai_camera")])
            gate = self._place_facility(name, target, ("gate",))
            return gate, self._cameras(lambda i: self._facility[i] == gate, name, target)
        if name == "charger-overheat":
            if target in self._index:
                return target, np.array([self._device(name, target, "ev_charger")])
            shed = self._place_facility(name, target, ("ev_shed",))
            chargers = self._at(shed, "ev_charger")
            if not len(chargers):
                raise ValueError(f"{name}: {target!r} has no charger")
            busy = chargers[self._charger_state[chargers] == _CHARGER_CHARGING]
            return shed, (busy if len(busy) else chargers)[:1]
        kinds, types = {
            "co-leak": (("garage",), ("co_sensor",)),
            "trash-overflow": (("trash_station",), ("trash_bin_sensor", "ai_camera")),
            "water-leak": (("pump_room", "garage"), ("water_leak_sensor",)),
        }[name]
        place = self._place_facility(name, target, kinds)
        rows = np.concatenate([self._at(place, code) for code in types])
        if not len(rows):
            raise ValueError(f"{name}: {target!r} has no {' or '.join(types)}")
        return place, rows

    def _at(self, facility: str, code: str) -> np.ndarray:
        rows = self._rows[code]
        return rows[self._facility[rows] == facility]

    def _cameras(self, where, name: str, target: str) -> np.ndarray:
        rows = np.array([i for i in self._rows["ai_camera"] if where(i)], dtype=int)
        if not len(rows):
            raise ValueError(f"{name}: {target!r} has no camera for it")
        return rows

    def _device(self, name: str, target: str, code: str | None) -> int:
        i = self._index.get(target)
        if i is None:
            raise ValueError(f"{name}: no device {target!r} in {self._cid}")
        if code is not None and self._type[i] != code:
            raise ValueError(f"{name}: {target} is a {self._type[i]}, not a {code}")
        return i

    def _facility_id(self, target: str, kinds: tuple[str, ...]) -> str | None:
        f = self.community.facilities
        f = f[f["kind"].isin(kinds)]
        hit = f[(f["id"] == target) | (f["name"] == target)]
        return None if hit.empty else str(hit["id"].iloc[0])

    def _place_facility(self, name: str, target: str, kinds: tuple[str, ...]) -> str:
        found = self._facility_id(target, kinds)
        if found is None:
            f = self.community.facilities
            names = f.loc[f["kind"].isin(kinds), "name"].tolist()
            what = " or ".join(k.replace("_", " ") for k in kinds)
            raise ValueError(f"{name}: no {what} {target!r} in {self._cid}; "
                             f"there are: {_listing(names)}")
        return found

    def _place_building(self, name: str, target: str) -> str:
        b = self.community.buildings
        hit = b[(b["id"] == target) | (b["name"] == target)]
        if hit.empty:
            raise ValueError(f"{name}: no building {target!r} in {self._cid}; there are: "
                             f"{_listing(b['name'].tolist())}")
        return str(hit["id"].iloc[0])


# --- helpers ---------------------------------------------------------------------------

def _require(frame: pd.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {name} frame lacks the column(s) {', '.join(missing)}")


def _optional(column: pd.Series) -> np.ndarray:
    """Object array with None for missing values."""
    values = column.astype(object).to_numpy()
    return np.where(pd.isna(values), None, values)


def _listing(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def _cdf(weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    return np.cumsum(weights) / total if total > 0 else np.zeros(0)


def _in_range(code: str, metric: str, values: object) -> list:
    """Values as plain Python, numbers clipped to the registry's physical range."""
    spec = DEVICE_TYPES[code].metrics[metric]
    if spec.is_text:
        return [str(v) for v in values]
    lo = -np.inf if spec.min is None else spec.min
    hi = np.inf if spec.max is None else spec.max
    return np.clip(np.asarray(values, dtype=float), lo, hi).tolist()


def _local_hour(t: np.ndarray | float) -> np.ndarray | float:
    if isinstance(t, float):
        return ((t + LOCAL_OFFSET_S) % _DAY) / 3600.0
    return ((np.asarray(t, dtype=float) + LOCAL_OFFSET_S) % _DAY) / 3600.0


def _weekday(t: np.ndarray | float) -> np.ndarray | int:
    """Local day of the week, Monday 0 (1970-01-01 was a Thursday)."""
    return (np.floor((np.asarray(t, dtype=float) + LOCAL_OFFSET_S) / _DAY).astype(int) + 3) % 7


def _profile(curve: np.ndarray, h: np.ndarray | float) -> np.ndarray | float:
    """A daily curve (see :func:`_daily`) at local hour ``h``, interpolated."""
    return np.interp(h, _HOURS, curve)


def _bump(h: np.ndarray | float, centre: float, width: float) -> np.ndarray | float:
    d = (np.asarray(h) - centre + 12.0) % 24.0 - 12.0
    return np.exp(-0.5 * (d / width) ** 2)


def _crossed(t0: float, t1: float, at: np.ndarray) -> np.ndarray:
    """Whether the local time of day ``at`` (seconds after midnight) falls in (t0, t1]."""
    return (np.floor((t1 + LOCAL_OFFSET_S - at) / _DAY)
            > np.floor((t0 + LOCAL_OFFSET_S - at) / _DAY))


def _outdoor_temperature(t: np.ndarray) -> np.ndarray:
    """Air temperature (°C): coolest before dawn, warmest mid-afternoon."""
    return 17.0 + 6.0 * np.sin(2 * np.pi * (_local_hour(t) - 9.0) / 24.0)


def _garage_co_ppm(t: np.ndarray) -> np.ndarray:
    """Garage CO (ppm) from cars: a low background, peaks when everyone drives off or home."""
    h = _local_hour(t)
    return 2.5 + 14.0 * _bump(h, 8.0, 0.6) + 11.0 * _bump(h, 18.2, 0.7)


def _garage_temperature(t: np.ndarray) -> np.ndarray:
    return 20.0 + 1.5 * np.sin(2 * np.pi * (_local_hour(t) - 11.0) / 24.0)


def _leak_envelope(age: np.ndarray, duration: float) -> np.ndarray:
    """0 before a CO leak, rising to 1 over the ramp, held, falling to 0 at its end."""
    age = np.asarray(age, dtype=float)
    rise = np.clip(age / _LEAK_RAMP_S, 0.0, 1.0)
    fall = np.clip((duration - age) / _LEAK_FALL_S, 0.0, 1.0)
    return np.where(age < 0, 0.0, np.minimum(rise, fall))


def _iso(times: list[float]) -> list[str]:
    """RFC 3339 UTC text with milliseconds and 'Z' (vectorised)."""
    if not times:
        return []
    ms = np.round(np.asarray(times, dtype=float) * 1000).astype("int64").astype("datetime64[ms]")
    return [s + "Z" for s in np.datetime_as_string(ms, unit="ms").tolist()]
