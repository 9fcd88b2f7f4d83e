"""Building equipment: lifts, the pump rooms and the IoT gateways' own health.

Lifts run more at the rush hours; pumps hold the pressure that water demand
draws down, and obey ``start`` and ``stop`` (a stopped pump leaves only the
tank's static head); gateways report how many devices they relay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest.simulator.clock import local_hour, profile
from ingest.simulator.gateways import Gateways
from ingest.simulator.home import WATER
from ingest.simulator.people import ACTIVITY
from ingest.simulator.world import Domain, Outcome, World

#: Pressure (bar) a running pump holds, and what is left when it stops.
PUMP_BAR, STATIC_HEAD_BAR = 4.0, 1.2


class Equipment(Domain):
    """Elevator monitors, pump room monitors and IoT gateways."""

    types = ("elevator_monitor", "pump_monitor", "iot_gateway")

    def __init__(self, world: World, gateways: Gateways) -> None:
        super().__init__(world)
        self.gateways = gateways
        self.pump_on = np.ones(world.n, dtype=bool)

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        w = self.world
        rng, n = w.rng, len(rows)
        if code == "elevator_monitor":
            running = rng.random(n) < np.clip(0.08 + 0.3 * profile(ACTIVITY, local_hour(t)),
                                              0, 0.9)
            top = np.nan_to_num(w.floor[rows], nan=18.0).astype(int)
            floor = np.floor(rng.uniform(1, top + 1)).astype(float)
            floor = np.where(~running & (rng.random(n) < 0.5), 1.0, floor)
            floor = np.where(rng.random(n) < 0.05, -1.0, floor)
            door_open = ~running & (rng.random(n) < 0.25)
            return {"floor": floor, "door_state": np.where(door_open, "open", "closed"),
                    "running": np.where(running, "on", "off")}
        if code == "iot_gateway":
            return {"connected_devices": self.gateways.connected[rows].astype(float),
                    "rssi": np.round(rng.normal(-68.0, 4.0, n))}
        if code == "pump_monitor":
            demand = profile(WATER, local_hour(t)) / WATER.max()
            on = self.pump_on[rows]
            pressure = np.where(on, PUMP_BAR + 0.6 * demand, STATIC_HEAD_BAR) \
                + rng.normal(0, 0.05, n)
            return {"pressure": np.round(pressure, 2),
                    "running": np.where(on, "on", "off"),
                    "water_level": np.round(3.2 - 0.6 * demand + rng.normal(0, 0.02, n), 2)}
        return super().read(code, rows, t)

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        if self.world.type[i] != "pump_monitor" or command not in ("start", "stop"):
            return super().obey(i, command, args)
        on = command == "start"
        was = bool(self.pump_on[i])
        self.pump_on[i] = on
        self.world.report_now[i] = True
        state = "running" if on else "stopped"
        return Outcome(True, f"pump {state}" + (f" (was {state})" if was == on else ""))
