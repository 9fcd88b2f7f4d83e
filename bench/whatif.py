"""Coverage recomputed after closing segments, against scipy.sparse.csgraph and networkx.

    .venv/bin/python -m bench.whatif

On street grids of about 10k and 100k junctions (bench.dispatch's jittered
grids, 10% of streets missing), 40 guards stand on random junctions. A
scenario closes 10 random segments; each round measures, on the same graph
and the same closures:

- what-if: :func:`twin.whatif.coverage.coverage` for the scenario: the
  scenario's network derived from the compiled live network (closed edges'
  entries masked out), the guards snapped, one multi-source scipy Dijkstra
  to every node, and the walking time to 2,000 doors (snapped once to the
  live network, like the compiled network itself: both belong to the live
  twin, not to the scenario);
- csgraph (the headline baseline): what a user would write with scipy:
  build the scenario's CSR from the edge arrays without the closed edges,
  ``dijkstra(csr, directed=False, indices=guards, min_only=True)`` from the
  guards' junctions, and read the doors' junctions (no snapping: it is handed
  the node indices, so it does less);
- naive: copy the networkx graph, remove the closed edges and run
  ``nx.multi_source_dijkstra_path_length`` from the guards' junctions to every
  node (no snapping, no doors: it does less).

Each side runs the same scenarios, one call each. Every round checks that all
three give the same seconds at every node.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Annotated

import networkx as nx
import numpy as np
import pyproj
import scipy.sparse as sp
import typer
from rich.console import Console
from rich.table import Table
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import Point

from bench.common import ratio, start_run
from bench.dispatch import SRID, street_grid

# The code under test; these move at merge (twin/whatif/network.py goes into twin/walkgraph.py).
from twin.dispatch import StaffMember
from twin.walkgraph import WALK_SPEED_M_S
from twin.walkgraph import snap as snap_points
from twin.whatif.coverage import Entrances, coverage
from twin.whatif.scenario import Scenario

console = Console()


def main(
    sizes: str = typer.Option("10000,100000", help="Junctions per graph, comma-separated."),
    rounds: int = typer.Option(5, help="Scenarios per graph; medians are reported."),
    closed: int = typer.Option(10, help="Segments closed per scenario."),
    seed: int = typer.Option(11),
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/whatif.json.")] = None,
) -> None:
    run = start_run("whatif", sizes=sizes, rounds=rounds, closed=closed, seed=seed,
                    guards=40, doors=2000)
    rng = np.random.default_rng(seed)
    to_lonlat = pyproj.Transformer.from_crs(SRID, 4326, always_xy=True)
    figures: dict[str, object] = {}
    baselines: dict[str, object] = {}
    ratios: dict[str, object] = {}
    table = Table("junctions", "what-if (ms)", "csgraph (ms)", "speed-up", "naive networkx (ms)",
                  "speed-up")
    for size in (int(s) for s in sizes.split(",")):
        graph, u, v, length, part = street_grid(size, rng)
        guards_at = rng.choice(part, size=40, replace=False)
        staff = [StaffMember(id=f"g{k:03d}", role="security", shift="day",
                             position=Point(*to_lonlat.transform(*graph.xy[n])))
                 for k, n in enumerate(guards_at)]
        doors_at = rng.choice(part, size=2000, replace=False)
        doors = Entrances(ids=tuple(f"d{k}" for k in range(len(doors_at))),
                          building_ids=tuple(f"b{k // 2}" for k in range(len(doors_at))),
                          points=tuple(Point(*to_lonlat.transform(*graph.xy[n])) for n in doors_at))
        # what belongs to the live twin is compiled once and kept, as the service does
        live = graph  # the graph is what-if's compiled network
        door_spots = snap_points(graph, list(doors.points))
        nxg = nx.Graph()
        nxg.add_weighted_edges_from(zip(u.tolist(), v.tolist(), (length / WALK_SPEED_M_S).tolist()))
        seconds = length / WALK_SPEED_M_S
        n = graph.n_nodes
        ours, plain, naive = [], [], []
        for _ in range(rounds):
            shut = rng.choice(graph.n_edges, size=closed, replace=False)
            scenario = Scenario(name="works", closed_edges=tuple(graph.edge_ids[shut]))
            began = time.perf_counter()
            result = coverage(live, staff, doors, scenario, role="security", shift="day",
                              doors=door_spots)
            ours.append(time.perf_counter() - began)

            began = time.perf_counter()
            keep = np.ones(len(u), dtype=bool)
            keep[shut] = False
            csr = sp.csr_matrix((seconds[keep], (u[keep], v[keep])), shape=(n, n))
            node_s = dijkstra(csr, directed=False, indices=guards_at, min_only=True)
            door_s = node_s[doors_at]
            plain.append(time.perf_counter() - began)
            np.testing.assert_allclose(result.node_s, node_s, atol=1e-6)
            np.testing.assert_allclose(result.entrance_s, door_s, atol=1e-6)

            began = time.perf_counter()
            copy = nxg.copy()
            copy.remove_edges_from(zip(u[shut].tolist(), v[shut].tolist()))
            expected = nx.multi_source_dijkstra_path_length(copy, set(guards_at.tolist()))
            naive.append(time.perf_counter() - began)

            reached = np.array(list(expected))
            assert np.allclose(result.node_s[reached], [expected[n] for n in reached], atol=1e-6)
            assert np.isinf(np.delete(result.node_s, reached)).all()
        a, c, b = statistics.median(ours), statistics.median(plain), statistics.median(naive)
        key = str(graph.n_nodes)
        figures[key] = {"nodes": graph.n_nodes, "edges": graph.n_edges, "calls": len(ours),
                        "whatif_ms": round(a * 1000, 1)}
        baselines[key] = {"csgraph_calls": len(plain), "csgraph_ms": round(c * 1000, 1),
                          "naive_networkx_calls": len(naive),
                          "naive_networkx_ms": round(b * 1000, 1)}
        ratios[key] = {"speedup_vs_csgraph": ratio(c, a, 2),
                       "speedup_vs_naive_networkx": ratio(b, a, 1)}
        table.add_row(f"{graph.n_nodes:,}", f"{a * 1000:.1f}", f"{c * 1000:.1f}", f"{c / a:.2f}x",
                      f"{b * 1000:.1f}", f"{b / a:.1f}x")
    console.print(table)
    run.write(figures, baselines=baselines, ratios=ratios, out=out, notes=[
        ("speedup_vs_X = median time of X / median time of what-if over the same scenarios; "
         "below 1, X is faster.")])


if __name__ == "__main__":
    typer.run(main)
