"""The walkway network of one community plan, as explicit nodes and edges.

Roads are straight centre lines (ring road, rows, spine); every place a
dispatcher routes to is attached to its nearest road by a straight edge:
building entrances by a 'footway', gates and outdoor facilities by a 'link',
garage ramps by a 'ramp' and the garage's pedestrian stair by 'steps'. Roads
are cut at every crossing and at every attachment point, so junctions are
explicit and the graph is planar (no edge crosses another between nodes).

Facilities inside a building (elevators, the property office) are nodes too,
joined to the nearest entrance of their building by a short 'link', so an
elevator alarm can be routed to like any other place.

Attachment points closer than :data:`SNAP_M` to an existing junction on the
same road reuse it, which keeps every edge long enough to measure.

The result is the twin's one graph representation,
:class:`twin.walkgraph.WalkGraph`, in the plan's own metres
(:data:`PLAN_CRS`); the generator stamps it onto each community's site.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pyproj
import shapely

from gis_data.layout import Layout
from twin.walkgraph import ATTACH_KIND, WalkGraph, build_walk_graph

#: Attachments this close to a junction on the same road join it instead.
SNAP_M = 3.0
#: No edge of a plan may be shorter than this (so lengths stay measurable at 1 cm precision).
MIN_EDGE_M = 2.0

#: The plan's metres around its origin, as a projected CRS: a transverse Mercator on the
#: sample site in Wuhan. Each community is placed in its own UTM zone when stamped.
PLAN_CRS = pyproj.CRS.from_proj4("+proj=tmerc +lat_0=30.4925 +lon_0=114.4105 +k=1 +x_0=0 "
                                 "+y_0=0 +datum=WGS84 +units=m +no_defs")


def build_walkway(layout: Layout) -> WalkGraph:
    """Build the network of ``layout``, in :data:`PLAN_CRS`.

    Node ids are suffixes ('-n0001') with kind and ref_id (entrance or
    facility suffix, else None); edge ids are suffixes ('-e0001'), their lines
    straight from source to target.
    """
    roads = layout.roads
    points = _Nodes()
    on_road: list[list[int]] = [[] for _ in roads]
    for x, y in road_crossings(roads):
        node = points.add(x, y, "junction")
        for s in np.flatnonzero(_distance_to_segments(np.array([[x, y]]), roads)[0] < 1e-6):
            on_road[s].append(node)

    entrances = layout.entrances
    facilities = layout.facilities
    outdoor = facilities[facilities["building_id"].isna()]
    sources = [(points.add(x, y, "entrance", ref), "footway")
               for ref, x, y in entrances[["id", "x", "y"]].itertuples(index=False)]
    sources += [(points.add(x, y, "facility", ref), ATTACH_KIND.get(kind, "link"))
                for ref, kind, x, y in outdoor[["id", "kind", "x", "y"]].itertuples(index=False)]
    xy = np.array([points.xy[n] for n, _ in sources])
    dist = _distance_to_segments(xy, roads)
    nearest = dist.argmin(axis=1)
    edges: list[tuple[int, int, str]] = []
    for (node, kind), s, p in zip(sources, nearest, xy):
        foot = _project(p, roads[s])
        existing = on_road[s]
        gaps = [np.hypot(*(np.array(points.xy[e]) - foot)) for e in existing]
        if gaps and min(gaps) < SNAP_M:
            target = existing[int(np.argmin(gaps))]
        else:
            target = points.add(float(foot[0]), float(foot[1]), "junction")
            existing.append(target)
        edges.append((node, target, kind))

    for road, members in enumerate(on_road):
        x0, y0, x1, y1 = roads[road]
        along = [(points.xy[m][0] - x0) * (x1 - x0) + (points.xy[m][1] - y0) * (y1 - y0)
                 for m in members]
        ordered = [members[k] for k in np.argsort(along, kind="stable")]
        edges += [(a, b, "road") for a, b in pairwise(ordered)]

    entrance_node = {points.ref[n]: n for n, _ in sources if points.kind[n] == "entrance"}
    indoor = facilities[facilities["building_id"].notna()]
    for ref, building, x, y in indoor[["id", "building_id", "x", "y"]].itertuples(index=False):
        node = points.add(x, y, "facility", ref)
        doors = entrances[entrances["building_id"] == building]
        door = doors.iloc[int(np.argmin(np.hypot(doors["x"] - x, doors["y"] - y)))]
        edges.append((node, entrance_node[door.id], "link"))
    return _graph(points, edges)


def road_crossings(roads: np.ndarray) -> np.ndarray:
    """Return the distinct points where road centre lines meet or end, as an (n, 2) array."""
    lines = shapely.linestrings(roads.reshape(-1, 2, 2))
    left, right = np.triu_indices(len(lines), k=1)
    meets = shapely.intersection(lines[left], lines[right])
    found = shapely.get_coordinates(meets[shapely.get_type_id(meets) == 0])
    ends = roads.reshape(-1, 2)
    return np.unique(np.round(np.vstack([ends, found]), 3), axis=0)


class _Nodes:
    """Nodes in creation order, merged by position (to the millimetre)."""

    def __init__(self) -> None:
        self.xy: list[tuple[float, float]] = []
        self.kind: list[str] = []
        self.ref: list[str | None] = []
        self._at: dict[tuple[float, float], int] = {}

    def add(self, x: float, y: float, kind: str, ref: str | None = None) -> int:
        key = (round(float(x), 3), round(float(y), 3))
        if kind == "junction" and key in self._at:
            return self._at[key]
        if key in self._at:
            raise AssertionError(f"{kind} {ref} sits on another node at {key}")
        self._at[key] = len(self.xy)
        self.xy.append(key)
        self.kind.append(kind)
        self.ref.append(ref)
        return len(self.xy) - 1



def _graph(points: _Nodes, edges: list[tuple[int, int, str]]) -> WalkGraph:
    """The plan's walkway graph; refuses an edge too short to measure."""
    source = np.array([a for a, _, _ in edges])
    target = np.array([b for _, b, _ in edges])
    xy = np.array(points.xy)
    lines = shapely.linestrings(np.stack([xy[source], xy[target]], axis=1))
    length = shapely.length(lines)
    if (length < MIN_EDGE_M).any():
        raise AssertionError(f"the plan produced an edge shorter than {MIN_EDGE_M} m")
    return build_walk_graph(
        [f"-n{k + 1:04d}" for k in range(len(xy))], xy[:, 0], xy[:, 1], source, target, length,
        crs=PLAN_CRS, edge_ids=[f"-e{k + 1:04d}" for k in range(len(edges))],
        edge_kind=[k for _, _, k in edges], edge_lines=lines,
        node_kind=points.kind, node_ref=points.ref)


def _project(p: np.ndarray, segment: np.ndarray) -> np.ndarray:
    a, b = segment[:2], segment[2:]
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
    return np.round(a + t * (b - a), 3)


def _distance_to_segments(p: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Distances from every point (n, 2) to every segment (m, 4), as an (n, m) array."""
    a, b = segments[None, :, :2], segments[None, :, 2:]
    d = b - a
    t = np.clip(((p[:, None, :] - a) * d).sum(-1) / (d * d).sum(-1), 0.0, 1.0)
    return np.hypot(*np.moveaxis(p[:, None, :] - (a + t[..., None] * d), -1, 0))
