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
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

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
    server = EmbeddedMosquitto(server_root / "mqtt")
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
