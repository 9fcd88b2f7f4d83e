"""Versioned schema migrations: numbered SQL files applied once each, in order.

Each file is recorded in ``schema_version`` with a checksum, so a migration
edited after it was applied is caught rather than silently skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import psycopg

from twin.errors import TwinError
from twin.store.connection import check_extensions

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant: serialises concurrent upgrades of one database.
_LOCK_KEY = 0x7477696E


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    migration: Migration
    applied_at: datetime | None


def discover() -> list[Migration]:
    found = []
    for entry in resources.files("twin.migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise TwinError(f"two migrations share a version number: {versions}")
    return found


def upgrade(conn: psycopg.Connection) -> list[Migration]:
    """Apply every pending migration; returns those applied (none when up to date).

    All pending migrations run in one transaction (PostgreSQL's DDL is
    transactional), so an upgrade that fails half-way leaves the schema as it was.
    """
    check_extensions(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        _ensure_version_table(conn)
        applied = _applied(conn)
        done = []
        for migration in discover():
            recorded = applied.get(migration.version)
            if recorded is not None:
                if recorded != migration.checksum:
                    raise TwinError(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        "it was applied; add a new migration instead of editing an applied one"
                    )
                continue
            conn.execute(migration.sql)
            conn.execute(
                "INSERT INTO schema_version (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
            done.append(migration)
    if not conn.autocommit:
        # check_extensions may have opened the transaction, which makes the block above
        # a savepoint: the upgrade is only done once it is committed.
        conn.commit()
    return done


def status(conn: psycopg.Connection) -> list[MigrationStatus]:
    _ensure_version_table(conn)
    when: dict[int, datetime] = dict(
        conn.execute("SELECT version, applied_at FROM schema_version").fetchall())
    return [MigrationStatus(m, when.get(m.version)) for m in discover()]


def pending(conn: psycopg.Connection) -> list[Migration]:
    """The migrations of this code that the database has not applied yet."""
    return [s.migration for s in status(conn) if s.applied_at is None]


def require_current(conn: psycopg.Connection) -> None:
    """Fail in one sentence when the schema is behind this code."""
    behind = pending(conn)
    if behind:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in behind)
        raise TwinError(f"the database schema is not up to date (pending: {names}): "
                        "run `twin db upgrade`")


def _ensure_version_table(conn: psycopg.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS schema_version (
            version     integer PRIMARY KEY,
            name        text NOT NULL,
            checksum    text NOT NULL,
            applied_at  timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def _applied(conn: psycopg.Connection) -> dict[int, str]:
    return dict(conn.execute("SELECT version, checksum FROM schema_version").fetchall())
