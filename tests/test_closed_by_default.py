"""The embedded servers admit nobody without credentials, out of the box (issue 15).

PostgreSQL wants a password over TCP (scram-sha-256) and admits only mapped
operating-system users on its socket (peer); Mosquitto refuses anonymous
clients. The twin's own URLs carry the generated credentials, so everything
the twin runs still connects.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
import pytest
from typer.testing import CliRunner

from ingest.broker import BrokerAddress, with_service_credentials
from twin.config import load_settings
from twin.errors import UnreachableError
from twin.services import stack
from twin.services.broker_accounts import ADMIN, INGEST
from twin.services.postgres import SUPERUSER, EmbeddedPostgres
from twin.store.connection import connect

BAD_LOGIN = (0x86, 0x87)  # bad user name or password / not authorized


def test_the_database_refuses_tcp_logins_without_the_password(pg: EmbeddedPostgres) -> None:
    bare = f"postgresql://{SUPERUSER}@127.0.0.1:{pg.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="no password supplied"):
        psycopg.connect(bare, connect_timeout=5)
    with pytest.raises(UnreachableError) as refused:
        connect(f"postgresql://{SUPERUSER}:wrong@127.0.0.1:{pg.port}/postgres")
    assert str(refused.value) == (
        f"PostgreSQL at 127.0.0.1:{pg.port}/postgres refused the login: "
        f'password authentication failed for user "{SUPERUSER}"')
    # Another role, with no password at all, gets no further.
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"postgresql://nobody@127.0.0.1:{pg.port}/postgres", connect_timeout=5)
    # The twin's URL carries the generated password, kept private beside the cluster.
    with connect(pg.url("postgres")) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (SUPERUSER,)
    assert stat.S_IMODE(pg.password_file.stat().st_mode) == 0o600
    assert pg.password in pg.password_file.read_text()
    rules = [line.split() for line in (pg.data_dir / "pg_hba.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert rules and not any("trust" in rule for rule in rules)
    assert {rule[-1] for rule in rules if rule[0] == "host"} == {"scram-sha-256"}


def test_the_password_file_is_what_psql_reads(pg: EmbeddedPostgres) -> None:
    """PGPASSFILE=<TWIN_HOME>/pg.pgpass psql -h 127.0.0.1 -p PORT -U postgres, as documented."""
    psql = [str(pg.bin_dir / "psql"), "-X", "-w", "-At", "-h", "127.0.0.1", "-p", str(pg.port),
            "-U", SUPERUSER, "-d", "postgres", "-c", "SELECT 42"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    without = subprocess.run(psql, env=env, capture_output=True, text=True, check=False)
    assert without.returncode != 0 and "password" in without.stderr
    with_file = subprocess.run(psql, env={**env, "PGPASSFILE": str(pg.password_file)},
                               capture_output=True, text=True, check=False)
    assert with_file.returncode == 0, with_file.stderr
    assert with_file.stdout.strip() == "42"


def test_the_socket_admits_the_mapped_user_by_peer(pg: EmbeddedPostgres) -> None:
    """Whoever made the cluster (and the server's own user) may use the socket, no password."""
    ident = (pg.data_dir / "pg_ident.conf").read_text()
    assert f"twin      {SUPERUSER}" in ident
    psql = [str(pg.bin_dir / "psql"), "-X", "-w", "-At", "-h", str(pg.data_dir),
            "-p", str(pg.port), "-U", SUPERUSER, "-d", "postgres", "-c", "SELECT 7"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    done = subprocess.run(psql, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "7"


def test_a_trusting_cluster_is_closed_when_it_starts_and_rotates(server_root: Path) -> None:
    """A cluster an older twin made (trust, no password file) wants a password after its next
    start; rotating gives a new one and the old stops working, open sessions survive."""
    server = EmbeddedPostgres(server_root / "pg-trusting", durable=False)
    server.start()
    server.stop()
    (server.data_dir / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 127.0.0.1/32 trust\n")
    server.password_file.unlink()
    assert not server.secured
    try:
        url = server.start()
        assert server.secured and server.password_file.exists()
        bare = f"postgresql://{SUPERUSER}@127.0.0.1:{server.port}/twin"
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(bare, connect_timeout=5)
        with connect(url) as open_session:
            old = server.password
            server.rotate_password()
            assert server.password != old
            assert open_session.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(UnreachableError, match="refused the login"):
            connect(url)
        with connect(server.url()) as conn:
            assert conn.execute("SELECT 2").fetchone() == (2,)
        # Restarted, it stays closed and keeps the new password.
        server.stop()
        with connect(server.start()) as conn:
            assert conn.execute("SELECT 3").fetchone() == (3,)
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(bare, connect_timeout=5)
    finally:
        server.stop()


def test_the_stack_is_closed_and_its_services_log_in(server_root: Path) -> None:
    """`twin up` from nothing: both servers refuse strangers; the twin's URLs, the services'
    accounts and `twin credentials` get in."""
    from twin.cli import app

    home = server_root / "closed-home"
    env = {"TWIN_HOME": str(home)}
    settings = load_settings(env)
    try:
        endpoints = stack.up(settings)
        pg = stack.embedded_postgres(settings)
        assert pg.password_file == home / "pg.pgpass"
        with connect(endpoints.database_url) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("twin",)
        with pytest.raises(psycopg.OperationalError, match="no password supplied"):
            psycopg.connect(f"postgresql://{SUPERUSER}@127.0.0.1:{pg.port}/twin",
                            connect_timeout=5)

        address = BrokerAddress.parse(endpoints.mqtt_url)
        assert address.username is None  # the address itself carries no secret
        assert _connack(address.port) in BAD_LOGIN
        broker = stack.embedded_mosquitto(settings)
        assert stat.S_IMODE(broker.secret_file.stat().st_mode) == 0o600
        assert broker.secret_file == home / "mqtt" / "secret"
        for account in (ADMIN, INGEST):
            assert _connack(address.port, *broker.credentials(account)) == 0

        runner = CliRunner()
        shown = runner.invoke(app, ["credentials", "show"], env=env)
        assert shown.exit_code == 0, shown.output
        text = " ".join(shown.output.split())
        assert str(pg.password_file) in text and str(broker.secret_file) in text
        assert pg.password not in shown.output
        assert broker.credentials(ADMIN)[1] not in shown.output
        db = runner.invoke(app, ["credentials", "url", "database"], env=env)
        assert db.exit_code == 0, db.output
        with connect(db.output.strip()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        mq = runner.invoke(app, ["credentials", "url", "mqtt"], env=env)
        assert mq.exit_code == 0, mq.output
        admin = BrokerAddress.parse(mq.output.strip())
        assert admin.username == ADMIN
        assert _connack(admin.port, admin.username, admin.password) == 0
    finally:
        stack.down(settings)


def test_services_take_their_accounts_from_the_stack(server_root: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What `twin ingest` connects with: the stack's address plus the ingest account."""
    home = server_root / "closed-home-services"
    monkeypatch.setenv("TWIN_HOME", str(home))
    for name in ("TWIN_MQTT_URL", "TWIN_MQTT_USERNAME", "TWIN_MQTT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    broker = stack.embedded_mosquitto(settings)
    try:
        url = with_service_credentials(stack.mqtt_url(settings), INGEST)
        address = BrokerAddress.parse(url)
        assert (address.username, address.password) == broker.credentials(INGEST)
        assert _connack(address.port, address.username, address.password) == 0
    finally:
        broker.stop()


def _connack(port: int, username: str | None = None, password: str | None = None) -> int:
    """The CONNACK reason code a login gets."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    codes: list[int] = []
    client.on_connect = lambda c, u, f, rc, p: codes.append(rc.value)
    client.connect("127.0.0.1", port)
    deadline = time.monotonic() + 5
    while not codes and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    client.disconnect()
    assert codes, "no CONNACK"
    return codes[0]
