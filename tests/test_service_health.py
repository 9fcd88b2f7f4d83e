"""The background services' health and logs through their real commands (docs/deploy.md):
`twin notify run --metrics-port` answers /healthz from its process, 503 once its database
is gone (and lives on), and logs JSON lines; twin.logs' formats and masking.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from twin import logs
from twin.services.ports import free_port

TWIN = Path(sys.executable).with_name("twin")


def _health(port: int) -> tuple[int, dict] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return None


def test_the_notification_worker_says_its_health_and_logs_json(pg, sample_template,
                                                               tmp_path) -> None:
    name = f"notify_health_{uuid.uuid4().hex[:6]}"
    url = pg.create_database(name, template=sample_template)
    config = tmp_path / "notify.yaml"
    config.write_text("""
transports:
  sms: {kind: webhook, url: "http://127.0.0.1:9/sms", secret_env: TWIN_SMS_SECRET}
default:
  family: {via: [sms]}
  grid_worker: {via: [sms]}
  security_desk: {via: [sms], duty: {phone: "10000000000"}}
  staff: {via: [sms]}
  broadcast: {via: [sms], duty: {phone: "10000000000"}}
""")
    port = free_port()
    err = tmp_path / "notify.log"
    env = {**os.environ, "TWIN_DATABASE_URL": url, "TWIN_MQTT_URL": "mqtt://127.0.0.1:9",
           "TWIN_SMS_SECRET": "s3cret-for-the-gateway", "TWIN_LOG_FORMAT": "json"}
    with err.open("wb") as stderr:
        worker = subprocess.Popen([str(TWIN), "notify", "run", "--config", str(config),
                                   "--interval", "0.2", "--metrics-port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 60
        while (answer := _health(port)) is None:
            assert worker.poll() is None, err.read_text()
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.2)
        # no MQTT transport configured: the broker is not needed, and not asked
        assert answer == (200, {"ok": True, "database": "up", "broker": "unused"})
        pg.drop_database(name)
        assert _health(port) == (503, {"ok": False, "database": "down", "broker": "unused"})
        time.sleep(1.5)  # a round or two meet the missing database
        assert worker.poll() is None  # it waits for the database to come back
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
        pg.drop_database(name)
    lines = [json.loads(line) for line in err.read_text().splitlines() if line.strip()]
    assert any(line.get("port") == port and line["service"] == "notify" for line in lines)
    assert any(line["level"] == "warning" and line["logger"] == "ingest.notify"
               for line in lines), lines  # the lost database, said once per retry
    assert "s3cret-for-the-gateway" not in err.read_text()


def _line(fmt: str, message: str, *args: object, **extra: object) -> str:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logs.formatter(fmt))
    logger = logging.getLogger(f"test.logs.{uuid.uuid4().hex[:6]}")
    logger.addHandler(handler)
    logger.propagate = False
    logger.warning(message, *args, extra=extra)
    return out.getvalue().strip()


def test_json_lines_carry_bound_fields_and_mask_mobile_numbers() -> None:
    with logs.bound(request_id="r-1"):
        line = json.loads(_line("json", "resident %s called", "13912345678",
                                topic="wh/dev/x/telemetry", mqtt_mid=7, secret="not kept"))
    assert line["msg"] == "resident 139******** called"
    assert line["request_id"] == "r-1" and line["topic"] == "wh/dev/x/telemetry"
    assert line["mqtt_mid"] == 7 and "secret" not in line
    assert line["level"] == "warning" and line["ts"].endswith("+00:00")
    # outside the block the request's id is gone; 12 digits are no mobile number
    line = json.loads(_line("json", "order 139123456789"))
    assert "request_id" not in line and line["msg"] == "order 139123456789"


def test_text_lines_for_a_terminal() -> None:
    text = _line("text", "ingest connected", service="ingest", port=9108)
    assert "WARNING ingest connected" in text and "[service=ingest port=9108]" in text
    assert logs.log_format({"TWIN_LOG_FORMAT": "TEXT"}) == "text"
    assert logs.log_format({"TWIN_LOG_FORMAT": "json"}) == "json"


def test_the_rule_engine_serves_its_health_beside_its_metrics(twin_db_url, broker) -> None:
    from ingest.broker import forget_session
    from ingest.rules import RulesOptions, RulesService
    from twin.clock import wall_clock
    from twin.services.broker_accounts import RULES

    url = broker.service_url(RULES)
    service = RulesService(twin_db_url, url, RulesOptions(
        group=f"h{uuid.uuid4().hex[:6]}", client_id=f"rules-h-{uuid.uuid4().hex[:6]}",
        tick_s=3600, metrics_port=0), clock=wall_clock)
    service.start()
    try:
        assert service.metrics_port is not None
        assert _health(service.metrics_port) == (200, {"ok": True, "database": "up",
                                                       "broker": "up"})
        with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics",
                                    timeout=10) as answer:
            text = answer.read().decode()
        assert "twin_rules_broker_up 1.0" in text and "twin_rules_database_up 1.0" in text
        # anything but a GET of the two paths is the caller's mistake, and the server lives on
        for method, path, status in (("POST", "/healthz", 405), ("GET", "/x" * 40_000, 414),
                                     ("GET", "/nothing", 404)):
            request = urllib.request.Request(f"http://127.0.0.1:{service.metrics_port}{path}",
                                             method=method, data=b"x" if method == "POST" else None)
            try:
                urllib.request.urlopen(request, timeout=10)
                raise AssertionError(f"{method} {path[:20]} answered 2xx")
            except urllib.error.HTTPError as e:
                assert e.code == status, (method, path[:20], e.code)
        assert _health(service.metrics_port)[0] == 200
    finally:
        service.stop()
        forget_session(url, service.options.client_id)
    assert _health(service.metrics_port) is None  # stopped with the service
