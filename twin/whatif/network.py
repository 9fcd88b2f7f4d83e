"""The walkway network as a scenario would have it: closed segments out, new paths in.

Built from a compiled :class:`twin.walkgraph.WalkGraph` (the live network)
without touching it: a scenario's network is a fresh CSR matrix of walking
*times* (seconds, by edge kind, as dispatch ETAs are), plus the spots where
people and places meet it. Everything is arrays, so rebuilding after closing
a few segments of a district costs milliseconds, not a new graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from shapely.geometry import Point

from twin.walkgraph import SPEED_M_S_BY_KIND, WALK_SPEED_M_S, WalkGraph, snap
from twin.whatif.scenario import AddedPath, Scenario


@dataclass(frozen=True, slots=True)
class Spots:
    """Points where they meet the network: edge index, seconds to each end, seconds off it."""

    u: np.ndarray
    v: np.ndarray
    to_u: np.ndarray
    to_v: np.ndarray
    edge: np.ndarray
    off: np.ndarray


@dataclass(frozen=True, eq=False)
class Network:
    """A scenario's walkway network: nodes 0..n-1 of the live graph, then added ones."""

    base: WalkGraph
    n_nodes: int
    u: np.ndarray
    v: np.ndarray
    seconds: np.ndarray
    open: np.ndarray  # per edge: usable in this scenario
    matrix: sp.csr_matrix  # n_nodes x n_nodes, both directions, open edges only
    added_lines: tuple  # metric LineStrings of added edges, for maps

    @property
    def closed_edge_ids(self) -> list[str]:
        n_base = self.base.n_edges
        return [str(e) for e in self.base.edge_ids[~self.open[:n_base]]]


def edge_seconds(lengths: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Walking time of each edge, at the same speeds as dispatch ETAs."""
    speed = np.full(len(lengths), WALK_SPEED_M_S)
    for kind, slower in SPEED_M_S_BY_KIND.items():
        speed[kinds == kind] = slower
    return lengths / speed


def scenario_network(base: WalkGraph, scenario: Scenario) -> Network:
    """The live network with the scenario's closed edges taken out and its paths added.

    Unknown edge ids are refused by name: a typo must not silently leave a
    path open.
    """
    index = {str(e): k for k, e in enumerate(base.edge_ids)}
    unknown = [e for e in scenario.closed_edges if e not in index]
    if unknown:
        raise ValueError(f"scenario {scenario.name!r}: no walkway edge {', '.join(map(repr, unknown))}")
    is_open = np.ones(base.n_edges, dtype=bool)
    is_open[[index[e] for e in scenario.closed_edges]] = False
    seconds = edge_seconds(base.edge_length, base.edge_kind)
    u, v = base.edge_u, base.edge_v
    n = base.n_nodes
    added_lines: list = []
    if scenario.added_paths:
        u, v, seconds, is_open, n, added_lines = _with_paths(base, scenario.added_paths,
                                                              u, v, seconds, is_open)
    return Network(base=base, n_nodes=n, u=u, v=v, seconds=seconds, open=is_open,
                   matrix=_csr(n, u[is_open], v[is_open], seconds[is_open]),
                   added_lines=tuple(added_lines))


def place(net: Network, points: Sequence[Point], *, movable: bool) -> Spots:
    """Where each point (EPSG:4326) meets the scenario's network.

    Points snap to the nearest edge of the live network, and the straight leg
    to the walkway is walked at the flat pace. When that edge is closed, a
    ``movable`` point (a person) looks again among the open edges; a fixed
    one (a door, a gate) keeps its place and is reached only through an end
    of the closed edge it stands on, if it stands at one.
    """
    base = net.base
    spots = snap(base, points)
    edge = np.array([s.edge for s in spots], dtype=np.int64)
    along = np.array([s.along_m for s in spots])
    off = np.array([s.offset_m for s in spots])
    shut = ~net.open[edge]
    if shut.any() and not movable:
        length = base.edge_length[edge]
        to_u = np.where(shut & (along > 1e-6), np.inf, 0.0)
        to_v = np.where(shut & (length - along > 1e-6), np.inf, 0.0)
        fixed = _spots(net, edge, along, off)
        return Spots(u=fixed.u, v=fixed.v, to_u=np.where(shut, to_u, fixed.to_u),
                     to_v=np.where(shut, to_v, fixed.to_v), edge=np.where(shut, -1, edge),
                     off=fixed.off)
    if shut.any():
        edge, along, off = edge.copy(), along.copy(), off.copy()
        usable = np.flatnonzero(net.open[: base.n_edges])
        tree = shapely.STRtree(base.edge_lines[usable])
        where = shapely.points(np.array([spots[k].xy for k in np.flatnonzero(shut)]))
        found, dist = tree.query_nearest(where, return_distance=True, all_matches=False)
        chosen = usable[found[1]]
        lines = base.edge_lines[chosen]
        total = shapely.length(lines)
        fraction = np.divide(shapely.line_locate_point(lines, where), total,
                             out=np.zeros(len(chosen)), where=total > 0)
        edge[shut], along[shut], off[shut] = chosen, fraction * base.edge_length[chosen], dist
    return _spots(net, edge, along, off)


def _spots(net: Network, edge: np.ndarray, along: np.ndarray, off: np.ndarray) -> Spots:
    base = net.base
    length = base.edge_length[edge]
    per_m = np.divide(net.seconds[edge], length, out=np.zeros(len(edge)), where=length > 0)
    return Spots(u=base.edge_u[edge], v=base.edge_v[edge], to_u=along * per_m,
                 to_v=(length - along) * per_m, edge=edge, off=off / WALK_SPEED_M_S)


def seconds_from(net: Network, sources: Spots) -> np.ndarray:
    """Walking seconds from the nearest source to every node (``inf`` where none reaches)."""
    n = net.n_nodes
    reachable = np.isfinite(sources.to_u + sources.off) | np.isfinite(sources.to_v + sources.off)
    if not reachable.any():
        return np.full(n, np.inf)
    sources = Spots(*(a[reachable] for a in (sources.u, sources.v, sources.to_u, sources.to_v,
                                             sources.edge, sources.off)))
    # One extra row: a super-source joined to both ends of every source's edge.
    cols = np.r_[sources.u, sources.v]
    data = np.r_[sources.to_u + sources.off, sources.to_v + sources.off]
    finite = np.isfinite(data)
    cols, data = cols[finite], np.maximum(data[finite], 1e-9)
    rows = np.repeat(n, len(cols))
    m = net.matrix
    extended = sp.csr_matrix(
        (np.r_[m.data, data], np.r_[m.indices, cols],
         np.r_[m.indptr, m.indptr[-1] + len(rows)]),
        shape=(n + 1, n + 1))
    dist = dijkstra(extended, directed=True, indices=n)
    return dist[:n]


def seconds_to(node_seconds: np.ndarray, targets: Spots, sources: Spots) -> np.ndarray:
    """Seconds from the nearest source to each target, including both off-walkway legs."""
    via_u = node_seconds[targets.u] + targets.to_u
    via_v = node_seconds[targets.v] + targets.to_v
    best = np.minimum(via_u, via_v)
    # A source on the same edge may be reached along it, without passing an end.
    if len(sources.edge):
        by_edge: dict[int, list[int]] = {}
        for k, e in enumerate(sources.edge.tolist()):
            by_edge.setdefault(e, []).append(k)
        for t, e in enumerate(targets.edge.tolist()):
            for k in by_edge.get(e, ()):
                direct = abs(targets.to_u[t] - sources.to_u[k]) + sources.off[k]
                best[t] = min(best[t], direct)
    return best + targets.off


def _csr(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> sp.csr_matrix:
    keep = u != v
    rows = np.r_[u[keep], v[keep]]
    cols = np.r_[v[keep], u[keep]]
    data = np.r_[w[keep], w[keep]]
    # csr from coo sums duplicates; keep the shortest of parallel edges instead
    order = np.lexsort((data, cols, rows))
    rows, cols, data = rows[order], cols[order], data[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])] if len(rows) else \
        np.zeros(0, dtype=bool)
    rows, cols, data = rows[first], cols[first], data[first]
    # zero-length edges would vanish from a sparse matrix: keep them a hair above zero
    data = np.maximum(data, 1e-9)
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]
    return sp.csr_matrix((data, cols, indptr), shape=(n, n))


def _with_paths(base: WalkGraph, paths: Sequence[AddedPath], u: np.ndarray, v: np.ndarray,
                seconds: np.ndarray, is_open: np.ndarray):
    """Append each added path's vertices as nodes, its segments as edges, and its two ends
    joined to the nearest live node by a straight link."""
    tree = cKDTree(base.xy)
    n = base.n_nodes
    new_u, new_v, new_s, lines = [], [], [], []
    for path in paths:
        xy = base.to_metric([Point(c) for c in path.coords])
        ids = np.arange(n, n + len(xy))
        n += len(xy)
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        new_u += ids[:-1].tolist()
        new_v += ids[1:].tolist()
        new_s += (edge_seconds(seg, np.full(len(seg), path.kind, dtype=object))).tolist()
        lines.append(shapely.linestrings(xy))
        for end, node in ((xy[0], ids[0]), (xy[-1], ids[-1])):
            gap, nearest = tree.query(end)
            new_u.append(int(nearest))
            new_v.append(int(node))
            new_s.append(float(gap) / WALK_SPEED_M_S)
    u = np.r_[u, np.array(new_u, dtype=np.int64)]
    v = np.r_[v, np.array(new_v, dtype=np.int64)]
    seconds = np.r_[seconds, np.array(new_s)]
    is_open = np.r_[is_open, np.ones(len(new_u), dtype=bool)]
    return u, v, seconds, is_open, n, lines
