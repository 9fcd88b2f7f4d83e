"""Detection published to work order committed and readable, while ingest takes 10,000 readings/s.

    .venv/bin/python -m bench.rules --batch 100 --rate 10000 --seconds 40 --triggers 60

On an embedded PostgreSQL (durable settings) and Mosquitto with the sample
community and the whole scenario library loaded, `twin ingest` and `twin rules
run` run as their own processes, as in production. A publisher process sends
``rate`` meter readings per second (water and power meters, values in their
normal range, so the rules evaluate them and stay quiet), either one reading
per message or relayed by the gateways in batches (``--batch``). Meanwhile the
bench sends a smoke/fire detection from a different camera every
``seconds / (triggers + 1)`` s: each one raises a new critical alarm,
broadcasts, and opens a work order that the dispatcher assigns to the nearest
security guard with the fire skill.

Latency is measured from the wall time just before the bench publishes a
detection to the moment a separate reader connection can read the assigned
order: a trigger the bench adds to its scratch database NOTIFYs on every
assigned ``fire_check`` order, PostgreSQL delivers a notification only once
its transaction has committed, and the reader stamps the time it receives it
(then reads the row on another connection to confirm it is there and
assigned). This covers the broker, the rule service's decode and evaluation,
the alarm insert, the broadcast, the order, the dispatch and the commit. The
order's own ``assigned_at`` (stamped inside the transaction, before the
commit) is reported too, to compare with earlier runs.

Baseline, in the same run: a bare paho client in its own process, subscribed
(QoS 1) to the cameras' ``event`` topics on the same broker, stamps when each
detection arrives. That is the raw broker receive latency of the same
messages under the same load: the floor any consumer stands on.

Each assigned order is cancelled at once so that guards stay under their
open-order limit. Also reported: how many readings ingest committed in the
window (whether ingest kept up while the rules ran beside it). With
``--no-rules`` the rule service does not run (the detections are still sent,
so the traffic and the baseline are the same); that run shows what ingest
keeps up with alone.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import psycopg
import typer

from bench.common import bench_database, ratio, scratch_dir, start_run
from gis_data import SAMPLE_DIR
from gis_data.dataset import read_dataset
from ingest import contract
from ingest.broker import BrokerAddress, make_client

# The rule service's code: it moves to the ingest package at merge (`twin rules run`
# stays the command the bench starts).
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
    out: Annotated[Path | None, typer.Option(
        help="Default: bench/results/rules-batch<N>.json, or rules-no-rules.json.")] = None,
) -> None:
    name = f"rules-batch{batch}" if rules else f"rules-no-rules-batch{batch}"
    run = start_run(name, rate=rate, seconds=seconds, triggers=triggers, batch=batch,
                    rules=rules)
    sample = read_dataset(SAMPLE_DIR)
    tables = dict(sample.tables())
    devices = tables["device"]
    community = devices["community_id"].iloc[0]
    cameras = sorted(devices[devices["type"] == "ai_camera"]["id"])[:triggers]
    if len(cameras) < triggers:
        raise typer.BadParameter(f"the sample has only {len(cameras)} cameras")
    meters = devices[devices["type"].isin(["water_meter", "power_meter"])]
    with bench_database() as url, scratch_dir() as root:
        with connect(url) as conn:
            load_dataset(conn, sample)
            # everyone on the staff list somewhere on site, whatever the time of day
            conn.execute("""UPDATE staff s SET position = (SELECT geom FROM walk_node
                            ORDER BY md5(s.id || id) LIMIT 1), position_at = now()
                            WHERE position IS NULL""")
            store.store_rules(conn, load_directory(library_dir()), at=datetime.now(UTC))
            conn.execute(WATCH_ORDERS)
            conn.commit()
        broker = EmbeddedMosquitto(root / "mqtt")
        broker.start()
        # TWIN_HOME holds the broker's secret: ingest and the rules log in as themselves
        env = {**os.environ, "TWIN_DATABASE_URL": url, "TWIN_MQTT_URL": broker.url,
               "TWIN_HOME": str(root)}
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
            figures, baselines, ratios = _run(
                url, broker.admin_url, community, meters, cameras, rate=rate, seconds=seconds,
                batch=batch, rules=rules,
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
    print(orjson.dumps({"figures": figures, "baselines": baselines, "ratios": ratios},
                       option=orjson.OPT_INDENT_2).decode(), flush=True)
    run.write(figures, baselines=baselines, ratios=ratios, out=out, notes=[
        ("latency_committed: publish -> a separate connection is notified of the committed, "
         "assigned order (NOTIFY from a bench-only trigger, delivered after commit)."),
        "latency_assigned_at: publish -> the order's assigned_at, stamped before the commit.",
        ("raw_receive_latency: publish -> a bare paho client in its own process, subscribed "
         "to the cameras' event topics, receives the same detection."),
        ("Percentiles are nearest-rank over the detections: with 60 of them p99 is the "
         "largest."),
    ])


#: Notify the bench when an assigned fire_check order is committed (bench database only).
WATCH_ORDERS = """
CREATE OR REPLACE FUNCTION bench_order_assigned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('bench_order', NEW.id::text || ' ' || coalesce(NEW.device_id, ''));
    RETURN NULL;
END $$;
CREATE TRIGGER bench_order_assigned AFTER INSERT OR UPDATE OF assigned_at ON work_order
    FOR EACH ROW WHEN (NEW.kind = 'fire_check' AND NEW.assigned_at IS NOT NULL)
    EXECUTE FUNCTION bench_order_assigned();
"""


def _run(url: str, mqtt_url: str, community: str, meters, cameras: list[str], *, rate: int,
         seconds: int, batch: int, rules: bool, gateways: list[str]
         ) -> tuple[dict[str, object], dict[str, object], dict[str, object]]:
    go = multiprocessing.Event()
    sent = multiprocessing.Value("l", 0)
    raw_ready, raw_stop = multiprocessing.Event(), multiprocessing.Event()
    raw_out: multiprocessing.Queue = multiprocessing.Queue()
    raw = multiprocessing.Process(target=_raw_receiver, args=(
        mqtt_url, contract.topic(community, "+", "event"), raw_ready, raw_stop, raw_out))
    raw.start()
    filler = multiprocessing.Process(target=_publish_filler, args=(
        mqtt_url, community, list(zip(meters["id"], meters["type"])), gateways, rate, seconds,
        batch, go, sent))
    filler.start()
    if not raw_ready.wait(30):
        raise RuntimeError("the raw receiver did not subscribe within 30 s")
    address = BrokerAddress.parse(mqtt_url)
    pub = make_client(address, f"bench-trigger-{uuid.uuid4().hex[:6]}")
    pub.connect(address.host, address.port)
    pub.loop_start()
    watcher = _OrderWatcher(url)
    watcher.start()
    with connect(url) as conn:
        readings_before = _count(conn, "SELECT count(*) FROM reading")
    go.set()
    began = time.time()
    spacing = seconds / (len(cameras) + 1)
    for k, camera in enumerate(cameras):
        wait = began + spacing * (k + 1) - time.time()
        if wait > 0:
            time.sleep(wait)
        payload = orjson.dumps({"ts": contract.fmt_time(datetime.now(UTC)), "id": f"b-{k}",
                                "kind": "detection", "class": "smoke_fire",
                                "confidence": 0.9})
        watcher.sent_at[camera] = time.time()
        info = pub.publish(contract.topic(community, camera, "event"), payload, qos=1)
        info.wait_for_publish(timeout=10)
    filler.join()
    ended = time.time()
    with connect(url) as conn:
        readings = _count(conn, "SELECT count(*) FROM reading") - readings_before
    deadline = time.time() + (60 if rules else 2)
    while len(watcher.committed) < len(cameras) and time.time() < deadline:
        time.sleep(0.2)
    watcher.stop()
    raw_stop.set()
    received: dict[str, float] = raw_out.get(timeout=30)
    raw.join(timeout=30)
    pub.disconnect()
    pub.loop_stop()

    sent_at = watcher.sent_at
    committed = [watcher.committed[c] - sent_at[c] for c in cameras if c in watcher.committed]
    assigned = [watcher.assigned_at[c] - sent_at[c] for c in cameras if c in watcher.assigned_at]
    raw_latency = [received[c] - sent_at[c] for c in cameras if c in received]
    ours, floor = _percentiles(committed), _percentiles(raw_latency)
    figures: dict[str, object] = {
        "filler_sent_messages": sent.value,
        "filler_readings_per_s_achieved": round(sent.value * batch / seconds),
        "readings_committed_in_window": readings,
        "ingest_readings_per_s": round(readings / (ended - began)),
        "triggers": len(cameras),
        "orders_committed": len(committed),
        "not_committed": [c for c in cameras if c not in watcher.committed] if rules else [],
        "latency_committed_ms": ours,
        "latency_assigned_at_ms": _percentiles(assigned),
    }
    baselines: dict[str, object] = {
        "raw_received": len(raw_latency),
        "raw_receive_latency_ms": floor,
    }
    ratios: dict[str, object] = {
        f"committed_over_raw_receive_{q}": ratio(ours[q], floor[q], 1)
        for q in ("p50", "p95", "p99") if ours and floor
    }
    return figures, baselines, ratios


class _OrderWatcher:
    """Stamps when each assigned fire_check order can be read, then cancels it.

    One connection LISTENs (PostgreSQL delivers a notification only after its
    transaction commits); another confirms the row and cancels the order so
    that the guards stay under their open-order limit.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent_at: dict[str, float] = {}
        self.committed: dict[str, float] = {}
        self.assigned_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bench-watch")
        self._done: Future[None] | None = None
        self._started = time.monotonic()

    def start(self) -> None:
        self._done = self._pool.submit(self._watch)
        while not self._ready.wait(0.1):
            if self._done.done():
                self._done.result()  # raises what stopped it
            if time.monotonic() > self._started + 30:
                raise RuntimeError("the order watcher did not start listening")

    def stop(self) -> None:
        """Stop watching; raises whatever went wrong in the watcher."""
        self._stop.set()
        assert self._done is not None
        try:
            self._done.result(timeout=30)
        finally:
            self._pool.shutdown(wait=False)

    def _watch(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as listen, \
                connect(self.url, autocommit=True) as act:
            listen.execute("LISTEN bench_order")
            self._ready.set()
            while not self._stop.is_set():
                for note in listen.notifies(timeout=0.2, stop_after=1):
                    seen = time.time()
                    order_id, camera = note.payload.split(" ", 1)
                    if camera in self.committed or camera not in self.sent_at:
                        continue
                    self.committed[camera] = seen
                    row = act.execute(
                        """SELECT extract(epoch FROM assigned_at) FROM work_order
                           WHERE id = %s AND assigned_at IS NOT NULL""",
                        (int(order_id),)).fetchone()
                    if row is None:
                        raise AssertionError(f"order {order_id} was notified but is not "
                                             "readable as assigned")
                    self.assigned_at[camera] = float(row[0])
                    ops.act_on_work_order(act, int(order_id), "cancel", actor=OPERATOR,
                                          at=datetime.now(UTC), note="bench")


def _raw_receiver(url: str, topic_filter: str, ready, stop, out) -> None:
    """A bare paho client: when each detection arrives (its camera -> wall time)."""
    address = BrokerAddress.parse(url)
    client = make_client(address, f"bench-raw-{uuid.uuid4().hex[:6]}")
    received: dict[str, float] = {}

    def on_message(client, userdata, msg) -> None:
        received.setdefault(msg.topic.split("/")[3], time.time())

    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
    client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
    client.connect(address.host, address.port)
    client.loop_start()
    stop.wait()
    client.disconnect()
    client.loop_stop()
    out.put(received)


def _percentiles(seconds: list[float]) -> dict[str, float]:
    """Nearest-rank p50/p95/p99 and the largest, in ms (empty when nothing was measured)."""
    if not seconds:
        return {}
    ordered = sorted(seconds)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000, 1)

    return {"n": len(ordered), "p50": rank(0.5), "p95": rank(0.95), "p99": rank(0.99),
            "max": round(ordered[-1] * 1000, 1)}


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
            ts = contract.fmt_time(datetime.now(UTC))
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
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return
    raise RuntimeError(f"{proc.args} did not start")


def _count(conn: psycopg.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


if __name__ == "__main__":
    typer.run(main)
