"""Charging piles near a resident (pure): walking distance over the dispatcher's walkway
graph (`twin.walkgraph`, scipy's Dijkstra) from their building's entrance to each EV
shed, and the sheds nearest first with their free piles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from shapely.geometry import Point

from twin.walkgraph import WalkGraph, reach_from, snap, walkway_distances

#: The states of a session (migration 0024) still open.
OPEN_SESSION_STATES: frozenset[str] = frozenset({"requested", "charging"})


def walking_metres(graph: WalkGraph, origin: Point, targets: Sequence[Point]) -> np.ndarray:
    """Metres on foot from ``origin`` to each target: over the walkways, plus the steps
    from each point to its walkway (``inf`` where no walkway joins them)."""
    if not targets:
        return np.zeros(0)
    snaps = snap(graph, [origin, *targets])
    start, ends = snaps[0], snaps[1:]
    reach = reach_from(graph, start)
    return walkway_distances(graph, reach, ends) + start.offset_m + ends.offset_m


def sheds_nearest_first(piles: Sequence[Mapping[str, Any]], metres: Mapping[str, float]
                        ) -> list[dict[str, Any]]:
    """The piles grouped by shed (``shed_id``), each shed with its walking distance
    (``metres`` by shed id), its piles and how many are free; nearest first, ties by id."""
    sheds: dict[str, dict[str, Any]] = {}
    for p in piles:
        shed = sheds.setdefault(p["shed_id"], {
            "shed_id": p["shed_id"], "shed": p["shed"],
            "metres": float(metres.get(p["shed_id"], np.inf)), "piles": [], "free": 0})
        shed["piles"].append(dict(p))
        shed["free"] += bool(p["free"])
    return sorted(sheds.values(), key=lambda s: (s["metres"], s["shed_id"]))
