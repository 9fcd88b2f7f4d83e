"""The outdoors: waste bins, green areas and their irrigation, and the air.

Bins fill faster in the morning and evening and are emptied at about 07:00
and 19:00; a full bin is filmed by its station's camera. Soil dries through
the day; each green area is watered in its own 20-minute slot after 06:00
and after 18:30, and its valves obey ``open`` and ``close`` (the last command
wins until the next slot starts or ends). A ``dry-soil`` incident dries a
green area's soil (or one probe's) to under 20 % within half an hour. The air
is warmest at 15:00 and dustiest at the rush hours.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ingest.simulator.cameras import confidence
from ingest.simulator.clock import DAY_S, bump, crossed, daily, local_hour, local_seconds, profile
from ingest.simulator.commands import Override
from ingest.simulator.incidents import Active
from ingest.simulator.people import ACTIVITY
from ingest.simulator.world import Domain, Event, Outcome, World

#: Waste thrown away, relative: mornings and evenings.
WASTE = daily([0.2, 0.1, 0.1, 0.1, 0.1, 0.3, 1.4, 1.8, 1.5, 1.0, 0.9, 1.2,
               1.4, 1.0, 0.8, 0.8, 0.9, 1.3, 1.7, 1.8, 1.6, 1.2, 0.7, 0.4])
#: A full bin is filmed again after this many seconds.
OVERFLOW_REPEAT_S = 600.0
#: Watering: the slots start this long after 06:00 and 18:30, one area after another.
SLOT_S, SLOT_GAP_S = 20 * 60.0, 15 * 60.0
#: Moisture gained while watered (%/h); flow of an open valve (m³/h): mean and spread.
WATERING_PCT_H, VALVE_FLOW = 12.0, (3.2, 0.15)
#: Soil in a ``dry-soil`` incident dries to this moisture (%) while the incident lasts.
DRY_SOIL_PCT = 18.0


class Environment(Domain):
    """Trash bins, soil probes, irrigation valves and air quality stations."""

    types = ("trash_bin_sensor", "soil_sensor", "irrigation_valve", "air_quality_sensor")

    def __init__(self, world: World) -> None:
        super().__init__(world)
        rng, n, facility = world.rng, world.n, world.facility
        # bins, emptied twice a day per station
        bins = world.rows["trash_bin_sensor"]
        self.fill = np.zeros(n)
        self.fill_rate = rng.uniform(2.5, 6.0, n)
        station_offset = {s: rng.uniform(0, 45 * 60) for s in pd.unique(facility[bins])}
        self.empty_at = np.array([7 * 3600 + station_offset.get(f, 0.0) for f in facility])
        cameras_at = {facility[c]: int(c) for c in world.rows["ai_camera"]}
        #: Trash station -> (its bins, its camera or -1).
        self.stations = {s: (bins[facility[bins] == s], cameras_at.get(s, -1))
                         for s in station_offset}
        self.overflow_seen: dict[object, float] = {}
        # soil and irrigation: each green area waters in its own slot
        soil = world.rows["soil_sensor"]
        self.moisture = rng.uniform(28, 36, n)
        self.dry_factor = rng.uniform(0.8, 1.2, n)
        valves = world.rows["irrigation_valve"]
        areas = sorted({a for a in facility[np.concatenate([soil, valves])] if a is not None},
                       key=str)
        self.water_slot = {a: k * SLOT_GAP_S for k, a in enumerate(areas)}
        self.valves = Override(n)
        #: Extra drying (%/h) of probes in a dry-soil incident.
        self.dry_spell = np.zeros(n)

    # --- state -----------------------------------------------------------------------------
    def update(self) -> list[Event]:
        events = self._update_bins()
        self._update_soil()
        return events

    def _update_bins(self) -> list[Event]:
        w = self.world
        bins = w.rows["trash_bin_sensor"]
        if not len(bins):
            return []
        t0, t1 = w.clock.t0, w.clock.t1
        h = local_hour(w.clock.mid)
        fill = self.fill[bins] + self.fill_rate[bins] * profile(WASTE, h) * (t1 - t0) / 3600
        emptied = (crossed(t0, t1, self.empty_at[bins])
                   | crossed(t0, t1, self.empty_at[bins] + DAY_S / 2))
        fill = np.where(emptied, w.rng.uniform(0, 3, len(bins)), fill)
        fill = np.where(w.incidents.covering("trash-overflow", bins, np.full(len(bins), t1)),
                        100.0, fill)
        self.fill[bins] = np.minimum(fill, 100.0)
        events: list[Event] = []
        for station, (members, camera) in self.stations.items():
            if camera < 0 or self.fill[members].max() < 99.0:
                continue
            if t1 - self.overflow_seen.get(station, -np.inf) < OVERFLOW_REPEAT_S:
                continue
            self.overflow_seen[station] = t1
            events.append((t1, camera, "detection",
                           {"class": "garbage_overflow", "confidence": confidence(w.rng)}))
        return events

    def _update_soil(self) -> None:
        w = self.world
        soil = w.rows["soil_sensor"]
        if not len(soil):
            return
        mid = w.clock.mid
        h = local_hour(mid)
        # Evaporation (%/h), strongest at midday; irrigation adds 12 %/h while a valve is open.
        drying = 0.1 + 0.6 * max(0.0, math.sin(math.pi * (h - 6) / 13)) if 6 <= h <= 19 else 0.1
        watered = self._watered(soil, mid)
        change = np.where(watered, WATERING_PCT_H, 0.0) - drying * self.dry_factor[soil]
        change -= w.incidents.covering("dry-soil", soil, np.full(len(soil), mid)) \
            * self.dry_spell[soil]
        self.moisture[soil] = np.clip(self.moisture[soil] + change * w.clock.dt / 3600, 5, 60)

    def _watered(self, soil: np.ndarray, t: float) -> np.ndarray:
        """Whether the soil at each probe is being watered: its area's valves by schedule,
        or, where a valve of the area was commanded, whether any of them is open."""
        w = self.world
        facility = w.facility
        watered = self.watering(facility[soil], t)
        valves = w.rows["irrigation_valve"]
        if not self.valves.holds(valves).any():
            return watered
        open_ = self.valves.apply(valves, self.watering(facility[valves], t))
        commanded = set(facility[valves[self.valves.holds(valves)]])
        area_open = {a: bool(open_[facility[valves] == a].any()) for a in commanded}
        return np.array([area_open.get(a, s) for a, s in zip(facility[soil], watered)],
                        dtype=bool)

    def watering(self, areas: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        """Whether each green area's schedule waters at t: 06:00 and 18:30 slots of 20 min."""
        t = np.broadcast_to(np.asarray(t, dtype=float), np.shape(areas))
        slot = np.array([self.water_slot.get(a, np.nan) for a in areas], dtype=float)
        of_day = local_seconds(t)
        morning = (of_day - 6 * 3600 - slot) % DAY_S < SLOT_S
        evening = (of_day - 18.5 * 3600 - slot) % DAY_S < SLOT_S
        return ~np.isnan(slot) & (morning | evening)

    def begin(self, active: Active) -> None:
        w = self.world
        if active.incident.name == "dry-soil":
            # Dries to DRY_SOIL_PCT by the incident's end, on top of the day's drying.
            probes = active.rows
            span_h = (active.end - active.start) / 3600.0
            self.dry_spell[probes] = np.maximum(self.moisture[probes] - DRY_SOIL_PCT, 0.0) \
                / span_h
            return
        if active.incident.name != "trash-overflow":
            return
        bins = active.rows[w.type[active.rows] == "trash_bin_sensor"]
        self.fill[bins] = 100.0
        w.report_now[bins] = True
        station = active.incident.place
        camera = self.stations.get(station, (bins, -1))[1]
        if camera >= 0:
            self.overflow_seen[station] = w.clock.now
            w.outbox.append((w.clock.now + 1e-3, camera, "detection",
                             {"class": "garbage_overflow",
                              "confidence": confidence(w.rng, high=True)}))

    # --- readings --------------------------------------------------------------------------
    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        rng, n = self.world.rng, len(rows)
        if code == "trash_bin_sensor":
            return {"fill": np.round(self.fill[rows], 1),
                    "temperature": np.round(outdoor_temperature(t) + 1.0, 1)}
        if code == "soil_sensor":
            soil_t = 16.0 + 4.0 * np.sin(2 * np.pi * (local_hour(t) - 11.0) / 24.0)
            return {"soil_moisture": np.round(self.moisture[rows], 1),
                    "soil_temperature": np.round(soil_t, 1)}
        if code == "irrigation_valve":
            open_ = self.valves.apply(rows, self.watering(self.world.facility[rows], t))
            flow = np.where(open_, rng.normal(*VALVE_FLOW, n), 0.0)
            return {"valve": np.where(open_, "open", "closed"), "flow": np.round(flow, 2)}
        if code == "air_quality_sensor":
            h = local_hour(t)
            temperature = outdoor_temperature(t)
            pm25 = 35 + 15 * bump(h, 8.0, 1.0) + 12 * bump(h, 19.0, 1.5) + rng.normal(0, 3, n)
            noise = 40 + 9 * profile(ACTIVITY, h) + rng.normal(0, 1.5, n)
            return {"pm25": np.round(pm25, 1), "temperature": np.round(temperature, 1),
                    "humidity": np.round(75 - 2.0 * (temperature - 17) + rng.normal(0, 2, n)),
                    "noise": np.round(noise, 1)}
        return super().read(code, rows, t)

    # --- commands --------------------------------------------------------------------------
    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        w = self.world
        if w.type[i] != "irrigation_valve" or command not in ("open", "close"):
            return super().obey(i, command, args)
        rows = np.array([i])
        auto = self.watering(w.facility[rows], w.clock.now)
        was = bool(self.valves.apply(rows, auto)[0])
        self.valves.set(i, command == "open", bool(auto[0]))
        w.report_now[i] = True
        state = "open" if command == "open" else "closed"
        return Outcome(True, f"valve {state}" + ("" if was != (command == "open")
                                                  else f" (was {state})"))


def outdoor_temperature(t: np.ndarray) -> np.ndarray:
    """Air temperature (°C): coolest before dawn, warmest mid-afternoon."""
    return 17.0 + 6.0 * np.sin(2 * np.pi * (local_hour(t) - 9.0) / 24.0)
