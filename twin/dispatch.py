"""Who goes: the on-shift staff member nearest to an incident by walkway.

Pure: the caller supplies the compiled walkway graph (built once per
community, :mod:`twin.walkgraph`), the staff with their last known
positions, how many orders each already holds, and the time. Nothing here
reads a clock or a database, so every choice can be replayed.

A staff member qualifies when, in this order (the first failing check is the
reason they are passed over):

1. they have the needed ``role`` and ``skill`` (either may be left open);
2. their shift covers ``now`` in the community's local time (:data:`SHIFTS`);
3. they have not declined this order (``exclude``);
4. their position is known: their newest fix, if it is younger than
   ``max_fix_age``, or else their post (the security room, the property
   office), where a staff member nobody has seen lately is assumed to be;
5. they hold fewer than ``max_open_orders`` open orders;
6. their position snaps onto the incident's connected part of the walkway.

Among those, the nearest by walking distance wins: the straight leg from
their position onto the walkway, the walkway itself, and the leg from the
walkway to the incident. One Dijkstra search runs from the incident, bounded
by a radius that starts at 1.5 times the straight-line distance to the
nearest candidate (plus 1 m) and grows fourfold while the nearest reached
candidate might still be beaten by one beyond it; a candidate beyond the
radius is at least that far, so the bound never changes the answer.

Ties (walking distances equal to the millimetre) go to the one with fewer
open orders, which spreads the work, then to the smaller staff id, so the
same inputs always give the same person.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
from shapely.geometry import LineString, Point

from twin.calendars import DEFAULT_TIMEZONE
from twin.walkgraph import Reach, Snap, WalkGraph, reach_from, route_to, snap, walkway_distances

#: Open orders (assigned, accepted, arrived) a staff member may hold before being passed over.
MAX_OPEN_ORDERS = 3
#: A fix older than this says little about where someone is now: their post is used instead.
MAX_FIX_AGE = timedelta(minutes=10)

#: Where a staff member was taken to start from: their newest fix, or their post.
Origin = Literal["fix", "post"]
_ALL_WEEK = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class ShiftHours:
    """The local hours a shift covers, [start, end), on the weekdays it starts (0 = Monday)."""

    start: time
    end: time
    weekdays: frozenset[int] = _ALL_WEEK

    def covers(self, local: datetime) -> bool:
        """Whether the shift covers this local wall-clock moment."""
        clock, day = local.time(), local.weekday()
        if self.start < self.end:
            return self.start <= clock < self.end and day in self.weekdays
        # Across midnight: the early hours belong to the shift that began the day before.
        return (clock >= self.start and day in self.weekdays) or (
            clock < self.end and (day - 1) % 7 in self.weekdays)


#: Shift names as in the ``staff.shift`` column.
SHIFTS: Mapping[str, ShiftHours] = {
    "day": ShiftHours(time(8), time(20)),
    "night": ShiftHours(time(20), time(8)),
    "office": ShiftHours(time(9), time(18), frozenset(range(5))),
}

NoCandidateReason = Literal[
    "no_such_staff", "off_shift", "declined", "no_position", "over_limit", "unreachable"]


@dataclass(frozen=True, slots=True)
class StaffMember:
    """One staff member as dispatch sees them; ``position`` is EPSG:4326."""

    id: str
    role: str
    shift: str
    skills: frozenset[str] = frozenset()
    position: Point | None = None
    position_at: datetime | None = None
    grid_id: str | None = None
    #: Where they wait when nobody knows where they are (security room, property office).
    post: Point | None = None
    post_id: str | None = None

    def __post_init__(self) -> None:
        if self.shift not in SHIFTS:
            raise ValueError(f"staff {self.id}: unknown shift {self.shift!r}; "
                             f"expected one of {', '.join(SHIFTS)}")


@dataclass(frozen=True, slots=True)
class Assignment:
    """The chosen staff member, the walk there (EPSG:4326) and why they were chosen."""

    staff_id: str
    distance_m: float
    eta_s: float
    route: LineString
    candidates_considered: int
    reason: str
    tied_with: tuple[str, ...] = ()
    #: Where the walk starts: the staff member's newest fix, or their post.
    origin: Origin = "fix"
    #: Age of the fix in seconds at ``now`` (also when the post was used because it was stale).
    fix_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class NoCandidate:
    """Nobody can go; ``reason`` is where the last candidates dropped out, ``rejected`` says
    for each staff member with the role and skill why they were passed over."""

    reason: NoCandidateReason
    detail: str
    rejected: tuple[tuple[str, str], ...] = ()


def on_shift(shift: str, now: datetime, *, tz: str = DEFAULT_TIMEZONE) -> bool:
    """Whether ``shift`` covers the aware moment ``now`` in local time ``tz``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. UTC)")
    try:
        hours = SHIFTS[shift]
    except KeyError as e:
        raise ValueError(f"unknown shift {shift!r}; expected one of {', '.join(SHIFTS)}") from e
    return hours.covers(now.astimezone(ZoneInfo(tz)))


def dispatch(
    graph: WalkGraph,
    incident: Point,
    staff: Iterable[StaffMember],
    *,
    now: datetime,
    role: str | None = None,
    skill: str | None = None,
    open_orders: Mapping[str, int] | None = None,
    max_open_orders: int = MAX_OPEN_ORDERS,
    exclude: Collection[str] = frozenset(),
    tz: str = DEFAULT_TIMEZONE,
    max_fix_age: timedelta | None = None,
) -> Assignment | NoCandidate:
    """Choose who goes to ``incident`` (an EPSG:4326 point).

    Parameters
    ----------
    graph
        The community's compiled walkway graph.
    incident
        Where help is needed.
    staff
        Everyone who might go, with their last known positions.
    now
        The aware moment of the dispatch, for shifts.
    role, skill
        What the order needs; at least one. A staff member must have both when both are given.
    open_orders
        Open orders held per staff id (missing means none).
    max_open_orders
        Staff holding this many open orders or more are passed over.
    exclude
        Staff ids who declined this order: the next nearest goes instead.
    tz
        The community's time zone.
    max_fix_age
        Fixes older than this (at ``now``) are not used: the staff member starts from
        their post, or has no position without one. None: any fix is used, however old.

    Returns
    -------
    Assignment | NoCandidate
    """
    if role is None and skill is None:
        raise ValueError("dispatch needs a role, a skill or both")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. UTC)")
    held = open_orders or {}
    local = now.astimezone(ZoneInfo(tz))
    wanted = _describe(role, skill)

    found = sorted((located(s, now, max_fix_age) for s in staff
                    if (role is None or s.role == role) and (skill is None or skill in s.skills)),
                   key=lambda s: s.id)
    origins = {s.id: (s.origin, s.fix_age_s) for s in found}
    pool = [s.member for s in found]
    if not pool:
        return NoCandidate("no_such_staff", f"nobody on the staff list is {wanted}")
    passed_over: list[tuple[str, NoCandidateReason, str]] = []
    for member in pool:
        verdict = _passed_over(member, local, exclude, held, max_open_orders)
        if verdict is not None:
            passed_over.append((member.id, *verdict))
    out = {staff_id for staff_id, _, _ in passed_over}
    pool = [member for member in pool if member.id not in out]
    if not pool:
        return _nobody(wanted, passed_over)

    snaps = snap(graph, [incident] + [s.position for s in pool])
    origin = snaps[0]
    spots: Sequence[Snap] = snaps[1:]
    home = graph.component[graph.edge_u[origin.edge]]
    joined = graph.component[graph.edge_u[[t.edge for t in spots]]] == home
    passed_over += [(m.id, "unreachable", "not connected to the incident's part of the walkway")
                    for m, ok in zip(pool, joined) if not ok]
    pool = [m for m, ok in zip(pool, joined) if ok]
    spots = [t for t, ok in zip(spots, joined) if ok]
    if not pool:
        return _nobody(wanted, passed_over)

    reach, total, settled = _search(graph, origin, spots)
    order: list[int] = sorted(
        np.flatnonzero(settled).tolist(),
        key=lambda k: (round(float(total[k]), 3), held.get(pool[k].id, 0), pool[k].id))
    winner = order[0]
    route = route_to(graph, reach, spots[winner])
    best_mm = round(float(total[winner]), 3)
    tied = tuple(pool[k].id for k in order[1:] if round(float(total[k]), 3) == best_mm)
    radius = reach.limit + origin.offset_m
    # The next settled one is the true runner-up only inside the search radius.
    runner_up = next((k for k in order[1:] if pool[k].id not in tied
                      and float(total[k]) <= radius), None)
    reason = _why(pool, held, winner, tied, runner_up, total, wanted, radius=radius)
    start, age = origins[pool[winner].id]
    return Assignment(
        staff_id=pool[winner].id, distance_m=route.length_m, eta_s=route.eta_s,
        route=route.line, candidates_considered=len(pool), reason=reason, tied_with=tied,
        origin=start, fix_age_s=age,
    )


@dataclass(frozen=True, slots=True)
class Located:
    """A staff member with the position dispatch starts them from, and where it came from."""

    member: StaffMember
    origin: Origin
    fix_age_s: float | None

    @property
    def id(self) -> str:
        return self.member.id


def located(member: StaffMember, now: datetime,
            max_fix_age: timedelta | None = MAX_FIX_AGE) -> Located:
    """Where ``member`` is taken to be at ``now``: a fresh fix, else their post, else nowhere.

    A fix with no time counts as fresh only when ``max_fix_age`` is None.
    """
    has_fix = member.position is not None and not member.position.is_empty
    # a fix stamped after `now` (a data clock behind the badges' stream) is as fresh as can be
    age = (None if member.position_at is None or not has_fix
           else max(0.0, (now - member.position_at).total_seconds()))
    fresh = has_fix and (max_fix_age is None or (
        age is not None and age <= max_fix_age.total_seconds()))
    if fresh:
        return Located(member, "fix", age)
    return Located(replace(member, position=member.post), "post", age)


def started_from(choice: Assignment) -> str:
    """Where the chosen one's walk starts, in words: their fix and its age, or their post."""
    origin, age = choice.origin, choice.fix_age_s
    if origin == "fix":
        return "from their position fix" + ("" if age is None else f" {_age(age)} old")
    if age is None:
        return "from their post (no fix)"
    return f"from their post (newest fix {_age(age)} old)"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _search(
    graph: WalkGraph, origin: Snap, spots: Sequence[Snap]
) -> tuple[Reach, np.ndarray, np.ndarray]:
    """One bounded Dijkstra from the incident, widened until the nearest is certain.

    Returns the search, each candidate's walking distance (walkway plus both
    off-walkway legs) and which of those distances are exact.
    """
    legs = np.array([t.offset_m for t in spots]) + origin.offset_m
    here = np.array(_spot_xy(graph, origin))
    there = np.array([_spot_xy(graph, t) for t in spots])
    straight = np.hypot(*(there - here).T)
    limit = 1.5 * float(straight.min()) + 1.0
    while True:
        reach = reach_from(graph, origin, limit=limit)
        walkway = walkway_distances(graph, reach, spots)
        settled = walkway <= limit
        total = walkway + legs
        # Anyone not settled walks more than limit + the incident's own leg.
        if settled.any() and total[settled].min() + 1e-3 <= limit + origin.offset_m:
            return reach, total, settled
        if not np.isfinite(limit):
            return reach, total, np.isfinite(walkway)
        limit = limit * 4.0 if limit < 1e7 else np.inf


def _spot_xy(graph: WalkGraph, spot: Snap) -> tuple[float, float]:
    """The snapped spot on the walkway, in metric coordinates."""
    line = graph.edge_lines[spot.edge]
    length = graph.edge_length[spot.edge]
    point = line.interpolate(spot.along_m / length * line.length if length > 0 else 0.0)
    return point.x, point.y


def _describe(role: str | None, skill: str | None) -> str:
    if role and skill:
        return f"{role} staff with skill {skill!r}"
    return f"{role} staff" if role else f"staff with skill {skill!r}"


def _passed_over(
    member: StaffMember, local: datetime, exclude: Collection[str], held: Mapping[str, int],
    limit: int,
) -> tuple[NoCandidateReason, str] | None:
    """The first check ``member`` fails, with the reason in words, or None if they qualify."""
    if not SHIFTS[member.shift].covers(local):
        return "off_shift", f"off shift ({member.shift} shift; it is {local:%a %H:%M} local)"
    if member.id in exclude:
        return "declined", "declined this order"
    if member.position is None or member.position.is_empty:
        return "no_position", "no known position"
    if held.get(member.id, 0) >= limit:
        return "over_limit", f"holds {held.get(member.id, 0)} open orders (limit {limit})"
    return None


_STAGES: tuple[NoCandidateReason, ...] = (
    "off_shift", "declined", "no_position", "over_limit", "unreachable")


def _nobody(wanted: str, passed_over: list[tuple[str, NoCandidateReason, str]]) -> NoCandidate:
    """Nobody qualifies: named by the last check anyone reached, with everyone's reason."""
    stage = max((s for _, s, _ in passed_over), key=_STAGES.index)
    lines = "; ".join(f"{staff_id} {why}" for staff_id, _, why in passed_over)
    detail = f"none of the {len(passed_over)} {wanted} can go: {lines}"
    return NoCandidate(stage, detail, tuple((staff_id, why) for staff_id, _, why in passed_over))


def _why(pool: list[StaffMember], held: Mapping[str, int], winner: int, tied: tuple[str, ...],
         runner_up: int | None, total: np.ndarray, wanted: str, *, radius: float) -> str:
    """Why the winner: distance, the tie-break used, and the next best."""
    text = (f"nearest by walkway of {len(pool)} qualified {wanted}: "
            f"{float(total[winner]):.1f} m")
    if tied:
        mine = held.get(pool[winner].id, 0)
        fewer = sum(held.get(t, 0) > mine for t in tied)
        by = ("fewer open orders" if fewer == len(tied) else
              "staff id order" if fewer == 0 else "fewer open orders, then staff id order")
        text += f"; tied with {', '.join(tied)}, chosen by {by}"
    if runner_up is not None:
        text += f"; next {pool[runner_up].id} at {float(total[runner_up]):.1f} m"
    elif len(pool) > 1 + len(tied):
        text += f"; everyone else is farther than {radius:.0f} m"
    return text
