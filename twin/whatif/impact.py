"""Impact: who depends on a path or a gate that a scenario closes.

A building depends on a segment when every walk from its doors to the
community's gates crosses it: with the segment closed it is cut off. Short
of that, the closure may only lengthen the walk; both are reported, so a
planner sees who is cut off and who walks further.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from shapely.geometry import Point

from twin.walkgraph import Variant, WalkGraph, place, seconds_from, seconds_to, snap
from twin.whatif.coverage import Entrances
from twin.whatif.scenario import BASELINE, Scenario, scenario_network


@dataclass(frozen=True, eq=False)
class Impact:
    scenario: str
    #: per building: seconds to the nearest open gate before and after, and the change
    table: pd.DataFrame
    detour_s: float

    @property
    def cut_off(self) -> list[str]:
        """Buildings that reach a gate now and would not in the scenario."""
        t = self.table
        return sorted(t.index[np.isfinite(t["baseline_s"]) & ~np.isfinite(t["scenario_s"])])

    @property
    def detoured(self) -> list[str]:
        """Buildings still connected that would walk more than ``detour_s`` further."""
        t = self.table
        finite = np.isfinite(t["scenario_s"]) & np.isfinite(t["baseline_s"])
        return sorted(t.index[finite & (t["change_s"] > self.detour_s)])


def gate_impact(
    graph: WalkGraph,
    entrances: Entrances,
    gates: dict[str, Point],
    scenario: Scenario,
    *,
    closed_gates: tuple[str, ...] = (),
    detour_s: float = 60.0,
) -> Impact:
    """Walking seconds from each building's quickest door to the nearest open gate, baseline
    against scenario; ``closed_gates`` take gates out in the scenario as closed edges do paths."""
    unknown = set(closed_gates) - set(gates)
    if unknown:
        raise ValueError(f"no gate {', '.join(sorted(map(repr, unknown)))}")
    before = _to_gates(scenario_network(graph, BASELINE), entrances, gates)
    open_gates = {g: p for g, p in gates.items() if g not in closed_gates}
    after = _to_gates(scenario_network(graph, scenario), entrances, open_gates)
    frame = pd.DataFrame({"building_id": entrances.building_ids,
                          "baseline_s": before, "scenario_s": after})
    table = frame.groupby("building_id", sort=True).min()
    with np.errstate(invalid="ignore"):
        table["change_s"] = table["scenario_s"] - table["baseline_s"]
    return Impact(scenario=scenario.name, table=table, detour_s=detour_s)


def _to_gates(net: Variant, entrances: Entrances, gates: dict[str, Point]) -> np.ndarray:
    if not gates:
        return np.full(len(entrances.ids), np.inf)
    sources = place(net, snap(net.graph, [gates[g] for g in sorted(gates)]), movable=False)
    targets = place(net, snap(net.graph, list(entrances.points)), movable=False)
    return seconds_to(seconds_from(net, sources), targets, sources)
