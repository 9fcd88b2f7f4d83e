"""The embedded servers and the one-sentence errors for missing or unreachable pieces."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest

from twin.errors import MissingComponentError, UnreachableError
from twin.services.broker_accounts import ADMIN
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.ports import free_port
from twin.services.postgres import EmbeddedPostgres, check_extensions_installed, find_bin_dir
from twin.store import migrations
from twin.store.connection import check_extensions, connect

TWIN = str(Path(sys.executable).parent / "twin")


def test_embedded_postgres_has_postgis_and_timescaledb(pg: EmbeddedPostgres, conn) -> None:
    versions = dict(conn.execute("SELECT extname, extversion FROM pg_extension").fetchall())
    assert "postgis" in versions and "timescaledb" in versions
    point = conn.execute("SELECT ST_AsText(ST_Point(114.4, 30.5))").fetchone()[0]
    assert point == "POINT(114.4 30.5)"
    assert conn.execute(
        "SELECT time_bucket('1 hour', '2026-11-24 07:42:00+00'::timestamptz)"
    ).fetchone()[0].hour == 7


def test_embedded_postgres_start_is_idempotent_and_survives_restart(server_root: Path) -> None:
    server = EmbeddedPostgres(server_root / "pg-restart", durable=False)
    url = server.start()
    assert server.start() == url  # already running: same server
    with connect(url, autocommit=True) as c:
        c.execute("CREATE TABLE kept (x int)")
        c.execute("INSERT INTO kept VALUES (42)")
    server.stop()
    assert not server.running()
    url = server.start()
    with connect(url) as c:
        assert c.execute("SELECT x FROM kept").fetchone()[0] == 42
    server.stop()


def test_embedded_postgres_moves_off_a_taken_port(server_root: Path) -> None:
    server = EmbeddedPostgres(server_root / "pg-port", durable=False)
    server.start()
    server.stop()
    import socket

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        taken = server.port
        server.start()
        assert server.port != taken
        assert server.running()
    server.stop()


def test_embedded_mosquitto_carries_qos1_messages(broker: EmbeddedMosquitto) -> None:
    received: list[bytes] = []
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        received.append(msg.payload)
        done.set()

    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
    sub.username_pw_set(*broker.credentials(ADMIN))
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("twin/test/#", qos=1)
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-pub")
    pub.username_pw_set(*broker.credentials(ADMIN))
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        # Retry until the subscription is in place; the broker is real and async.
        for _ in range(50):
            pub.publish("twin/test/hello", b"ni hao", qos=1).wait_for_publish(2)
            if done.wait(0.1):
                break
        assert received and received[0] == b"ni hao"
    finally:
        for client in (sub, pub):
            client.loop_stop()
            client.disconnect()


def test_unreachable_server_is_one_sentence() -> None:
    port = free_port()
    with pytest.raises(UnreachableError) as info:
        connect(f"postgresql://postgres@127.0.0.1:{port}/twin", timeout=2)
    assert str(info.value) == (
        f"cannot reach PostgreSQL at 127.0.0.1:{port}/twin: connection refused")


def test_cli_reports_unreachable_database_without_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TWIN_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/twin",
           "TWIN_HOME": str(tmp_path)}
    result = subprocess.run([TWIN, "db", "upgrade"], env=env, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"error: cannot reach PostgreSQL at 127.0.0.1:{port}/twin: connection refused"
    )


def test_missing_timescaledb_binary_install_is_named(tmp_path: Path) -> None:
    """A PostgreSQL whose share directory lacks the extension fails before initdb."""
    real = find_bin_dir()
    fake_share = tmp_path / "share"
    (fake_share / "extension").mkdir(parents=True)
    (fake_share / "extension" / "postgis.control").write_text("")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("initdb", "pg_ctl", "psql", "postgres"):
        (bindir / tool).symlink_to(real / tool)
    pg_config = bindir / "pg_config"
    pg_config.write_text(f"#!/bin/sh\necho {fake_share}\n")
    pg_config.chmod(0o755)
    with pytest.raises(MissingComponentError) as info:
        check_extensions_installed(bindir)
    assert str(info.value).startswith(
        "the timescaledb extension is not installed in this PostgreSQL")
    assert "scripts/install-system.sh" in str(info.value)
    assert "timescaledb-ha" in str(info.value)


def test_timescaledb_not_preloaded_is_named(server_root: Path) -> None:
    """A real server with TimescaleDB installed but not preloaded: one clear sentence."""
    server = EmbeddedPostgres(server_root / "pg-nopreload", durable=False)
    server.start()
    server.stop()
    settings = server.data_dir / "twin.conf"
    text = settings.read_text().replace("shared_preload_libraries = 'timescaledb'", "")
    settings.write_text(text)
    server.start()
    try:
        with connect(server.url()) as c:
            with pytest.raises(MissingComponentError) as info:
                check_extensions(c)
            assert "not preloaded" in str(info.value)
            c.rollback()
            with pytest.raises(MissingComponentError):
                migrations.upgrade(c)
            # Nothing was created on the way to the error.
            tables = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            assert tables.fetchone()[0] == 0
    finally:
        server.stop()


def test_cli_help_on_every_command() -> None:
    from typer.main import get_command
    from typer.testing import CliRunner

    from twin.cli import app

    root = get_command(app)
    paths: list[list[str]] = [[]]
    for name, cmd in root.commands.items():
        paths.append([name])
        paths.extend([name, sub] for sub in getattr(cmd, "commands", {}))
    assert len(paths) > 10
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output
    # And once through the installed console script.
    result = subprocess.run([TWIN, "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "demo" in result.stdout


def test_psycopg_reaches_the_embedded_server_over_tcp(pg: EmbeddedPostgres) -> None:
    with psycopg.connect(pg.url("postgres")) as c:
        assert c.info.port == pg.port
