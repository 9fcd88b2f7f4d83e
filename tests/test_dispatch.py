"""Dispatch to the nearest staff member by walkway, on graphs small enough to check by hand.

The river plan (metres east and north of a point in Wuhan, UTM 50N):

    k (100,120)
    |  steps
    e (0,60) ------- f (100,60)          north bank
                     |  bridge
    g (-150,0) --- b (0,0) --- c (100,0)  south bank

    h (0,500) --- i (50,500)              an island: no path to the rest

From b, a guard at e is 60 m away in a straight line but 260 m on foot
(e-f-c-b); a guard at g is 150 m away both ways.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import geopandas as gpd
import networkx as nx
import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import LineString, Point

from twin.dispatch import (
    Assignment,
    NoCandidate,
    StaffMember,
    dispatch,
    located,
    on_shift,
    started_from,
)
from twin.store.graph import dispatch_staff, walk_routing_graph
from twin.walkgraph import (
    WALK_SPEED_M_S,
    build_walk_graph,
    from_lines,
    from_rows,
    snap,
    walk_frames,
)

SRID = 32650
X0, Y0 = 500_000.0, 3_375_000.0
_TO_LONLAT = pyproj.Transformer.from_crs(SRID, 4326, always_xy=True)
_TO_METRIC = pyproj.Transformer.from_crs(4326, SRID, always_xy=True)

NODES = {"g": (-150, 0), "b": (0, 0), "c": (100, 0), "e": (0, 60), "f": (100, 60),
         "k": (100, 120), "h": (0, 500), "i": (50, 500)}
EDGES = [("g", "b", "road"), ("b", "c", "road"), ("e", "f", "road"), ("c", "f", "footway"),
         ("f", "k", "steps"), ("h", "i", "road")]
#: Monday 10:00 and 22:00 in Wuhan.
DAY = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)
NIGHT = datetime(2025, 6, 2, 14, 0, tzinfo=UTC)


def at(x: float, y: float) -> Point:
    """The EPSG:4326 point x metres east and y metres north of the plan's origin."""
    return Point(*_TO_LONLAT.transform(X0 + x, Y0 + y))


def metric(line: LineString) -> np.ndarray:
    """A route's coordinates back in plan metres."""
    xy = shapely.get_coordinates(line)
    x, y = _TO_METRIC.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([np.asarray(x) - X0, np.asarray(y) - Y0])


def guard(staff_id: str, x: float, y: float, *, role: str = "security", shift: str = "day",
          skills: tuple[str, ...] = ()) -> StaffMember:
    return StaffMember(id=staff_id, role=role, shift=shift, skills=frozenset(skills),
                       position=at(x, y))


@pytest.fixture(scope="module")
def river():
    names = list(NODES)
    xy = np.array([NODES[n] for n in names], dtype=float)
    u = np.array([names.index(a) for a, _, _ in EDGES])
    v = np.array([names.index(b) for _, b, _ in EDGES])
    length = np.hypot(*(xy[v] - xy[u]).T)
    return build_walk_graph(names, X0 + xy[:, 0], Y0 + xy[:, 1], u, v, length, crs=SRID,
                            edge_ids=[f"{a}{b}" for a, b, _ in EDGES],
                            edge_kind=[k for _, _, k in EDGES])


def test_the_graph_round_trips_through_rows_and_lines(river):
    """walk_frames gives store-shaped rows; from_rows and from_lines compile them back."""
    nodes, edges = walk_frames(river)
    node_rows = [(i, k, r, p.x, p.y) for i, k, r, p in
                 nodes[["id", "kind", "ref_id", "geometry"]].itertuples(index=False)]
    edge_rows = list(edges[["id", "source", "target", "kind", "length_m", "geometry"]]
                     .itertuples(index=False, name=None))
    again = from_rows(node_rows, edge_rows, crs=SRID)
    assert list(again.edge_ids) == list(river.edge_ids)
    assert np.array_equal(again.component, river.component)
    lines = gpd.GeoDataFrame(edges.drop(columns=["source", "target"]), geometry="geometry",
                             crs=SRID)
    joined = from_lines(lines)
    assert joined.n_nodes == river.n_nodes and joined.n_edges == river.n_edges
    assert len(set(joined.component)) == 2                       # the island stays apart
    staff = [guard("north", 0, 60), guard("south", -150, 0)]
    for graph in (again, joined):
        assert dispatch(graph, at(0, 0), staff, now=DAY, role="security").staff_id == "south"
    with pytest.raises(ValueError, match="ends at a node that is not among the nodes"):
        from_rows(node_rows[1:], edge_rows, crs=SRID)
    with pytest.raises(ValueError, match="no CRS"):
        from_lines(gpd.GeoDataFrame(geometry=list(edges["geometry"])))


def test_path_nearest_wins_over_straight_line_nearest(river):
    staff = [guard("north", 0, 60), guard("south", -150, 0)]
    result = dispatch(river, at(0, 0), staff, now=DAY, role="security")
    assert isinstance(result, Assignment)
    assert result.staff_id == "south"
    assert result.distance_m == pytest.approx(150.0, abs=1e-6)
    assert result.eta_s == pytest.approx(150.0 / WALK_SPEED_M_S, abs=1e-6)
    np.testing.assert_allclose(metric(result.route), [[-150, 0], [0, 0]], atol=1e-6)
    assert result.candidates_considered == 2
    assert "next north at 260.0 m" in result.reason


def test_route_crosses_the_bridge(river):
    result = dispatch(river, at(0, 0), [guard("north", 0, 60)], now=DAY, role="security")
    assert isinstance(result, Assignment)
    assert result.distance_m == pytest.approx(260.0, abs=1e-6)
    np.testing.assert_allclose(metric(result.route), [[0, 60], [100, 60], [100, 0], [0, 0]],
                               atol=1e-6)


def test_points_snap_to_the_middle_of_an_edge(river):
    (spot,) = snap(river, [at(-75, 3)])
    assert river.edge_ids[spot.edge] == "gb"
    assert spot.along_m == pytest.approx(75.0, abs=1e-6)
    assert spot.offset_m == pytest.approx(3.0, abs=1e-6)

    # 3 m onto the road, 75 m along it to b.
    result = dispatch(river, at(0, 0), [guard("s", -75, 3)], now=DAY, role="security")
    assert result.distance_m == pytest.approx(78.0, abs=1e-6)
    np.testing.assert_allclose(metric(result.route), [[-75, 3], [-75, 0], [0, 0]], atol=1e-6)

    # An incident 2 m off the middle of b-c: 150 + 40 + 2 from g.
    result = dispatch(river, at(40, -2), [guard("g", -150, 0)], now=DAY, role="security")
    assert result.distance_m == pytest.approx(192.0, abs=1e-6)
    np.testing.assert_allclose(metric(result.route), [[-150, 0], [0, 0], [40, 0], [40, -2]],
                               atol=1e-6)

    # Both on b-c: straight along the edge, through neither end.
    result = dispatch(river, at(40, -2), [guard("near", 10, 1)], now=DAY, role="security")
    assert result.distance_m == pytest.approx(1 + 30 + 2, abs=1e-6)
    np.testing.assert_allclose(metric(result.route), [[10, 1], [10, 0], [40, 0], [40, -2]],
                               atol=1e-6)


def test_steps_are_walked_slower(river):
    result = dispatch(river, at(100, 60), [guard("up", 100, 120)], now=DAY, role="security")
    assert result.distance_m == pytest.approx(60.0, abs=1e-6)
    assert result.eta_s == pytest.approx(60.0 / 0.6, abs=1e-6)


def test_role_and_skill_filtering(river):
    staff = [guard("plain", -10, 0), guard("medic", -150, 0, skills=("first_aid",)),
             guard("engineer", 5, 0, role="engineer", skills=("first_aid", "electrical"))]
    pick = dispatch(river, at(0, 0), staff, now=DAY, role="security", skill="first_aid")
    assert pick.staff_id == "medic"
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security").staff_id == "plain"
    assert dispatch(river, at(0, 0), staff, now=DAY, skill="first_aid").staff_id == "engineer"
    with pytest.raises(ValueError, match="role, a skill"):
        dispatch(river, at(0, 0), staff, now=DAY)


def test_shift_filtering_with_an_injected_clock(river):
    staff = [guard("day", -10, 0, shift="day"), guard("night", -150, 0, shift="night"),
             guard("office", -20, 0, shift="office")]
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security").staff_id == "day"
    assert dispatch(river, at(0, 0), staff, now=NIGHT, role="security").staff_id == "night"
    saturday_10 = datetime(2025, 6, 7, 2, 0, tzinfo=UTC)
    assert dispatch(river, at(0, 0), staff[1:], now=saturday_10, role="security").reason == \
        "off_shift"


@pytest.mark.parametrize(("shift", "local", "covered"), [
    ("day", "2025-06-02T08:00", True),
    ("day", "2025-06-02T20:00", False),
    ("night", "2025-06-02T20:00", True),
    ("night", "2025-06-03T02:00", True),
    ("night", "2025-06-03T08:00", False),
    ("office", "2025-06-06T17:59", True),   # Friday
    ("office", "2025-06-07T10:00", False),  # Saturday
])
def test_shift_hours_in_local_time(shift, local, covered):
    moment = datetime.fromisoformat(local + "+08:00").astimezone(UTC)
    assert on_shift(shift, moment) is covered
    with pytest.raises(ValueError, match="timezone-aware"):
        on_shift(shift, moment.replace(tzinfo=None))


def test_staff_over_the_open_order_limit_are_skipped(river):
    staff = [guard("busy", -10, 0), guard("free", -150, 0)]
    held = {"busy": 3}
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security",
                    open_orders=held).staff_id == "free"
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security", open_orders=held,
                    max_open_orders=4).staff_id == "busy"


def test_a_declined_order_goes_to_the_next_candidate(river):
    staff = [guard("first", -10, 0), guard("second", -50, 0), guard("third", -150, 0)]
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security").staff_id == "first"
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security",
                    exclude={"first"}).staff_id == "second"
    assert dispatch(river, at(0, 0), staff, now=DAY, role="security",
                    exclude={"first", "second"}).staff_id == "third"
    none = dispatch(river, at(0, 0), staff, now=DAY, role="security",
                    exclude={"first", "second", "third"})
    assert isinstance(none, NoCandidate) and none.reason == "declined"


def test_ties_go_to_fewer_open_orders_then_staff_id(river):
    staff = [guard("a2", 50, 0), guard("a1", -50, 0)]
    result = dispatch(river, at(0, 0), staff, now=DAY, role="security")
    assert (result.staff_id, result.tied_with) == ("a1", ("a2",))
    assert "staff id order" in result.reason
    result = dispatch(river, at(0, 0), staff, now=DAY, role="security", open_orders={"a1": 1})
    assert (result.staff_id, result.tied_with) == ("a2", ("a1",))
    assert "fewer open orders" in result.reason


def test_nobody_qualifies_is_explained(river):
    staff = [guard("n1", -10, 0, shift="night"), guard("d1", -50, 0),
             StaffMember(id="lost", role="security", shift="day")]
    none = dispatch(river, at(0, 0), staff, now=DAY, role="manager")
    assert isinstance(none, NoCandidate)
    assert none.reason == "no_such_staff" and "manager" in none.detail

    none = dispatch(river, at(0, 0), staff[:1], now=DAY, role="security")
    assert none.reason == "off_shift"
    assert none.rejected == (("n1", "off shift (night shift; it is Mon 10:00 local)"),)

    none = dispatch(river, at(0, 0), staff, now=DAY, role="security", open_orders={"d1": 3})
    assert none.reason == "over_limit"
    assert dict(none.rejected) == {
        "n1": "off shift (night shift; it is Mon 10:00 local)",
        "d1": "holds 3 open orders (limit 3)",
        "lost": "no known position",
    }
    assert none.detail.startswith("none of the 3 security staff can go")


def test_unreachable_staff_are_explained_and_skipped(river):
    island = guard("island", 25, 500)
    none = dispatch(river, at(0, 0), [island], now=DAY, role="security")
    assert isinstance(none, NoCandidate) and none.reason == "unreachable"
    assert none.rejected == (("island", "not connected to the incident's part of the walkway"),)
    # An incident on the island: only the island's guard can walk there.
    result = dispatch(river, at(0, 480), [island, guard("far", -150, 0)], now=DAY,
                      role="security")
    assert (result.staff_id, result.candidates_considered) == ("island", 1)
    assert result.distance_m == pytest.approx(25 + 20, abs=1e-6)
    result = dispatch(river, at(0, 0), [island, guard("far", -150, 0)], now=DAY, role="security")
    assert (result.staff_id, result.candidates_considered) == ("far", 1)


def test_distances_match_networkx_on_a_random_street_grid():
    """Many dispatches on a jittered grid with missing streets against a brute-force answer."""
    rng = np.random.default_rng(5)
    side, step = 14, 40.0
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) * step + rng.normal(0, 6, (side * side, 2))
    idx = np.arange(side * side).reshape(side, side)
    u = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    v = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
    keep = rng.random(len(u)) < 0.8
    u, v = u[keep], v[keep]
    length = np.hypot(*(xy[v] - xy[u]).T)
    graph = build_walk_graph([f"n{k}" for k in range(len(xy))], X0 + xy[:, 0], Y0 + xy[:, 1],
                             u, v, length, crs=SRID)
    nxg = nx.Graph()
    nxg.add_weighted_edges_from(zip(u.tolist(), v.tolist(), length.tolist()))
    lines = shapely.linestrings(np.stack([xy[u], xy[v]], axis=1))

    def brute_snap(p: np.ndarray) -> tuple[int, float, float]:
        d = shapely.distance(lines, shapely.points(p))
        e = int(np.argmin(d))
        return e, float(shapely.line_locate_point(lines[e], shapely.points(p))), float(d[e])

    span = side * step
    for trial in range(25):
        staff_xy = rng.uniform(-20, span, (12, 2))
        incident_xy = rng.uniform(-20, span, 2)
        staff = [guard(f"s{k:02d}", x, y) for k, (x, y) in enumerate(staff_xy)]
        result = dispatch(graph, at(*incident_xy), staff, now=DAY, role="security")

        ie, ialong, ioff = brute_snap(incident_xy)
        ends = {int(u[ie]): ialong, int(v[ie]): length[ie] - ialong}
        reach: dict[int, float] = {}
        for node, extra in ends.items():
            for other, d in nx.single_source_dijkstra_path_length(nxg, node).items():
                reach[other] = min(reach.get(other, np.inf), d + extra)
        expected = {}
        for member, p in zip(staff, staff_xy):
            se, salong, soff = brute_snap(p)
            best = min(reach.get(int(u[se]), np.inf) + salong,
                       reach.get(int(v[se]), np.inf) + length[se] - salong)
            if se == ie:
                best = min(best, abs(salong - ialong))
            expected[member.id] = best + soff + ioff
        finite = {k: d for k, d in expected.items() if np.isfinite(d)}
        if not finite:
            assert isinstance(result, NoCandidate) and result.reason == "unreachable"
            continue
        want = min(finite, key=lambda k: (round(finite[k], 3), k))
        assert isinstance(result, Assignment), (trial, result)
        assert result.staff_id == want, trial
        assert result.distance_m == pytest.approx(finite[want], abs=1e-6)
        route = metric(result.route)
        walked = float(np.hypot(*np.diff(route, axis=0).T).sum())
        assert walked == pytest.approx(finite[want], abs=1e-4)


def test_sample_community_guard_to_an_entrance_matches_networkx(sample_conn):
    community = "wh-guanggu"
    graph = walk_routing_graph(sample_conn, community)
    staff = dispatch_staff(sample_conn, community)
    (node, lon, lat), = sample_conn.execute(
        """SELECT id, ST_X(geom), ST_Y(geom) FROM walk_node
           WHERE community_id = %s AND kind = 'entrance' ORDER BY id LIMIT 1""",
        (community,)).fetchall()
    result = dispatch(graph, Point(lon, lat), staff, now=DAY, role="security")
    assert isinstance(result, Assignment)

    # The same question asked of networkx on the stored rows, snapping by brute force.
    g = nx.Graph()
    for a, b, length in sample_conn.execute(
            "SELECT source, target, length_m FROM walk_edge WHERE community_id = %s",
            (community,)):
        g.add_edge(a, b, length_m=float(length))
    where = {n: (x, y) for n, x, y in sample_conn.execute(
        "SELECT id, ST_X(geom), ST_Y(geom) FROM walk_node WHERE community_id = %s",
        (community,))}
    ids = list(g.nodes)
    to_metric = pyproj.Transformer.from_crs(4326, SRID, always_xy=True)
    xy = dict(zip(ids, zip(*to_metric.transform([where[n][0] for n in ids],
                                                [where[n][1] for n in ids]))))
    edges = list(g.edges(data="length_m"))
    lines = shapely.linestrings([[xy[a], xy[b]] for a, b, _ in edges])
    from_entrance = nx.single_source_dijkstra_path_length(g, node, weight="length_m")
    expected = {}
    for member in staff:
        if member.role != "security" or not on_shift(member.shift, DAY):
            continue
        p = shapely.points(to_metric.transform(member.position.x, member.position.y))
        d = shapely.distance(lines, p)
        k = int(np.argmin(d))
        a, b, length = edges[k]
        along = shapely.line_locate_point(lines[k], p) / lines[k].length * length
        expected[member.id] = d[k] + min(from_entrance[a] + along,
                                         from_entrance[b] + length - along)
    assert len(expected) == 4
    want = min(expected, key=expected.get)
    assert result.staff_id == want
    assert result.distance_m == pytest.approx(expected[want], abs=1e-3)
    assert result.candidates_considered == 4
    assert result.eta_s >= result.distance_m / WALK_SPEED_M_S - 1e-6
    assert result.route.coords[-1] == pytest.approx((lon, lat), abs=1e-7)

    # The same graph compiled from a GeoDataFrame of its lines agrees.
    rows = sample_conn.execute("SELECT id, kind, length_m, ST_AsBinary(geom) FROM walk_edge "
                               "WHERE community_id = %s", (community,)).fetchall()
    frame = gpd.GeoDataFrame({"id": [r[0] for r in rows], "kind": [r[1] for r in rows],
                              "length_m": [r[2] for r in rows]},
                             geometry=shapely.from_wkb([bytes(r[3]) for r in rows]), crs=4326)
    again = dispatch(from_lines(frame, crs=SRID), Point(lon, lat), staff, now=DAY,
                     role="security")
    assert again.staff_id == result.staff_id
    assert again.distance_m == pytest.approx(result.distance_m, abs=1e-3)


def test_a_stale_fix_gives_way_to_the_post_and_the_choice_says_which(river):
    """With max_fix_age, a fix older than it is not used: the staff member starts from their
    post, or is passed over without one; without max_fix_age any fix is used."""
    fresh, stale = DAY - timedelta(minutes=2), DAY - timedelta(minutes=30)
    near = replace(guard("near", 0, 60), position_at=stale, post=at(-150, 0))
    far = replace(guard("far", 100, 120), position_at=fresh)
    ten = timedelta(minutes=10)
    assert located(near, DAY, ten).origin == "post"
    assert located(near, DAY, ten).member.position == at(-150, 0)
    assert located(far, DAY, ten).origin == "fix"
    assert located(near, DAY, None).origin == "fix"  # any fix, however old
    # the stale one walks from the post at (-150, 0): 150 m, nearer than far's 100+60+120+...
    chosen = dispatch(river, at(0, 0), [near, far], now=DAY, role="security", max_fix_age=ten)
    assert isinstance(chosen, Assignment)
    assert (chosen.staff_id, chosen.origin, chosen.fix_age_s) == ("near", "post", 1800.0)
    assert chosen.distance_m == pytest.approx(150.0, abs=0.5)
    assert started_from(chosen) == "from their post (newest fix 30 min old)"
    # without a post a stale fix is no position at all
    lost = replace(near, post=None)
    nobody = dispatch(river, at(0, 0), [lost], now=DAY, role="security", max_fix_age=ten)
    assert isinstance(nobody, NoCandidate) and nobody.reason == "no_position"
    # never seen, but at their post
    unseen = StaffMember(id="new", role="security", shift="day", post=at(100, 0))
    first = dispatch(river, at(0, 0), [unseen], now=DAY, role="security", max_fix_age=ten)
    assert isinstance(first, Assignment) and (first.origin, first.fix_age_s) == ("post", None)
    assert started_from(first) == "from their post (no fix)"
