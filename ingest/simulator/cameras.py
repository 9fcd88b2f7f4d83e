"""AI cameras: rare detections that depend on where a camera looks, and incident footage.

A camera's role comes from its facility (a lift, a gate, a playground ...),
or from its building (a tower camera watching for things thrown from
windows). Incidents such as fire-lane parking are seen again and again while
they last. Cameras obey ``snapshot``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest.simulator.clock import DAY_S, local_hour, profile
from ingest.simulator.incidents import repeats
from ingest.simulator.people import ACTIVITY
from ingest.simulator.world import Domain, Event, Outcome, World
from twin.device_types import CAMERA_CLASSES

#: Natural detections per camera and day by where the camera looks (fire-lane and
#: overflow detections also come from incidents and full bins). On a normal day they
#: are the model's guesses at a shadow or a pushchair, with a confidence under
#: :data:`GUESS_CONFIDENCE`'s top, which the rules' ``min_confidence`` sets aside; a
#: confident detection comes from an incident. Dogs are the exception: real ones,
#: seen once in passing, which the rule counts before it calls one loose.
DETECTIONS_PER_DAY: dict[str, dict[str, float]] = {
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
ROLES = tuple(DETECTIONS_PER_DAY)
#: The confidence of a guess (a detection with nothing there).
GUESS_CONFIDENCE = (0.3, 0.55)
#: Classes seen for real on a normal day.
EVERYDAY_CLASSES = frozenset({"unleashed_dog"})
#: Incidents seen as camera detections repeated every so many seconds.
#: (``smoke`` is also played by smoke detectors: cameras show only the ones on a camera.)
REPEATED_DETECTIONS = {"fire-lane-parking": ("fire_lane_parking", 90.0),
                       "ebike-in-lift": ("ebike_in_lift", 120.0),
                       "high-altitude-throw": ("high_altitude_throw", 300.0),
                       "street-vending": ("street_vending", 300.0),
                       "smoke": ("smoke_fire", 60.0)}


class Cameras(Domain):
    """The community's AI cameras."""

    types = ("ai_camera",)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        n = world.n
        roles = np.array([self._role(i) for i in range(n)], dtype=object)
        table = np.array([[DETECTIONS_PER_DAY[role].get(c, 0.0) for c in CAMERA_CLASSES]
                          for role in ROLES])
        role_index = {role: k for k, role in enumerate(ROLES)}
        self.detect_rate = np.zeros((n, len(CAMERA_CLASSES)))
        cams = world.rows["ai_camera"]
        self.detect_rate[cams] = table[[role_index[roles[i]] for i in cams]]
        self.fps = world.rng.choice([15.0, 25.0, 25.0, 30.0], n)
        #: Floors of each tower, from its lifts: how high a throw may come from.
        self.tower_floors: dict[object, int] = {}
        for i in world.rows["elevator_monitor"]:
            if not np.isnan(world.floor[i]):
                self.tower_floors[world.building[i]] = int(world.floor[i])
        self.snapshots = 0

    def live(self) -> list[Event]:
        w = self.world
        rows = w.rows["ai_camera"]
        if not len(rows):
            return []
        rng, clock = w.rng, w.clock
        lam = self.detect_rate[rows] * (profile(ACTIVITY, local_hour(clock.mid))
                                        * clock.dt / DAY_S)
        lam[w.silent[rows]] = 0.0
        hits = np.argwhere(rng.random(lam.shape) < lam)
        return [(clock.random_time(rng), int(rows[r]), "detection",
                 {"class": CAMERA_CLASSES[c],
                  "confidence": (confidence(rng) if CAMERA_CLASSES[c] in EVERYDAY_CLASSES
                                 else round(float(rng.uniform(*GUESS_CONFIDENCE)), 2))})
                for r, c in hits]

    def incident_events(self) -> list[Event]:
        w = self.world
        t0, t1 = w.clock.t0, w.clock.t1
        events: list[Event] = []
        for a in w.incidents.active:
            repeated = REPEATED_DETECTIONS.get(a.incident.name)
            if repeated is None:
                continue
            kind, every = repeated
            for k, i in enumerate(a.rows):
                if w.type[i] != "ai_camera":
                    continue
                for t in repeats(a.start + 5.0 + 7.0 * k, every, t0, t1, a.end):
                    fields: dict[str, Any] = {"class": kind,
                                              "confidence": confidence(w.rng, high=True)}
                    if kind == "high_altitude_throw":
                        top = self.tower_floors.get(w.building[i], 18)
                        fields["attrs"] = {"floor_estimate": int(w.rng.integers(3, top + 1))}
                    events.append((t, int(i), "detection", fields))
        return events

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        return {"fps": np.round(self.fps[rows]
                                - self.world.rng.choice([0.0, 0.0, 1.0], len(rows)))}

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        if command != "snapshot":
            return super().obey(i, command, args)
        self.snapshots += 1
        return Outcome(True, f"snapshot {self.world.ids[i]}-{self.snapshots} taken")

    def _role(self, i: int) -> str:
        w = self.world
        facility = w.facility[i]
        if facility is not None:
            kind = w.facility_kind.get(facility)
            return kind if kind in DETECTIONS_PER_DAY else "outdoor"
        return "tower" if w.building[i] is not None else "outdoor"


def confidence(rng: np.random.Generator, *, high: bool = False) -> float:
    """A detection's confidence: high for what an incident makes plain to see."""
    return round(float(rng.uniform(0.82, 0.97) if high else rng.uniform(0.6, 0.95)), 2)
