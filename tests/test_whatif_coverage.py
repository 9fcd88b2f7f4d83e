"""Coverage and impact on a twin small enough to check by hand, and on the sample."""

from __future__ import annotations

import numpy as np
import pyproj
import pytest
from shapely.geometry import Point

from twin.dispatch import StaffMember
from twin.walkgraph import WALK_SPEED_M_S, build_walk_graph
from twin.whatif.coverage import Entrances, compare, coverage, staff_in
from twin.whatif.impact import gate_impact
from twin.whatif.scenario import BASELINE, AddedPath, AddedStaff, Scenario, scenario_network

UTM = 32650
X0, Y0 = 500_000.0, 3_400_000.0
_to_lonlat = pyproj.Transformer.from_crs(UTM, 4326, always_xy=True)

#   D ---de--- E ---ef--- F        (y = 100 m)
#   |                     |
#   ad                    cf
#   |                     |
#   A ---ab--- B ---bc--- C        (y = 0)
NODES = {"A": (0, 0), "B": (100, 0), "C": (200, 0), "D": (0, 100), "E": (100, 100), "F": (200, 100)}
EDGES = [("ab", "A", "B"), ("bc", "B", "C"), ("ad", "A", "D"), ("de", "D", "E"),
         ("ef", "E", "F"), ("cf", "C", "F")]
EDGE_S = 100 / WALK_SPEED_M_S


def lonlat(x: float, y: float) -> Point:
    return Point(*_to_lonlat.transform(X0 + x, Y0 + y))


@pytest.fixture(scope="module")
def square():
    ids = list(NODES)
    xy = np.array([NODES[k] for k in ids], dtype=float)
    return build_walk_graph(
        ids, X0 + xy[:, 0], Y0 + xy[:, 1],
        np.array([ids.index(a) for _, a, _ in EDGES]), np.array([ids.index(b) for _, _, b in EDGES]),
        np.full(len(EDGES), 100.0), crs=UTM, edge_ids=[e for e, _, _ in EDGES])


GUARD = StaffMember(id="g1", role="security", shift="day", position=lonlat(0, 0))
DOORS = Entrances(ids=("x-door", "y-door"), building_ids=("X", "Y"),
                  points=(lonlat(200, 0), lonlat(200, 100)))


def test_a_closed_segment_moves_exactly_the_expected_building_over_the_target(square) -> None:
    before = coverage(square, [GUARD], DOORS, BASELINE, role="security", shift="day")
    assert before.entrance_s == pytest.approx([2 * EDGE_S, 3 * EDGE_S])
    works = Scenario(name="bc closed", closed_edges=("bc",))
    after = coverage(square, [GUARD], DOORS, works, role="security", shift="day")
    # X now goes round by D, E, F: four edges
    assert after.entrance_s == pytest.approx([4 * EDGE_S, 3 * EDGE_S])
    result = compare(before, after, sla_s=300)
    assert result.newly_over == ["X"] and result.back_within == []
    assert result.summary()["over_target_scenario"] == 1
    assert after.node_s[list(NODES).index("C")] == pytest.approx(4 * EDGE_S)
    # isochrone bands per open edge: the closed one is gone from the network
    assert after.bands().tolist() == [0, -1, 0, 1, 1, 2]


def test_staff_away_added_and_moved(square) -> None:
    away = Scenario(name="guard on leave", staff_removed=("g1",))
    nobody = coverage(square, [GUARD], DOORS, away, role="security", shift="day")
    assert np.isinf(nobody.entrance_s).all()
    assert nobody.histogram()["unreachable"] == 2
    helper = Scenario(name="new post", staff_added=(
        AddedStaff(id="g2", role="security", position=(*lonlat(200, 50).coords[0],)),))
    both = coverage(square, [GUARD], DOORS, helper, role="security", shift="day")
    # g2 stands in the middle of cf: half an edge from each door
    assert both.entrance_s == pytest.approx([EDGE_S / 2, EDGE_S / 2], abs=1e-6)
    assert both.staff_ids == ("g1", "g2")
    night = coverage(square, [GUARD], DOORS, BASELINE, role="security", shift="night")
    assert np.isinf(night.entrance_s).all()
    with pytest.raises(ValueError, match="no staff member 'ghost'"):
        staff_in([GUARD], Scenario(name="x", staff_removed=("ghost",)))


def test_an_unknown_edge_is_refused_by_name(square) -> None:
    with pytest.raises(ValueError, match="no walkway edge 'zz'"):
        scenario_network(square, Scenario(name="typo", closed_edges=("zz",)))


def test_an_added_path_shortens_the_walk(square) -> None:
    shortcut = Scenario(name="diagonal", added_paths=(
        AddedPath(coords=[lonlat(0, 0).coords[0], lonlat(200, 100).coords[0]]),))
    after = coverage(square, [GUARD], DOORS, shortcut, role="security", shift="day")
    assert after.entrance_s[1] == pytest.approx(np.hypot(200, 100) / WALK_SPEED_M_S, rel=1e-6)


def test_impact_names_cut_off_and_detoured_buildings(square) -> None:
    gates = {"gate-w": lonlat(0, 0)}
    # closing ab and ad cuts everything off from the west gate
    cut = gate_impact(square, DOORS, gates, Scenario(name="cut", closed_edges=("ab", "ad")))
    assert cut.cut_off == ["X", "Y"]
    detour = gate_impact(square, DOORS, gates, Scenario(name="bc", closed_edges=("bc",)))
    assert detour.cut_off == [] and detour.detoured == ["X"]
    assert detour.table.loc["X", "change_s"] == pytest.approx(2 * EDGE_S)
    gates["gate-e"] = lonlat(200, 0)
    closed = gate_impact(square, DOORS, gates, BASELINE, closed_gates=("gate-e",))
    assert closed.detoured == ["X", "Y"]


def test_coverage_on_the_sample_matches_networkx(sample_conn) -> None:
    """Against plain networkx on the same walkways: the same seconds for every door."""
    import networkx as nx

    from twin.store.graph import dispatch_staff, walk_routing_graph
    from twin.walkgraph import snap, walking_seconds

    community = sample_conn.execute("SELECT id FROM community").fetchone()[0]
    graph = walk_routing_graph(sample_conn, community)
    staff = dispatch_staff(sample_conn, community)
    rows = sample_conn.execute(
        """SELECT e.id, e.building_id, ST_X(e.geom), ST_Y(e.geom), n.id
           FROM entrance e JOIN walk_node n ON n.ref_id = e.id ORDER BY e.id""").fetchall()
    doors = Entrances(ids=tuple(r[0] for r in rows), building_ids=tuple(r[1] for r in rows),
                      points=tuple(Point(r[2], r[3]) for r in rows))
    result = coverage(graph, staff, doors, BASELINE, role="security", shift="day")
    assert np.isfinite(result.entrance_s).all()

    # networkx straight from the stored rows, not from the compiled graph
    nxg = nx.Graph()
    for a, b, kind, length in sample_conn.execute(
            "SELECT source, target, kind, length_m FROM walk_edge WHERE community_id = %s",
            (community,)):
        nxg.add_edge(a, b, s=float(walking_seconds(np.array([length]), np.array([kind]))[0]))
    team = [m for m in staff if m.role == "security" and m.shift == "day"]
    # each guard joins the networkx graph where they meet the walkway: the same snapping,
    # an independent shortest-path search
    per_s = 1 / WALK_SPEED_M_S
    for k, spot in enumerate(snap(graph, [m.position for m in team])):
        e = spot.edge
        u, v = str(graph.node_ids[graph.edge_u[e]]), str(graph.node_ids[graph.edge_v[e]])
        edge_s = nxg.edges[u, v]["s"]
        share = spot.along_m / graph.edge_length[e]
        nxg.add_edge(f"guard-{k}", u, s=share * edge_s + spot.offset_m * per_s)
        nxg.add_edge(f"guard-{k}", v, s=(1 - share) * edge_s + spot.offset_m * per_s)
    lengths = nx.multi_source_dijkstra_path_length(
        nxg, {f"guard-{k}" for k in range(len(team))}, weight="s")
    expected = np.array([lengths[r[4]] for r in rows])
    assert result.entrance_s == pytest.approx(expected, abs=0.05)


def test_closing_one_of_two_parallel_paths_keeps_the_other() -> None:
    """Two walkways join the same two junctions; closing the short one leaves the long one."""
    graph = build_walk_graph(["A", "B"], np.array([X0, X0 + 100]), np.array([Y0, Y0]),
                             np.array([0, 0]), np.array([1, 1]), np.array([100.0, 160.0]),
                             crs=UTM, edge_ids=["short", "long"])
    guard = StaffMember(id="g", role="security", shift="day", position=lonlat(0, 0))
    door = Entrances(ids=("d",), building_ids=("B",), points=(lonlat(100, 0),))
    before = coverage(graph, [guard], door, BASELINE, role="security", shift="day")
    after = coverage(graph, [guard], door, Scenario(name="s", closed_edges=("short",)),
                     role="security", shift="day")
    assert before.entrance_s[0] == pytest.approx(100 / WALK_SPEED_M_S)
    assert after.entrance_s[0] == pytest.approx(160 / WALK_SPEED_M_S)
