"""Event to work order assigned, while ingest takes 10,000 readings/s.

    .venv/bin/python -m bench.rules --rate 10000 --seconds 40 --triggers 60

On an embedded PostgreSQL (durable settings) and Mosquitto with the sample
community and the whole scenario library loaded, `twin ingest` and `twin rules
run` run as their own processes, as in production. A publisher process sends
``rate`` meter readings per second (water and power meters, values in their
normal range, so the rules evaluate them and stay quiet), either one reading
per message or relayed by the gateways in batches (``--batch``). Meanwhile the
bench sends a smoke/fire detection from a different camera every
``1/trigger_rate`` s: each one raises a new critical alarm, broadcasts, and
opens a work order that the dispatcher assigns to the nearest security guard
with the fire skill. Latency is the order's ``assigned_at`` (written by the
rules service at assignment) minus the wall time the bench published the
detection, both on this machine's clock. Each assigned order is cancelled
so that guards stay under their open-order limit.

Also reported: how many readings ingest committed in the window (whether
ingest kept up while the rules ran beside it).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import orjson
import psycopg
import typer

from bench.common import bench_database, scratch_dir
from gis_data import SAMPLE_DIR
from gis_data.dataset import read_dataset
from ingest import contract
from ingest.broker import BrokerAddress, make_client
from twin.rules import store
from twin.rules.compile import library_dir, load_directory
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.ports import free_port
from twin.store import operations as ops
from twin.store.connection import connect
from twin.store.loader import load_dataset
from twin.work_orders import Actor

TWIN = str(Path(sys.executable).parent / "twin")
OPERATOR = Actor(name="bench", role="operator")


def main(
    rate: int = typer.Option(10_000, help="Filler readings per second."),
    seconds: int = typer.Option(40, help="Length of the run."),
    triggers: int = typer.Option(60, help="Smoke/fire detections sent during the run."),
    batch: int = typer.Option(1, help="Readings per message: 1, or gateway batches of this "
                                      "many."),
    rules: bool = typer.Option(True, help="--no-rules: ingest and the filler alone, the "
                                          "baseline of what ingest keeps up with here."),
    out: Path = typer.Option(Path("bench/results/rules.json")),
) -> None:
    sample = read_dataset(SAMPLE_DIR)
    tables = dict(sample.tables())
    devices = tables["device"]
    community = devices["community_id"].iloc[0]
    cameras = sorted(devices[devices["type"] == "ai_camera"]["id"])[:triggers]
    if rules and len(cameras) < triggers:
        raise typer.BadParameter(f"the sample has only {len(cameras)} cameras")
    meters = devices[devices["type"].isin(["water_meter", "power_meter"])]
    with bench_database() as url, scratch_dir() as root:
        with connect(url) as conn:
            load_dataset(conn, sample)
            # everyone on the staff list somewhere on site, whatever the time of day
            conn.execute("""UPDATE staff s SET position = (SELECT geom FROM walk_node
                            ORDER BY md5(s.id || id) LIMIT 1), position_at = now()
                            WHERE position IS NULL""")
            store.store_rules(conn, load_directory(library_dir()), at=datetime.now(timezone.utc))
            conn.commit()
        broker = EmbeddedMosquitto(root / "mqtt")
        broker.start()
        env = {**os.environ, "TWIN_DATABASE_URL": url, "TWIN_MQTT_URL": broker.url}
        procs = [
            subprocess.Popen([TWIN, "ingest", "--metrics-port", str(free_port())], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
        ]
        if rules:
            procs.append(subprocess.Popen([TWIN, "rules", "run", "--tick-s", "1"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                          text=True))
        try:
            for proc in procs:
                _when_ready(proc)
            figures = _run(url, broker.url, community, meters, cameras if rules else [],
                           rate=rate,
                           seconds=seconds, batch=batch,
                           gateways=sorted(devices[devices["type"] == "iot_gateway"]["id"]))
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
            broker.stop()
    figures.update(rate=rate, seconds=seconds, batch=batch, rules=rules)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps(figures, indent=2), flush=True)


def _run(url: str, mqtt_url: str, community: str, meters, cameras: list[str], *, rate: int,
         seconds: int, batch: int, gateways: list[str]) -> dict[str, object]:
    go = multiprocessing.Event()
    sent = multiprocessing.Value("l", 0)
    filler = multiprocessing.Process(target=_publish_filler, args=(
        mqtt_url, community, list(zip(meters["id"], meters["type"])), gateways, rate, seconds,
        batch, go, sent))
    filler.start()
    address = BrokerAddress.parse(mqtt_url)
    pub = make_client(address, f"bench-trigger-{uuid.uuid4().hex[:6]}")
    pub.connect(address.host, address.port)
    pub.loop_start()
    with connect(url) as conn:
        readings_before = _count(conn, "SELECT count(*) FROM reading")
    go.set()
    began = time.time()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []
    unassigned: list[str] = []
    spacing = seconds / (len(cameras) + 1)
    with connect(url, autocommit=True) as conn:
        for k, camera in enumerate(cameras):
            wait = began + spacing * (k + 1) - time.time()
            if wait > 0:
                time.sleep(wait)
            now = datetime.now(timezone.utc)
            info = pub.publish(contract.topic(community, camera, "event"), orjson.dumps({
                "ts": contract.fmt_time(now), "id": f"b-{k}", "kind": "detection",
                "class": "smoke_fire", "confidence": 0.9}), qos=1)
            sent_at[camera] = now.timestamp()
            info.wait_for_publish(timeout=10)
            _collect(conn, sent_at, latencies, unassigned, final=False)
        filler.join()
        ended = time.time()
        readings = _count(conn, "SELECT count(*) FROM reading") - readings_before
        deadline = time.time() + 60
        while sent_at and time.time() < deadline:
            _collect(conn, sent_at, latencies, unassigned, final=False)
            time.sleep(0.2)
        _collect(conn, sent_at, latencies, unassigned, final=True)
    pub.disconnect()
    pub.loop_stop()
    latencies.sort()
    pick = (lambda q: round(latencies[min(len(latencies) - 1, int(len(latencies) * q))] * 1000,
                            1)) if latencies else (lambda q: None)
    return {
        "filler_sent": sent.value,
        "filler_rate_achieved": round(sent.value * batch / seconds),
        "readings_committed_in_window": readings,
        "ingest_rate": round(readings / (ended - began)),
        "triggers": len(cameras),
        "assigned": len(latencies),
        "not_assigned": unassigned,
        "latency_ms_p50": pick(0.5),
        "latency_ms_p99": pick(0.99),
        "latency_ms_max": round(latencies[-1] * 1000, 1) if latencies else None,
    }


def _collect(conn: psycopg.Connection, sent_at: dict[str, float], latencies: list[float],
             unassigned: list[str], *, final: bool) -> None:
    if not sent_at:
        return
    rows = conn.execute(
        """SELECT id, device_id, extract(epoch FROM assigned_at) FROM work_order
           WHERE kind = 'fire_check' AND device_id = ANY(%s) AND assigned_at IS NOT NULL""",
        (list(sent_at),)).fetchall()
    for order_id, camera, assigned in rows:
        latencies.append(float(assigned) - sent_at.pop(camera))
        ops.act_on_work_order(conn, order_id, "cancel", actor=OPERATOR,
                              at=datetime.now(timezone.utc), note="bench")
    if final:
        unassigned.extend(sent_at)


def _publish_filler(url: str, community: str, meters: list[tuple[str, str]],
                    gateways: list[str], rate: int, seconds: int, batch: int, go, sent) -> None:
    address = BrokerAddress.parse(url)
    pub = make_client(address, f"bench-filler-{uuid.uuid4().hex[:6]}")
    pub.max_inflight_messages_set(5000)
    pub.connect(address.host, address.port)
    pub.loop_start()
    go.wait()
    n = 0  # readings
    messages = 0
    began = time.perf_counter()
    while (elapsed := time.perf_counter() - began) < seconds:
        while n < int(elapsed * rate):
            ts = contract.fmt_time(datetime.now(timezone.utc))
            if batch == 1:
                device, code = meters[n % len(meters)]
                readings = {"power": 0.4 + (n % 7) / 10} if code == "power_meter" else \
                    {"flow": 0.05 + (n % 5) / 100}
                pub.publish(contract.topic(community, device, "telemetry"),
                            orjson.dumps({"ts": ts, "readings": readings}), qos=1)
                n += 1
            else:
                items = []
                for _ in range(batch):
                    device, code = meters[n % len(meters)]
                    items.append({"device": device, "ts": ts, "readings": (
                        {"power": 0.4 + (n % 7) / 10} if code == "power_meter"
                        else {"flow": 0.05 + (n % 5) / 100})})
                    n += 1
                gateway = gateways[messages % len(gateways)]
                pub.publish(contract.topic(community, gateway, "batch"),
                            orjson.dumps({"items": items}), qos=1)
            messages += 1
        time.sleep(0.001)
    time.sleep(1)
    pub.disconnect()
    pub.loop_stop()
    sent.value = messages


def _when_ready(proc: subprocess.Popen, timeout: float = 60) -> None:
    """Wait until the service logs that it is connected (or running)."""
    deadline = time.time() + timeout
    assert proc.stderr is not None
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise RuntimeError(f"{proc.args} exited: {proc.poll()}")
        if "connected to" in line or "rules service running" in line:
            # keep reading stderr in the background so the pipe never fills
            import threading

            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return
    raise RuntimeError(f"{proc.args} did not start")


def _count(conn: psycopg.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


if __name__ == "__main__":
    typer.run(main)
