"""Generating a district and loading it into the twin, against a raw COPY baseline.

    .venv/bin/python -m bench.load --buildings 5000 --devices 500000

Reports the generator's wall time and the loader's rows/s, as ratios to two
baselines measured in the same run on the same server (this machine is
shared and noisy; ratios travel, absolute numbers do not):

- raw COPY: a bare binary COPY of narrow (time, text, float) rows;
- bare tables: the loader's own CSV copied into copies of the twin's tables
  without keys or indexes, which shows how much of the load time is the
  database keeping the twin's indexes and foreign keys, not the loader.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from bench.common import (
    NARROW_COLUMNS,
    bench_database,
    narrow_rows,
    ratio,
    raw_copy_rate,
    start_run,
)
from gis_data.generator import generate_district
from twin.store.connection import connect
from twin.store.loader import copy_csv, load_dataset


def main(
    buildings: int = typer.Option(5000, help="Buildings in the district."),
    devices: int = typer.Option(500_000, help="Devices in the district."),
    seed: int = typer.Option(7),
    out: Annotated[Path | None, typer.Option(
        help="Where to write the figures; default: bench/results/load.json.")] = None,
) -> None:
    run = start_run("load", buildings=buildings, devices=devices, seed=seed)
    began = time.perf_counter()
    dataset = generate_district(buildings=buildings, devices=devices, seed=seed)
    generate_s = time.perf_counter() - began
    rows = sum(len(frame) for _, frame in dataset.tables())

    with bench_database() as url:
        baseline = raw_copy_rate(url, narrow_rows(1_000_000), NARROW_COLUMNS)
        with connect(url) as conn:
            began = time.perf_counter()
            counts = load_dataset(conn, dataset)
            load_s = time.perf_counter() - began
            bare_s = _bare_copy_seconds(conn, dataset)
    load_rate = rows / load_s
    figures = {
        "buildings": counts["building"],
        "flats": counts.get("unit"),
        "devices": counts["device"],
        "residents": counts["resident"],
        "rows": rows,
        "generate_s": round(generate_s, 1),
        "load_s": round(load_s, 1),
        "load_rows_per_s": round(load_rate),
    }
    baselines = {
        "raw_copy_narrow_rows_per_s": round(baseline),
        "bare_tables_rows_per_s": round(rows / bare_s),
    }
    ratios = {
        "load_over_raw_copy": ratio(load_rate, baseline),
        "load_over_bare_tables": ratio(bare_s, load_s, 2),
    }
    for key, value in (figures | baselines | ratios).items():
        print(f"{key:>26}  {value:,}" if isinstance(value, int) else f"{key:>26}  {value}")
    run.write(figures, baselines=baselines, ratios=ratios, out=out)


def _bare_copy_seconds(conn, dataset) -> float:
    """Seconds to build the same CSV and COPY it into key- and index-free tables."""
    began = time.perf_counter()
    for table, frame in dataset.tables():
        columns, text = copy_csv(table, frame)
        conn.execute(f"CREATE TABLE bench_{table} (LIKE {table})")
        with conn.cursor() as cur, cur.copy(
            f"COPY bench_{table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
        ) as copy:
            copy.write(text)
    conn.commit()
    seconds = time.perf_counter() - began
    for table, _ in dataset.tables():
        conn.execute(f"DROP TABLE bench_{table}")
    conn.commit()
    return seconds


if __name__ == "__main__":
    typer.run(main)
