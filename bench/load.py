"""Generating a district and loading it into the twin, against a raw COPY baseline.

    .venv/bin/python -m bench.load --buildings 5000 --devices 500000

Reports the generator's wall time, and the loader's rows/s as a ratio to a
bare binary COPY of narrow rows measured in the same run on the same server
(this machine is shared and noisy; ratios travel, absolute numbers do not).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer

from bench.common import bench_database, raw_copy_rate
from gis_data.generator import generate_district
from twin.store.connection import connect
from twin.store.loader import load_dataset


def main(
    buildings: int = typer.Option(5000, help="Buildings in the district."),
    devices: int = typer.Option(500_000, help="Devices in the district."),
    seed: int = typer.Option(7),
    out: Path = typer.Option(Path("bench/results/load.json"), help="Where to write the figures."),
) -> None:
    began = time.perf_counter()
    dataset = generate_district(buildings=buildings, devices=devices, seed=seed)
    generate_s = time.perf_counter() - began
    rows = sum(len(frame) for _, frame in dataset.tables())

    with bench_database() as url:
        baseline = raw_copy_rate(url)
        with connect(url) as conn:
            began = time.perf_counter()
            counts = load_dataset(conn, dataset)
            load_s = time.perf_counter() - began
    load_rate = rows / load_s
    figures = {
        "buildings": counts["building"],
        "devices": counts["device"],
        "residents": counts["resident"],
        "rows": rows,
        "generate_s": round(generate_s, 1),
        "load_s": round(load_s, 1),
        "load_rows_per_s": round(load_rate),
        "raw_copy_rows_per_s": round(baseline),
        "load_vs_raw_copy": round(load_rate / baseline, 2),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    for key, value in figures.items():
        print(f"{key:>22}  {value:,}" if isinstance(value, int) else f"{key:>22}  {value}")


if __name__ == "__main__":
    typer.run(main)
