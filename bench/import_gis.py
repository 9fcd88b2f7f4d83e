"""Importing a district's GIS layers with `twin import`, against same-run baselines.

    .venv/bin/python -m bench.import_gis --buildings 5000

A district from the generator (148 copies of the sample site plan: 5,032
buildings, 9,324 entrances, 17,908 road segments) is written as one
GeoPackage with three layers: ``buildings`` (with a height and a levels
column), ``entrances`` (with their building's source id) and ``roads``. The
district's facilities and devices are not in the file; two imports are timed:

1. **buildings only** (``--layer buildings``): read, repair, heights, ids and
   the write into an empty twin;
2. **the whole file into the twin the first import made**: buildings again
   (now all unchanged), entrances and roads, and the walkway graph of the
   district built from the roads with every entrance attached.

The walkway graph is then built a second time on its own, in memory (no
reading, no database), with the district's 13,024 facilities and 205,424
devices attached too.

Baselines, measured in the same run (ratios travel, absolute times do not):

- reading the GeoPackage's layers with pyogrio (what any import must pay);
- COPY of the same building rows into a key- and index-free copy of the
  ``building`` table (the write floor);
- noding the road lines alone with ``shapely.union_all`` and the STRtree
  nearest-edge query for every place (the graph's two unavoidable steps).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pyogrio
import pyproj
import shapely
import typer

from bench.common import bench_database, scratch_dir, start_run
from gis_data.generator import generate_district

# The code under test; the walkway graph moves at merge (consolidated into twin/walkgraph.py).
from gis_data.importer.service import STEPS, import_path
from gis_data.importer.walkgraph import node_walkways
from twin.store.connection import connect
from twin.store.loader import copy_csv


def main(
    buildings: int = typer.Option(5000, help="Buildings in the district."),
    seed: int = typer.Option(7),
    out: Annotated[Path | None, typer.Option(
        help="Where to write the figures; default: bench/results/import_gis.json.")] = None,
) -> None:
    run = start_run("import_gis", buildings=buildings, seed=seed)
    district = generate_district(buildings=buildings, devices=0, seed=seed)
    figures: dict[str, object] = {}
    with scratch_dir() as root, bench_database() as url:
        path = root / "district.gpkg"
        layers = _write_layers(district, path)
        figures.update({f"{k}_in_file": len(v) for k, v in layers.items()})

        began = time.perf_counter()
        for name in layers:
            pyogrio.read_dataframe(path, layer=name)
        figures["baseline_read_all_layers_s"] = round(time.perf_counter() - began, 2)
        began = time.perf_counter()
        pyogrio.read_dataframe(path, layer="buildings")
        read_buildings_s = time.perf_counter() - began

        with connect(url) as conn:
            copy_s = _bare_copy_seconds(conn, district.building)
            steps: dict[str, float] = {}
            began = time.perf_counter()
            result = import_path(conn, path, community_id="district", layers=["buildings"],
                                 step=_timer(steps))
            buildings_s = time.perf_counter() - began
            figures["buildings_imported"] = result.report.written["building"]["inserted"]
            figures["import_buildings_s"] = round(buildings_s, 2)
            figures["import_buildings_steps_s"] = _rounded(steps)
            figures["baseline_read_buildings_s"] = round(read_buildings_s, 2)
            figures["baseline_copy_buildings_s"] = round(copy_s, 2)
            figures["import_buildings_vs_read_plus_copy"] = round(
                (read_buildings_s + copy_s) / buildings_s, 3)

            steps = {}
            began = time.perf_counter()
            result = import_path(conn, path, community_id="district", step=_timer(steps))
            whole_s = time.perf_counter() - began
            graph = result.report.graph
            figures["import_whole_file_s"] = round(whole_s, 2)
            figures["import_whole_file_steps_s"] = _rounded(steps)
            figures["graph_nodes"] = result.report.written["walk_node"]["inserted"]
            figures["graph_edges"] = result.report.written["walk_edge"]["inserted"]
            figures["graph_components"] = graph.components
            figures["buildings_unchanged_on_reimport"] = \
                result.report.written["building"]["unchanged"]

    figures.update(_graph_in_memory(district))
    for key, value in figures.items():
        print(f"{key:>40}  {value}")
    baselines = {k: figures.pop(k) for k in list(figures) if k.startswith("baseline_")}
    ratios = {k: figures.pop(k) for k in list(figures) if "_vs_" in k}
    run.write(figures, baselines=baselines, ratios=ratios, out=out, notes=[
        ("Ratios are baseline time / import time: the share of the import that is "
        "unavoidable reading, writing or noding.")])


def _write_layers(district, path: Path) -> dict[str, pd.DataFrame]:
    b = district.building
    source = b["id"].str.replace("wh-", "", regex=False)
    buildings = b[["geometry"]].assign(
        source_id=source.to_numpy(), name=b["name"].to_numpy(), height=b["height_m"].to_numpy(),
        levels=b["floors"].to_numpy())
    e = district.entrance
    entrances = e[["geometry"]].assign(
        source_id=e["id"].str.replace("wh-", "", regex=False).to_numpy(),
        building_id=e["building_id"].str.replace("wh-", "", regex=False).to_numpy(),
        name=e["name"].to_numpy())
    w = district.walk_edge
    roads = w.loc[w["kind"] == "road", ["geometry"]].assign(kind="road")
    layers = {"buildings": buildings, "entrances": entrances, "roads": roads}
    for name, frame in layers.items():
        pyogrio.write_dataframe(frame, path, layer=name, driver="GPKG")
    mapping = path.with_suffix(".toml")
    mapping.write_text('[layers.buildings]\nid = "source_id"\n'
                       '[layers.entrances]\nrole = "entrances"\nid = "source_id"\n'
                       'building = "building_id"\n'
                       '[layers.roads]\nrole = "paths"\n')
    return layers


def _graph_in_memory(district) -> dict[str, object]:
    """The walkway graph of the whole district with every entrance, facility and device."""
    srid = int(district.community["local_srid"].iloc[0])
    to_metric = pyproj.Transformer.from_crs(4326, srid, always_xy=True)

    def metric(geoms: np.ndarray) -> np.ndarray:
        return shapely.transform(np.asarray(geoms, dtype=object), lambda xy: np.column_stack(
            to_metric.transform(xy[:, 0], xy[:, 1])))

    w = district.walk_edge
    lines = metric(w.loc[w["kind"] == "road", "geometry"].to_numpy())
    e, f, d = district.entrance, district.facility, district.device
    places = pd.DataFrame({
        "ref_id": np.concatenate([e["id"], f["id"], d["id"]]),
        "kind": ["entrance"] * len(e) + ["facility"] * len(f) + ["device"] * len(d),
        "building_id": np.concatenate([e["building_id"], f["building_id"],
                                       d["building_id"]]).astype(object),
        "link_kind": ["footway"] * len(e) + ["link"] * (len(f) + len(d)),
        "geometry": metric(np.concatenate([e.geometry.to_numpy(), f.geometry.to_numpy(),
                                           d.geometry.to_numpy()])),
    })
    places["building_id"] = places["building_id"].where(places["building_id"].notna(), None)
    began = time.perf_counter()
    built = node_walkways(lines, np.full(len(lines), "road", dtype=object), places, crs=srid)
    graph_s = time.perf_counter() - began

    began = time.perf_counter()
    noded = shapely.get_parts(shapely.union_all(lines, grid_size=0.001))
    tree = shapely.STRtree(noded)
    tree.query_nearest(places["geometry"].to_numpy(), all_matches=False)
    floor_s = time.perf_counter() - began
    return {
        "graph_in_memory_places": len(places),
        "graph_in_memory_nodes": built.graph.n_nodes,
        "graph_in_memory_edges": built.graph.n_edges,
        "graph_in_memory_components": built.report.components,
        "graph_in_memory_s": round(graph_s, 2),
        "baseline_noding_and_nearest_s": round(floor_s, 2),
        "graph_vs_noding_and_nearest": round(floor_s / graph_s, 3),
    }


def _bare_copy_seconds(conn, frame: pd.DataFrame) -> float:
    began = time.perf_counter()
    columns, text = copy_csv("building", frame)
    conn.execute("CREATE TABLE bench_building (LIKE building)")
    with conn.cursor() as cur, cur.copy(
        f"COPY bench_building ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
    ) as copy:
        copy.write(text)
    conn.commit()
    seconds = time.perf_counter() - began
    conn.execute("DROP TABLE bench_building")
    conn.commit()
    return seconds


def _timer(steps: dict[str, float]):
    last = {"name": None, "at": time.perf_counter()}

    def step(name: str) -> None:
        now = time.perf_counter()
        if last["name"] is not None:
            steps[last["name"]] = now - last["at"]
        last.update(name=name, at=now)

    assert STEPS[-1] == "done"
    return step


def _rounded(steps: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 2) for k, v in steps.items()}


if __name__ == "__main__":
    typer.run(main)
