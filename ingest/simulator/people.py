"""The people: residents who come through a door or are no longer seen, and staff on patrol.

Doors, gates and chargers name a resident as the ``subject`` of their events;
:class:`People` draws one by how active their age band is, from the
residents of a building (or of the whole community), and knows who is out.
:class:`Patrols` walks the staff on shift along the walkways and reports their
badges' fixes.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, Point

from ingest.simulator.clock import LOCAL_OFFSET_S, daily
from ingest.simulator.incidents import Active
from ingest.simulator.world import Domain, Event, World, optional
from twin.dispatch import on_shift
from twin.walkgraph import WalkGraph, walk_route

#: Comings and goings (gates, doors, lifts, cameras, street noise): peaks at 08:00 and
#: 18:00, mean 1, one value per local hour.
ACTIVITY = daily([0.08, 0.04, 0.02, 0.02, 0.03, 0.12, 0.5, 1.6, 2.6, 1.2, 0.8, 0.9,
                  1.0, 0.8, 0.7, 0.8, 1.0, 1.9, 2.6, 1.6, 1.1, 0.8, 0.45, 0.2], mean=1.0)
#: Who goes through doors how often, by age band (relative).
AGE_ACTIVITY = {"0-6": 0.3, "7-17": 1.0, "18-59": 1.2, "60-79": 0.8, "80+": 0.4}


#: The longest a resident with a care flag stays out on a normal day (h): well inside
#: the special-care rules' limits (6 h for children, 12 for elderly living alone, 24
#: for the other flags), so that only an incident leaves somebody out that long.
TRIP_LIMIT_H = {"child": 4.0, "elderly_alone": 8.0, "elderly": 10.0, "disabled": 10.0,
                "chronic_illness": 10.0}
#: Everybody else is back within this many hours (a night shift, a day trip).
DEFAULT_TRIP_LIMIT_H = 16.0


class People(Domain):
    """The residents of the community, weighted by how much they come and go.

    Each resident is in or out: a passage going out draws somebody who is in,
    one coming in somebody who is out, and a resident out for their
    :data:`TRIP_LIMIT_H` comes home through a gate (see :meth:`due_back`). So a
    normal day leaves nobody out long enough to worry anyone; only the
    ``elderly-not-back`` incident does. A resident hidden by the
    ``elderly-not-seen`` or ``elderly-not-back`` incident is never drawn again.
    """

    def __init__(self, world: World) -> None:
        super().__init__(world)
        r = world.community.residents
        self.hidden: set[str] = set()
        self.ids = r["id"].to_numpy(dtype=object)
        self.building_of = dict(zip(r["id"], optional(r["building_id"])))
        self.unit_of = dict(zip(r["id"], r["unit_id"]))
        #: Flats with one resident: nobody else moves there when they are not seen.
        self.alone = set(r["unit_id"].value_counts().loc[lambda c: c == 1].index)
        self._weights = r["age_band"].map(AGE_ACTIVITY).fillna(1.0).to_numpy(dtype=float)
        self._limit_s = np.array([_trip_limit_h(flags) * 3600.0 for flags in r["care_flags"]])
        #: When each resident went out (simulation seconds); NaN while they are in.
        self.out_since = np.full(len(r), np.nan)
        self._hidden = np.zeros(len(r), dtype=bool)
        self._index = {rid: k for k, rid in enumerate(self.ids)}
        buildings = optional(r["building_id"])
        self._members: dict[object, np.ndarray] = {None: np.arange(len(r))}
        for b in pd.unique(buildings):
            self._members[b] = np.flatnonzero(buildings == b)

    def begin(self, active: Active) -> None:
        if active.incident.name in ("elderly-not-seen", "elderly-not-back"):
            self.hidden.add(active.incident.place)
            k = self._index.get(active.incident.place)
            if k is not None:
                self._hidden[k] = True

    def subject(self, building: object, direction: str | None = None,
                at: float = 0.0) -> str | None:
        """A resident of ``building`` (anyone, for None or a building with nobody), by activity.

        With a ``direction`` the resident is one who is in (going ``out``) or out
        (coming ``in``), and now is the other; None when nobody fits (a visitor).
        """
        members = self._members.get(building)
        if members is None or not len(members):
            members = self._members[None]
        members = members[~self._hidden[members]]
        if direction == "out":
            members = members[np.isnan(self.out_since[members])]
        elif direction == "in":
            members = members[~np.isnan(self.out_since[members])]
        if not len(members):
            return None
        cdf = _cdf(self._weights[members])
        k = int(members[min(int(np.searchsorted(cdf, self.world.rng.random(), side="right")),
                            len(members) - 1)])
        if direction == "out":
            self.out_since[k] = at
        elif direction == "in":
            self.out_since[k] = np.nan
        return str(self.ids[k])

    def due_back(self, until: float) -> list[tuple[float, str, object]]:
        """Residents whose trip reaches its limit by ``until`` (when, who, their building):
        they are home again now."""
        with np.errstate(invalid="ignore"):
            due = np.flatnonzero(self.out_since + self._limit_s <= until)
        due = due[~self._hidden[due]]
        back = [(float(self.out_since[k] + self._limit_s[k]), str(self.ids[k]),
                 self.building_of.get(self.ids[k])) for k in due]
        self.out_since[due] = np.nan
        return back


def _trip_limit_h(flags: object) -> float:
    limits = [TRIP_LIMIT_H[f] for f in (flags if isinstance(flags, list | tuple | np.ndarray)
                                        else ()) if f in TRIP_LIMIT_H]
    return min(limits, default=DEFAULT_TRIP_LIMIT_H)


def _cdf(weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    return np.cumsum(weights) / total if total > 0 else np.zeros(0)


#: Seconds between two fixes of a staff badge on duty (trackers report every 15-60 s).
FIX_INTERVAL_S = 30.0
#: A patrol's walking pace, m/s: slower than the dispatcher's 1.2 m/s errand.
PATROL_SPEED_M_S = 1.0
#: Waypoints of one patrol round, besides the post it starts and ends at.
PATROL_WAYPOINTS = 4


class Patrols(Domain):
    """Staff on shift walking patrol rounds on the walkways, their badges reporting fixes.

    Each badge's wearer walks a round from their post through a few building
    entrances and back, again and again, at :data:`PATROL_SPEED_M_S`, and their
    badge publishes a ``position`` fix every :data:`FIX_INTERVAL_S` while they
    are on shift (off shift the badge stays in the locker and says nothing).
    The rounds are fixed by the walkway graph and the roster, so they draw
    nothing from the random generator. Without staff or walkways in the
    community frames the badges only report their battery.
    """

    types = ("staff_badge",)

    def __init__(self, world: World) -> None:
        super().__init__(world)
        self.rounds: dict[int, _Round] = {}
        staff, graph = world.community.staff, world.community.walkway
        if staff is None or graph is None:
            return
        worn = staff[staff["badge_id"].notna() & staff["post_lon"].notna()]
        entrances = np.flatnonzero(graph.node_kind == "entrance")
        if not len(entrances):
            entrances = np.arange(graph.n_nodes)
        waypoints = graph.to_lonlat(graph.xy[entrances])
        for k, (badge, shift, lon, lat) in enumerate(zip(
                worn["badge_id"], worn["shift"], worn["post_lon"], worn["post_lat"])):
            i = world.index.get(badge)
            if i is None:
                continue
            picks = [(7 * k + j * len(entrances) // PATROL_WAYPOINTS) % len(entrances)
                     for j in range(PATROL_WAYPOINTS)]
            stops = [Point(lon, lat), *(Point(*waypoints[p]) for p in picks), Point(lon, lat)]
            line = patrol_round(graph, stops)
            if line is not None:
                # each wearer starts somewhere else on their round
                self.rounds[int(i)] = _Round(str(shift), line, phase=(k * 97.0) % line.length,
                                             interval_phase=(k * 7.0) % FIX_INTERVAL_S,
                                             accuracy_m=4.0 + k % 5)

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        # a day's charge: full at 07:00 local, about 60 % a day later
        hours = ((t + LOCAL_OFFSET_S) / 3600.0 - 7.0) % 24.0
        return {"battery": 100.0 - 1.6 * hours - (rows % 5)}

    def live(self) -> list[Event]:
        w = self.world
        clock = w.clock
        graph = w.community.walkway
        if not self.rounds or graph is None:
            return []
        t0, t1 = clock.t0, clock.t1
        now = clock.as_datetime()
        out: list[Event] = []
        for i, r in self.rounds.items():
            if w.silent[i] or not on_shift(r.shift, now):
                continue
            first = np.floor((t0 - r.interval_phase) / FIX_INTERVAL_S) + 1
            last = np.floor((t1 - r.interval_phase) / FIX_INTERVAL_S)
            for n in np.arange(first, last + 1):
                t = float(n * FIX_INTERVAL_S + r.interval_phase)
                along = (r.phase + PATROL_SPEED_M_S * t) % r.line.length
                spot = r.line.interpolate(along)
                lon, lat = graph.to_lonlat(np.array([[spot.x, spot.y]]))[0]
                out.append((t, i, "position", {"lon": round(float(lon), 7),
                                               "lat": round(float(lat), 7),
                                               "accuracy_m": r.accuracy_m}))
        return out


@dataclass(frozen=True, slots=True)
class _Round:
    shift: str
    #: the round in the walkway graph's metric CRS
    line: LineString
    phase: float
    interval_phase: float
    accuracy_m: float


def patrol_round(graph: WalkGraph, stops: list[Point]) -> LineString | None:
    """The walk through ``stops`` (EPSG:4326) in order along the walkways, in metric
    coordinates; None when a stop cannot be reached from the one before."""
    pieces: list[np.ndarray] = []
    for a, b in pairwise(stops):
        route = walk_route(graph, a, b)
        if route is None:
            return None
        pieces.append(graph.to_metric(list(shapely.points(shapely.get_coordinates(route.line)))))
    xy = np.vstack(pieces)
    keep = np.r_[True, (np.abs(np.diff(xy, axis=0)) > 1e-6).any(axis=1)]
    line = LineString(xy[keep]) if keep.sum() >= 2 else None
    return line if line is not None and line.length > 0 else None
