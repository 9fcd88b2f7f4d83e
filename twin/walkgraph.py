"""The walkway graph: one compiled network that dispatch and what-if both walk.

A dispatch has to answer in a few milliseconds on a district of a million
junctions, and a what-if run recomputes coverage for a whole district after a
closure. Both work on the one :class:`WalkGraph`, compiled once per community
into flat arrays:

- a CSR adjacency matrix (both directions of every edge stored; parallel
  edges all kept, the shortest first) that :func:`scipy.sparse.csgraph.dijkstra`
  walks without copying or transposing it, and that knows which edge each
  stored entry came from;
- node coordinates and edge lines in a local metric CRS (the community's
  ``local_srid``, a UTM zone), so lengths and snapping are in metres;
- node kinds and the places they stand for (entrances, facilities, devices);
- a shapely ``STRtree`` over the edge lines for snapping;
- connected-component labels, so an unreachable target is known without a search.

Constructors: :func:`build_walk_graph` (plain arrays), :func:`from_rows` (the
store's ``walk_node`` / ``walk_edge`` rows) and :func:`from_lines` (a
GeoDataFrame of walkway lines that meet at their ends). :func:`walk_frames`
turns a graph back into rows shaped like those tables. Noding raw lines
(splitting at crossings, merging near nodes, attaching places) is the
importer's job; it hands its result to :func:`build_walk_graph`.

Snapping. A point (a guard's last position, an incident) is snapped to the
nearest point of the nearest EDGE, not to the nearest node: a guard standing
in the middle of a 200 m road is 100 m from both of its ends, not 0 m from
one of them. The snap records the edge and how far along it the point lies
(in the edge's stored ``length_m``, scaled by the fraction of its line), so
routes start and end with the partial lengths of their edges. The straight
leg from the point to the walkway (``offset_m``) is walked too and counted.

Searching from a snapped point (dispatch). The matrix has one spare row, the
*probe*, after the real nodes. Before a search its two entries are set to
the snapped edge's ends with the partial lengths as weights, and Dijkstra
starts from the probe: one search from a point in the middle of an edge,
with no matrix rebuilt per call. The probe has no incoming entries, so no
route passes through it. Setting the probe is guarded by a lock, so one
graph may be shared by threads.

Variants (what-if). :func:`variant` lays a scenario's closures and added
paths over the graph's own entries: closed edges' entries are masked out,
weights are walking seconds, and added paths are appended. The graph itself
is never altered. :func:`seconds_from` is one multi-source Dijkstra from a
super-source joined to every source's spot.

Walking speed. Distances are what the dispatcher minimises; times are
derived along the chosen route: :data:`WALK_SPEED_M_S` (1.2 m/s, an ordinary
adult pace) on every kind of edge except those in :data:`SPEED_M_S_BY_KIND`
('steps' at 0.6 m/s: an edge's length is its horizontal extent, and stairs
take about twice as long as the same ground on the flat).
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, overload

import numpy as np
import pandas as pd
import pyproj
import scipy.sparse as sp
import shapely
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree
from shapely.geometry import LineString, Point
from shapely.ops import substring

if TYPE_CHECKING:
    import geopandas as gpd

#: Walking speed on the flat, metres per second.
WALK_SPEED_M_S = 1.2
#: Slower speeds by edge kind, metres (of horizontal length) per second.
SPEED_M_S_BY_KIND: Mapping[str, float] = {"steps": 0.6}
#: Edge kind of a facility's link to the walkway, by facility kind (default 'link').
ATTACH_KIND: Mapping[str, str] = {"garage": "steps", "garage_ramp": "ramp"}
#: Off-walkway legs shorter than this are left out of route geometry.
_MIN_LEG_M = 0.01
#: Zero-second edges would vanish from a sparse matrix; they cost this instead.
_EPS_S = 1e-9
#: Line ends this close (metres) are one node in :func:`from_lines`.
_END_DECIMALS = 3

#: A ``walk_node`` row as :func:`from_rows` reads it: (id, kind, ref_id, x, y).
NodeRow = tuple[str, str, str | None, float, float]
#: A ``walk_edge`` row: (id, source, target, kind, length_m, line as WKB or a LineString).
EdgeRow = tuple[str, str, str, str, float, bytes | LineString]


@dataclass(frozen=True, eq=False, repr=False)
class WalkGraph:
    """A walkway network compiled for routing; build with one of the constructors.

    Node and edge arrays are indexed 0..n-1 and 0..m-1; coordinates and lines
    are in ``crs`` (metric), lines run from their edge's ``u`` node to its
    ``v`` node. Treat it as immutable: the caller builds it once per community
    and keeps it.
    """

    crs: pyproj.CRS
    node_ids: np.ndarray
    node_kind: np.ndarray
    node_ref: np.ndarray
    xy: np.ndarray
    edge_ids: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length: np.ndarray
    edge_kind: np.ndarray
    edge_lines: np.ndarray
    edge_seconds: np.ndarray
    component: np.ndarray
    #: Metres; rows 0..n-1 are the nodes, row n the probe (its two entries last).
    _matrix: sp.csr_matrix = field(repr=False)
    #: Per stored entry of the nodes' rows: the edge it came from, its row, its sorted
    #: ``row * (n + 1) + column`` key (to find the edge between two path nodes).
    _entry_edge: np.ndarray = field(repr=False)
    _entry_row: np.ndarray = field(repr=False)
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

    @cached_property
    def edge_index(self) -> dict[str, int]:
        """Edge id -> edge index, for scenarios that name edges."""
        return {str(e): k for k, e in enumerate(self.edge_ids)}

    @cached_property
    def _entry_seconds(self) -> np.ndarray:
        """Walking seconds of each stored entry, never zero (a zero would vanish)."""
        return np.maximum(self.edge_seconds[self._entry_edge], _EPS_S)

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


@dataclass(frozen=True, slots=True, eq=False)
class Snaps(Sequence[Snap]):
    """Many snaps as arrays (what-if works on them whole); indexing gives a :class:`Snap`."""

    edge: np.ndarray
    along_m: np.ndarray
    offset_m: np.ndarray
    xy: np.ndarray  # (n, 2), metric

    def __len__(self) -> int:
        return len(self.edge)

    @overload
    def __getitem__(self, k: int) -> Snap: ...
    @overload
    def __getitem__(self, k: slice) -> Snaps: ...

    def __getitem__(self, k: int | slice) -> Snap | Snaps:
        if isinstance(k, slice):
            return Snaps(self.edge[k], self.along_m[k], self.offset_m[k], self.xy[k])
        return Snap(edge=int(self.edge[k]), along_m=float(self.along_m[k]),
                    offset_m=float(self.offset_m[k]),
                    xy=(float(self.xy[k, 0]), float(self.xy[k, 1])))

    def __iter__(self) -> Iterator[Snap]:
        return (self[k] for k in range(len(self)))


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


@dataclass(frozen=True, eq=False)
class Variant:
    """The graph as a scenario would have it: nodes 0..n-1 of the graph, then added ones.

    Weights are walking seconds; ``open`` says, per edge (the graph's, then the
    added ones), whether the scenario lets people use it.
    """

    graph: WalkGraph
    n_nodes: int
    u: np.ndarray
    v: np.ndarray
    seconds: np.ndarray
    open: np.ndarray
    matrix: sp.csr_matrix  # n_nodes x n_nodes, open edges only
    added_lines: tuple[LineString, ...]  # metric, for maps


@dataclass(frozen=True, slots=True)
class Spots:
    """Snapped points on a variant: ends of their edge, seconds to each, seconds off."""

    u: np.ndarray
    v: np.ndarray
    to_u: np.ndarray
    to_v: np.ndarray
    edge: np.ndarray  # -1 where the point stands on a closed edge
    off: np.ndarray


# --- constructors ---------------------------------------------------------------------------

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
    node_kind: Sequence[str] | np.ndarray | None = None,
    node_ref: Sequence[str | None] | np.ndarray | None = None,
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
    node_kind, node_ref
        Optional node kinds ('junction', 'entrance', 'facility', 'device')
        and the ids of the places they stand for; default 'junction' and None.

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
    kinds_of_nodes = np.full(n, "junction", dtype=object) if node_kind is None \
        else np.asarray(node_kind, dtype=object)
    refs = np.full(n, None, dtype=object) if node_ref is None \
        else np.asarray(node_ref, dtype=object)
    if len(kinds_of_nodes) != n or len(refs) != n:
        raise ValueError("node_kind and node_ref need one entry per node")
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
    if m == 0:
        lines = np.array([], dtype=object)
    if len(ids) != m or len(kind) != m or len(lines) != m:
        raise ValueError("edge_ids, edge_kind and edge_lines need one entry per edge")

    matrix, entry_edge, entry_row = _adjacency(n, u, v, length, probe=True)
    if n:
        _, component = connected_components(matrix[:n, :n], directed=True, connection="weak")
    else:
        component = np.zeros(0)
    return WalkGraph(
        crs=crs, node_ids=node_ids, node_kind=kinds_of_nodes, node_ref=refs, xy=xy,
        edge_ids=ids, edge_u=u, edge_v=v, edge_length=length, edge_kind=kind,
        edge_lines=lines, edge_seconds=walking_seconds(length, kind),
        component=component.astype(np.int32),
        _matrix=matrix, _entry_edge=entry_edge, _entry_row=entry_row,
        _entry_key=entry_row * (n + 1) + matrix.indices[:len(entry_edge)],
        _tree=shapely.STRtree(lines),
        _to_metric=pyproj.Transformer.from_crs(4326, crs, always_xy=True),
        _to_lonlat=pyproj.Transformer.from_crs(crs, 4326, always_xy=True),
    )


def from_rows(
    nodes: Sequence[NodeRow],
    edges: Sequence[EdgeRow],
    *,
    crs: int | str | pyproj.CRS,
) -> WalkGraph:
    """Compile the rows of the store's ``walk_node`` and ``walk_edge`` tables.

    Parameters
    ----------
    nodes
        ``(id, kind, ref_id, x, y)`` per node, coordinates in ``crs``.
    edges
        ``(id, source, target, kind, length_m, line)`` per edge: ``source``
        and ``target`` are node ids, ``line`` is WKB or a LineString in ``crs``.
    crs
        The community's metric CRS (``local_srid``).
    """
    node_ids = np.array([r[0] for r in nodes], dtype=object)
    index = pd.Index(node_ids)
    ends = index.get_indexer(np.array([(r[1], r[2]) for r in edges], dtype=object).ravel())
    if (ends < 0).any():
        bad = edges[int(np.flatnonzero(ends < 0)[0]) // 2]
        raise ValueError(f"walkway edge {bad[0]!r} ends at a node that is not among the nodes "
                         f"({bad[1]!r} - {bad[2]!r})")
    ends = ends.reshape(-1, 2)
    lines = [r[5] for r in edges]
    if lines and not isinstance(lines[0], shapely.Geometry):
        lines = shapely.from_wkb([bytes(g) for g in lines])
    return build_walk_graph(
        node_ids,
        np.array([r[3] for r in nodes], dtype=np.float64),
        np.array([r[4] for r in nodes], dtype=np.float64),
        ends[:, 0], ends[:, 1],
        np.array([r[4] for r in edges], dtype=np.float64),
        crs=crs,
        edge_ids=[r[0] for r in edges],
        edge_kind=[r[3] for r in edges],
        edge_lines=lines if len(edges) else None,
        node_kind=[r[1] for r in nodes],
        node_ref=[r[2] for r in nodes],
    )


def from_lines(
    lines: gpd.GeoDataFrame,
    *,
    crs: int | str | pyproj.CRS | None = None,
    ids: str = "id",
    kind: str = "kind",
    length: str = "length_m",
) -> WalkGraph:
    """Compile a GeoDataFrame of walkway lines, one edge per line, joined where ends meet.

    Ends within a millimetre are one node; lines are not split where they
    cross (noding raw lines is :mod:`gis_data.importer.walkgraph`'s job).

    Parameters
    ----------
    lines
        LineStrings with a CRS; optional columns ``ids`` (edge ids, default
        'e<row>'), ``kind`` (default 'footway') and ``length`` (stored walking
        metres, default the line's length in ``crs``).
    crs
        The metric CRS to work in; default the frame's own if projected, else
        its UTM zone.
    """
    if lines.crs is None:
        raise ValueError("the walkway lines have no CRS; set one (GeoDataFrame.set_crs)")
    crs = pyproj.CRS.from_user_input(crs) if crs is not None else (
        lines.crs if lines.crs.is_projected else lines.estimate_utm_crs())
    geoms = lines.to_crs(crs).geometry.to_numpy()
    not_line = shapely.get_type_id(geoms) != 1
    if not_line.any() or shapely.is_empty(geoms).any():
        bad = int(np.flatnonzero(not_line | shapely.is_empty(geoms))[0])
        raise ValueError(f"walkway line {lines.index[bad]!r} is not a non-empty LineString")
    m = len(geoms)
    ends = np.concatenate([shapely.get_coordinates(shapely.get_point(geoms, 0)),
                           shapely.get_coordinates(shapely.get_point(geoms, -1))])
    xy, inverse = np.unique(np.round(ends, _END_DECIMALS), axis=0, return_inverse=True)
    inverse = inverse.ravel()
    return build_walk_graph(
        np.array([f"n{k}" for k in range(len(xy))], dtype=object), xy[:, 0], xy[:, 1],
        inverse[:m], inverse[m:],
        lines[length].to_numpy(dtype=np.float64) if length in lines
        else shapely.length(geoms),
        crs=crs,
        edge_ids=lines[ids].astype(str).to_numpy() if ids in lines else None,
        edge_kind=lines[kind].to_numpy(dtype=object) if kind in lines else None,
        edge_lines=geoms,
    )


def walk_frames(graph: WalkGraph) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The graph as ``walk_node`` / ``walk_edge`` shaped frames, geometry in the graph's CRS.

    ``nodes``: id, kind, ref_id, geometry (Point). ``edges``: id, source,
    target (node ids), kind, length_m, geometry (from source to target).
    """
    nodes = pd.DataFrame({
        "id": graph.node_ids, "kind": graph.node_kind, "ref_id": graph.node_ref,
        "geometry": shapely.points(graph.xy) if graph.n_nodes else np.array([], dtype=object)})
    edges = pd.DataFrame({
        "id": graph.edge_ids, "source": graph.node_ids[graph.edge_u],
        "target": graph.node_ids[graph.edge_v], "kind": graph.edge_kind,
        "length_m": graph.edge_length, "geometry": graph.edge_lines})
    return nodes, edges


def walking_seconds(length_m: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """Walking time of each length by edge kind, at the speeds dispatch ETAs use."""
    speed = np.full(len(length_m), WALK_SPEED_M_S)
    for slow_kind, slower in SPEED_M_S_BY_KIND.items():
        speed[np.asarray(kind) == slow_kind] = slower
    return np.asarray(length_m, dtype=np.float64) / speed


# --- snapping and dispatch's searches -------------------------------------------------------

def snap(graph: WalkGraph, points: Sequence[Point]) -> Snaps:
    """Snap EPSG:4326 points to the nearest point of the nearest edge (ties: lowest edge index)."""
    if graph.n_edges == 0:
        raise ValueError("the walk graph has no edges to snap to")
    if len(points) == 0:
        return Snaps(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros((0, 2)))
    xy = graph.to_metric(points)
    where = shapely.points(xy)
    found, offset = graph._tree.query_nearest(where, return_distance=True, all_matches=True)
    order = np.lexsort((found[1], found[0]))
    first = order[np.r_[True, found[0][order][1:] != found[0][order][:-1]]]
    edge = found[1][first].astype(np.int64)
    lines = graph.edge_lines[edge]
    geometric = shapely.length(lines)
    along = shapely.line_locate_point(lines, where)
    fraction = np.divide(along, geometric, out=np.zeros_like(along), where=geometric > 0)
    along_m = np.clip(fraction, 0.0, 1.0) * graph.edge_length[edge]
    return Snaps(edge=edge, along_m=along_m, offset_m=offset[first], xy=xy)


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
    if not len(targets):
        return np.zeros(0)
    if isinstance(targets, Snaps):
        edge, along = targets.edge, targets.along_m
    else:
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


def walk_route(graph: WalkGraph, start: Point, end: Point) -> Route | None:
    """The shortest walk from ``start`` to ``end`` (EPSG:4326) along the walkways.

    Returns None when the two snap onto parts of the walkway that do not meet.
    """
    a, b = snap(graph, [start, end])
    if graph.component[graph.edge_u[a.edge]] != graph.component[graph.edge_u[b.edge]]:
        return None
    return route_to(graph, reach_from(graph, b), a)


# --- variants: what-if's closures and added paths ------------------------------------------

def variant(
    graph: WalkGraph,
    *,
    closed: Collection[str] = (),
    added: Sequence[tuple[Sequence[tuple[float, float]], str]] = (),
) -> Variant:
    """The graph with the ``closed`` edges (ids) taken out and ``added`` paths put in.

    Each added path is ``(EPSG:4326 coordinates, edge kind)``; its vertices
    become nodes and each of its two ends joins the nearest node of the graph
    by a straight link. Unknown edge ids are refused by name: a typo must not
    silently leave a path open.
    """
    unknown = [e for e in closed if e not in graph.edge_index]
    if unknown:
        raise ValueError(f"no walkway edge {', '.join(map(repr, unknown))}")
    is_open = np.ones(graph.n_edges, dtype=bool)
    is_open[[graph.edge_index[e] for e in closed]] = False
    if not added:
        return Variant(graph=graph, n_nodes=graph.n_nodes, u=graph.edge_u, v=graph.edge_v,
                       seconds=graph.edge_seconds, open=is_open,
                       matrix=_seconds_matrix(graph, is_open), added_lines=())
    u, v, seconds, n, lines = _with_paths(graph, added)
    is_open = np.r_[is_open, np.ones(len(u) - graph.n_edges, dtype=bool)]
    matrix, _, _ = _adjacency(n, u[is_open], v[is_open], np.maximum(seconds[is_open], _EPS_S),
                              probe=False)
    return Variant(graph=graph, n_nodes=n, u=u, v=v, seconds=seconds, open=is_open,
                   matrix=matrix, added_lines=tuple(lines))


def place(net: Variant, snaps: Snaps, *, movable: bool) -> Spots:
    """Where snapped points meet a variant.

    The straight leg to the walkway is walked at the flat pace. When a
    point's edge is closed, a ``movable`` point (a person) looks again among
    the open edges; a fixed one (a door, a gate) keeps its place and is
    reached only through an end of the closed edge it stands on, if it
    stands at one.
    """
    graph = net.graph
    edge, along, off = snaps.edge, snaps.along_m, snaps.offset_m
    shut = ~net.open[edge]
    if shut.any() and movable:
        edge, along, off = edge.copy(), along.copy(), off.copy()
        usable = np.flatnonzero(net.open[: graph.n_edges])
        tree = shapely.STRtree(graph.edge_lines[usable])
        where = shapely.points(snaps.xy[shut])
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


def seconds_from(net: Variant, sources: Spots) -> np.ndarray:
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


# --- private helpers ------------------------------------------------------------------------

def _adjacency(
    n: int, u: np.ndarray, v: np.ndarray, weight: np.ndarray, *, probe: bool
) -> tuple[sp.csr_matrix, np.ndarray, np.ndarray]:
    """Symmetric CSR of every edge (the shortest of parallel ones first), plus, with
    ``probe``, a spare row n whose two entries come last.

    Parallel edges are all kept: Dijkstra relaxes each stored entry, so the
    shortest wins, and closing one leaves the others. Also returns, per stored
    entry of the nodes' rows, the edge it came from and its row.
    """
    edge = np.flatnonzero(u != v)
    rows = np.concatenate([u[edge], v[edge]])
    cols = np.concatenate([v[edge], u[edge]])
    edges = np.concatenate([edge, edge])
    order = np.lexsort((edges, weight[edges], cols, rows))
    rows, cols, edges = rows[order], cols[order], edges[order]
    size = n + 1 if probe else n
    counts = np.bincount(rows, minlength=size)
    if probe:
        counts[n] = 2
    indptr = np.r_[0, np.cumsum(counts)]
    index_type = np.int32 if indptr[-1] < 2**31 and size < 2**31 else np.int64
    extra = [0, 0] if probe else []
    indices = np.r_[cols, extra].astype(index_type)
    data = np.r_[weight[edges], [np.inf] * len(extra)].astype(np.float64)
    matrix = sp.csr_matrix((data, indices, indptr.astype(index_type)), shape=(size, size))
    return matrix, edges, rows


def _seconds_matrix(graph: WalkGraph, is_open: np.ndarray) -> sp.csr_matrix:
    """The graph's own entries (no probe) weighted in seconds, closed edges masked out."""
    n, stored = graph.n_nodes, len(graph._entry_edge)
    data, indices = graph._entry_seconds, graph._matrix.indices[:stored]
    if is_open.all():
        return sp.csr_matrix((data, indices, graph._matrix.indptr[: n + 1]), shape=(n, n))
    keep = is_open[graph._entry_edge]
    indptr = np.r_[0, np.cumsum(np.bincount(graph._entry_row[keep], minlength=n))]
    return sp.csr_matrix((data[keep], indices[keep], indptr), shape=(n, n))


def _with_paths(
    graph: WalkGraph, paths: Sequence[tuple[Sequence[tuple[float, float]], str]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, list[LineString]]:
    """Append each added path's vertices as nodes and its segments as edges, its two ends
    joined to the nearest node of the graph by a straight link."""
    tree = cKDTree(graph.xy)
    n = graph.n_nodes
    new_u: list[int] = []
    new_v: list[int] = []
    new_s: list[float] = []
    lines: list[LineString] = []
    for coords, kind in paths:
        xy = graph.to_metric([Point(c) for c in coords])
        ids = np.arange(n, n + len(xy))
        n += len(xy)
        seg = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        new_u += ids[:-1].tolist()
        new_v += ids[1:].tolist()
        new_s += walking_seconds(seg, np.full(len(seg), kind, dtype=object)).tolist()
        lines.append(shapely.linestrings(xy))
        for end, node in ((xy[0], ids[0]), (xy[-1], ids[-1])):
            gap, nearest = tree.query(end)
            new_u.append(int(nearest))
            new_v.append(int(node))
            new_s.append(float(gap) / WALK_SPEED_M_S)
    u = np.r_[graph.edge_u, np.array(new_u, dtype=np.int64)]
    v = np.r_[graph.edge_v, np.array(new_v, dtype=np.int64)]
    seconds = np.r_[graph.edge_seconds, np.array(new_s)]
    return u, v, seconds, n, lines


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
