"""Backing up and restoring the twin's database with PostgreSQL's own tools.

A backup is ``pg_dump --format=custom`` of the whole database: the twin's
tables, the hypertables with their chunks and TimescaleDB's catalog. A restore
follows TimescaleDB's documented procedure: a fresh database, ``CREATE
EXTENSION timescaledb``, ``timescaledb_pre_restore()`` (which stops its
background workers and marks the database as restoring), ``pg_restore``, then
``timescaledb_post_restore()``. The PostgreSQL and TimescaleDB versions that
restore must be those that dumped (docs/operations.md).
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from psycopg import sql

from twin.errors import TwinError
from twin.services.postgres import find_bin_dir
from twin.store.connection import connect, describe


@dataclass(frozen=True, slots=True)
class Backup:
    path: Path
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class Restored:
    database: str
    #: tables of the public schema in the restored database
    tables: int
    #: whether a database holding data was dropped first
    replaced: bool
    seconds: float


def backup(url: str, path: Path) -> Backup:
    """Dump the database at ``url`` into ``path`` (pg_dump's custom format, compressed).

    The dump is written beside ``path`` and renamed into place when pg_dump
    succeeded, so ``path`` is never a half-written backup.
    """
    began = time.perf_counter()
    path = Path(path)
    if path.is_dir():
        raise TwinError(f"{path} is a directory: name the backup file")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        _tool("pg_dump", url, "--format=custom", f"--file={partial}")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return Backup(path, path.stat().st_size, time.perf_counter() - began)


def restore(url: str, path: Path, *, replace: bool = False) -> Restored:
    """Restore the backup ``path`` as the database of ``url``.

    The database is created afresh (from ``template0``). If it exists and holds
    tables, it is dropped first only with ``replace`` (its sessions are ended);
    an existing empty one (as ``twin up`` leaves it) is simply recreated.
    """
    began = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        raise TwinError(f"there is no backup file {path}")
    listing = _run(["pg_restore", "--list", str(path)])
    if listing.returncode != 0:
        raise TwinError(f"{path} is not a backup written by `twin db backup` "
                        f"(pg_dump's custom format): {_last_line(listing)}")
    name = unquote(urlsplit(url).path.lstrip("/"))
    if not name:
        raise TwinError(f"the database URL {describe(url)} names no database to restore into")
    database = sql.Identifier(name)
    replaced = False
    with connect(_maintenance_url(url), autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                               (name,)).fetchone() is not None
        if exists:
            tables = _public_tables(url)
            if tables and not replace:
                raise TwinError(f"the database {name} holds {tables} tables: pass --replace "
                                f"to drop it and restore {path} in its place")
            replaced = bool(tables)
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(database))
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(database))
    with connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        conn.execute("SELECT timescaledb_pre_restore()")
    try:
        _tool("pg_restore", url, "--exit-on-error", str(path))
    finally:
        with connect(url, autocommit=True) as conn:
            conn.execute("SELECT timescaledb_post_restore()")
    with connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")
    return Restored(name, _public_tables(url), replaced, time.perf_counter() - began)


def _public_tables(url: str) -> int:
    with connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    return int(row[0]) if row else 0


def _maintenance_url(url: str) -> str:
    """The same server's ``postgres`` database (``template1`` when restoring ``postgres``),
    from which the target database is dropped and created."""
    parts = urlsplit(url)
    other = "template1" if unquote(parts.path.lstrip("/")) == "postgres" else "postgres"
    return urlunsplit(parts._replace(path=f"/{other}"))


def _tool(tool: str, url: str, *args: str) -> None:
    """Run pg_dump or pg_restore against ``url``; its password goes in the environment,
    not on the command line where every local user could read it."""
    parts = urlsplit(url)
    env = dict(os.environ)
    if parts.password is not None:
        env["PGPASSWORD"] = unquote(parts.password)
        userinfo, host = parts.netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        parts = parts._replace(netloc=f"{user}@{host}" if user else host)
    done = _run([tool, f"--dbname={urlunsplit(parts)}", *args], env=env)
    if done.returncode != 0:
        raise TwinError(f"{tool} failed: {_last_line(done)}")


def _run(argv: list[str], *, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(find_bin_dir() / argv[0]), *argv[1:]], capture_output=True,
                          text=True, env=env, check=False)


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {done.returncode}"
