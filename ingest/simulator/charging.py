"""E-bike charging piles: sessions after work, full batteries, and cut-offs.

E-bikes are plugged in mostly from 18:00 to 23:00 and charge at 0.2-0.45 kW
for 2.5-5.5 h; then the pile stops (``charge_stop``) and reads ``full`` until
the bike is unplugged. A ``charger-overheat`` incident heats one pile that
does not stop by itself; a ``charger-full`` incident fills one pile's battery
within minutes. A pile obeys ``cut_off`` and ``stop`` (the session ends,
power drops to 0 and an overheated pile cools down) and ``start`` (charging
resumes if a bike is plugged in and not full; on a pile with nothing plugged in, a
``start`` with ``plugged_in`` is a resident who plugged their bike in and started the
pile from the app: a new session begins, for the ``subject`` it names).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest.simulator.clock import daily, local_hour, profile
from ingest.simulator.environment import outdoor_temperature
from ingest.simulator.incidents import Active
from ingest.simulator.people import People
from ingest.simulator.world import Domain, Event, Outcome, World

#: Sessions started per idle charger per hour: e-bikes are plugged in after work.
PLUG_IN = daily([0.01, 0.005, 0.003, 0.003, 0.003, 0.005, 0.01, 0.02, 0.03, 0.03, 0.02,
                 0.02, 0.03, 0.02, 0.02, 0.02, 0.03, 0.05, 0.2, 0.28, 0.3, 0.26, 0.2, 0.06])
#: An overheating charger reaches this temperature (°C) over this many seconds.
OVERHEAT_C, OVERHEAT_RAMP_S = 88.0, 480.0
#: A pile cut off while overheating cools with this time constant (s).
COOL_S = 600.0
#: A pile's draw once the battery is full (kW): its standby.
STANDBY_KW = 0.02
#: A ``charger-full`` battery is full this long after the incident starts (s): the session
#: in progress tops up, or a bike that was nearly full is plugged in.
TOP_UP_S, NEARLY_FULL_S = 120.0, 600.0
#: A pile's casing warms to its charging temperature, and cools back, with this time
#: constant (s): a real pile takes tens of minutes, it does not jump between two reports.
THERMAL_S = 1200.0

IDLE, CHARGING, FULL, CUT = 0, 1, 2, 3
#: What each state reports: a pile that was cut off reads idle, power 0, bike still there.
STATUS = np.array(["idle", "charging", "full", "idle"], dtype=object)


class Charging(Domain):
    """The community's e-bike charging piles and their sessions."""

    types = ("ev_charger",)

    def __init__(self, world: World, people: People) -> None:
        super().__init__(world)
        self.people = people
        n = world.n
        self.state = np.zeros(n, dtype=int)
        self.session = np.full(n, None, dtype=object)
        self.owner = np.full(n, None, dtype=object)
        self.charge_start = np.zeros(n)
        self.charge_end = np.full(n, np.inf)
        self.unplug_at = np.full(n, np.inf)
        self.cut_at = np.full(n, np.inf)
        self.power = np.zeros(n)
        self.sessions = 0

    @property
    def charging(self) -> np.ndarray:
        """Which devices have a session in progress."""
        return self.state == CHARGING

    @property
    def free(self) -> np.ndarray:
        """Which devices have nothing plugged in."""
        return self.state == IDLE

    def update(self) -> list[Event]:
        w = self.world
        rows = w.rows["ev_charger"]
        if not len(rows):
            return []
        rng, t0, t1 = w.rng, w.clock.t0, w.clock.t1
        events: list[Event] = []
        state = self.state
        # Sessions that finish: the pile stops when the battery is full.
        done = rows[(state[rows] == CHARGING) & (self.charge_end[rows] <= t1)]
        for i in done:
            if w.incidents.covering_one("charger-overheat", i, t1):
                continue  # thermal runaway: the pile does not stop by itself
            t = max(self.charge_end[i], t0 + 1e-3)
            events.append(self._stop(int(i), t))
            state[i] = FULL
            self.unplug_at[i] = t + rng.uniform(0.3, 3.0) * 3600
        unplugged = rows[((state[rows] == FULL) | (state[rows] == CUT))
                         & (self.unplug_at[rows] <= t1)]
        state[unplugged] = IDLE
        idle = rows[(state[rows] == IDLE) & ~w.silent[rows]]
        rate = profile(PLUG_IN, local_hour(w.clock.mid)) * (t1 - t0) / 3600.0
        for i in idle[rng.random(len(idle)) < rate]:
            events.append(self.plug_in(int(i), w.clock.random_time(rng)))
        return events

    def plug_in(self, i: int, t: float, *, subject: str | None = None) -> Event:
        """A bike plugged in at ``t`` (by ``subject``, if known): a new session; its
        ``charge_start``."""
        rng = self.world.rng
        self.sessions += 1
        self.session[i] = f"s{self.world.tag}-{self.sessions}"
        self.state[i] = CHARGING
        self.charge_start[i] = t
        self.cut_at[i] = np.inf
        self.charge_end[i] = t + rng.uniform(2.5, 5.5) * 3600
        self.power[i] = rng.uniform(0.2, 0.45)
        fields: dict[str, Any] = {"session": self.session[i]}
        subject = subject or self.people.subject(None)
        self.owner[i] = subject
        if subject is not None:
            fields["subject"] = subject
        return (t, i, "charge_start", fields)

    def begin(self, active: Active) -> None:
        name = active.incident.name
        if name not in ("charger-overheat", "charger-full"):
            return
        i = int(active.rows[0])
        now = self.world.clock.now
        if name == "charger-full":
            # The battery is full soon; the pile stops and reads full until unplugged.
            if self.state[i] == CHARGING:
                self.charge_end[i] = min(self.charge_end[i], now + TOP_UP_S)
            else:
                self.world.outbox.append(self.plug_in(i, now + 1e-3))
                self.charge_end[i] = now + NEARLY_FULL_S
            return
        if self.state[i] != CHARGING:
            self.world.outbox.append(self.plug_in(i, now + 1e-3))
        self.charge_end[i] = max(self.charge_end[i], active.end + 600.0)

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        w = self.world
        state = self.state[rows]
        charging = state == CHARGING
        power = np.where(charging, self.power[rows], np.where(state == FULL, STANDBY_KW, 0.0))
        # Warming since the session began; cooling since it ended (the bike full or cut off).
        warm = 5.0 + 20.0 * self.power[rows]
        ended = np.minimum(self.charge_end[rows], self.cut_at[rows])
        since = np.maximum(np.where(charging, t, np.minimum(t, ended))
                           - self.charge_start[rows], 0.0)
        after = np.where(charging, 0.0, np.maximum(t - ended, 0.0))
        reached = warm * (1.0 - np.exp(-since / THERMAL_S))
        heat = 1.0 + np.where(charging, reached, np.where(
            self.charge_start[rows] > 0, reached * np.exp(-after / THERMAL_S), 0.0))
        temperature = outdoor_temperature(t) + heat + w.rng.normal(0, 0.4, len(rows))
        for k, i in enumerate(rows):
            a = w.incidents.covering_one("charger-overheat", i, t[k])
            if a is None:
                continue
            # Heat builds while it charges; once cut off, the pile cools down.
            until = min(t[k], self.cut_at[i]) if self.cut_at[i] >= a.start else t[k]
            ramp = min(1.0, (until - a.start) / OVERHEAT_RAMP_S)
            if not charging[k] and self.cut_at[i] <= t[k]:
                ramp *= np.exp(-(t[k] - self.cut_at[i]) / COOL_S)
            temperature[k] = max(temperature[k], temperature[k] + ramp * (
                OVERHEAT_C - temperature[k]) + w.rng.normal(0, 0.5))
        return {"status": STATUS[state], "power": np.round(power, 3),
                "temperature": np.round(temperature, 1)}

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        if command in ("cut_off", "stop"):
            return self._cut(i, command)
        if command == "start":
            return self._resume(i, args)
        return super().obey(i, command, args)

    def _cut(self, i: int, command: str) -> Outcome:
        w = self.world
        now = w.clock.now
        verb = "cut off" if command == "cut_off" else "stopped"
        state = self.state[i]
        if state in (IDLE, CUT):
            return Outcome(True, f"{verb}: no session was running")
        w.report_now[i] = True
        if state == FULL:
            self.state[i] = CUT
            return Outcome(True, f"{verb}: the battery was full, standby power off")
        session = self.session[i]
        stop = self._stop(i, now + 1e-3)
        w.outbox.append(stop)
        self.state[i] = CUT
        self.cut_at[i] = now
        self.charge_end[i] = np.inf
        self.unplug_at[i] = now + w.rng.uniform(0.3, 3.0) * 3600
        return Outcome(True, f"{verb}: session {session} ended after "
                             f"{stop[3]['energy_kwh']:g} kWh")

    def _resume(self, i: int, args: dict[str, Any]) -> Outcome:
        w = self.world
        state = self.state[i]
        if state == CHARGING:
            return Outcome(True, f"already charging (session {self.session[i]})")
        if state == IDLE and args.get("plugged_in"):
            subject = args.get("subject")
            w.outbox.append(self.plug_in(i, w.clock.now + 1e-3, subject=subject
                                         if isinstance(subject, str) else None))
            w.report_now[i] = True
            return Outcome(True, f"charging started (session {self.session[i]})")
        if state == IDLE:
            return Outcome(False, "nothing is plugged in")
        if state == FULL:
            return Outcome(False, "the battery is full")
        now = w.clock.now
        self.sessions += 1
        self.session[i] = f"s{w.tag}-{self.sessions}"
        self.state[i] = CHARGING
        self.charge_start[i] = now + 1e-3
        self.cut_at[i] = np.inf
        self.charge_end[i] = now + w.rng.uniform(0.5, 2.0) * 3600
        self.unplug_at[i] = np.inf
        fields: dict[str, Any] = {"session": self.session[i]}
        if self.owner[i] is not None:
            fields["subject"] = self.owner[i]
        w.outbox.append((now + 1e-3, i, "charge_start", fields))
        w.report_now[i] = True
        return Outcome(True, f"charging resumed (session {self.session[i]})")

    def _stop(self, i: int, t: float) -> Event:
        """The ``charge_stop`` of the session of pile ``i`` at ``t``."""
        kwh = self.power[i] * (t - self.charge_start[i]) / 3600.0
        return (t, i, "charge_stop", {"session": self.session[i],
                                      "energy_kwh": round(float(kwh), 3)})
