"""Access control: gates and building doors, the residents who pass them, and their locks.

Passages follow the community's comings and goings (out in the morning, in
in the evening); a resident of the door's building, or anyone at a gate, is
the ``subject``. Doors obey ``open`` (a remote opening, or a visitor pass the
twin accepted), ``deny`` (a visitor pass the twin refused), ``lock`` (ends a
door held open) and ``unlock`` (open until locked).

A visitor shows a pass at a gate with :meth:`Access.present_pass`: the gate
publishes a ``pass_scan`` event with the pass's opaque token and waits for the
twin's answer, as a real controller in "online verification" mode does; it
never decides itself. An ``open`` that names the pass lets the visitor in
(``access`` with method ``visitor_qr``), a ``deny`` reports ``access_denied``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ingest.simulator.clock import DAY_S, daily, local_hour, profile
from ingest.simulator.people import ACTIVITY, People
from ingest.simulator.world import Domain, Event, Outcome, World
from twin.device_types import ACCESS_METHODS

#: Share of passages that go out: mornings out to work and school, evenings back in.
OUT_SHARE = daily([0.5, 0.5, 0.5, 0.5, 0.55, 0.7, 0.8, 0.85, 0.85, 0.75, 0.6, 0.5,
                   0.5, 0.5, 0.5, 0.45, 0.35, 0.2, 0.15, 0.25, 0.35, 0.4, 0.45, 0.5])
#: How residents open gates and doors on their own (shares per method of ACCESS_METHODS):
#: mostly faces, then cards and NFC phones, then the rest. ``remote`` and ``visitor_qr``
#: are never drawn here: the twin grants them by command (docs/mqtt.md#access-methods).
METHOD_SHARES = {
    "access_door": {"face": 0.55, "card": 0.14, "nfc": 0.05, "qr": 0.04, "fingerprint": 0.03,
                    "password": 0.03, "bluetooth": 0.03, "super_sim": 0.01, "voice": 0.01,
                    "intercom": 0.06, "exit_button": 0.05},
    "access_gate": {"face": 0.46, "card": 0.18, "nfc": 0.06, "qr": 0.12, "fingerprint": 0.01,
                    "password": 0.02, "bluetooth": 0.04, "super_sim": 0.02, "voice": 0.01,
                    "intercom": 0.04, "exit_button": 0.04},
}
#: Passages per device and day.
PASSAGES_PER_DAY = {"access_door": 180.0, "access_gate": 450.0}
#: Visitors let in by a resident over the intercom carry no subject.
ANONYMOUS_METHODS = frozenset({"intercom"})
#: A door reads ``open`` this long after a passage (s).
OPEN_AFTER_PASSAGE_S = 8.0
#: Somebody carrying shopping or a pram props a door open this long (s): under the
#: two minutes after which the door-held-open rule calls it a problem.
HELD_OPEN_S = (40.0, 100.0)
#: Someone going out passes their building's door, and the gate this much later (s).
LEAVING_S = 60.0


class Access(Domain):
    """Gates and doors: passages, odd events (held open, tailgating), and their locks."""

    types = ("access_gate", "access_door")

    def __init__(self, world: World, people: People) -> None:
        super().__init__(world)
        self.people = people
        n = world.n
        self.doors = np.concatenate([world.rows["access_gate"], world.rows["access_door"]])
        self.passages = np.array([PASSAGES_PER_DAY.get(c, 0.0) for c in world.type])
        self.passages *= world.rng.uniform(0.7, 1.3, n)
        self.method_cdf = {code: np.cumsum([shares.get(m, 0.0) for m in ACCESS_METHODS])
                           / sum(shares.values()) for code, shares in METHOD_SHARES.items()}
        self.last_access = np.full(n, -np.inf)
        self.held_until = np.full(n, -np.inf)
        #: Unlocked by command: open until locked again.
        self.unlocked = np.zeros(n, dtype=bool)
        #: Propped doors and when they close: (time, row); each reports it as it happens.
        self._closing: list[tuple[float, int]] = []

    def live(self) -> list[Event]:
        w, rows = self.world, self.doors
        if not len(rows):
            return []
        rng, clock = w.rng, w.clock
        h = local_hour(clock.mid)
        lam = self.passages[rows] / DAY_S * profile(ACTIVITY, h) * clock.dt
        lam[w.silent[rows]] = 0.0
        count = rng.poisson(lam)
        events: list[Event] = []
        out_share = profile(OUT_SHARE, h)
        passing = np.repeat(rows, count)
        times = np.array([clock.random_time(rng) for _ in passing])
        # in time order, so that who is in or out is right at each passage
        for i, t in zip(passing[np.argsort(times)], np.sort(times)):
            t = float(t)
            method = ACCESS_METHODS[int(np.searchsorted(self.method_cdf[w.type[i]],
                                                        rng.random(), side="right"))]
            direction = "out" if rng.random() < out_share else "in"
            if method == "exit_button":  # pressed from inside: always on the way out
                direction = "out"
            fields: dict[str, Any] = {"method": method, "direction": direction}
            if method not in ANONYMOUS_METHODS:
                subject = self.people.subject(w.building[i], direction, t)
                if subject is not None:
                    fields["subject"] = subject
            self.last_access[i] = t
            events.append((t, int(i), "access", fields))
        events += self._homecomings()
        still: list[tuple[float, int]] = []
        for until, i in self._closing:
            if until <= clock.t1:
                if self.held_until[i] == until:  # not propped again, not locked by command
                    w.extra_readings.append((until + 0.5, i, {"door_state": "closed"}))
            else:
                still.append((until, i))
        self._closing = still
        # Rare: a door propped open for a moment, someone slipping through behind a
        # resident. Normal life: neither lasts or repeats enough for a rule to act.
        odd = rng.random(len(rows)) < (0.2 / DAY_S) * profile(ACTIVITY, h) * clock.dt
        for i in rows[odd & ~w.silent[rows]]:
            t = clock.random_time(rng)
            if w.type[i] == "access_door":
                self.held_until[i] = t + rng.uniform(*HELD_OPEN_S)
                events.append((t, int(i), "door_held_open", {}))
                # a door reports its state as it changes: propped now, closed when let go
                w.extra_readings.append((t + 0.5, int(i), {"door_state": "held_open"}))
                self._closing.append((float(self.held_until[i]), int(i)))
            else:
                events.append((t, int(i), "tailgating", {}))
        return events

    def _homecomings(self) -> list[Event]:
        """Residents out for as long as their day allows come home: through a gate, or
        their building's door where the community has no gate."""
        w = self.world
        clock = w.clock
        gates = w.rows["access_gate"]
        gates = gates[~w.silent[gates]]
        events: list[Event] = []
        for due, who, building in self.people.due_back(clock.t1):
            t = min(max(due, clock.t0 + 1e-3), clock.t1)
            doors = gates if len(gates) else self._doors_of(building)
            if not len(doors):
                continue
            i = int(doors[int(w.rng.integers(len(doors)))])
            self.last_access[i] = t
            events.append((t, i, "access", {"method": "face", "direction": "in",
                                            "subject": who}))
        return events

    def _doors_of(self, building: object) -> np.ndarray:
        w = self.world
        doors = w.rows["access_door"]
        return doors[(w.building[doors] == building) & ~w.silent[doors]]

    def incident_events(self) -> list[Event]:
        """A resident who will not come back goes out: their building's door, then the gate."""
        w = self.world
        t0, t1 = w.clock.t0, w.clock.t1
        events: list[Event] = []
        for a in w.incidents.of("elderly-not-back"):
            for k, i in enumerate(a.rows):
                t = a.start + LEAVING_S * (k + 1)
                if t0 < t <= t1:
                    self.last_access[i] = t
                    events.append((t, int(i), "access", {
                        "method": "face", "direction": "out", "subject": a.incident.place}))
        return events

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        held = self.held_until[rows] > t
        open_ = (t - self.last_access[rows] < OPEN_AFTER_PASSAGE_S) | self.unlocked[rows]
        return {"door_state": np.where(held, "held_open", np.where(open_, "open", "closed"))}

    def present_pass(self, device_id: str, token: str) -> None:
        """A visitor shows a pass's QR code at the gate ``device_id``: the gate reads the
        token and asks the twin (a ``pass_scan`` event in the next tick)."""
        w = self.world
        i = w.index.get(device_id)
        if i is None or w.type[i] != "access_gate":
            raise ValueError(f"{device_id!r} is not a gate of {w.cid}")
        w.outbox.append((w.clock.now + 1e-3, i, "pass_scan", {"attrs": {"token": token}}))

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        w = self.world
        now = w.clock.now
        if command == "open":
            self.last_access[i] = now
            detail = "door opened"
            if isinstance(args.get("pass"), str):  # a visitor pass the twin accepted
                w.outbox.append((now + 1e-3, i, "access", {
                    "method": "visitor_qr", "direction": "in",
                    "attrs": {"pass": args["pass"], "result": "granted"}}))
                detail = f"door opened for visitor pass {args['pass']}"
            elif isinstance(args.get("by"), str):  # opened remotely, on someone's behalf
                by = args["by"]
                fields: dict[str, Any] = {"method": "remote", "direction": "in",
                                          "attrs": {"by": by}}
                if isinstance(args.get("subject"), str):
                    fields["subject"] = args["subject"]
                w.outbox.append((now + 1e-3, i, "access", fields))
                detail = f"door opened remotely for {by}"
        elif command == "deny":
            reason = str(args.get("reason", "refused"))[:64]
            attrs: dict[str, Any] = {"result": "denied", "reason": reason}
            if isinstance(args.get("pass"), str):
                attrs["pass"] = args["pass"]
            w.outbox.append((now + 1e-3, i, "access_denied", {"method": "visitor_qr",
                                                              "attrs": attrs}))
            return Outcome(True, f"visitor refused: {reason}")
        elif command == "lock":
            self.held_until[i] = -np.inf
            self.unlocked[i] = False
            self.last_access[i] = -np.inf
            detail = "door closed and locked"
        elif command == "unlock":
            self.unlocked[i] = True
            detail = "door unlocked: open until locked"
        else:
            return super().obey(i, command, args)
        self.world.report_now[i] = True
        return Outcome(True, detail)
