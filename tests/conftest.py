"""Real servers for the suite: a private PostgreSQL (PostGIS + TimescaleDB) and Mosquitto.

They are started with the same launcher `twin up` uses, in a temporary
directory, so the suite never depends on how the machine's services were left.
Each test that writes gets its own database, cloned from a migrated template.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ingest.broker import forget_session
from ingest.rules import RulesOptions, RulesService
from ingest.service import IngestOptions, IngestService
from tests.mqtt_helpers import Publisher
from twin.clock import Clock
from twin.services.broker_accounts import RULES, SERVICES, SIMULATOR
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.postgres import EmbeddedPostgres
from twin.store import migrations
from twin.store.connection import connect

_TEMPLATE = "twin_template"
_counter = itertools.count()


@pytest.fixture(scope="session")
def server_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="twin-test-"))
    # The postgres user (we may be root) must be able to reach the data directory.
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg(server_root: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(server_root / "pg", durable=False)
    server.start()
    with connect(server.url("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{_TEMPLATE}"')
    with connect(server.url(_TEMPLATE)) as conn:
        migrations.upgrade(conn)
    server.freeze_as_template(_TEMPLATE)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def broker(server_root: Path) -> Iterator[EmbeddedMosquitto]:
    """The embedded broker as `twin up` starts it (nobody anonymous), admitting the
    simulator's account too: each test logs in with the account of what it plays
    (`EmbeddedMosquitto.service_url`), or as ``twin-admin`` to watch and clean up."""
    server = EmbeddedMosquitto(server_root / "mqtt", services=SERVICES)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def db_url(pg: EmbeddedPostgres) -> Iterator[str]:
    """A fresh, migrated, empty database for one test."""
    name = f"t_{os.getpid()}_{next(_counter)}"
    url = pg.create_database(name, template=_TEMPLATE)
    yield url
    pg.drop_database(name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    with connect(db_url) as connection:
        yield connection


@pytest.fixture(scope="session")
def sample():
    from gis_data import SAMPLE_DIR
    from gis_data.dataset import read_dataset

    return read_dataset(SAMPLE_DIR)


@pytest.fixture(scope="session")
def sample_db_url(pg: EmbeddedPostgres, sample) -> str:
    """One database with the sample community loaded, shared by read-only tests."""
    from twin.store.loader import load_dataset

    url = pg.create_database("sample", template=_TEMPLATE)
    with connect(url) as connection:
        load_dataset(connection, sample)
    return url


@pytest.fixture(scope="session")
def sample_template(pg: EmbeddedPostgres, sample) -> str:
    """A frozen template database holding the sample community."""
    from twin.store.loader import load_dataset

    name = "sample_template"
    url = pg.create_database(name, template=_TEMPLATE)
    with connect(url) as connection:
        load_dataset(connection, sample)
    pg.freeze_as_template(name)
    return name


@pytest.fixture
def twin_db_url(pg: EmbeddedPostgres, sample_template: str) -> Iterator[str]:
    """A fresh database with the sample community loaded, for one test that writes."""
    name = f"s_{os.getpid()}_{next(_counter)}"
    url = pg.create_database(name, template=sample_template)
    yield url
    pg.drop_database(name)


@pytest.fixture
def sample_conn(sample_db_url: str) -> Iterator[psycopg.Connection]:
    with connect(sample_db_url) as connection:
        yield connection
        connection.rollback()


@pytest.fixture
def publisher(broker: EmbeddedMosquitto) -> Iterator[Publisher]:
    """A QoS 1 publisher that retries like a real device (the simulator's account: it may
    speak for any device)."""
    pub = Publisher(broker.service_url(SIMULATOR))
    yield pub
    pub.close()


@pytest.fixture
def start_rules(broker: EmbeddedMosquitto) -> Iterator[Callable[..., RulesService]]:
    """Start rules services (one group per test, ticks only when asked); all stopped after."""
    started: list[RulesService] = []
    group = f"r{uuid.uuid4().hex[:6]}"
    mqtt_url = broker.service_url(RULES)

    def start(url: str, clock: Clock, *, client_id: str | None = None,
              community: str | None = None) -> RulesService:
        service = RulesService(url, mqtt_url, RulesOptions(
            group=group, client_id=client_id or f"rules-{uuid.uuid4().hex[:6]}",
            community_id=community, tick_s=3600, reload_s=0.2), clock=clock)
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        if service.running:
            service.stop()
        forget_session(mqtt_url, service.options.client_id)


#: Debian's Chromium (scripts/install-system.sh); Playwright never downloads a browser.
CHROMIUM = os.environ.get("TWIN_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright, drawing WebGL in software."""
    from playwright.sync_api import sync_playwright

    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        # not a skip: a missing browser is a missing install step, and CI must say so
        pytest.fail(f"no Chromium at {CHROMIUM}: scripts/install-system.sh installs Debian's "
                    "chromium (or set TWIN_CHROMIUM)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"])
        yield chromium
        chromium.close()


@pytest.fixture
def start_ingest() -> Iterator[Callable[..., IngestService]]:
    """Start in-process ingest services; stop them and drop their sessions afterwards."""
    started: list[tuple[IngestService, str]] = []
    group = f"g{uuid.uuid4().hex[:6]}"

    def start(database_url: str, mqtt_url: str, **options: object) -> IngestService:
        client_id = str(options.pop("client_id", f"ingest-{uuid.uuid4().hex[:6]}"))
        service = IngestService(database_url, mqtt_url, IngestOptions(
            group=str(options.pop("group", group)), client_id=client_id,
            flush_interval_s=0.05, **options))
        service.start()
        started.append((service, mqtt_url))
        return service

    yield start
    for service, url in started:
        service.stop()
        forget_session(url, service.options.client_id)


@pytest.fixture
def room(twin_db_url: str):
    """The control room on a fresh sample twin with the demo's logins, alarms and orders."""
    from tests.control_room import control_room

    with control_room(twin_db_url) as app_users_ids_url:
        yield app_users_ids_url
