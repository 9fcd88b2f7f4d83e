"""A community's devices as a stream of MQTT messages, with daily rhythms, incidents and commands.

Pure: no broker, no database, no clock of its own. Given the frames of one
community, a simulated start time and a seed, :class:`Simulation` produces
``(topic, payload)`` pairs in the v1 contract (:mod:`ingest.contract`), tick
by tick, as a real site would send them. The domain modules play the device
types, as the registry (:mod:`twin.device_types`) groups them; this module
only runs the shared clock and asks each domain, in a fixed order, what its
devices do in each tick.

Time advances in fixed ticks from the start, so the same community, start,
seed, tick, injections and commands always give the same messages, however
the caller slices the time it asks for.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson

from ingest import contract
from ingest.simulator import commands
from ingest.simulator.access import Access
from ingest.simulator.cameras import Cameras
from ingest.simulator.charging import Charging
from ingest.simulator.clock import Clock, iso
from ingest.simulator.environment import Environment
from ingest.simulator.equipment import Equipment
from ingest.simulator.gateways import Gateways, Message
from ingest.simulator.home import Home
from ingest.simulator.incidents import DURATION_S, INCIDENTS, Active, Incident, Incidents, resolve
from ingest.simulator.people import Patrols, People
from ingest.simulator.safety import Safety
from ingest.simulator.world import (
    CODES,
    REPORT_INTERVAL_S,
    Community,
    Domain,
    Event,
    Reading,
    World,
    in_range,
)

#: The domains, in the order they draw from the random generator and act in a tick.
DOMAINS: tuple[type[Domain], ...] = (People, Access, Cameras, Safety, Environment, Home,
                                     Charging, Equipment, Patrols)
#: State before the start is built by running this long in coarse steps.
WARM_UP_S, WARM_UP_STEP_S = 12 * 3600.0, 600.0


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
        (:data:`~ingest.simulator.gateways.RELAYED_TYPES`) are sent by that
        gateway as ``batch`` messages of up to this many items; 1: every
        device publishes its own.
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
        played = {code for domain in DOMAINS for code in domain.types}
        unplayed = sorted(set(community.devices["type"]) - played)
        if unplayed:
            raise ValueError(f"the simulator has no behaviour for the device type(s) "
                             f"{', '.join(unplayed)}")
        self.community = community
        self.batch_size = batch_size
        self.tick_s = float(tick_s)
        self._start = start.timestamp()
        self._clock = Clock(self._start)
        self._incidents = Incidents()
        world = World(community, clock=self._clock, rng=np.random.default_rng(seed),
                      incidents=self._incidents)
        self._world = world
        people = People(world)
        self._gateways = Gateways(world, batch_size=batch_size)
        self._charging = Charging(world, people)  # draws nothing when built
        # Built left to right: the order in which they draw from the generator.
        self._access = Access(world, people)
        self._domains: tuple[Domain, ...] = (
            people, self._access, Cameras(world), Safety(world), Environment(world),
            Home(world, people), self._charging, Equipment(world, self._gateways),
            Patrols(world))
        assert tuple(map(type, self._domains)) == DOMAINS
        self._scheduled: list[tuple[float, str]] = []
        self._started: list[Incident] = []
        self._player = {code: d for d in self._domains for code in d.types}
        self._warm_up()

    # --- public ------------------------------------------------------------------------
    @property
    def clock(self) -> datetime:
        """Simulated time reached: the end of the last tick."""
        return self._clock.as_datetime()

    @property
    def devices(self) -> int:
        return self._world.n

    @property
    def incidents(self) -> tuple[Incident, ...]:
        return tuple(a.incident for a in self._incidents.active)

    def opening(self) -> list[Message]:
        """Every device's status, online, at the current clock (published retained)."""
        w = self._world
        payload = orjson.dumps({"online": True, "ts": iso([self._clock.now])[0]})
        return [(contract.topic(w.cid, device, "status"), payload)
                for device, silent in zip(w.ids, w.silent) if not silent]

    def advance(self, until: datetime) -> list[Message]:
        """Run every whole tick that ends at or before ``until``; their messages in time order.

        An incident scheduled with :meth:`schedule` starts with the first tick that ends at
        or after its time.
        """
        end = until.timestamp()
        out: list[Message] = []
        while self._clock.now + self.tick_s <= end + 1e-9:
            self._clock.step(self.tick_s)
            while self._scheduled and self._scheduled[0][0] <= self._clock.now + 1e-9:
                _, spec = self._scheduled.pop(0)
                self.inject(spec)
            out.extend(self._tick())
        return out

    def schedule(self, spec: str, at: datetime) -> None:
        """Start the incident ``name:target`` when the simulated clock reaches ``at``.

        The spec is checked now (an unknown incident or target raises ValueError), so a
        scripted day fails at its start, not hours into it.
        """
        name, _, target = spec.partition(":")
        if name.strip() not in INCIDENTS or not target.strip():
            self.inject(spec)  # raises, naming what is wrong
        resolve(self._world, name.strip(), target.strip(), charging=self._charging.charging,
                free=self._charging.free)
        self._scheduled.append((at.timestamp(), spec))
        self._scheduled.sort(key=lambda s: s[0])

    @property
    def started_incidents(self) -> tuple[Incident, ...]:
        """Every incident started so far, ended or not, in order."""
        return tuple(self._started)

    @property
    def scheduled(self) -> tuple[tuple[datetime, str], ...]:
        """Incidents still waiting for their time."""
        return tuple((datetime.fromtimestamp(t, UTC), s) for t, s in self._scheduled)

    def flush(self) -> list[Message]:
        """What the gateways still hold, as batches (at the end of a run)."""
        return [m for _, m in self._gateways.flush(self._clock.now, force=True)]

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
        w, now = self._world, self._clock.now
        place, rows = resolve(w, name, target, charging=self._charging.charging,
                              free=self._charging.free)
        duration = DURATION_S[name]
        end = np.inf if duration is None else now + duration
        incident = Incident(
            name=name, target=target, place=place, devices=tuple(w.ids[rows]),
            start=self.clock,
            end=None if duration is None else datetime.fromtimestamp(end, UTC),
        )
        mask = np.zeros(w.n, dtype=bool)
        mask[rows] = True
        active = Active(incident, rows, mask, now, end)
        self._incidents.active.append(active)
        if name == "device-offline":
            for i in rows:
                w.outbox.append((now + 1e-3, int(i), "status",
                                 {"online": False, "reason": "no heartbeat"}))
                self._gateways.silence(int(i))
        for domain in self._domains:
            domain.begin(active)
        self._started.append(incident)
        return incident

    def present_pass(self, device_id: str, token: str) -> None:
        """A visitor shows the QR code of a pass (its opaque token) at the gate
        ``device_id``; the gate asks the twin in the next tick (`Access.present_pass`).
        Raises ValueError if the device is not one of the community's gates."""
        self._access.present_pass(device_id, token)

    def obey(self, topic: str, payload: bytes) -> list[Message]:
        """A command from the twin, carried out at the current clock; the device's ``ack``.

        ``topic`` is ``twin/v1/{community}/{device}/cmd``. The effect shows in
        the device's next messages: it reports its readings in the next tick,
        and events (a charger's ``charge_stop``) follow. A command for another
        community, an unknown or offline device, or a payload without a command
        id is not answered (there is nobody, or nothing, to acknowledge).
        """
        w = self._world
        parts = contract.parse_topic(topic)
        if parts is None or parts[2] != "cmd" or parts[0] != w.cid:
            return []
        i = w.index.get(parts[1])
        command = commands.parse(payload)
        if i is None or w.silent[i] or command is None:
            return []
        outcome = self._player[w.type[i]].obey(i, command.command, command.args)
        ack = {"id": command.id, "ts": iso([self._clock.now])[0], "ok": outcome.ok,
               "detail": commands.clip_detail(outcome.detail)}
        return [(contract.topic(w.cid, parts[1], "ack"), orjson.dumps(ack))]

    # --- one tick ----------------------------------------------------------------------
    def _tick(self) -> list[Message]:
        w = self._world
        events: list[Event] = w.outbox
        w.outbox = []
        for domain in self._domains:
            events += domain.update()
        for domain in self._domains:
            events += domain.live()
        for domain in self._domains:
            events += domain.incident_events()
        readings = self._readings() + w.extra_readings
        w.extra_readings = []
        timed = self._gateways.route(readings, events)
        timed += self._gateways.flush(self._clock.now, force=False)
        timed.sort(key=lambda m: m[0])
        return [m for _, m in timed]

    def _readings(self) -> list[Reading]:
        """Telemetry of every device whose report falls in the tick, or that must report now."""
        w = self._world
        t0, t1 = self._clock.t0, self._clock.t1
        out: list[Reading] = []
        last = np.floor((t1 - w.phase) / w.interval)
        due = (last > np.floor((t0 - w.phase) / w.interval)) | w.report_now
        due &= ~w.silent
        w.report_now[:] = False
        rows = np.flatnonzero(due)
        when = np.maximum(last[rows] * w.interval[rows] + w.phase[rows], t0 + 1e-3)
        codes = w.code[rows]
        for c in np.unique(codes):
            mine = codes == c
            picked, at = rows[mine], when[mine]
            code = CODES[c]
            values = self._player[code].read(code, picked, at)
            names = list(values)
            columns = [in_range(code, name, values[name]) for name in names]
            for k, row in enumerate(zip(*columns)):
                out.append((float(at[k]), int(picked[k]), dict(zip(names, row))))
        return out

    def _warm_up(self) -> None:
        """Bins, soil, meters and chargers as they are at the start (events of the past dropped)."""
        clock = self._clock
        clock.set(self._start - WARM_UP_S)
        while clock.now < self._start:
            clock.step(min(WARM_UP_STEP_S, self._start - clock.now))
            for domain in self._domains:
                domain.update()
        clock.set(self._start)

