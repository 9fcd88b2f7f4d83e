"""A compact walking graph: shortest walks over a community's walkways, fast.

networkx is the twin's graph vocabulary, but a dispatch has to answer in a few
milliseconds on a district of a million junctions. This module compiles the
walkway network once into flat arrays:

- a CSR adjacency matrix (both directions stored, parallel edges reduced to
  the shortest) that :func:`scipy.sparse.csgraph.dijkstra` walks without
  copying or transposing it;
- node coordinates and edge lines in a local metric CRS (the community's
  ``local_srid``, a UTM zone), so lengths and snapping are in metres;
- a shapely ``STRtree`` over the edge lines for snapping;
- connected-component labels, so an unreachable target is known without a search.

Snapping. A point (a guard's last position, an incident) is snapped to the
nearest point of the nearest EDGE, not to the nearest node: a guard standing
in the middle of a 200 m road is 100 m from both of its ends, not 0 m from
one of them. The snap records the edge and how far along it the point lies
(in the edge's stored ``length_m``, scaled by the fraction of its line), so
routes start and end with the partial lengths of their edges. The straight
leg from the point to the walkway (``offset_m``) is walked too and counted.

Searching from a snapped point. The matrix has one spare row, the *probe*,
after the real nodes. Before a search its two entries are set to the snapped
edge's ends with the partial lengths as weights, and Dijkstra starts from the
probe: one search from a point in the middle of an edge, with no matrix
rebuilt per call. The probe has no incoming entries, so no route passes
through it. Setting the probe is guarded by a lock, so one graph may be
shared by threads.

Walking speed. Distances are what the dispatcher minimises; times are
derived along the chosen route: :data:`WALK_SPEED_M_S` (1.2 m/s, an ordinary
adult pace) on every kind of edge except those in :data:`SPEED_M_S_BY_KIND`
('steps' at 0.6 m/s: an edge's length is its horizontal extent, and stairs
take about twice as long as the same ground on the flat).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import pyproj
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components, dijkstra
from shapely.geometry import LineString, Point
from shapely.ops import substring

#: Walking speed on the flat, metres per second.
WALK_SPEED_M_S = 1.2
#: Slower speeds by edge kind, metres (of horizontal length) per second.
SPEED_M_S_BY_KIND: Mapping[str, float] = {"steps": 0.6}
#: Off-walkway legs shorter than this are left out of route geometry.
_MIN_LEG_M = 0.01


@dataclass(frozen=True, eq=False, repr=False)
class WalkGraph:
    """A walkway network compiled for routing; build with :func:`build_walk_graph`.

    Node and edge arrays are indexed 0..n-1 and 0..m-1; coordinates and lines
    are in ``crs`` (metric). Treat it as immutable: the caller builds it once
    per community and keeps it.
    """

    crs: pyproj.CRS
    node_ids: np.ndarray
    xy: np.ndarray
    edge_ids: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length: np.ndarray
    edge_kind: np.ndarray
    edge_lines: np.ndarray
    component: np.ndarray
    _matrix: sp.csr_matrix = field(repr=False)
    _entry_edge: np.ndarray = field(repr=False)
    _entry_key: np.ndarray = field(repr=False)
    _tree: shapely.STRtree = field(repr=False)
    _to_metric: pyproj.Transformer = field(repr=False)
    _to_lonlat: pyproj.Transformer = field(repr=False)
    _lock: threading.Lock = field(repr=False, default_factory=threading.Lock)

    def __repr__(self) -> str:
        return (f"<WalkGraph {self.n_nodes} nodes, {self.n_edges} edges, "
                f"{self.crs.to_string()}>")

    @property
    def n_nodes(self) -> int:
        return len(self.node_ids)

    @property
    def n_edges(self) -> int:
        return len(self.edge_ids)

    def to_metric(self, points: Sequence[Point]) -> np.ndarray:
        """(n, 2) coordinates in the graph's CRS of EPSG:4326 points."""
        lonlat = shapely.get_coordinates(np.asarray(points, dtype=object))
        if len(lonlat) != len(points):
            raise ValueError("every point must be a non-empty Point")
        x, y = self._to_metric.transform(lonlat[:, 0], lonlat[:, 1])
        return np.column_stack([x, y])

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(n, 2) EPSG:4326 coordinates of metric ones."""
        lon, lat = self._to_lonlat.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([lon, lat])


@dataclass(frozen=True, slots=True)
class Snap:
    """Where a point meets the walkway.

    The point ``xy`` lies ``offset_m`` off edge ``edge``, level with the spot
    ``along_m`` metres (of the edge's stored length) from the edge's ``u`` end.
    """

    edge: int
    along_m: float
    offset_m: float
    xy: tuple[float, float]


@dataclass(frozen=True, slots=True)
class Reach:
    """Walkway distances from one snapped origin (``inf`` beyond ``limit`` or unreachable)."""

    origin: Snap
    dist: np.ndarray
    pred: np.ndarray
    limit: float


@dataclass(frozen=True, slots=True)
class Route:
    """A walk from a point to a search's origin: geometry in EPSG:4326, length, time."""

    line: LineString
    length_m: float
    eta_s: float
    nodes: tuple[str, ...]


def build_walk_graph(
    node_ids: Sequence[str] | np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    edge_u: np.ndarray,
    edge_v: np.ndarray,
    edge_length: np.ndarray,
    *,
    crs: int | str | pyproj.CRS,
    edge_ids: Sequence[str] | np.ndarray | None = None,
    edge_kind: Sequence[str] | np.ndarray | None = None,
    edge_lines: Sequence[LineString] | np.ndarray | None = None,
) -> WalkGraph:
    """Compile a walkway network given as arrays.

    Parameters
    ----------
    node_ids, x, y
        One entry per node; ``x``/``y`` in ``crs``.
    edge_u, edge_v, edge_length
        One entry per (undirected) edge: the indices of its end nodes and its
        walking length in metres.
    crs
        A projected CRS in metres (the community's ``local_srid``).
    edge_ids, edge_kind
        Optional edge names and kinds ('road', 'footway', 'steps' ...);
        default 'e<index>' and 'footway'.
    edge_lines
        Optional edge geometries in ``crs`` (either direction); default
        straight lines between the end nodes.

    Returns
    -------
    WalkGraph
    """
    crs = pyproj.CRS.from_user_input(crs)
    if not crs.is_projected:
        raise ValueError(f"a walk graph needs a projected CRS in metres, not {crs.to_string()}")
    node_ids = np.asarray(node_ids, dtype=object)
    n = len(node_ids)
    xy = np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])
    if xy.shape != (n, 2) or not np.isfinite(xy).all():
        raise ValueError("node coordinates must be finite and one (x, y) per node id")
    u = np.asarray(edge_u, dtype=np.int64)
    v = np.asarray(edge_v, dtype=np.int64)
    length = np.asarray(edge_length, dtype=np.float64)
    m = len(u)
    if len(v) != m or len(length) != m:
        raise ValueError("edge_u, edge_v and edge_length must have the same length")
    if m and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= n):
        raise ValueError("edge_u and edge_v must be indices of nodes (0 .. n-1)")
    if not (np.isfinite(length) & (length >= 0)).all():
        bad = int(np.flatnonzero(~(np.isfinite(length) & (length >= 0)))[0])
        raise ValueError(f"edge {bad} has length {length[bad]!r}: lengths must be finite and >= 0")
    ids = np.array([f"e{k}" for k in range(m)], dtype=object) if edge_ids is None \
        else np.asarray(edge_ids, dtype=object)
    kind = np.full(m, "footway", dtype=object) if edge_kind is None \
        else np.asarray(edge_kind, dtype=object)
    lines = shapely.linestrings(np.stack([xy[u], xy[v]], axis=1)) if edge_lines is None \
        else _oriented(np.asarray(edge_lines, dtype=object), xy[u], xy[v])
    if len(ids) != m or len(kind) != m or len(lines) != m:
        raise ValueError("edge_ids, edge_kind and edge_lines need one entry per edge")

    matrix, entry_edge, entry_key = _adjacency(n, u, v, length)
    _, component = connected_components(matrix[:n, :n], directed=True, connection="weak")
    return WalkGraph(
        crs=crs, node_ids=node_ids, xy=xy, edge_ids=ids, edge_u=u, edge_v=v,
        edge_length=length, edge_kind=kind, edge_lines=lines,
        component=component.astype(np.int32),
        _matrix=matrix, _entry_edge=entry_edge, _entry_key=entry_key,
        _tree=shapely.STRtree(lines),
        _to_metric=pyproj.Transformer.from_crs(4326, crs, always_xy=True),
        _to_lonlat=pyproj.Transformer.from_crs(crs, 4326, always_xy=True),
    )


def from_networkx(
    graph: nx.Graph, *, crs: int | str | pyproj.CRS, length: str = "length_m"
) -> WalkGraph:
    """Compile a networkx walkway graph (nodes with lon/lat, edges with ``length``).

    This is the shape :func:`twin.store.graph.walk_graph` returns; edge
    'id' and 'kind' attributes are kept when present. Edges are straight.
    """
    node_ids = np.array(list(graph.nodes), dtype=object)
    index = {node: k for k, node in enumerate(node_ids)}
    try:
        lon = np.array([graph.nodes[node]["lon"] for node in node_ids], dtype=np.float64)
        lat = np.array([graph.nodes[node]["lat"] for node in node_ids], dtype=np.float64)
    except KeyError as e:
        raise ValueError(f"every node needs 'lon' and 'lat' attributes; missing {e}") from e
    x, y = pyproj.Transformer.from_crs(4326, crs, always_xy=True).transform(lon, lat)
    edges = list(graph.edges(data=True))
    try:
        lengths = np.array([data[length] for _, _, data in edges], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"the edge attribute {length!r} is missing or not numeric") from e
    return build_walk_graph(
        node_ids, x, y,
        np.array([index[a] for a, _, _ in edges], dtype=np.int64),
        np.array([index[b] for _, b, _ in edges], dtype=np.int64),
        lengths, crs=crs,
        edge_ids=[data.get("id", f"{a}-{b}") for a, b, data in edges],
        edge_kind=[data.get("kind", "footway") for _, _, data in edges],
    )


def snap(graph: WalkGraph, points: Sequence[Point]) -> list[Snap]:
    """Snap EPSG:4326 points to the nearest point of the nearest edge (ties: lowest edge index)."""
    if graph.n_edges == 0:
        raise ValueError("the walk graph has no edges to snap to")
    if len(points) == 0:
        return []
    xy = graph.to_metric(points)
    where = shapely.points(xy)
    found, offset = graph._tree.query_nearest(where, return_distance=True, all_matches=True)
    order = np.lexsort((found[1], found[0]))
    first = order[np.r_[True, found[0][order][1:] != found[0][order][:-1]]]
    edge = found[1][first]
    lines = graph.edge_lines[edge]
    geometric = shapely.length(lines)
    along = shapely.line_locate_point(lines, where)
    fraction = np.divide(along, geometric, out=np.zeros_like(along), where=geometric > 0)
    along_m = np.clip(fraction, 0.0, 1.0) * graph.edge_length[edge]
    return [Snap(edge=int(e), along_m=float(a), offset_m=float(o), xy=(float(px), float(py)))
            for e, a, o, (px, py) in zip(edge, along_m, offset[first], xy)]


def reach_from(graph: WalkGraph, origin: Snap, *, limit: float = np.inf) -> Reach:
    """Walkway metres from ``origin``'s spot on its edge to every node, up to ``limit``."""
    e = origin.edge
    with graph._lock:
        graph._matrix.indices[-2:] = (graph.edge_u[e], graph.edge_v[e])
        graph._matrix.data[-2:] = (origin.along_m, graph.edge_length[e] - origin.along_m)
        dist, pred = dijkstra(graph._matrix, directed=True, indices=graph.n_nodes,
                              return_predecessors=True, limit=limit)
    return Reach(origin=origin, dist=dist, pred=pred, limit=float(limit))


def walkway_distances(graph: WalkGraph, reach: Reach, targets: Sequence[Snap]) -> np.ndarray:
    """Walkway metres from each target's spot to the origin's spot (``inf`` if not reached).

    A value at most ``reach.limit`` is exact; a larger one is an upper bound.
    Off-walkway legs are not included.
    """
    if not targets:
        return np.zeros(0)
    edge = np.array([t.edge for t in targets])
    along = np.array([t.along_m for t in targets])
    via_u = reach.dist[graph.edge_u[edge]] + along
    via_v = reach.dist[graph.edge_v[edge]] + (graph.edge_length[edge] - along)
    best = np.minimum(via_u, via_v)
    same = edge == reach.origin.edge
    best[same] = np.minimum(best[same], np.abs(along[same] - reach.origin.along_m))
    return best


def route_to(graph: WalkGraph, reach: Reach, target: Snap) -> Route:
    """The walk from ``target``'s point to the origin's point along the search's shortest paths."""
    origin = reach.origin
    (walkway,) = walkway_distances(graph, reach, [target])
    if not np.isfinite(walkway):
        raise ValueError("the target was not reached by this search")
    pieces: list[np.ndarray] = []
    by_kind: dict[str, float] = {}
    nodes: list[int] = []
    direct = abs(target.along_m - origin.along_m)
    if target.edge == origin.edge and direct <= walkway:
        pieces.append(_part(graph, target.edge, target.along_m, origin.along_m))
        _add(by_kind, graph.edge_kind[target.edge], direct)
    else:
        e = target.edge
        u, v = int(graph.edge_u[e]), int(graph.edge_v[e])
        to_u = reach.dist[u] + target.along_m
        start, end_along = (u, 0.0) if to_u <= reach.dist[v] + graph.edge_length[e] - \
            target.along_m else (v, float(graph.edge_length[e]))
        pieces.append(_part(graph, e, target.along_m, end_along))
        _add(by_kind, graph.edge_kind[e], abs(end_along - target.along_m))
        nodes = _path(reach.pred, start, graph.n_nodes)
        path_edges = _edges_between(graph, np.array(nodes[:-1]), np.array(nodes[1:]))
        for a, edge in zip(nodes[:-1], path_edges):
            line = shapely.get_coordinates(graph.edge_lines[edge])
            pieces.append(line if graph.edge_u[edge] == a else line[::-1])
            _add(by_kind, graph.edge_kind[edge], float(graph.edge_length[edge]))
        last = nodes[-1]
        o = origin.edge
        from_along = 0.0 if last == graph.edge_u[o] else float(graph.edge_length[o])
        pieces.append(_part(graph, o, from_along, origin.along_m))
        _add(by_kind, graph.edge_kind[o], abs(origin.along_m - from_along))
    if target.offset_m >= _MIN_LEG_M:
        pieces.insert(0, np.array([target.xy]))
    if origin.offset_m >= _MIN_LEG_M:
        pieces.append(np.array([origin.xy]))
    xy = np.vstack(pieces)
    keep = np.r_[True, (np.abs(np.diff(xy, axis=0)) > 1e-9).any(axis=1)]
    xy = xy[keep]
    if len(xy) == 1:
        xy = np.vstack([xy, xy])
    offsets = target.offset_m + origin.offset_m
    eta = offsets / WALK_SPEED_M_S + sum(
        metres / SPEED_M_S_BY_KIND.get(kind, WALK_SPEED_M_S) for kind, metres in by_kind.items())
    return Route(line=LineString(graph.to_lonlat(xy)), length_m=float(walkway + offsets),
                 eta_s=float(eta), nodes=tuple(graph.node_ids[nodes]))


def _adjacency(
    n: int, u: np.ndarray, v: np.ndarray, length: np.ndarray
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Symmetric CSR of the shortest edge per node pair, plus the probe row (row n).

    Also returns, per stored entry, the edge it came from and its sorted
    ``row * (n + 1) + column`` key, to find the edge between two path nodes.
    """
    loop = u == v
    edge = np.flatnonzero(~loop)
    rows = np.concatenate([u[edge], v[edge]])
    cols = np.concatenate([v[edge], u[edge]])
    weight = np.concatenate([length[edge], length[edge]])
    edges = np.concatenate([edge, edge])
    order = np.lexsort((edges, weight, cols, rows))
    rows, cols, weight, edges = rows[order], cols[order], weight[order], edges[order]
    first = np.r_[True, (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])]
    rows, cols, weight, edges = rows[first], cols[first], weight[first], edges[first]
    counts = np.bincount(rows, minlength=n + 1)
    counts[n] = 2
    indptr = np.r_[0, np.cumsum(counts)]
    index_type = np.int32 if indptr[-1] < 2**31 and n < 2**31 - 1 else np.int64
    indices = np.r_[cols, [0, 0]].astype(index_type)
    data = np.r_[weight, [np.inf, np.inf]].astype(np.float64)
    matrix = sp.csr_matrix((data, indices, indptr.astype(index_type)), shape=(n + 1, n + 1))
    return matrix, edges, rows * (n + 1) + cols


def _edges_between(graph: WalkGraph, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The stored (shortest) edge joining each pair of adjacent nodes."""
    entry = np.searchsorted(graph._entry_key, a * (graph.n_nodes + 1) + b)
    return graph._entry_edge[entry]


def _path(pred: np.ndarray, start: int, probe: int) -> list[int]:
    """Nodes from ``start`` back to the search's first real node (the probe's neighbour)."""
    nodes = [start]
    while (before := int(pred[nodes[-1]])) != probe:
        if before < 0:
            raise ValueError(f"node {start} has no path back to the search origin")
        nodes.append(before)
    return nodes


def _part(graph: WalkGraph, edge: int, from_m: float, to_m: float) -> np.ndarray:
    """Coordinates of an edge's line between two spots given in stored metres from ``u``."""
    line = graph.edge_lines[edge]
    total = float(graph.edge_length[edge])
    scale = line.length / total if total > 0 else 0.0
    part = substring(line, from_m * scale, to_m * scale)
    return shapely.get_coordinates(part)


def _add(by_kind: dict[str, float], kind: str, metres: float) -> None:
    by_kind[kind] = by_kind.get(kind, 0.0) + metres


def _oriented(lines: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Lines turned, where needed, to run from their edge's ``u`` node to its ``v`` node."""
    first = shapely.get_point(lines, 0)
    last = shapely.get_point(lines, -1)
    flip = shapely.distance(first, shapely.points(start)) > shapely.distance(
        first, shapely.points(end))
    flip &= shapely.distance(last, shapely.points(start)) < shapely.distance(
        last, shapely.points(end))
    out = lines.copy()
    out[flip] = shapely.reverse(lines[flip])
    return out
