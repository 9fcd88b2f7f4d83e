"""The households: their meters, and their smart-home hubs' away mode.

Flat meters and building master meters (about 70 flats' worth) follow a day
curve and count up. Six households in ten are commuters: their hub is armed
away between leaving and coming back on working days, with a door contact at
each change, and reports motion while someone is at home and awake. Hubs
obey ``arm_away`` and ``disarm`` (the last command wins until the household
next leaves or comes back). During an ``intrusion`` a flat is armed and
someone moves in it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest.simulator.clock import (
    DAY_S,
    LOCAL_OFFSET_S,
    crossed,
    daily,
    local_hour,
    local_seconds,
    profile,
    weekday,
)
from ingest.simulator.commands import Override
from ingest.simulator.incidents import Active, repeats
from ingest.simulator.people import People
from ingest.simulator.world import Domain, Event, Outcome, World

#: Water drawn by one flat (m³/h).
WATER = daily([0.01, 0.005, 0.004, 0.004, 0.006, 0.02, 0.08, 0.16, 0.12, 0.06, 0.05,
               0.06, 0.08, 0.05, 0.04, 0.04, 0.05, 0.08, 0.12, 0.15, 0.14, 0.11, 0.07, 0.03])
#: Power drawn by one flat (kW).
POWER = daily([0.35, 0.3, 0.28, 0.27, 0.27, 0.3, 0.5, 0.8, 0.7, 0.5, 0.45, 0.5,
               0.6, 0.5, 0.45, 0.45, 0.5, 0.8, 1.2, 1.5, 1.6, 1.5, 1.1, 0.6])
#: A building's master meter counts about this many flats.
FLATS_PER_MASTER = 70.0
#: Motion events per hour from a hub while someone is at home and awake.
MOTION_PER_H = 0.4
#: An ``intrusion``: the intruder opens the door this long after the flat is armed (s),
#: then the hub sees movement every so often (s).
INTRUDER_AFTER_S, INTRUDER_MOTION_S = 300.0, 60.0


class Home(Domain):
    """Water and power meters, and smart-home hubs."""

    types = ("water_meter", "power_meter", "smart_home_hub")

    def __init__(self, world: World, people: People) -> None:
        super().__init__(world)
        self.people = people
        rng, n = world.rng, world.n
        # meters: a flat, or a whole building (master meters, without unit)
        self.meter_rows = np.concatenate([world.rows["water_meter"], world.rows["power_meter"]])
        master = np.array([u is None for u in world.unit])
        self.scale = np.where(master, FLATS_PER_MASTER, 1.0) * rng.uniform(0.6, 1.4, n)
        self.total = np.where(master, rng.uniform(5e3, 8e4, n), rng.uniform(50, 900, n))
        self.energy = np.where(master, rng.uniform(2e5, 3e6, n), rng.uniform(2e3, 3e4, n))
        # smart homes: commuting households arm away mode on working days
        self.commuter = rng.random(n) < 0.6
        self.leave_at = rng.uniform(7.2, 8.8, n) * 3600
        self.return_at = rng.uniform(17.2, 19.8, n) * 3600
        self.no_motion = np.zeros(n, dtype=bool)
        self.armed = Override(n)

    def update(self) -> list[Event]:
        clock = self.world.clock
        h = local_hour(clock.mid)
        meters = self.meter_rows
        self.total[meters] += profile(WATER, h) * self.scale[meters] * clock.dt / 3600.0
        self.energy[meters] += profile(POWER, h) * self.scale[meters] * clock.dt / 3600.0
        return []

    def live(self) -> list[Event]:
        w = self.world
        rows = w.rows["smart_home_hub"]
        if not len(rows):
            return []
        rng, clock = w.rng, w.clock
        t0, t1 = clock.t0, clock.t1
        events: list[Event] = []
        if weekday(t0) < 5:
            commuters = rows[self.commuter[rows]]
            for moment, state in ((self.leave_at, "leave"), (self.return_at, "return")):
                for i in commuters[crossed(t0, t1, moment[commuters])]:
                    t = max(t1 - ((t1 + LOCAL_OFFSET_S - moment[i]) % DAY_S), t0 + 2e-3)
                    events.append((t, int(i), "door_contact",
                                   {"attrs": {"contact": "open", "occupants": state}}))
                    # The hub reports its mode when it changes, not only on schedule:
                    # armed as the door closes behind them, disarmed at the door
                    # (keypad or app) just before it opens.
                    if state == "leave":
                        w.extra_readings.append((t + 30.0, int(i), {"away_mode": "on"}))
                    else:
                        w.extra_readings.append((t - 1e-3, int(i), {"away_mode": "off"}))
        h = local_hour(clock.mid)
        home = ~self.away(rows, np.full(len(rows), clock.mid)) & ~self.no_motion[rows]
        awake = 6.5 <= h < 23.0
        lam = np.where(home & awake, MOTION_PER_H, 0.0) * clock.dt / 3600.0
        for i in rows[rng.random(len(rows)) < lam]:
            events.append((clock.random_time(rng), int(i), "motion", {}))
        return events

    def begin(self, active: Active) -> None:
        name, w = active.incident.name, self.world
        if name == "intrusion":
            # The household goes out and arms the flat, unless it is away already.
            i, now = int(active.rows[0]), w.clock.now
            if self.armed.apply(active.rows, self._commuting(active.rows, np.array([now])))[0]:
                w.report_now[i] = True
            else:
                w.outbox.append((now + 1e-3, i, "door_contact",
                                 {"attrs": {"contact": "open", "occupants": "leave"}}))
                w.extra_readings.append((now + 30.0, i, {"away_mode": "on"}))
            return
        if name not in ("elderly-not-seen", "elderly-not-back"):
            return
        unit = self.people.unit_of[active.incident.place]
        if unit in self.people.alone:
            self.no_motion |= np.array([u == unit for u in w.unit])

    def away(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Whether each household is away at t: armed by the hub, by itself or by command,
        or for the length of an intrusion."""
        away = self.armed.apply(rows, self._commuting(rows, t))
        return away | self.world.incidents.covering("intrusion", rows, np.broadcast_to(
            np.asarray(t, dtype=float), rows.shape))

    def incident_events(self) -> list[Event]:
        """An intrusion: someone opens the door of the armed flat (the hub's door contact and
        its intrusion alarm), then moves in it every minute; at the end the household comes
        back (disarming first) if its day would not have it away."""
        w = self.world
        t0, t1 = w.clock.t0, w.clock.t1
        events: list[Event] = []
        for a in w.incidents.of("intrusion"):
            i = int(a.rows[0])
            for t in repeats(a.start + INTRUDER_AFTER_S, INTRUDER_MOTION_S, t0, t1, a.end):
                if t == a.start + INTRUDER_AFTER_S:
                    events.append((t, i, "door_contact", {"attrs": {"contact": "open"}}))
                    events.append((t + 1e-3, i, "intrusion", {}))
                else:
                    events.append((t, i, "motion", {}))
            if t0 < a.end <= t1 and not self.away(a.rows, np.array([a.end]))[0]:
                w.extra_readings.append((a.end - 1e-3, i, {"away_mode": "off"}))
                events.append((a.end, i, "door_contact",
                               {"attrs": {"contact": "open", "occupants": "return"}}))
        return events

    def _commuting(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        t = np.broadcast_to(np.asarray(t, dtype=float), rows.shape)
        of_day = local_seconds(t)
        working = weekday(t) < 5
        return (self.commuter[rows] & working & (of_day >= self.leave_at[rows])
                & (of_day < self.return_at[rows]))

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        rng, n = self.world.rng, len(rows)
        if code == "water_meter":
            flow = profile(WATER, local_hour(t)) * self.scale[rows] * rng.uniform(0.7, 1.3, n)
            return {"flow": np.round(flow, 4), "total": np.round(self.total[rows], 3)}
        if code == "power_meter":
            power = profile(POWER, local_hour(t)) * self.scale[rows] * rng.uniform(0.8, 1.2, n)
            return {"power": np.round(power, 3), "energy": np.round(self.energy[rows], 2)}
        if code == "smart_home_hub":
            return {"away_mode": np.where(self.away(rows, t), "on", "off")}
        return super().read(code, rows, t)

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        w = self.world
        if w.type[i] != "smart_home_hub" or command not in ("arm_away", "disarm"):
            return super().obey(i, command, args)
        rows = np.array([i])
        auto = self._commuting(rows, np.array([w.clock.now]))
        self.armed.set(i, command == "arm_away", bool(auto[0]))
        w.report_now[i] = True
        return Outcome(True, "away mode on" if command == "arm_away" else "away mode off")
