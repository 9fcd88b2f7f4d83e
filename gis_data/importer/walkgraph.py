"""The walkway graph from path lines: noded, merged, with every place attached.

All work is in a metric CRS (the community's UTM zone), on numpy arrays of
shapely geometries; the only Python loops run over the few edges that need
splitting by hand (rings, parallel edges).

1. **Gaps.** A line end within ``merge_m`` of another line that it does not
   touch (a path digitised a little short of the road) gets a connector to
   the nearest point of that line.
2. **Split at intersections.** All lines and connectors are noded together
   with ``shapely.union_all`` on a 1 mm grid, so every crossing and every
   touching end becomes a node; overlapping stretches become one edge.
3. **Merge near-duplicate nodes.** Nodes closer than ``merge_m`` are one node
   (single linkage), placed at the member with the most edges; edges that
   collapse are dropped, duplicate edges (same ends, within ``merge_m`` of
   each other) kept once, and rings and distinct parallel edges are split
   so the graph needs no multi-edges.
4. **Attach places.** Each entrance, and each facility or device outside a
   building, gets its own node joined to the nearest point of the nearest
   edge (which is split there, or its end reused if within ``merge_m``).
   A building without entrances gets a door at the point of its footprint
   nearest the network. Facilities and devices inside a building are joined
   to the nearest entrance of their building.
5. **Components.** Connected components are counted; every component but
   the largest is listed with the places it holds.

The edge kind of each network edge is the kind of the source line it lies
on; attachments are 'footway' for entrances and the place's own link kind
for the others. The result is the twin's one graph representation,
:class:`twin.walkgraph.WalkGraph`, with nodes and edges numbered in an order
that depends on the data only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from twin.walkgraph import WalkGraph, build_walk_graph

#: Nodes closer than this (metres) are merged; line ends this close to a line are joined.
MERGE_M = 1.0
#: Attachments longer than this are reported (the place may be far from any path).
LONG_LINK_M = 150.0
_GRID = 0.001


@dataclass(frozen=True, slots=True)
class Component:
    """A part of the graph not connected to the largest part."""

    nodes: int
    edges: int
    length_m: float
    places: list[str]


@dataclass(slots=True)
class GraphReport:
    """What building the graph did and found, for the import's summary."""

    lines: int = 0
    gaps_closed: int = 0
    nodes_merged: int = 0
    duplicates_dropped: int = 0
    places_attached: int = 0
    doors_derived: int = 0
    long_links: list[tuple[str, float]] = field(default_factory=list)
    components: int = 0
    disconnected: list[Component] = field(default_factory=list)
    unattached: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Walkways:
    """The noded graph, the doors derived for buildings without one, and the report.

    ``doors``: ref_id, building_id, geometry (metric points).
    """

    graph: WalkGraph
    doors: pd.DataFrame
    report: GraphReport


def node_walkways(
    lines: np.ndarray,
    kinds: np.ndarray,
    places: pd.DataFrame,
    *,
    crs: int | str | pyproj.CRS,
    doorless: pd.DataFrame | None = None,
    merge_m: float = MERGE_M,
    prefix: str = "",
) -> Walkways:
    """Build the walkway graph of ``lines`` and attach ``places`` to it.

    Parameters
    ----------
    lines
        LineStrings in ``crs``.
    kinds
        The walk_edge kind of each line ('road', 'footway', 'steps', 'ramp').
    places
        ref_id, kind ('entrance', 'facility', 'device'), building_id (None
        outside buildings), link_kind (edge kind of its attachment), geometry
        (points, same CRS).
    doorless
        Buildings with no entrance: ref_id (the id to give the derived
        entrance), building_id, geometry (the footprint).
    crs
        The metric CRS of the lines and places (the community's ``local_srid``).
    merge_m
        The merge tolerance in metres.
    prefix
        Put before node and edge ids ('n0001', 'e0001'): the community's id and a dash.
    """
    report = GraphReport(lines=len(lines))
    lines = np.asarray(lines, dtype=object)
    kinds = np.asarray(kinds, dtype=object)
    doorless = doorless if doorless is not None else _empty_places()
    if len(lines) == 0:
        report.unattached = list(places["ref_id"]) + list(doorless["ref_id"])
        empty = np.zeros(0, dtype=np.int64)
        return Walkways(build_walk_graph([], empty, empty, empty, empty, empty, crs=crs),
                        _empty_places(), report)

    network = _Network.from_lines(lines, kinds, merge_m, report)

    doors = _doors(network, doorless)
    report.doors_derived = len(doors)
    places = pd.concat([places, doors.assign(kind="entrance", link_kind="footway")],
                       ignore_index=True) if len(doors) else places.reset_index(drop=True)
    entrance_ids = set(places.loc[places["kind"] == "entrance", "building_id"].dropna())
    indoor = (places["kind"] != "entrance") & places["building_id"].isin(entrance_ids)
    outdoor_places = places[~indoor]
    indoor_places = places[indoor]

    attach_node = network.attach(shapely.get_coordinates(outdoor_places["geometry"].to_numpy()),
                                 merge_m)
    report.places_attached = len(places)
    node_xy = network.xy
    n_junctions = len(node_xy)
    place_xy = shapely.get_coordinates(places["geometry"].to_numpy())
    place_node = n_junctions + np.arange(len(places))
    kinds_out = ["junction"] * n_junctions + list(places["kind"])
    refs = [None] * n_junctions + list(places["ref_id"])

    out_pos = np.flatnonzero(~indoor.to_numpy())
    link_src = list(place_node[out_pos])
    link_dst = list(attach_node)
    link_kind = list(outdoor_places["link_kind"])
    link_end_xy = list(node_xy[attach_node])
    if len(indoor_places):
        door_of = _nearest_entrance(places, indoor.to_numpy())
        in_pos = np.flatnonzero(indoor.to_numpy())
        link_src += list(place_node[in_pos])
        link_dst += list(place_node[door_of])
        link_kind += list(indoor_places["link_kind"])
        link_end_xy += list(place_xy[door_of])
    link_geom = shapely.linestrings(np.stack([place_xy[np.asarray(link_src) - n_junctions],
                                              np.asarray(link_end_xy).reshape(-1, 2)], axis=1)) \
        if link_src else np.array([], dtype=object)
    link_len = shapely.length(link_geom)
    long = link_len > LONG_LINK_M
    report.long_links = [(ref, round(float(d), 1)) for ref, d in
                         zip(np.asarray(refs, dtype=object)[np.asarray(link_src)[long]],
                             link_len[long])] if link_src else []

    all_xy = np.vstack([node_xy, place_xy]) if len(place_xy) else node_xy
    source = np.concatenate([network.source, np.asarray(link_src, dtype=int)])
    target = np.concatenate([network.target, np.asarray(link_dst, dtype=int)])
    edge_kind = np.array(list(network.kind) + link_kind, dtype=object)
    geometry = np.concatenate([network.geometry, link_geom])
    graph = _canonical_graph(all_xy, np.array(kinds_out, dtype=object),
                             np.array(refs, dtype=object), source, target, edge_kind, geometry,
                             crs=crs, prefix=prefix)
    _components(graph, report)
    return Walkways(graph, doors, report)


# --- the network ----------------------------------------------------------------------------

class _Network:
    """Noded network edges: node coordinates, and edges as parallel arrays."""

    def __init__(self, xy: np.ndarray, source: np.ndarray, target: np.ndarray,
                 kind: np.ndarray, geometry: np.ndarray) -> None:
        self.xy, self.source, self.target = xy, source, target
        self.kind, self.geometry = kind, geometry

    @classmethod
    def from_lines(cls, lines: np.ndarray, kinds: np.ndarray, merge_m: float,
                   report: GraphReport) -> _Network:
        connectors = _gap_connectors(lines, merge_m)
        report.gaps_closed = len(connectors)
        noded = shapely.union_all(np.concatenate([lines, connectors]), grid_size=_GRID)
        pieces = shapely.get_parts(noded)
        pieces = pieces[shapely.get_type_id(pieces) == 1]
        tree = shapely.STRtree(lines)
        mid = shapely.line_interpolate_point(pieces, 0.5, normalized=True)
        nearest = tree.query_nearest(mid, all_matches=False)[1]
        kind = kinds[nearest]

        ends = np.concatenate([shapely.get_coordinates(shapely.get_point(pieces, 0)),
                               shapely.get_coordinates(shapely.get_point(pieces, -1))])
        xy, inverse = np.unique(np.round(ends, 3), axis=0, return_inverse=True)
        inverse = inverse.ravel()
        source, target = inverse[:len(pieces)], inverse[len(pieces):]
        label, xy = _merge_nodes(xy, source, target, merge_m)
        report.nodes_merged = int(len(label) - len(xy))
        source, target = label[source], label[target]
        pieces = _set_ends(pieces, xy[source], xy[target])
        net = cls(xy, source, target, kind, pieces)
        net._tidy(merge_m, report)
        return net

    def _tidy(self, merge_m: float, report: GraphReport) -> None:
        """Drop collapsed and duplicate edges; split rings and distinct parallel edges."""
        length = shapely.length(self.geometry)
        loop = self.source == self.target
        keep = ~(loop & (length <= 3 * merge_m))
        lo = np.minimum(self.source, self.target)
        hi = np.maximum(self.source, self.target)
        frame = pd.DataFrame({"lo": lo, "hi": hi, "length": length, "k": np.arange(len(lo))})
        frame = frame[keep & ~loop].sort_values(["lo", "hi", "length", "k"])
        first = ~frame.duplicated(["lo", "hi"])
        shortest = frame[first].set_index(["lo", "hi"])["k"]
        others = frame[~first]
        split: list[tuple[int, float]] = []
        if len(others):
            twin = shortest.loc[list(zip(others["lo"], others["hi"]))].to_numpy()
            same = shapely.hausdorff_distance(self.geometry[others["k"].to_numpy()],
                                              self.geometry[twin]) <= merge_m
            keep[others["k"].to_numpy()[same]] = False
            report.duplicates_dropped = int(same.sum())
            split += [(k, 0.5) for k in others["k"].to_numpy()[~same]]
        split += [(int(k), f) for k in np.flatnonzero(loop & keep) for f in (1 / 3, 2 / 3)]
        new_index = np.cumsum(keep) - 1
        self.source, self.target = self.source[keep], self.target[keep]
        self.kind, self.geometry = self.kind[keep], self.geometry[keep]
        if split:
            edge = np.array([k for k, _ in split])
            at = np.array([f for _, f in split]) * length[edge]
            self._cut(new_index[edge], at)
        used = np.unique(np.concatenate([self.source, self.target]))
        remap = np.full(len(self.xy), -1)
        remap[used] = np.arange(len(used))
        self.xy = self.xy[used]
        self.source, self.target = remap[self.source], remap[self.target]

    def attach(self, points: np.ndarray, merge_m: float) -> np.ndarray:
        """Node of the nearest network point of each point, splitting edges where needed."""
        if len(points) == 0:
            return np.zeros(0, dtype=int)
        tree = shapely.STRtree(self.geometry)
        geoms = shapely.points(points)
        edge = tree.query_nearest(geoms, all_matches=False)[1]
        along = shapely.line_locate_point(self.geometry[edge], geoms)
        length = shapely.length(self.geometry[edge])
        node = np.where(along <= merge_m, self.source[edge],
                        np.where(along >= length - merge_m, self.target[edge], -1))
        cut = node < 0
        if cut.any():
            order = np.lexsort((along[cut], edge[cut]))
            e, a = edge[cut][order], along[cut][order]
            new_group = np.r_[True, (e[1:] != e[:-1]) | (np.diff(a) > merge_m)]
            group = np.cumsum(new_group) - 1
            start = len(self.xy)
            self._cut(e[new_group], a[new_group])
            placed = np.empty(cut.sum(), dtype=int)
            placed[order] = start + group
            node[cut] = placed
        return node

    def _cut(self, edge: np.ndarray, at: np.ndarray) -> None:
        """Split edges at distances along them (sorted by edge, then distance).

        New nodes are appended to ``xy`` in the order of the cuts; the pieces
        of a cut edge replace it at its position, the rest are appended.
        """
        order = np.lexsort((at, edge))
        edge, at = edge[order], at[order]
        cut_xy = shapely.get_coordinates(shapely.line_interpolate_point(self.geometry[edge], at))
        cut_node = len(self.xy) + np.arange(len(edge))
        self.xy = np.vstack([self.xy, cut_xy])

        touched = np.unique(edge)
        coords, owner = shapely.get_coordinates(self.geometry[touched], return_index=True)
        line_of = touched[owner]
        step = np.r_[0.0, np.hypot(*np.diff(coords, axis=0).T)]
        step[np.r_[True, owner[1:] != owner[:-1]]] = 0.0
        cum = pd.Series(step).groupby(owner).cumsum().to_numpy()
        # events: vertices (flag 0) and cuts (flag 1, twice: end of one piece, start of next)
        ev_line = np.concatenate([line_of, edge, edge])
        ev_m = np.concatenate([cum, at, at])
        ev_flag = np.concatenate([np.zeros(len(cum)), np.ones(len(at)), np.full(len(at), 2)])
        ev_xy = np.vstack([coords, cut_xy, cut_xy])
        order = np.lexsort((ev_flag, ev_m, ev_line))
        ev_line, ev_flag, ev_xy = ev_line[order], ev_flag[order], ev_xy[order]
        first_of_line = np.r_[True, ev_line[1:] != ev_line[:-1]]
        starts_piece = first_of_line | (ev_flag == 2)
        piece = np.cumsum(starts_piece) - 1
        new_lines = shapely.linestrings(ev_xy, indices=piece)
        c2 = np.cumsum(ev_flag == 2)
        nth_of_event = c2 - np.maximum.accumulate(np.where(first_of_line, c2, 0))
        head = np.flatnonzero(starts_piece)
        piece_line, nth = ev_line[head], nth_of_event[head]
        first_cut = np.searchsorted(edge, piece_line)
        count = np.searchsorted(edge, piece_line, side="right") - first_cut
        src = np.where(nth == 0, self.source[piece_line],
                       cut_node[np.maximum(first_cut + nth - 1, 0)])
        tgt = np.where(nth == count, self.target[piece_line],
                       cut_node[np.minimum(first_cut + nth, len(cut_node) - 1)])
        keep = np.ones(len(self.source), dtype=bool)
        keep[touched] = False
        self.source = np.concatenate([self.source[keep], src])
        self.target = np.concatenate([self.target[keep], tgt])
        self.kind = np.concatenate([self.kind[keep], self.kind[piece_line]])
        self.geometry = np.concatenate([self.geometry[keep], new_lines])


def _gap_connectors(lines: np.ndarray, merge_m: float) -> np.ndarray:
    n = len(lines)
    ends = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    own = np.tile(np.arange(n), 2)
    tree = shapely.STRtree(lines)
    point, line = tree.query(ends, predicate="dwithin", distance=merge_m)
    other = line != own[point]
    point, line = point[other], line[other]
    if len(point) == 0:
        return np.array([], dtype=object)
    distance = shapely.distance(ends[point], lines[line])
    touching = np.zeros(len(ends), dtype=bool)
    touching[point[distance <= _GRID]] = True
    frame = pd.DataFrame({"p": point, "l": line, "d": distance})
    frame = frame[~touching[frame["p"].to_numpy()]].sort_values(["p", "d"])
    frame = frame.drop_duplicates("p")
    return shapely.shortest_line(ends[frame["p"].to_numpy()], lines[frame["l"].to_numpy()])


def _merge_nodes(xy: np.ndarray, source: np.ndarray, target: np.ndarray, merge_m: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Cluster nodes within ``merge_m``; returns the old→new label and the new coordinates."""
    n = len(xy)
    points = shapely.points(xy)
    a, b = shapely.STRtree(points).query(points, predicate="dwithin", distance=merge_m)
    pair = a < b
    graph = coo_matrix((np.ones(pair.sum()), (a[pair], b[pair])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    degree = np.bincount(np.concatenate([source, target]), minlength=n)
    # representative: most edges, then lowest index
    order = np.lexsort((np.arange(n), -degree, label))
    first = order[np.r_[True, label[order][1:] != label[order][:-1]]]
    return label, xy[first[np.argsort(label[first])]]


def _set_ends(lines: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    coords, index = shapely.get_coordinates(lines, return_index=True)
    first = np.searchsorted(index, np.arange(len(lines)))
    last = np.r_[first[1:], len(index)] - 1
    coords[first] = start
    coords[last] = end
    return shapely.linestrings(coords, indices=index)


def _doors(network: _Network, doorless: pd.DataFrame) -> pd.DataFrame:
    if len(doorless) == 0:
        return _empty_places()
    footprints = doorless["geometry"].to_numpy()
    tree = shapely.STRtree(network.geometry)
    edge = tree.query_nearest(footprints, all_matches=False)[1]
    door = shapely.get_point(shapely.shortest_line(shapely.get_exterior_ring(footprints),
                                                   network.geometry[edge]), 0)
    return pd.DataFrame({"ref_id": doorless["ref_id"].to_numpy(),
                         "building_id": doorless["building_id"].to_numpy(),
                         "geometry": door})


def _nearest_entrance(places: pd.DataFrame, indoor: np.ndarray) -> np.ndarray:
    """Row of the nearest entrance of the same building, for each indoor place."""
    is_door = (places["kind"] == "entrance").to_numpy()
    doors = pd.DataFrame({"building_id": places["building_id"].to_numpy()[is_door],
                          "row": np.flatnonzero(is_door)})
    inner = pd.DataFrame({"building_id": places["building_id"].to_numpy()[indoor],
                          "k": np.arange(indoor.sum())})
    pairs = inner.merge(doors, on="building_id")
    xy = shapely.get_coordinates(places["geometry"].to_numpy())
    inner_xy = xy[np.flatnonzero(indoor)][pairs["k"].to_numpy()]
    pairs["d"] = np.hypot(*(inner_xy - xy[pairs["row"].to_numpy()]).T)
    best = pairs.sort_values(["k", "d", "row"]).drop_duplicates("k").sort_values("k")
    return best["row"].to_numpy()


def _canonical_graph(xy: np.ndarray, node_kind: np.ndarray, node_ref: np.ndarray,
                     source: np.ndarray, target: np.ndarray, edge_kind: np.ndarray,
                     geometry: np.ndarray, *, crs: int | str | pyproj.CRS,
                     prefix: str) -> WalkGraph:
    """The graph with junctions by position, then places by kind and ref; edges by their ends.

    Makes the node and edge numbers depend on the data, not on the order the
    source listed its features in, so re-importing gives the same ids.
    """
    is_place = np.array([r is not None for r in node_ref], dtype=bool)
    refs = np.array(["" if r is None else r for r in node_ref], dtype=object)
    order = np.lexsort((np.round(xy[:, 1], 3), np.round(xy[:, 0], 3), refs.astype(str),
                        is_place))
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order))
    length = np.round(shapely.length(geometry), 2)
    edges = pd.DataFrame({"source": rank[source], "target": rank[target],
                          "kind": pd.Series(edge_kind, dtype=object), "length_m": length,
                          "k": np.arange(len(source))})
    edges = edges.sort_values(["source", "target", "kind", "length_m"], kind="stable")
    k = edges["k"].to_numpy()
    n, m = len(order), len(edges)
    width, e_width = max(4, len(str(n))), max(4, len(str(m)))
    return build_walk_graph(
        np.array([f"{prefix}n{j + 1:0{width}d}" for j in range(n)], dtype=object),
        xy[order, 0], xy[order, 1],
        edges["source"].to_numpy(), edges["target"].to_numpy(), edges["length_m"].to_numpy(),
        crs=crs,
        edge_ids=np.array([f"{prefix}e{j + 1:0{e_width}d}" for j in range(m)], dtype=object),
        edge_kind=edges["kind"].to_numpy(dtype=object),
        edge_lines=np.asarray(geometry, dtype=object)[k],
        node_kind=node_kind[order], node_ref=node_ref[order],
    )


def _components(graph: WalkGraph, report: GraphReport) -> None:
    """Count the graph's parts; list every part but the largest with the places it holds."""
    if graph.n_nodes == 0:
        return
    label = graph.component
    report.components = int(label.max()) + 1
    sizes = np.bincount(label)
    main = int(np.argmax(sizes))
    edge_label = label[graph.edge_u]
    for c in np.argsort(-sizes, kind="stable"):
        if c == main:
            continue
        members = label == c
        report.disconnected.append(Component(
            nodes=int(members.sum()), edges=int((edge_label == c).sum()),
            length_m=round(float(graph.edge_length[edge_label == c].sum()), 1),
            places=[r for r in graph.node_ref[members] if r is not None]))


def _empty_places() -> pd.DataFrame:
    return pd.DataFrame({"ref_id": pd.Series([], dtype=object),
                         "building_id": pd.Series([], dtype=object),
                         "geometry": np.array([], dtype=object)})
