"""Replaying 10 million stored readings through a changed threshold, against a naive recomputation.

    .venv/bin/python -m bench.whatif_replay --readings 10000000

The sample community gets 1,000 more CO sensors in its two garages; each
reports every 259.2 s for 30 days (10M readings at the default), a
background of 2-25 ppm with about one excursion a day of 5-60 minutes at
30-90 ppm. They are COPYed into the ``reading`` hypertable. Then, measured
in the same run on the same server (medians of ``--rounds``):

- **replay**: `twin.store.whatif_queries.threshold_firings` for the shipped
  ``garage-co`` rule with ``high.above`` set to 35 over the 30 days: one SQL
  query (gaps and islands with window functions, per-day ``time_bucket``);
- **replay both**: `replay_rule`, the rule as it is and as changed, beside
  what the live system did (two replays and the alarm history);
- **scan**: ``SELECT count(*)`` of the same readings: what merely reading
  them costs in the database, the floor any replay stands on;
- **naive**: the same readings fetched into pandas (``COPY ... TO STDOUT``)
  and the same episode logic run there, vectorised (sort, shift, cumsum,
  groupby). It checks that both give the same firings on every day.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer

from bench.common import bench_database, start_run
from gis_data import SAMPLE_DIR
from gis_data.dataset import read_dataset
from twin.rules.compile import library_dir, load_directory
from twin.store.connection import connect
from twin.store.loader import load_dataset

# The code under test.
from twin.store.whatif_queries import replay_rule, threshold_firings
from twin.whatif.replay import ThresholdSpec, threshold_spec

START = datetime(2026, 10, 1, tzinfo=timezone(timedelta(hours=8)))
DAYS = 30
GARAGES = ("wh-guanggu-f022", "wh-guanggu-f023")
TZ = "Asia/Shanghai"


def main(
    readings: int = typer.Option(10_000_000, help="Readings to store and replay."),
    sensors: int = typer.Option(1000, help="CO sensors added to the sample's garages."),
    rounds: int = typer.Option(3, help="Rounds of each measurement; medians are reported."),
    seed: int = typer.Option(5),
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/whatif_replay.json.")] = None,
) -> None:
    run = start_run("whatif_replay", readings=readings, sensors=sensors, rounds=rounds,
                    seed=seed)
    rule = next(r for r in load_directory(library_dir()) if r.id == "garage-co")
    params = {"high.above": 35}
    spec = threshold_spec(rule, params)
    assert isinstance(spec, ThresholdSpec)
    end = START + timedelta(days=DAYS)
    per_sensor = readings // sensors
    figures: dict[str, object] = {"readings": per_sensor * sensors, "sensors": sensors,
                                  "days": DAYS, "rule": rule.id, "params": params}
    with bench_database() as url, connect(url) as conn:
        load_dataset(conn, read_dataset(SAMPLE_DIR))
        ids = _add_sensors(conn, sensors)
        began = time.perf_counter()
        _copy_readings(conn, ids, per_sensor, np.random.default_rng(seed))
        load_s = time.perf_counter() - began
        conn.execute("ANALYZE reading")
        conn.commit()
        figures["copy_readings_per_s"] = round(per_sensor * sensors / load_s)
        _print(figures)
        replay_s, both_s, scan_s, naive_s = [], [], [], []
        got = naive = None
        for _ in range(rounds):
            began = time.perf_counter()
            got = threshold_firings(conn, spec, start=START, end=end, tz=TZ)
            replay_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            replay_rule(conn, rule, start=START, end=end, params=params, tz=TZ)
            both_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            conn.execute("SELECT count(*) FROM reading WHERE metric = 'co' "
                         "AND time >= %s AND time < %s", (START, end)).fetchone()
            scan_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            naive = _naive(conn, spec, start=START, end=end)
            naive_s.append(time.perf_counter() - began)
        if got != naive:
            raise SystemExit(f"replay and naive disagree:\n{got}\n{naive}")
    replay, both = statistics.median(replay_s), statistics.median(both_s)
    scan, slow = statistics.median(scan_s), statistics.median(naive_s)
    figures |= {
        "firings": sum(got.values()), "days_with_firings": len(got),
        "replay_s": round(replay, 2), "replay_each_round_s": [round(s, 2) for s in replay_s],
        "replay_baseline_and_scenario_and_history_s": round(both, 2),
        "scan_count_s": round(scan, 2), "replay_vs_scan": round(replay / scan, 1),
        "naive_pandas_s": round(slow, 2), "naive_vs_replay": round(slow / replay, 1),
        "goal_replay_s": 10.0, "goal_met": replay <= 10.0,
        "same_firings_every_day": True,
    }
    _print(figures)
    baselines = {k: figures.pop(k) for k in ("scan_count_s", "naive_pandas_s")}
    ratios = {k: figures.pop(k) for k in ("replay_vs_scan", "naive_vs_replay")}
    run.write(figures, baselines=baselines, ratios=ratios, out=out, notes=[
        ("replay_vs_scan = replay time / count(*) scan time; naive_vs_replay = pandas time / "
        "replay time (above 1: the replay is faster)."),
        "copy_readings_per_s is the setup's COPY, reported for reference; it has no baseline."])


def _add_sensors(conn, n: int) -> list[str]:
    """n CO sensors, half in each garage, placed where the sample's first CO sensor is."""
    conn.execute(
        """INSERT INTO device (id, community_id, type, name, floor, facility_id,
                               credentials_id, geom)
           SELECT 'bench-co-' || i, community_id, 'co_sensor', 'bench CO ' || i, -1,
                  (%s::text[])[1 + i %% 2], 'cred-bench-co-' || i, geom
           FROM device, generate_series(1, %s) AS i
           WHERE device.id = 'wh-guanggu-d01273'""", (list(GARAGES), n))
    conn.commit()
    return [f"bench-co-{i}" for i in range(1, n + 1)]


def _copy_readings(conn, ids: list[str], per_sensor: int, rng: np.random.Generator) -> None:
    """Every sensor's readings, a block of sensors per COPY (CSV built by numpy and pandas)."""
    step = DAYS * 86400 / per_sensor
    offsets = (np.arange(per_sensor) * step * 1e6).astype("timedelta64[us]")
    t0 = np.datetime64(START.astimezone(UTC).replace(tzinfo=None), "us")
    stamps = np.datetime_as_string(t0 + offsets, unit="ms") + "Z"
    excursions = max(1, DAYS)  # about one a day
    for block in range(0, len(ids), 50):
        chunk = ids[block:block + 50]
        values = rng.uniform(2, 25, size=(len(chunk), per_sensor))
        for row in range(len(chunk)):
            begins = rng.integers(0, per_sensor, size=excursions)
            lengths = np.maximum(1, (rng.uniform(300, 3600, size=excursions) / step)).astype(int)
            levels = rng.uniform(30, 90, size=excursions)
            for b, n, level in zip(begins, lengths, levels, strict=True):
                values[row, b:b + n] = level + rng.normal(0, 3, size=len(values[row, b:b + n]))
        frame = pd.DataFrame({"time": np.tile(stamps, len(chunk)),
                              "device_id": np.repeat(chunk, per_sensor), "metric": "co",
                              "value": values.ravel().round(1)})
        buffer = io.StringIO()
        frame.to_csv(buffer, header=False, index=False)
        with conn.cursor() as cur, cur.copy(
                "COPY reading (time, device_id, metric, value) FROM STDIN (FORMAT csv)") as copy:
            copy.write(buffer.getvalue())
        conn.commit()


def _naive(conn, spec: ThresholdSpec, *, start: datetime, end: datetime) -> dict[date, int]:
    """Fetch every reading of the rule's devices into pandas and find the episodes there."""
    assert spec.count is None and spec.key == "facility", "the naive side does only this"
    buffer = io.BytesIO()
    with conn.cursor() as cur, cur.copy(
            """COPY (SELECT r.device_id, d.facility_id, extract(epoch FROM r.time), r.value
                     FROM reading r JOIN device d ON d.id = r.device_id
                     JOIN facility f ON f.id = d.facility_id
                     WHERE r.metric = 'co' AND d.type = 'co_sensor' AND f.kind = 'garage'
                       AND r.time >= %s AND r.time < %s) TO STDOUT (FORMAT csv)""",
            (start, end)) as copy:
        for data in copy:
            buffer.write(data)
    buffer.seek(0)
    df = pd.read_csv(buffer, names=["device", "key", "t", "value"])
    df = df.sort_values(["device", "t"], kind="stable", ignore_index=True)
    hit = (df["value"] > spec.above).to_numpy() if spec.above is not None else \
        np.zeros(len(df), bool)
    if spec.below is not None:
        hit |= (df["value"] < spec.below).to_numpy()
    device = df["device"].to_numpy()
    first = np.r_[True, device[1:] != device[:-1]]
    changed = first | np.r_[True, hit[1:] != hit[:-1]]
    ch = df.loc[changed, ["device", "key", "t"]].assign(hit=hit[changed])
    ch["e"] = ch.groupby("device")["t"].shift(-1).fillna(np.inf)
    spans = ch[ch["hit"]].sort_values(["key", "t", "e"], ignore_index=True)
    reach = spans.groupby("key")["e"].cummax().groupby(spans["key"]).shift(1).fillna(-np.inf)
    spans["island"] = (spans["t"] >= reach).cumsum()
    ep = spans.groupby(["key", "island"]).agg(s=("t", "min"), e=("e", "max"))
    at = ep["s"] + spec.for_s
    lo, hi = start.timestamp(), end.timestamp()
    fired = at[(ep["e"] > at) & (at >= lo) & (at < hi)]
    days = pd.to_datetime(fired, unit="s", utc=True).dt.tz_convert(TZ).dt.date
    return {d: int(n) for d, n in sorted(days.value_counts().items())}


def _print(figures: dict[str, object]) -> None:
    print(json.dumps(figures, indent=2, default=str), flush=True)


if __name__ == "__main__":
    typer.run(main)
