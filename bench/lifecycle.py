"""The figures behind the chunk intervals and the retention: rows per second and bytes per row.

    .venv/bin/python -m bench.lifecycle --memory-gib 64

The district of the load benchmark (``--buildings 5000 --devices 500000``,
148 communities) is generated; one of its communities lives one whole day
through the simulator (its devices at their report intervals, badges on their
rounds, the day's rhythms) and ingest's decoder. The rows are COPYed into the
twin's hypertables (with migration 0017's indexes) and measured there:

- **rows per second** of ``reading``, ``event`` and ``staff_position``: the
  community's day, scaled to the district by its devices (by its staff for
  positions), as a day's mean;
- **bytes per row**: heap, indexes and TOAST of each hypertable after
  ``VACUUM ANALYZE``, divided by its rows;
- **the rollup**: ``twin db lifecycle``'s job run over the day: the hours
  rolled up, the rows and bytes of ``reading_hourly``, and the job's time
  beside a ``count(*)`` of the same readings (the floor any rollup stands on).

Then :func:`twin.lifecycle.chunk_intervals` chooses the interval of each
hypertable for a server of ``--memory-gib``, and the sizes of 90 days of raw
readings and two years of rollups are worked out. docs/operations.md quotes
the result; migration 0017 sets the intervals.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import pandas as pd
import shapely
import typer
from psycopg import sql

from bench.common import bench_database, start_run
from gis_data.generator import generate_district
from ingest.decode import Decoded, decode
from ingest.simulator import Simulation
from ingest.simulator.world import Community
from twin.lifecycle import Retention, Volume, chunk_intervals
from twin.model import DeviceInfo
from twin.store.connection import connect
from twin.store.lifecycle import run_job
from twin.walkgraph import WalkGraph, from_rows

#: A Monday in the community's time zone: the day lived.
START = datetime(2026, 11, 2, tzinfo=timezone(timedelta(hours=8)))
HYPERTABLES = ("reading", "event", "staff_position")


def main(
    buildings: int = typer.Option(5000, help="Buildings of the district."),
    devices: int = typer.Option(500_000, help="Devices of the district."),
    memory_gib: float = typer.Option(64.0, help="Memory of the database server."),
    raw_days: int = typer.Option(90, help="Days of raw readings kept."),
    rollup_days: int = typer.Option(730, help="Days of hourly rollups kept."),
    seed: int = typer.Option(1),
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/lifecycle.json.")] = None,
) -> None:
    run = start_run("lifecycle", buildings=buildings, devices=devices, memory_gib=memory_gib,
                    raw_days=raw_days, rollup_days=rollup_days, seed=seed)
    district = dict(generate_district(buildings=buildings, devices=devices, seed=seed).tables())
    community_id = str(district["community"]["id"].iloc[0])
    community = _community(district, community_id)
    scale_devices = len(district["device"]) / len(community.devices)
    scale_staff = len(district["staff"]) / int(community.staff is not None
                                               and len(community.staff))
    began = time.perf_counter()
    day = _live_one_day(community, seed)
    simulate_s = time.perf_counter() - began
    print(f"{community_id}: {len(community.devices):,} devices lived one day in "
          f"{simulate_s:.0f} s: {len(day.readings):,} readings, {len(day.events):,} events, "
          f"{len(day.positions):,} positions", flush=True)

    with bench_database() as url, connect(url) as conn:
        _copy_day(conn, day, community)
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE")
        conn.autocommit = False
        size = {t: _size(conn, t) for t in HYPERTABLES}
        began = time.perf_counter()
        conn.execute("SELECT count(*) FROM reading").fetchone()
        scan_s = time.perf_counter() - began
        report = run_job(conn, Retention(readings=timedelta(days=raw_days),
                                         rollups=timedelta(days=rollup_days)),
                         now=START + timedelta(days=1, hours=1))
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE reading_hourly")
        rollup = _size(conn, "reading_hourly")

    rows_per_day = {"reading": len(day.readings) * scale_devices,
                    "event": len(day.events) * scale_devices,
                    "staff_position": len(day.positions) * scale_staff,
                    "reading_hourly": rollup["rows"] * scale_devices}
    sizes = size | {"reading_hourly": rollup}
    volumes = [Volume(t, rows_per_day[t] / 86_400, sizes[t]["bytes"] / sizes[t]["rows"])
               for t in (*HYPERTABLES, "reading_hourly")]
    memory = memory_gib * 2**30
    intervals = chunk_intervals(volumes, memory_bytes=memory)
    figures: dict[str, object] = {
        "district": {"communities": len(district["community"]),
                     "devices": len(district["device"]), "staff": len(district["staff"])},
        "community_lived": {"id": community_id, "devices": len(community.devices),
                            "readings": len(day.readings), "events": len(day.events),
                            "positions": len(day.positions), "simulate_s": round(simulate_s, 1)},
        "scale": {"by_devices": round(scale_devices, 2), "by_staff": round(scale_staff, 2)},
        "tables": {v.table: {
            "rows_per_s": round(v.rows_per_s, 1),
            "rows_per_day": round(rows_per_day[v.table]),
            "bytes_per_row": round(v.bytes_per_row, 1),
            "heap_bytes_per_row": round(sizes[v.table]["heap"] / sizes[v.table]["rows"], 1),
            "index_bytes_per_row": round(sizes[v.table]["index"] / sizes[v.table]["rows"], 1),
            "gib_per_day": round(v.bytes_per_s * 86_400 / 2**30, 2),
            "chunk_interval": str(intervals[v.table]),
            "chunk_gib": round(v.chunk_bytes(intervals[v.table]) / 2**30, 2),
        } for v in volumes},
        "memory_gib": memory_gib,
        "chunks_being_written_gib": round(
            sum(v.chunk_bytes(intervals[v.table]) for v in volumes) / 2**30, 2),
        "budget_gib": round(memory * 0.25 / 2**30, 2),
        "raw_readings_gib": round(volumes[0].bytes_per_s * 86_400 * raw_days / 2**30),
        "rollups_gib": round(volumes[3].bytes_per_s * 86_400 * rollup_days / 2**30),
        "job_one_community_day": {"hours": report.hours, "rollup_rows": report.rollup_rows,
                                  "seconds": round(report.seconds, 2)},
        "job_vs_scan": round(report.seconds / scan_s, 1),
    }
    for memory_option in (16, 32, 64, 128):
        try:
            chosen = chunk_intervals(volumes, memory_bytes=memory_option * 2**30)
            figures[f"intervals_at_{memory_option}_gib"] = {t: str(i) for t, i in chosen.items()}
        except ValueError as e:
            figures[f"intervals_at_{memory_option}_gib"] = str(e)
    for key, value in figures.items():
        print(f"{key}: {value}")
    run.write(figures, baselines={"scan_count_one_community_day_s": round(scan_s, 3)},
              ratios={"job_vs_scan": figures.pop("job_vs_scan")}, out=out, notes=[
                  ("rows_per_s is the district's mean over the day: the community's rows "
                   "times scale.by_devices (by_staff for staff_position)."),
                  "bytes_per_row is heap + indexes + TOAST after VACUUM ANALYZE, per row.",
                  ("job_vs_scan = the job's time over one community-day / count(*) of its "
                   "readings."),
              ])


def _live_one_day(community: Community, seed: int) -> Decoded:
    """What ingest makes of one simulated day of the community (received a minute late)."""
    d = community.devices
    directory = {i: DeviceInfo(i, t, c)
                 for i, t, c in zip(d["id"], d["type"], d["community_id"])}
    simulation = Simulation(community, start=START, seed=seed, tick_s=60)
    into = Decoded()
    for hour in range(1, 25):
        received = START + timedelta(hours=hour, minutes=1)
        for topic, payload in simulation.advance(START + timedelta(hours=hour)):
            decode(topic, payload, received, directory.get, into)
    if into.dead:
        raise SystemExit(f"{len(into.dead)} messages were refused, e.g. {into.dead[0][3:5]}")
    return into


def _copy_day(conn, day: Decoded, community: Community) -> None:
    with conn.cursor() as cur:
        with cur.copy("COPY reading (time, device_id, metric, value, value_text, received_at) "
                      "FROM STDIN") as copy:
            for row in day.readings:
                copy.write_row(row)
        with cur.copy("COPY event (time, device_id, event_id, kind, class, confidence, method, "
                      "direction, subject_id, value, attrs, received_at) FROM STDIN") as copy:
            for row in day.events:
                copy.write_row(row)  # attrs is JSON text, which text COPY reads as it is
        assert community.staff is not None
        holder = dict(zip(community.staff["badge_id"], community.staff["id"]))
        with cur.copy("COPY staff_position (time, staff_id, geom, accuracy_m, floor, source, "
                      "device_id, received_at) FROM STDIN") as copy:
            for ts, badge, lon, lat, accuracy, floor, received, *_ in day.positions:
                copy.write_row((ts, holder[badge], f"SRID=4326;POINT({lon} {lat})", accuracy,
                                floor, "badge", badge, received))


def _size(conn, table: str) -> dict[str, float]:
    heap, index, toast, total = conn.execute(
        "SELECT table_bytes, index_bytes, toast_bytes, total_bytes "
        "FROM hypertable_detailed_size(%s)", (table,)).fetchone()
    rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
                        ).fetchone()[0]
    return {"rows": rows, "heap": heap + (toast or 0), "index": index, "bytes": total}


def _community(tables: dict[str, pd.DataFrame], community_id: str) -> Community:
    """The simulator's frames of one community of a generated district, badges and walkways
    included."""
    def mine(name: str) -> pd.DataFrame:
        frame = tables[name]
        return frame[frame["community_id"] == community_id]

    building, facility, staff = mine("building"), mine("facility"), mine("staff")
    unit = tables["unit"][tables["unit"]["building_id"].isin(building["id"])]
    resident = tables["resident"][tables["resident"]["unit_id"].isin(unit["id"])]
    unit_building = unit.set_index("id")["building_id"]
    posts = tables["facility"].set_index("id").geometry.reindex(staff["post_id"]).to_numpy()
    return Community(
        devices=pd.DataFrame(mine("device").drop(columns="geometry")).reset_index(drop=True),
        residents=pd.DataFrame({
            "id": resident["id"], "unit_id": resident["unit_id"],
            "building_id": resident["unit_id"].map(unit_building),
            "care_flags": resident["care_flags"], "age_band": resident["age_band"]}),
        facilities=pd.DataFrame(facility[["id", "kind", "name", "building_id"]]),
        buildings=pd.DataFrame(building[["id", "name"]]),
        staff=pd.DataFrame({"id": staff["id"], "shift": staff["shift"],
                            "badge_id": staff["badge_id"], "post_lon": shapely.get_x(posts),
                            "post_lat": shapely.get_y(posts)}),
        walkway=_walkway(tables, community_id))


def _walkway(tables: dict[str, pd.DataFrame], community_id: str) -> WalkGraph:
    srid = int(tables["community"].set_index("id").loc[community_id, "local_srid"])
    node, edge = tables["walk_node"], tables["walk_edge"]
    n = node[node["community_id"] == community_id].to_crs(srid)
    e = edge[edge["community_id"] == community_id].to_crs(srid)
    return from_rows(
        list(zip(n["id"], n["kind"], n["ref_id"], n.geometry.x, n.geometry.y)),
        list(zip(e["id"], e["source"], e["target"], e["kind"], e["length_m"],
                 shapely.to_wkb(e.geometry.to_numpy()))), crs=srid)


if __name__ == "__main__":
    typer.run(main)
