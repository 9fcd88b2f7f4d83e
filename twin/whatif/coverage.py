"""Coverage: how long the nearest qualified staff member takes to walk to each building.

For every building entrance, the walking time from the nearest staff member
of a role on a shift (from their usual position, over the walkway, at
dispatch's speeds); a building counts by its quickest entrance, since help
may come in by any door. Baseline and scenario side by side show which
buildings a closure or an absence moves over the response-time target.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TypedDict

import numpy as np
import pandas as pd
from shapely.geometry import Point

from twin.dispatch import StaffMember
from twin.walkgraph import Snaps, Variant, WalkGraph, place, seconds_from, seconds_to, snap
from twin.whatif.scenario import Scenario, scenario_network

#: Response-time bands of the isochrone map, in minutes (the last is open-ended).
BANDS_MIN: tuple[float, ...] = (2.0, 5.0, 10.0)


@dataclass(frozen=True, slots=True)
class Entrances:
    """The doors coverage is measured to (EPSG:4326 points)."""

    ids: tuple[str, ...]
    building_ids: tuple[str, ...]
    points: tuple[Point, ...]


@dataclass(frozen=True, eq=False)
class Coverage:
    """Walking seconds from the nearest staff member, per entrance and per network node."""

    scenario: str
    role: str
    shift: str
    staff_ids: tuple[str, ...]
    entrances: Entrances
    entrance_s: np.ndarray
    node_s: np.ndarray
    network: Variant

    def buildings(self) -> pd.DataFrame:
        """One row per building: its quickest entrance and the seconds to it."""
        frame = pd.DataFrame({"building_id": self.entrances.building_ids,
                              "entrance_id": self.entrances.ids, "seconds": self.entrance_s})
        best = frame.sort_values(["building_id", "seconds", "entrance_id"]).groupby(
            "building_id", sort=True).head(1)
        return best.set_index("building_id")[["entrance_id", "seconds"]]

    def over(self, sla_s: float) -> list[str]:
        """Buildings whose quickest entrance is beyond the target (or out of reach)."""
        b = self.buildings()
        return sorted(b.index[b["seconds"] > sla_s])

    def histogram(self, *, bin_s: float = 60.0, max_s: float = 900.0) -> pd.Series:
        """Buildings per minute band of response time; 'unreachable' counts the unreached."""
        seconds = self.buildings()["seconds"].to_numpy()
        edges = np.arange(0.0, max_s + bin_s, bin_s)
        counts, _ = np.histogram(np.clip(seconds[np.isfinite(seconds)], 0, max_s - 1e-9), edges)
        labels = [f"{a / 60:g}-{b / 60:g} min" for a, b in itertools.pairwise(edges)]
        series = pd.Series(counts, index=labels, name="buildings")
        series["unreachable"] = int((~np.isfinite(seconds)).sum())
        return series

    def bands(self, bands_min: Sequence[float] = BANDS_MIN) -> np.ndarray:
        """Per edge of the network: the band (0 = quickest) of its slower end, for an isochrone
        map; -1 for an edge the scenario closes."""
        worst = np.maximum(self.node_s[self.network.u], self.node_s[self.network.v])
        band = np.searchsorted(np.asarray(bands_min) * 60.0, worst, side="right")
        return np.where(self.network.open, band, -1)


class CoverageSummary(TypedDict):
    """A comparison in numbers: buildings over the target, and walking seconds."""

    buildings: int
    over_target_baseline: int
    over_target_scenario: int
    newly_over: list[str]
    back_within: list[str]
    median_baseline_s: float
    median_scenario_s: float
    #: The largest change among buildings reachable in both (None when there is none).
    worst_change_s: float | None


@dataclass(frozen=True, eq=False)
class CoverageComparison:
    baseline: Coverage
    scenario: Coverage
    sla_s: float

    def table(self) -> pd.DataFrame:
        """Per building: seconds in both, the change, and whether each meets the target."""
        a, b = self.baseline.buildings(), self.scenario.buildings()
        out = pd.DataFrame({"baseline_s": a["seconds"], "scenario_s": b["seconds"]})
        out["change_s"] = out["scenario_s"] - out["baseline_s"]
        out["baseline_ok"] = out["baseline_s"] <= self.sla_s
        out["scenario_ok"] = out["scenario_s"] <= self.sla_s
        return out

    @property
    def newly_over(self) -> list[str]:
        t = self.table()
        return sorted(t.index[t["baseline_ok"] & ~t["scenario_ok"]])

    @property
    def back_within(self) -> list[str]:
        t = self.table()
        return sorted(t.index[~t["baseline_ok"] & t["scenario_ok"]])

    def summary(self) -> CoverageSummary:
        t = self.table()
        finite = np.isfinite(t["scenario_s"]) & np.isfinite(t["baseline_s"])
        return {
            "buildings": len(t),
            "over_target_baseline": int((~t["baseline_ok"]).sum()),
            "over_target_scenario": int((~t["scenario_ok"]).sum()),
            "newly_over": self.newly_over,
            "back_within": self.back_within,
            "median_baseline_s": float(np.median(t["baseline_s"])),
            "median_scenario_s": float(np.median(t["scenario_s"])),
            "worst_change_s": float(t.loc[finite, "change_s"].max()) if finite.any() else None,
        }


def staff_in(staff: Iterable[StaffMember], scenario: Scenario) -> list[StaffMember]:
    """The staff list as the scenario has it: some away, some added, moved or on other shifts."""
    gone = set(scenario.staff_removed)
    unknown = (gone | set(scenario.staff_moved) | set(scenario.shift_changes)) - {
        s.id for s in staff}
    if unknown:
        raise ValueError(f"scenario {scenario.name!r}: no staff member "
                         f"{', '.join(sorted(map(repr, unknown)))}")
    out = []
    for member in staff:
        if member.id in gone:
            continue
        if member.id in scenario.staff_moved:
            member = replace(member, position=Point(scenario.staff_moved[member.id]))
        if member.id in scenario.shift_changes:
            member = replace(member, shift=scenario.shift_changes[member.id])
        out.append(member)
    out += [StaffMember(id=a.id, role=a.role, shift=a.shift, skills=frozenset(a.skills),
                        position=Point(a.position)) for a in scenario.staff_added]
    return out


def coverage(
    graph: WalkGraph,
    staff: Iterable[StaffMember],
    entrances: Entrances,
    scenario: Scenario,
    *,
    role: str,
    shift: str,
    network: Variant | None = None,
    doors: Snaps | None = None,
) -> Coverage:
    """Walking seconds from the nearest ``role`` on ``shift`` to every entrance and node.

    What belongs to the live twin may be prepared once and passed in: the
    doors snapped to the graph (:func:`twin.walkgraph.snap`), and the
    scenario's ``network`` when several roles or shifts are measured on one
    scenario.
    """
    net = network or scenario_network(graph, scenario)
    team = sorted((m for m in staff_in(staff, scenario)
                   if m.role == role and m.shift == shift and m.position is not None),
                  key=lambda m: m.id)
    if doors is None:
        doors = snap(graph, list(entrances.points))
    sources = place(net, snap(graph, [m.position for m in team]), movable=True) \
        if team else None
    targets = place(net, doors, movable=False)
    if sources is None:
        node_s = np.full(net.n_nodes, np.inf)
        entrance_s = np.full(len(entrances.ids), np.inf)
    else:
        node_s = seconds_from(net, sources)
        entrance_s = seconds_to(node_s, targets, sources)
    return Coverage(scenario=scenario.name, role=role, shift=shift,
                    staff_ids=tuple(m.id for m in team), entrances=entrances,
                    entrance_s=entrance_s, node_s=node_s, network=net)


def compare(baseline: Coverage, scenario: Coverage, *, sla_s: float) -> CoverageComparison:
    if (baseline.role, baseline.shift) != (scenario.role, scenario.shift):
        raise ValueError("compare coverage of the same role and shift")
    return CoverageComparison(baseline=baseline, scenario=scenario, sla_s=sla_s)
