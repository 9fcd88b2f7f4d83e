"""Time per dispatch on street grids of 10k, 100k and 1M nodes, against scipy and networkx.

    .venv/bin/python -m bench.dispatch

Each graph is a jittered square street grid (25 m blocks) with 10% of its
streets removed at random; lengths are the straight distances. 200 staff
stand on random junctions of the largest connected part, a fifth of them
security guards, each holding 0-3 open orders (the limit is 3). Each call
dispatches a guard to a random junction.

Measured in the same run, on the same graph and the same calls:

- dispatch: the whole of :func:`twin.dispatch.dispatch`: filtering, snapping
  the incident and the staff through the STRtree, the bounded scipy Dijkstra
  and the route geometry;
- scipy.sparse.csgraph on a plain symmetric CSR of the same edges, the same
  number of calls as dispatch, each handed the node indices (no filtering,
  snapping or geometry), which is what a user would try first:
  - bounded (the headline): ``dijkstra(csr, indices=incident, limit=d)``
    where ``d`` is the true distance to the nearest qualified guard, known
    beforehand. No search from the incident can settle less, so it is the
    floor of any bounded search, dispatch's included;
  - single-source: ``dijkstra(csr, indices=incident)`` unbounded, then the
    nearest qualified guard;
  - multi-source: ``dijkstra(csr, indices=guards, min_only=True)``, then the
    incident's distance;
- networkx multi-source: ``nx.multi_source_dijkstra`` from the qualified
  guards' junctions to the incident's, which stops when the incident is
  reached. It is handed the qualified junctions and does no snapping and no
  route geometry, so it does less than dispatch does;
- networkx single-source: ``nx.single_source_dijkstra`` from the incident
  over the whole graph, the unbounded search (fewer calls: it is slow).

Each dispatch's distance is checked against csgraph's and networkx's.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime
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

# The code under test; these move at merge (the walk graph is being consolidated).
from twin.dispatch import StaffMember, dispatch
from twin.walkgraph import WalkGraph, build_walk_graph

SRID = 32650
X0, Y0 = 500_000.0, 3_300_000.0
BLOCK_M = 25.0
ROLES = ("grid_worker", "security", "cleaning", "engineer", "manager")
NOW = datetime(2025, 6, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Wuhan


def main(
    sizes: str = typer.Option("10000,100000,1000000", help="Approximate node counts."),
    staff: int = typer.Option(200, help="Staff per graph."),
    calls: str = typer.Option("200,100,40", help="Dispatches per size."),
    nx_calls: str = typer.Option("40,20,6", help="networkx multi-source calls per size."),
    full_calls: str = typer.Option("10,3,1", help="networkx single-source calls per size."),
    seed: int = typer.Option(11),
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/dispatch.json.")] = None,
) -> None:
    run = start_run("dispatch", sizes=sizes, staff=staff, calls=calls, nx_calls=nx_calls,
                    full_calls=full_calls, seed=seed)
    console = Console(width=120)
    rows = []
    plan = zip(_ints(sizes), _ints(calls), _ints(nx_calls), _ints(full_calls), strict=True)
    for size, n_calls, n_nx, n_full in plan:
        rng = np.random.default_rng(seed)
        began = time.perf_counter()
        graph, u, v, length, main_part = street_grid(size, rng)
        build_s = time.perf_counter() - began
        roster, held, at_node = _staff(graph, main_part, staff, rng)
        qualified = sorted({at_node[s.id] for s in roster
                            if s.role == "security" and held[s.id] < 3})
        incidents = rng.choice(main_part, size=n_calls, replace=False)
        to_lonlat = pyproj.Transformer.from_crs(SRID, 4326, always_xy=True)
        points = [Point(*to_lonlat.transform(*graph.xy[k])) for k in incidents]

        ours, found = [], []
        for point in points:
            t = time.perf_counter()
            result = dispatch(graph, point, roster, now=NOW, role="security", open_orders=held)
            ours.append(time.perf_counter() - t)
            found.append(result.distance_m)

        csr = _symmetric_csr(graph.n_nodes, u, v, length)
        guards = np.array(qualified)
        bounded, single, multi_cs = [], [], []
        for k, node in enumerate(incidents):
            t = time.perf_counter()
            dist = dijkstra(csr, directed=True, indices=int(node), limit=found[k] + 1e-6)
            d = float(dist[guards].min())
            bounded.append(time.perf_counter() - t)
            _same(size, found[k], d, "csgraph bounded")
            t = time.perf_counter()
            dist = dijkstra(csr, directed=True, indices=int(node))
            d = float(dist[guards].min())
            single.append(time.perf_counter() - t)
            _same(size, found[k], d, "csgraph single-source")
            t = time.perf_counter()
            dist = dijkstra(csr, directed=True, indices=guards, min_only=True)
            d = float(dist[int(node)])
            multi_cs.append(time.perf_counter() - t)
            _same(size, found[k], d, "csgraph multi-source")
        del csr

        began = time.perf_counter()
        nxg = nx.Graph()
        nxg.add_weighted_edges_from(zip(u.tolist(), v.tolist(), length.tolist()),
                                    weight="length")
        nx_build_s = time.perf_counter() - began
        multi, full = [], []
        for k, node in enumerate(incidents[:n_nx]):
            t = time.perf_counter()
            d, _ = nx.multi_source_dijkstra(nxg, qualified, target=int(node), weight="length")
            multi.append(time.perf_counter() - t)
            _same(size, found[k], d, "networkx multi-source")
        for node in incidents[:n_full]:
            t = time.perf_counter()
            dist, _ = nx.single_source_dijkstra(nxg, int(node), weight="length")
            min(dist.get(q, np.inf) for q in qualified)
            full.append(time.perf_counter() - t)
        del nxg

        row = {
            "nodes": graph.n_nodes,
            "edges": graph.n_edges,
            "qualified_staff": len(qualified),
            "build_walk_graph_s": round(build_s, 2),
            "build_networkx_s": round(nx_build_s, 2),
            "dispatch_calls": len(ours),
            "dispatch_median_ms": _ms(statistics.median(ours)),
            "dispatch_p95_ms": _ms(float(np.percentile(ours, 95))),
            "csgraph_calls": len(bounded),
            "csgraph_bounded_median_ms": _ms(statistics.median(bounded)),
            "csgraph_single_source_median_ms": _ms(statistics.median(single)),
            "csgraph_multi_source_median_ms": _ms(statistics.median(multi_cs)),
            "networkx_multi_source_calls": len(multi),
            "networkx_multi_source_median_ms": _ms(statistics.median(multi)),
            "networkx_single_source_calls": len(full),
            "networkx_single_source_median_ms": _ms(statistics.median(full)),
        }
        # Ratios of medians: baseline time / dispatch time (above 1: dispatch is faster).
        mine = statistics.median(ours)
        row["speedup_vs_csgraph_bounded"] = ratio(statistics.median(bounded), mine, 2)
        row["speedup_vs_csgraph_single_source"] = ratio(statistics.median(single), mine, 2)
        row["speedup_vs_csgraph_multi_source"] = ratio(statistics.median(multi_cs), mine, 2)
        row["speedup_vs_multi_source"] = ratio(statistics.median(multi), mine, 1)
        row["speedup_vs_single_source"] = ratio(statistics.median(full), mine, 1)
        rows.append(row)
        console.print(f"{graph.n_nodes:,} nodes done", style="dim")

    baseline_keys = [k for k in rows[0] if k.startswith(("csgraph_", "networkx_"))]
    ratio_keys = [k for k in rows[0] if k.startswith("speedup_")]
    run.write(
        {str(r["nodes"]): {k: v for k, v in r.items()
                           if k not in baseline_keys and k not in ratio_keys} for r in rows},
        baselines={str(r["nodes"]): {k: r[k] for k in baseline_keys} for r in rows},
        ratios={str(r["nodes"]): {k: r[k] for k in ratio_keys} for r in rows},
        notes=[("speedup_vs_X = median time of X / median time of dispatch, same graph, "
               "same incidents; below 1, X is faster."),
               ("csgraph bounded is handed the true distance as its limit: the floor of any "
               "search from the incident.")],
        out=out)
    table = Table(title="time per dispatch (median; p95 for dispatch)")
    for name in ("nodes", "dispatch ms", "p95 ms", "csgraph bounded ms", "speedup",
                 "csgraph single ms", "nx multi-source ms", "speedup", "build s"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(f"{r['nodes']:,}", f"{r['dispatch_median_ms']}", f"{r['dispatch_p95_ms']}",
                      f"{r['csgraph_bounded_median_ms']}",
                      f"{r['speedup_vs_csgraph_bounded']}x",
                      f"{r['csgraph_single_source_median_ms']}",
                      f"{r['networkx_multi_source_median_ms']}",
                      f"{r['speedup_vs_multi_source']}x", f"{r['build_walk_graph_s']}")
    console.print(table)


def street_grid(
    size: int, rng: np.random.Generator
) -> tuple[WalkGraph, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A jittered street grid of about ``size`` junctions with 10% of streets gone.

    Returns the compiled graph, the edge arrays (for networkx) and the
    junctions of the largest connected part.
    """
    side = round(np.sqrt(size))
    n = side * side
    gx, gy = np.meshgrid(np.arange(side), np.arange(side))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) * BLOCK_M
    xy += rng.uniform(-0.2, 0.2, (n, 2)) * BLOCK_M
    idx = np.arange(n).reshape(side, side)
    u = np.r_[idx[:, :-1].ravel(), idx[:-1, :].ravel()]
    v = np.r_[idx[:, 1:].ravel(), idx[1:, :].ravel()]
    keep = rng.random(len(u)) >= 0.10
    u, v = u[keep], v[keep]
    length = np.hypot(*(xy[v] - xy[u]).T)
    graph = build_walk_graph(np.arange(n).astype(str), X0 + xy[:, 0], Y0 + xy[:, 1], u, v,
                             length, crs=SRID)
    labels = graph.component
    largest = np.bincount(labels).argmax()
    return graph, u, v, length, np.flatnonzero(labels == largest)


def _symmetric_csr(n: int, u: np.ndarray, v: np.ndarray, length: np.ndarray) -> sp.csr_matrix:
    """The plain CSR a user would build from the same edges: both directions, no probe row."""
    return sp.csr_matrix((np.r_[length, length], (np.r_[u, v], np.r_[v, u])), shape=(n, n))


def _same(size: int, ours: float, theirs: float, name: str) -> None:
    if abs(ours - theirs) > 1e-3:
        raise AssertionError(f"{size}: dispatch walked {ours} m, {name} {theirs} m")


def _staff(graph: WalkGraph, part: np.ndarray, count: int, rng: np.random.Generator
           ) -> tuple[list[StaffMember], dict[str, int], dict[str, int]]:
    to_lonlat = pyproj.Transformer.from_crs(SRID, 4326, always_xy=True)
    nodes = rng.choice(part, size=count, replace=False)
    roster, held, at_node = [], {}, {}
    for k, node in enumerate(nodes):
        staff_id = f"s{k:04d}"
        roster.append(StaffMember(id=staff_id, role=ROLES[k % len(ROLES)], shift="day",
                                  position=Point(*to_lonlat.transform(*graph.xy[node]))))
        held[staff_id] = int(rng.integers(0, 4))
        at_node[staff_id] = int(node)
    return roster, held, at_node


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


if __name__ == "__main__":
    typer.run(main)
