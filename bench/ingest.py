"""Ingest throughput and lag against same-run baselines.

    .venv/bin/python -m bench.ingest --messages 100000 --repeat 3 --batches 3000

Phases, each on its own embedded PostgreSQL (durable settings) and Mosquitto:

1. single readings: N telemetry messages of one reading each are queued in
   the broker for an offline persistent session; then (a) a bare paho client
   drains them (the raw receive baseline) and (b) a `twin ingest` process
   drains them into TimescaleDB. Both are timed from connect to the last
   message received / row committed.
2. gateway batches: M messages of 100 readings each, drained by one `twin
   ingest` process and by two in one shared-subscription group, against
   bare psycopg binary COPYs of the same rows into the `reading` hypertable
   (with its key: what the database absorbs) and into a plain table.
3. latest state: one flush updating 100,000 distinct devices' latest state
   (merge per metric, newer wins), against a bare unnest ... ON CONFLICT DO
   UPDATE of the same rows into a copy of device_state.
4. lag: a publisher sends at a steady rate with the publish time as the
   device timestamp; p50/p99 of commit time minus device time.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import orjson
import paho.mqtt.client as mqtt
import psycopg
import typer

from bench.common import bench_database, copy_rate_into, raw_copy_rate, scratch_dir, start_run
from gis_data import SAMPLE_DIR
from gis_data.dataset import read_dataset
from ingest import contract
from ingest.broker import BrokerAddress, forget_session, make_client, session_properties
from twin.services.broker_accounts import INGEST
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.ports import free_port
from twin.store.connection import connect
from twin.store.loader import load_dataset

TWIN = str(Path(sys.executable).parent / "twin")
#: The columns of a reading as ingest writes them, for the raw COPY baseline.
READING_COLUMNS = (("time", "timestamptz"), ("device_id", "text"), ("metric", "text"),
                   ("value", "float8"), ("value_text", "text"), ("received_at", "timestamptz"))

#: Which of the figures are same-run baselines, and which are ratios to them.
BASELINES = ("raw_receive_msgs_per_s", "raw_copy_same_rows_per_s",
             "copy_into_reading_hypertable_per_s", "bare_upsert_per_s")
RATIOS = ("ingest_vs_raw_receive", "ingest_vs_raw_receive_each_round", "ingest_batch_vs_raw_copy",
          "ingest_batch_vs_copy_into_reading", "ingest_batch_2_processes_vs_copy_into_reading",
          "latest_state_vs_bare_upsert")


def main(
    messages: int = typer.Option(200_000, help="Single-reading messages for phase 1."),
    batches: int = typer.Option(2_000, help="100-reading gateway batches for phase 2."),
    lag_rate: int = typer.Option(5_000, help="Messages/s of the lag phase."),
    lag_seconds: int = typer.Option(10, help="Length of the lag phase."),
    repeat: int = typer.Option(3, help="Rounds of phase 1 (raw and ingest alternate); "
                                       "medians are reported."),
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/ingest.json.")] = None,
) -> None:
    run = start_run("ingest", messages=messages, batches=batches, lag_rate=lag_rate,
                    lag_seconds=lag_seconds, repeat=repeat)
    sample = read_dataset(SAMPLE_DIR)
    devices = dict(sample.tables())["device"]
    community = devices["community_id"].iloc[0]
    sensors = devices[devices["type"] == "co_sensor"]["id"].tolist()
    meters = devices[devices["type"].isin(["water_meter", "power_meter"])][["id", "type"]]
    gateway = devices[devices["type"] == "iot_gateway"]["id"].iloc[0]
    figures: dict[str, object] = {"messages": messages, "batches": batches}

    # --- phase 1 -------------------------------------------------------------------
    single = _single_messages(community, sensors, messages)
    raw_rates, ingest_rates = [], []
    with _stack(sample) as (db_url, broker):
        for _ in range(repeat):
            raw_rates.append(messages / _drain_raw(broker, single))
            ingest_rates.append(messages / _drain_ingest(db_url, broker, single,
                                                         expect_rows=messages))
    raw_rate, ingest_rate = statistics.median(raw_rates), statistics.median(ingest_rates)
    ratios = sorted(i / r for i, r in zip(ingest_rates, raw_rates, strict=True))
    figures |= {"raw_receive_msgs_per_s": round(raw_rate),
                "ingest_single_readings_per_s": round(ingest_rate),
                "ingest_vs_raw_receive": round(statistics.median(ratios), 2),
                "ingest_vs_raw_receive_each_round": [round(r, 2) for r in ratios]}
    _print(figures)

    # --- phases 2 and 3 ------------------------------------------------------------
    batch_messages, rows = _batch_messages(community, gateway, meters, batches)
    with _stack(sample) as (db_url, broker):
        copy_rate = raw_copy_rate(db_url, rows, READING_COLUMNS)
        table_rate = copy_rate_into(db_url, "reading", rows, READING_COLUMNS)
        batch_s = _drain_ingest(db_url, broker, batch_messages, expect_rows=len(rows))
        pair_s = _drain_ingest(db_url, broker, batch_messages, expect_rows=len(rows),
                               processes=2)
        state_rate, bare_state_rate = _state_upserts(db_url, community, 100_000)
    batch_rate = len(rows) / batch_s
    figures |= {"batch_readings": len(rows),
                "ingest_batch_readings_per_s": round(batch_rate),
                "ingest_batch_2_processes_readings_per_s": round(len(rows) / pair_s),
                "raw_copy_same_rows_per_s": round(copy_rate),
                "ingest_batch_vs_raw_copy": round(batch_rate / copy_rate, 2),
                "copy_into_reading_hypertable_per_s": round(table_rate),
                "ingest_batch_vs_copy_into_reading": round(batch_rate / table_rate, 2),
                "ingest_batch_2_processes_vs_copy_into_reading":
                    round(len(rows) / pair_s / table_rate, 2),
                "latest_state_updates_per_s": round(state_rate),
                "bare_upsert_per_s": round(bare_state_rate),
                "latest_state_vs_bare_upsert": round(state_rate / bare_state_rate, 2)}
    _print(figures)

    # --- phase 4 -------------------------------------------------------------------
    with _stack(sample) as (db_url, broker):
        p50, p99, sent = _lag(db_url, broker, community, sensors, lag_rate, lag_seconds)
    figures |= {"lag_rate_msgs_per_s": lag_rate, "lag_messages": sent,
                "lag_p50_ms": round(p50 * 1000, 1), "lag_p99_ms": round(p99 * 1000, 1)}
    _print(figures)
    baselines = {k: figures.pop(k) for k in BASELINES}
    ratios = {k: figures.pop(k) for k in RATIOS}
    run.write(figures, baselines=baselines, ratios=ratios, out=out, notes=[
        "The lag phase has no same-run baseline yet: its figures are absolute."])


# --- messages ----------------------------------------------------------------------

def _single_messages(community: str, sensors: list[str], n: int) -> list[tuple[str, bytes]]:
    start = datetime.now(UTC) - timedelta(hours=2)
    out = []
    for i in range(n):
        device = sensors[i % len(sensors)]
        ts = start + timedelta(milliseconds=i)
        out.append((contract.topic(community, device, "telemetry"),
                    orjson.dumps({"ts": contract.fmt_time(ts), "readings": {"co": i % 400}})))
    return out


def _batch_messages(community: str, gateway: str, meters, n: int
                    ) -> tuple[list[tuple[str, bytes]], list[tuple]]:
    start = datetime.now(UTC) - timedelta(hours=2)
    ids, types = meters["id"].tolist(), meters["type"].tolist()
    topic = contract.topic(community, gateway, "batch")
    out, rows = [], []
    k = 0
    for _ in range(n):
        items = []
        for _ in range(100):
            j = k % len(ids)
            ts = start + timedelta(milliseconds=k)
            metric = "flow" if types[j] == "water_meter" else "power"
            items.append({"device": ids[j], "ts": contract.fmt_time(ts),
                          "readings": {metric: (k % 100) / 10}})
            rows.append((ts, ids[j], metric, (k % 100) / 10, None, ts))
            k += 1
        out.append((topic, orjson.dumps({"items": items})))
    return out, rows


# --- the servers -------------------------------------------------------------------

@contextmanager
def _stack(sample) -> Iterator[tuple[str, EmbeddedMosquitto]]:
    """A database with the sample loaded, and a broker of the run's own."""
    with bench_database() as url, scratch_dir() as root:
        with connect(url) as conn:
            load_dataset(conn, sample)
        broker = EmbeddedMosquitto(root / "mqtt")
        broker.start()
        try:
            yield url, broker
        finally:
            broker.stop()


def _queue(broker: EmbeddedMosquitto, messages: list[tuple[str, bytes]]) -> None:
    """Publish everything (QoS 1) while the consumer is offline: the broker queues it."""
    address = BrokerAddress.parse(broker.admin_url)
    pub = make_client(address, f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.max_inflight_messages_set(2000)
    pub.max_queued_messages_set(0)
    pub.connect(address.host, address.port)
    pub.loop_start()
    # Packet ids wrap at 65,535: keep fewer than that outstanding.
    for start in range(0, len(messages), 20_000):
        infos = [pub.publish(t, p, qos=1) for t, p in messages[start:start + 20_000]]
        for info in infos:
            info.wait_for_publish(timeout=120)
    pub.disconnect()
    pub.loop_stop()


def _drain_raw(broker: EmbeddedMosquitto, messages: list[tuple[str, bytes]]) -> float:
    """Seconds a bare paho client takes to receive the queued messages."""
    address = BrokerAddress.parse(broker.admin_url)
    client_id = f"bench-raw-{uuid.uuid4().hex[:6]}"
    got = 0
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        nonlocal got
        got += 1
        if got >= len(messages):
            done.set()

    def session() -> mqtt.Client:
        c = make_client(address, client_id)
        c.on_message = on_message
        c.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(t, 1) for t in contract.subscriptions(client_id)])
        c.connect(address.host, address.port, clean_start=False,
                  properties=session_properties(receive_maximum=20000))
        return c

    c = session()
    c.loop_start()
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()
    _queue(broker, messages)
    got = 0
    c = session()
    began = time.perf_counter()
    c.loop_start()
    if not done.wait(600):
        raise RuntimeError(f"raw client received only {got} of {len(messages)}")
    seconds = time.perf_counter() - began
    c.disconnect()
    c.loop_stop()
    forget_session(broker.admin_url, client_id)
    return seconds


def _drain_ingest(db_url: str, broker: EmbeddedMosquitto, messages: list[tuple[str, bytes]],
                  *, expect_rows: int, processes: int = 1) -> float:
    """Seconds `twin ingest` (one or more processes in one group) takes to commit the rows."""
    # TWIN_HOME holds the broker's secret: each process logs in with its own account
    env = {**os.environ, "TWIN_DATABASE_URL": db_url, "TWIN_MQTT_URL": broker.url,
           "TWIN_HOME": str(broker.directory.parent)}
    group = f"bench{uuid.uuid4().hex[:6]}"
    ports = [free_port() for _ in range(processes)]
    argvs = [[TWIN, "ingest", "--client-id", f"{group}-{i}", "--group", group,
              "--metrics-port", str(port)] for i, port in enumerate(ports)]
    # Join the group once and leave, keeping the sessions: the broker then queues
    # the messages for them, split between the members.
    first = [subprocess.Popen(a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for a in argvs]
    for proc in first:
        _when_connected(proc)
    time.sleep(0.5)
    for proc in first:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
    _queue(broker, messages)
    procs = [subprocess.Popen(a, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True) for a in argvs]
    try:
        # Timed from the first broker connection, as the raw client is: not the imports.
        began = min(_when_connected(proc) for proc in procs)
        # Polled from ingest's own counters: a count(*) every few ms would load the
        # database it measures.
        series = 'twin_ingest_rows_written_total{table="reading"}'
        while sum(_scrape(port, series) for port in ports) < expect_rows:
            if time.perf_counter() - began > 900:
                raise RuntimeError(f"ingest did not store {expect_rows} rows in 900 s")
            time.sleep(0.02)
        seconds = time.perf_counter() - began
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
            proc.wait()
        for i in range(processes):
            forget_session(broker.service_url(INGEST), f"{group}-{i}")
    with psycopg.connect(db_url, autocommit=True) as conn:
        stored = conn.execute("SELECT count(*) FROM reading").fetchone()[0]
        if stored != expect_rows:
            raise RuntimeError(f"{stored} rows stored, {expect_rows} expected")
        conn.execute("TRUNCATE reading")
    return seconds


def _state_upserts(db_url: str, community: str, n: int) -> tuple[float, float]:
    """Latest-state updates/s of ingest's writer, and of a bare upsert, for n devices."""
    from ingest.decode import Decoded
    from ingest.writer import prepare, write

    ids = [f"bench-{i:06d}" for i in range(n)]
    with connect(db_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO device (id, community_id, type, name, credentials_id, geom) "
            "SELECT id, %s, 'co_sensor', 'bench', 'cred-' || id, ST_Point(114.41, 30.49, 4326) "
            "FROM unnest(%s::text[]) AS id", (community, ids))
        prepare(conn)
        t0 = datetime.now(UTC)
        for step in range(2):  # the first pass inserts; the second, timed, updates
            ts = t0 + timedelta(seconds=step)
            rows = Decoded()
            for i, device in enumerate(ids):
                rows.latest[device] = {"co": (ts, float(i % 300))}
                rows.last_seen[device] = ts
            began = time.perf_counter()
            write(conn, rows)
            ours = n / (time.perf_counter() - began)

        conn.execute("CREATE TABLE bench_state (LIKE device_state INCLUDING ALL)")
        metrics = [orjson.dumps({"co": {"t": contract.fmt_time(t0), "v": i % 300}}).decode()
                   for i in range(n)]
        times = [t0] * n
        bare = 0.0
        for _ in range(2):
            began = time.perf_counter()
            conn.execute(
                "INSERT INTO bench_state (device_id, last_seen, metrics) "
                "SELECT * FROM unnest(%s::text[], %s::timestamptz[], %s::jsonb[]) "
                "ON CONFLICT (device_id) DO UPDATE SET last_seen = EXCLUDED.last_seen, "
                "metrics = EXCLUDED.metrics", (ids, times, metrics))
            bare = n / (time.perf_counter() - began)
        conn.execute("DROP TABLE bench_state")
    return ours, bare


def _scrape(port: int, series: str) -> float:
    """One value from a Prometheus /metrics page (0 before the series exists)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    except OSError:
        return 0.0
    for line in text.decode().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def _when_connected(proc: subprocess.Popen) -> float:
    """perf_counter() when `twin ingest` logs its broker connection; its log keeps draining."""
    connected = threading.Event()
    at: list[float] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if not connected.is_set() and "connected to" in line:
                at.append(time.perf_counter())
                connected.set()

    threading.Thread(target=read, daemon=True).start()
    if not connected.wait(60):
        raise RuntimeError("twin ingest did not connect within 60 s")
    return at[0]


def _lag(db_url: str, broker: EmbeddedMosquitto, community: str, sensors: list[str],
         rate: int, seconds: int) -> tuple[float, float, int]:
    """p50 and p99 of (commit - device time), from ingest's own lag observations.

    Ingest runs in this process (so every observation can be kept); the
    publisher runs in a process of its own, forked before any thread starts.
    """
    from ingest.service import IngestOptions, IngestService

    go = multiprocessing.Event()
    sent = multiprocessing.Value("i", 0)
    publisher = multiprocessing.Process(
        target=_publish_steadily,
        args=(broker.admin_url, community, sensors, rate, seconds, go, sent))
    publisher.start()
    service = IngestService(db_url, broker.service_url(INGEST),
                            IngestOptions(client_id="bench-lag", group="lag"))
    samples: list[float] = []
    observe = service.metrics.lag.observe
    service.metrics.lag.observe = lambda v: (samples.append(v), observe(v))  # type: ignore
    service.start()
    go.set()
    publisher.join()
    deadline = time.perf_counter() + 60
    while len(samples) < sent.value and time.perf_counter() < deadline:
        time.sleep(0.05)
    service.stop()
    samples.sort()
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], sent.value


def _publish_steadily(url: str, community: str, sensors: list[str], rate: int, seconds: int,
                      go, sent) -> None:
    address = BrokerAddress.parse(url)
    pub = make_client(address, "bench-lag-pub")
    pub.max_inflight_messages_set(5000)
    pub.connect(address.host, address.port)
    pub.loop_start()
    go.wait()
    n = 0
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        while n < int(elapsed * rate):
            device = sensors[n % len(sensors)]
            now = datetime.now(UTC)
            pub.publish(contract.topic(community, device, "telemetry"),
                        orjson.dumps({"ts": contract.fmt_time(now),
                                      "readings": {"co": n % 400}}), qos=1)
            n += 1
        time.sleep(0.001)
    time.sleep(1)
    pub.disconnect()
    pub.loop_stop()
    sent.value = n


def _print(figures: dict[str, object]) -> None:
    print(json.dumps(figures, indent=2), flush=True)


if __name__ == "__main__":
    typer.run(main)
