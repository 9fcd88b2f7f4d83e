"""Coverage recomputed after closing segments, against a naive networkx recomputation.

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
- naive: copy the networkx graph, remove the closed edges and run
  ``nx.multi_source_dijkstra_path_length`` from the guards' junctions to every
  node (no snapping, no doors: it does less).

Every round checks that both give the same seconds at every node.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import networkx as nx
import numpy as np
import pyproj
import typer
from rich.console import Console
from rich.table import Table
from shapely.geometry import Point

from bench.dispatch import SRID, street_grid
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
    out: Path = typer.Option(Path("bench/results/whatif.json")),
) -> None:
    rng = np.random.default_rng(seed)
    to_lonlat = pyproj.Transformer.from_crs(SRID, 4326, always_xy=True)
    figures: dict[str, object] = {"closed_segments": closed, "rounds": rounds}
    table = Table("junctions", "what-if (ms)", "naive networkx (ms)", "speed-up")
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
        ours, naive = [], []
        for _ in range(rounds):
            shut = rng.choice(graph.n_edges, size=closed, replace=False)
            scenario = Scenario(name="works", closed_edges=tuple(graph.edge_ids[shut]))
            began = time.perf_counter()
            result = coverage(live, staff, doors, scenario, role="security", shift="day",
                              doors=door_spots)
            ours.append(time.perf_counter() - began)

            began = time.perf_counter()
            copy = nxg.copy()
            copy.remove_edges_from(zip(u[shut].tolist(), v[shut].tolist()))
            expected = nx.multi_source_dijkstra_path_length(copy, set(guards_at.tolist()))
            naive.append(time.perf_counter() - began)

            reached = np.array(list(expected))
            assert np.allclose(result.node_s[reached], [expected[n] for n in reached], atol=1e-6)
            assert np.isinf(np.delete(result.node_s, reached)).all()
        a, b = statistics.median(ours), statistics.median(naive)
        figures[str(size)] = {"nodes": graph.n_nodes, "edges": graph.n_edges,
                              "whatif_ms": round(a * 1000, 1), "naive_networkx_ms": round(b * 1000, 1),
                              "speedup": round(b / a, 1)}
        table.add_row(f"{graph.n_nodes:,}", f"{a * 1000:.1f}", f"{b * 1000:.1f}", f"{b / a:.1f}x")
    console.print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    typer.run(main)
