"""Life safety in the buildings and garages: smoke, CO, exhaust fans, leaks and speakers.

Smoke detectors are quiet unless a ``smoke`` incident reaches one: it reads a
thick obscuration and sounds its ``smoke_alarm`` until the smoke has gone.
Garage CO follows the cars (peaks when everyone drives off or home) and a
``co-leak`` incident; the garage's exhaust fans run at the rush hours and
whenever their garage's CO is over 30 ppm, and obey ``start`` and ``stop``
(the last command wins until their automation changes its mind). Speakers
obey ``broadcast``, ``stop_broadcast`` and ``set_volume``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest.simulator.clock import bump, local_hour
from ingest.simulator.commands import Override, clip_detail, number_arg
from ingest.simulator.incidents import Active, repeats
from ingest.simulator.world import Domain, Event, Outcome, World

#: Garage CO during a leak (ppm), reached after the ramp (s), before the fall (s).
LEAK_PPM, LEAK_RAMP_S, LEAK_FALL_S = 150.0, 360.0, 300.0
#: A garage's fans run on their own above this CO (ppm, the mean of its sensors).
FAN_CO_PPM = 30.0
#: A fan's draw while running (kW): mean and spread.
FAN_KW = (5.5, 0.15)
#: Speaking speed of a broadcast (characters per second), and how often it is repeated.
BROADCAST_CHARS_S, BROADCAST_REPEATS = 4.0, 3
#: Obscuration (%/m) at a detector in smoke, and how often it repeats its ``smoke_alarm``.
SMOKE_PCT_M, SMOKE_ALARM_EVERY_S = 12.0, 120.0


class Safety(Domain):
    """Smoke detectors, CO sensors, exhaust fans, IP speakers and water leak sensors."""

    types = ("smoke_detector", "co_sensor", "exhaust_fan", "speaker", "water_leak_sensor")

    def __init__(self, world: World) -> None:
        super().__init__(world)
        rng, n = world.rng, world.n
        self.battery = rng.uniform(55, 100, n)
        self.volume = rng.choice([50.0, 60.0, 70.0], n)
        # Each CO sensor reads the garage's air a little differently.
        self.co_factor = rng.uniform(0.75, 1.3, n)
        self.leak_factor = rng.uniform(0.85, 1.12, n)
        self.fans = Override(n)
        #: What a speaker is broadcasting, until when (epoch s).
        self.playing: dict[int, tuple[str, float]] = {}

    def begin(self, active: Active) -> None:
        name, w = active.incident.name, self.world
        if name == "water-leak":
            w.report_now[active.rows] = True
        if name == "smoke":
            w.report_now[active.rows[w.type[active.rows] == "smoke_detector"]] = True

    def incident_events(self) -> list[Event]:
        """A detector in smoke sounds at once and says so again every 2 min; when the smoke
        has gone it reports its clear air."""
        w = self.world
        t0, t1 = w.clock.t0, w.clock.t1
        events: list[Event] = []
        for a in w.incidents.of("smoke"):
            for i in a.rows[w.type[a.rows] == "smoke_detector"]:
                for t in repeats(a.start + 10.0, SMOKE_ALARM_EVERY_S, t0, t1, a.end):
                    events.append((t, int(i), "smoke_alarm",
                                   {"attrs": {"obscuration": SMOKE_PCT_M}}))
                if a.end <= t0 < a.end + w.clock.dt:  # the first tick after it
                    w.report_now[i] = True
        return events

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        rng, n = self.world.rng, len(rows)
        if code == "smoke_detector":
            smoke = np.abs(rng.normal(0.01, 0.01, n)) \
                + self.world.incidents.covering("smoke", rows, t) * SMOKE_PCT_M
            return {"smoke_obscuration": np.round(smoke, 3),
                    "battery": np.round(self.battery[rows])}
        if code == "co_sensor":
            return {"co": np.round(self.co(rows, t), 1),
                    "temperature": np.round(garage_temperature(t) + rng.normal(0, 0.2, n), 1)}
        if code == "exhaust_fan":
            on = self.fans.apply(rows, self._fan_demand(rows, t))
            power = np.where(on, rng.normal(*FAN_KW, n), 0.0)
            return {"running": np.where(on, "on", "off"), "power": np.round(power, 2)}
        if code == "speaker":
            return {"volume": self.volume[rows]}
        if code == "water_leak_sensor":
            wet = self.world.incidents.covering("water-leak", rows, t)
            return {"leak": np.where(wet, "wet", "dry"), "battery": np.round(self.battery[rows])}
        return super().read(code, rows, t)

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        code = self.world.type[i]
        if code == "exhaust_fan" and command in ("start", "stop"):
            return self._switch_fan(i, command == "start")
        if code == "speaker" and command in ("broadcast", "stop_broadcast", "set_volume"):
            return self._speaker(i, command, args)
        return super().obey(i, command, args)

    # --- CO --------------------------------------------------------------------------------
    def co(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """What CO sensors read (ppm): the garage's air, their own bias, noise and any leak."""
        level = garage_co_ppm(t) * self.co_factor[rows] \
            + self.world.rng.normal(0, 0.6, len(rows)) \
            + self._leak(rows, t) * self.leak_factor[rows]
        return np.maximum(level, 0.0)

    def garage_co(self, garage: object, t: float) -> float:
        """The mean CO (ppm) of a garage's sensors at t, without noise: what its fans go by."""
        rows = self.world.at(garage, "co_sensor")
        if not len(rows):
            return 0.0
        at = np.full(len(rows), t)
        return float(np.mean(garage_co_ppm(at) * self.co_factor[rows] + self._leak(rows, at)))

    def _leak(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """CO added by leaks (ppm) at the sensors ``rows``."""
        extra = np.zeros(len(rows))
        for a in self.world.incidents.of("co-leak"):
            extra += a.mask[rows] * leak_envelope(t - a.start, a.end - a.start) * LEAK_PPM
        return extra

    # --- fans ------------------------------------------------------------------------------
    def _fan_demand(self, rows: np.ndarray, t: np.ndarray) -> np.ndarray:
        """What the fans' own automation wants: the rush hours, or foul air in their garage."""
        h = local_hour(t)
        rush = ((h >= 7.0) & (h < 9.5)) | ((h >= 17.0) & (h < 20.0))
        foul = np.array([self.garage_co(self.world.facility[i], t[k]) > FAN_CO_PPM
                         for k, i in enumerate(rows)], dtype=bool)
        return rush | foul

    def _switch_fan(self, i: int, on: bool) -> Outcome:
        now = self.world.clock.now
        rows = np.array([i])
        auto = self._fan_demand(rows, np.array([now]))
        was = bool(self.fans.apply(rows, auto)[0])
        self.fans.set(i, on, bool(auto[0]))
        self.world.report_now[i] = True
        if on:
            return Outcome(True, "fan running" if not was else "fan running (was running)")
        return Outcome(True, "fan stopped" if was else "fan stopped (was stopped)")

    # --- speakers --------------------------------------------------------------------------
    def _speaker(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        now = self.world.clock.now
        if command == "broadcast":
            text = args.get("text")
            if not isinstance(text, str) or not text.strip():
                return Outcome(False, "a broadcast needs the text to speak in args.text")
            seconds = BROADCAST_REPEATS * len(text) / BROADCAST_CHARS_S
            self.playing[i] = (text, now + seconds)
            return Outcome(True, clip_detail(
                f"broadcasting {BROADCAST_REPEATS}× ({seconds:.0f} s) at volume "
                f"{self.volume[i]:.0f} %: {text}"))
        if command == "stop_broadcast":
            text, until = self.playing.pop(i, ("", -np.inf))
            if until <= now:
                return Outcome(True, "nothing was playing")
            return Outcome(True, clip_detail(f"broadcast stopped: {text}"))
        volume = number_arg(args, "volume", 0, 100)
        if isinstance(volume, str):
            return Outcome(False, volume)
        self.volume[i] = round(volume)
        self.world.report_now[i] = True
        return Outcome(True, f"volume {self.volume[i]:.0f} %")


def garage_co_ppm(t: np.ndarray) -> np.ndarray:
    """Garage CO (ppm) from cars: a low background, peaks when everyone drives off or home."""
    h = local_hour(t)
    return 2.5 + 14.0 * bump(h, 8.0, 0.6) + 11.0 * bump(h, 18.2, 0.7)


def garage_temperature(t: np.ndarray) -> np.ndarray:
    return 20.0 + 1.5 * np.sin(2 * np.pi * (local_hour(t) - 11.0) / 24.0)


def leak_envelope(age: np.ndarray, duration: float) -> np.ndarray:
    """0 before a CO leak, rising to 1 over the ramp, held, falling to 0 at its end."""
    age = np.asarray(age, dtype=float)
    rise = np.clip(age / LEAK_RAMP_S, 0.0, 1.0)
    fall = np.clip((duration - age) / LEAK_FALL_S, 0.0, 1.0)
    return np.where(age < 0, 0.0, np.minimum(rise, fall))
