"""End to end through the `twin` console script, with servers of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

TWIN = str(Path(sys.executable).parent / "twin")


@pytest.fixture
def home(server_root: Path) -> Iterator[dict[str, str]]:
    """An environment whose TWIN_HOME is empty: the demo must build everything itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env["TWIN_HOME"] = str(server_root / "cli-home")
    env["COLUMNS"] = "160"
    yield env
    subprocess.run([TWIN, "down"], env=env, capture_output=True, check=False)


def _twin(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([TWIN, *args], env=env, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_setup_from_nothing_then_everyday_commands(home: dict[str, str], sample) -> None:
    frames = dict(sample.tables())
    out = _twin(home, "setup")
    assert "applied migration 0003_time_series" in out
    assert f"{len(frames['building']):,}" in out and f"{len(frames['resident']):,}" in out
    assert "ready in" in out

    status = _twin(home, "status")
    assert status.count("running") == 2
    # Both servers are closed from the start, and no command prints their secrets.
    password = (Path(home["TWIN_HOME"]) / "pg.pgpass").read_text().split(":")[-1].strip()
    assert password and password not in out + status
    credentials = _twin(home, "credentials", "show")
    assert "pg.pgpass" in credentials and "mqtt/secret" in credentials
    assert password not in credentials

    # A second setup over the running stack changes nothing and applies nothing.
    again = _twin(home, "setup")
    assert "applied migration" not in again

    info = _twin(home, "info")
    assert frames["community"]["id"].iloc[0] in info

    building_id = frames["building"]["id"].iloc[0]
    assert building_id in _twin(home, "query", "building", building_id)

    gate = frames["facility"][frames["facility"]["kind"] == "gate"].iloc[0].geometry
    near = _twin(home, "query", "near", str(gate.x), str(gate.y), "--radius", "100",
                 "--type", "access_gate")
    assert "access_gate" in near and "devices within 100 m" in near

    assert "the schema is up to date" in _twin(home, "db", "upgrade")
    assert "stopped PostgreSQL, Mosquitto" in _twin(home, "down")
    assert _twin(home, "status").count("stopped") == 2


def test_unknown_building_is_one_sentence(home: dict[str, str]) -> None:
    _twin(home, "db", "upgrade")
    result = subprocess.run([TWIN, "query", "building", "no-such-building"], env=home,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stderr.strip() == "error: there is no building 'no-such-building' in the twin"


def test_simulate_into_a_running_ingest(twin_db_url, broker, server_root: Path, sample) -> None:
    """`twin simulate` through the console script, into `twin ingest`, with an incident."""
    import uuid

    import psycopg

    from ingest.broker import forget_session
    from ingest.service import IngestOptions, IngestService
    from tests.mqtt_helpers import clear_retained, wait_until
    from twin.services.broker_accounts import INGEST, SIMULATOR

    ingest_url = broker.service_url(INGEST)
    service = IngestService(twin_db_url, ingest_url, IngestOptions(
        client_id=f"cli-{uuid.uuid4().hex[:6]}", group=f"cli{uuid.uuid4().hex[:6]}"))
    service.start()
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        # a broker of one's own: its address, and the simulator's login beside it
        user, password = broker.credentials(SIMULATOR)
        env |= {"TWIN_DATABASE_URL": twin_db_url, "TWIN_MQTT_URL": broker.url,
                "TWIN_MQTT_USERNAME": user, "TWIN_MQTT_PASSWORD": password,
                "TWIN_HOME": str(server_root / "cli-sim"), "COLUMNS": "160"}
        out = _twin(env, "simulate", "--speed", "120", "--duration", "4",
                    "--inject", "co-leak:1号地库")
        assert "incident co-leak" in out and "no subscriber" not in out

        def landed() -> bool:
            with psycopg.connect(twin_db_url) as conn:
                return conn.execute(
                    "SELECT count(*) FILTER (WHERE online) > 2000 AND max((metrics->'co'->>'v')"
                    "::float) FILTER (WHERE metrics ? 'co') > 50 FROM device_state"
                ).fetchone()[0] is True

        wait_until(landed, timeout=30)
        with psycopg.connect(twin_db_url) as conn:
            assert conn.execute("SELECT count(*) FROM dead_letter").fetchone()[0] == 0
    finally:
        service.stop()
        forget_session(ingest_url, service.options.client_id)
        from ingest.contract import topic

        devices = dict(sample.tables())["device"]
        clear_retained(broker.admin_url, [topic(c, d, "status") for c, d in
                                          zip(devices["community_id"], devices["id"], strict=True)])


def test_db_upgrade_commits_what_it_applies(pg) -> None:
    """The command's connection commits: migrations stay applied after it exits."""
    from twin.store import migrations
    from twin.store.connection import connect

    url = pg.create_database("cli_upgrade")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        env["TWIN_DATABASE_URL"] = url
        out = _twin(env, "db", "upgrade")
        everything = migrations.discover()
        assert all(f"applied {m.version:04d}_{m.name}" in out for m in everything)
        with connect(url) as conn:
            (count,) = conn.execute("SELECT count(*) FROM schema_version").fetchone()
        assert count == len(everything)
        assert "the schema is up to date" in _twin(env, "db", "upgrade")
    finally:
        pg.drop_database("cli_upgrade")
