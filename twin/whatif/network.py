"""The walkway network as a scenario would have it: closed segments out, new paths in.

The live network is compiled once (:func:`compile_live`): a CSR matrix of
walking *times* (seconds, by edge kind, as dispatch ETAs are) that knows
which edge each stored entry came from. A scenario's network is that matrix
with the closed edges' entries masked out and any added paths appended:
numpy work over the entries, milliseconds on a district, and the live graph
is never touched. People and places are snapped to the live network once
(:func:`snap_points`) and only re-placed where a scenario closes their edge.
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

#: Zero-length edges would vanish from a sparse matrix; they cost this instead.
_EPS_S = 1e-9


@dataclass(frozen=True, eq=False)
class LiveNetwork:
    """The live walkway network compiled for what-if searches; build once and keep."""

    graph: WalkGraph
    edge_index: dict[str, int]
    seconds: np.ndarray  # per edge
    matrix: sp.csr_matrix  # both directions of every edge; parallel edges all kept
    entry_edge: np.ndarray  # per stored entry of matrix, the edge it stands for
    entry_row: np.ndarray  # per stored entry, its row


@dataclass(frozen=True, slots=True)
class Snapped:
    """Points met with the live network: edge, metres along it from its u end, metres off it."""

    edge: np.ndarray
    along_m: np.ndarray
    off_m: np.ndarray
    xy: np.ndarray  # metric


@dataclass(frozen=True, slots=True)
class Spots:
    """Snapped points on a scenario's network: ends of their edge, seconds to each, seconds off."""

    u: np.ndarray
    v: np.ndarray
    to_u: np.ndarray
    to_v: np.ndarray
    edge: np.ndarray  # -1 where the point stands on a closed edge
    off: np.ndarray


@dataclass(frozen=True, eq=False)
class Network:
    """A scenario's walkway network: nodes 0..n-1 of the live graph, then added ones."""

    live: LiveNetwork
    n_nodes: int
    u: np.ndarray
    v: np.ndarray
    seconds: np.ndarray
    open: np.ndarray  # per edge: usable in this scenario
    matrix: sp.csr_matrix  # n_nodes x n_nodes, open edges only
    added_lines: tuple  # metric LineStrings of added paths, for maps

    @property
    def base(self) -> WalkGraph:
        return self.live.graph


def edge_seconds(lengths: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """Walking time of each edge, at the same speeds as dispatch ETAs."""
    speed = np.full(len(lengths), WALK_SPEED_M_S)
    for kind, slower in SPEED_M_S_BY_KIND.items():
        speed[kinds == kind] = slower
    return lengths / speed


def compile_live(graph: WalkGraph) -> LiveNetwork:
    """Compile the live network once; every scenario is derived from this."""
    seconds = edge_seconds(graph.edge_length, graph.edge_kind)
    matrix, entry_edge = _csr(graph.n_nodes, graph.edge_u, graph.edge_v, seconds)
    return LiveNetwork(graph=graph, edge_index={str(e): k for k, e in enumerate(graph.edge_ids)},
                       seconds=seconds, matrix=matrix, entry_edge=entry_edge,
                       entry_row=np.repeat(np.arange(graph.n_nodes), np.diff(matrix.indptr)))


def scenario_network(live: LiveNetwork | WalkGraph, scenario: Scenario) -> Network:
    """The live network with the scenario's closed edges taken out and its paths added.

    Unknown edge ids are refused by name: a typo must not silently leave a
    path open.
    """
    if isinstance(live, WalkGraph):
        live = compile_live(live)
    graph = live.graph
    unknown = [e for e in scenario.closed_edges if e not in live.edge_index]
    if unknown:
        raise ValueError(f"scenario {scenario.name!r}: no walkway edge {', '.join(map(repr, unknown))}")
    is_open = np.ones(graph.n_edges, dtype=bool)
    is_open[[live.edge_index[e] for e in scenario.closed_edges]] = False
    matrix = live.matrix
    if scenario.closed_edges:
        keep = is_open[live.entry_edge]
        rows_kept = np.bincount(live.entry_row[keep], minlength=graph.n_nodes)
        matrix = sp.csr_matrix((matrix.data[keep], matrix.indices[keep],
                                np.r_[0, np.cumsum(rows_kept)]), shape=matrix.shape)
    u, v, seconds, n, lines = graph.edge_u, graph.edge_v, live.seconds, graph.n_nodes, []
    if scenario.added_paths:
        u, v, seconds, n, lines = _with_paths(graph, scenario.added_paths)
        is_open = np.r_[is_open, np.ones(len(u) - graph.n_edges, dtype=bool)]
        matrix, _ = _csr(n, u[is_open], v[is_open], seconds[is_open])
    return Network(live=live, n_nodes=n, u=u, v=v, seconds=seconds, open=is_open,
                   matrix=matrix, added_lines=tuple(lines))


def snap_points(graph: WalkGraph, points: Sequence[Point]) -> Snapped:
    """Snap EPSG:4326 points to the live network (once; scenarios re-place only what they close)."""
    found = snap(graph, points)
    return Snapped(edge=np.array([s.edge for s in found], dtype=np.int64),
                   along_m=np.array([s.along_m for s in found]),
                   off_m=np.array([s.offset_m for s in found]),
                   xy=np.array([s.xy for s in found]).reshape(-1, 2))


def place(net: Network, snapped: Snapped, *, movable: bool) -> Spots:
    """Where snapped points meet the scenario's network.

    The straight leg to the walkway is walked at the flat pace. When a
    point's edge is closed, a ``movable`` point (a person) looks again among
    the open edges; a fixed one (a door, a gate) keeps its place and is
    reached only through an end of the closed edge it stands on, if it
    stands at one.
    """
    graph = net.base
    edge, along, off = snapped.edge, snapped.along_m, snapped.off_m
    shut = ~net.open[edge]
    if shut.any() and movable:
        edge, along, off = edge.copy(), along.copy(), off.copy()
        usable = np.flatnonzero(net.open[: graph.n_edges])
        tree = shapely.STRtree(graph.edge_lines[usable])
        where = shapely.points(snapped.xy[shut])
        found, dist = tree.query_nearest(where, return_distance=True, all_matches=False)
        chosen = usable[found[1]]
        lines = graph.edge_lines[chosen]
        total = shapely.length(lines)
        fraction = np.divide(shapely.line_locate_point(lines, where), total,
                             out=np.zeros(len(chosen)), where=total > 0)
        edge[shut], along[shut], off[shut] = chosen, fraction * graph.edge_length[chosen], dist
        shut = np.zeros(len(edge), dtype=bool)
    length = graph.edge_length[edge]
    per_m = np.divide(net.seconds[edge], length, out=np.zeros(len(edge)), where=length > 0)
    to_u, to_v = along * per_m, (length - along) * per_m
    if shut.any():
        to_u = np.where(shut & (along > 1e-6), np.inf, np.where(shut, 0.0, to_u))
        to_v = np.where(shut & (length - along > 1e-6), np.inf, np.where(shut, 0.0, to_v))
    return Spots(u=graph.edge_u[edge], v=graph.edge_v[edge], to_u=to_u, to_v=to_v,
                 edge=np.where(shut, -1, edge), off=off / WALK_SPEED_M_S)


def seconds_from(net: Network, sources: Spots) -> np.ndarray:
    """Walking seconds from the nearest source to every node (``inf`` where none reaches)."""
    n = net.n_nodes
    # One extra row: a super-source joined to both ends of every source's edge.
    cols = np.r_[sources.u, sources.v]
    data = np.r_[sources.to_u + sources.off, sources.to_v + sources.off]
    finite = np.isfinite(data)
    if not finite.any():
        return np.full(n, np.inf)
    cols, data = cols[finite], np.maximum(data[finite], _EPS_S)
    m = net.matrix
    extended = sp.csr_matrix(
        (np.r_[m.data, data], np.r_[m.indices, cols], np.r_[m.indptr, m.indptr[-1] + len(cols)]),
        shape=(n + 1, n + 1))
    return dijkstra(extended, directed=True, indices=n)[:n]


def seconds_to(node_seconds: np.ndarray, targets: Spots, sources: Spots) -> np.ndarray:
    """Seconds from the nearest source to each target, including both off-walkway legs."""
    best = np.minimum(node_seconds[targets.u] + targets.to_u,
                      node_seconds[targets.v] + targets.to_v)
    # A source on the same open edge may be reached along it, without passing an end.
    by_edge: dict[int, list[int]] = {}
    for k, e in enumerate(sources.edge.tolist()):
        if e >= 0:
            by_edge.setdefault(e, []).append(k)
    if by_edge:
        for t in np.flatnonzero(np.isin(targets.edge, list(by_edge))):
            for k in by_edge[int(targets.edge[t])]:
                direct = abs(targets.to_u[t] - sources.to_u[k]) + sources.off[k]
                best[t] = min(best[t], direct)
    return best + targets.off


def _csr(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Both directions of every edge, rows sorted; parallel edges are all kept (Dijkstra
    relaxes each stored entry, so the shortest wins, and closing one leaves the others)."""
    edge = np.flatnonzero(u != v)
    rows = np.r_[u[edge], v[edge]]
    cols = np.r_[v[edge], u[edge]]
    entry_edge = np.r_[edge, edge]
    order = np.argsort(rows, kind="stable")
    rows, cols, entry_edge = rows[order], cols[order], entry_edge[order]
    data = np.maximum(w[entry_edge], _EPS_S)
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]
    return sp.csr_matrix((data, cols, indptr), shape=(n, n)), entry_edge


def _with_paths(graph: WalkGraph, paths: Sequence[AddedPath]):
    """Append each added path's vertices as nodes and its segments as edges, its two ends
    joined to the nearest live node by a straight link."""
    tree = cKDTree(graph.xy)
    n = graph.n_nodes
    new_u, new_v, new_s, lines = [], [], [], []
    for path in paths:
        xy = graph.to_metric([Point(c) for c in path.coords])
        ids = np.arange(n, n + len(xy))
        n += len(xy)
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        new_u += ids[:-1].tolist()
        new_v += ids[1:].tolist()
        new_s += edge_seconds(seg, np.full(len(seg), path.kind, dtype=object)).tolist()
        lines.append(shapely.linestrings(xy))
        for end, node in ((xy[0], ids[0]), (xy[-1], ids[-1])):
            gap, nearest = tree.query(end)
            new_u.append(int(nearest))
            new_v.append(int(node))
            new_s.append(float(gap) / WALK_SPEED_M_S)
    u = np.r_[graph.edge_u, np.array(new_u, dtype=np.int64)]
    v = np.r_[graph.edge_v, np.array(new_v, dtype=np.int64)]
    seconds = np.r_[edge_seconds(graph.edge_length, graph.edge_kind), np.array(new_s)]
    return u, v, seconds, n, lines
