"""The `twin` command: a thin entry point that parses options and calls one service each."""

from __future__ import annotations

import re
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from twin.config import load_settings
from twin.console import command_connection, console, print_counts
from twin.errors import TwinError
from twin.services import stack
from twin.store import migrations
from twin.store.connection import describe

if TYPE_CHECKING:
    from twin.store.lifecycle import Outcome

app = typer.Typer(
    help="Digital-twin operations center for smart residential communities.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The twin's database schema.", no_args_is_help=True)
query_app = typer.Typer(help="Ask the twin the everyday questions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(query_app, name="query")



def main() -> None:
    """Console-script entry: user errors print as one sentence, not a stack trace."""
    try:
        app()
    except TwinError as e:
        Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(1)


# --- servers ---------------------------------------------------------------------------

@app.command()
def up() -> None:
    """Start the embedded PostgreSQL and Mosquitto (configured servers are left alone)."""
    settings = load_settings()
    endpoints = stack.up(settings)
    console.print(f"database  {describe(endpoints.database_url)}"
                  f"{'' if settings.database_url else '  (embedded)'}")
    console.print(f"broker    {endpoints.mqtt_url}{'' if settings.mqtt_url else '  (embedded)'}")


@app.command()
def down() -> None:
    """Stop the embedded PostgreSQL and Mosquitto."""
    stopped = stack.down(load_settings())
    console.print("stopped " + ", ".join(stopped) if stopped else "nothing was running")


@app.command()
def status() -> None:
    """Show which servers the twin uses and whether they run."""
    settings = load_settings()
    table = Table("server", "where", "state")
    if settings.database_url:
        table.add_row("PostgreSQL", describe(settings.database_url), "configured")
    else:
        pg = stack.embedded_postgres(settings)
        state = "running" if pg.running() else ("stopped" if pg.initialized else "not created")
        where = f"{describe(pg.url())} ({pg.data_dir})" if pg.initialized else str(pg.data_dir)
        table.add_row("PostgreSQL", where, state)
    if settings.mqtt_url:
        table.add_row("Mosquitto", settings.mqtt_url, "configured")
    else:
        broker = stack.embedded_mosquitto(settings)
        created = broker.conf.exists()
        table.add_row("Mosquitto", broker.url if created else str(broker.directory),
                      "running" if created and broker.running() else
                      ("stopped" if created else "not created"))
    console.print(table)


# --- schema ----------------------------------------------------------------------------

@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply pending migrations (idempotent)."""
    with command_connection() as conn:
        applied = migrations.upgrade(conn)
    if applied:
        for m in applied:
            console.print(f"applied {m.version:04d}_{m.name}")
    else:
        console.print("the schema is up to date")


@db_app.command("status")
def db_status() -> None:
    """List migrations and when each was applied."""
    with command_connection() as conn:
        rows = migrations.status(conn)
    table = Table("version", "name", "applied at")
    for s in rows:
        table.add_row(f"{s.migration.version:04d}", s.migration.name,
                      s.applied_at.isoformat(timespec="seconds") if s.applied_at else "pending")
    console.print(table)


@db_app.command("lifecycle")
def db_lifecycle(
    readings_days: Annotated[float, typer.Option(
        envvar="TWIN_KEEP_READINGS_DAYS", help="Days of raw readings kept.")] = 90,
    rollups_days: Annotated[float, typer.Option(
        envvar="TWIN_KEEP_ROLLUPS_DAYS", help="Days of hourly rollups of readings kept.")] = 730,
    events_days: Annotated[float, typer.Option(
        envvar="TWIN_KEEP_EVENTS_DAYS", help="Days of events kept; 0: for ever.")] = 0,
    positions_days: Annotated[float, typer.Option(
        envvar="TWIN_KEEP_POSITIONS_DAYS",
        help="Days of staff positions kept; 0: for ever.")] = 0,
    compress_after_days: Annotated[float, typer.Option(
        envvar="TWIN_COMPRESS_AFTER_DAYS",
        help="Timescale edition: days after which readings are compressed; 0: a week, or "
             "half the raw retention if shorter.")] = 0,
    every: Annotated[str | None, typer.Option(
        help="Run again at this interval until stopped (90s, 15m, 1h, 1d).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Report what would be done, and do nothing.")] = False,
) -> None:
    """Roll readings up into hourly rollups and drop data past its retention.

    On the apache edition of TimescaleDB this runs the project's job once (or
    with --every, again and again; or from a systemd timer). On the timescale
    edition it sets the server's own policies, which then run by themselves.
    """
    from twin.lifecycle import Retention
    from twin.store import lifecycle

    try:
        retention = Retention.in_days(readings=readings_days, rollups=rollups_days,
                                      events=events_days, positions=positions_days,
                                      compress_after=compress_after_days)
    except ValueError as e:
        raise TwinError(str(e)) from e
    period = None if every is None else _seconds(every)
    settings = load_settings()
    try:
        while True:
            began = time.monotonic()
            try:
                with command_connection(settings) as conn:
                    migrations.require_current(conn)
                    outcome = lifecycle.keep(conn, retention, dry_run=dry_run)
            except (TwinError, psycopg.OperationalError) as e:
                if period is None:
                    raise
                # A scheduled loop outlives a restart of the database or a run already going.
                console.print(f"[bold red]error:[/] {e} (trying again in {every})",
                              highlight=False)
            else:
                _print_lifecycle(outcome, dry_run=dry_run)
                if outcome.path == "policies" and period is not None:
                    console.print("the server's scheduler runs the policies: nothing to repeat")
                    return
            if period is None:
                return
            time.sleep(max(0.0, period - (time.monotonic() - began)))
    except KeyboardInterrupt:
        if period is None:
            raise
        console.print("stopped")


@db_app.command("backup")
def db_backup(file: Annotated[Path, typer.Argument(help="The backup file to write.")]) -> None:
    """Back up the whole database into FILE (pg_dump's custom format)."""
    from twin.services.backup import backup

    url = stack.database_url(load_settings())
    done = backup(url, file)
    console.print(f"backed up {describe(url)} into {done.path} "
                  f"({done.bytes / 2**20:,.1f} MiB) in {done.seconds:.1f} s")


@db_app.command("restore")
def db_restore(
    file: Annotated[Path, typer.Argument(help="A backup written by `twin db backup`.")],
    replace: Annotated[bool, typer.Option(
        "--replace", help="Drop the database first when it holds data.")] = False,
) -> None:
    """Restore FILE as the twin's database (TimescaleDB's pre- and post-restore around
    pg_restore)."""
    from twin.services.backup import restore

    url = stack.database_url(load_settings())
    done = restore(url, file, replace=replace)
    console.print(f"restored {file} as {describe(url)}{' (replaced)' if done.replaced else ''}: "
                  f"{done.tables} tables in {done.seconds:.1f} s")
    with command_connection() as conn:
        behind = migrations.pending(conn)
    if behind:
        console.print(f"{len(behind)} migrations are newer than the backup: run "
                      "`twin db upgrade`")


@app.command()
def info() -> None:
    """Summarise every community in the twin."""
    from twin.store import queries

    with command_connection() as conn:
        migrations.require_current(conn)
        found = queries.communities(conn)
        if not found:
            console.print("the twin is empty: run `twin load` or `twin demo`")
            return
        for community_id, name, city in found:
            print_counts(queries.community_summary(conn, community_id),
                          title=f"{name} ({community_id}, {city})")


def _print_lifecycle(outcome: Outcome, *, dry_run: bool) -> None:
    console.print(f"timescaledb.license = {outcome.licence}: {outcome.reason}")
    if outcome.report is not None:
        r = outcome.report
        dropped = ", ".join(f"{table} {n}" for table, n in r.dropped.items())
        console.print(f"{'would roll' if dry_run else 'rolled'} up {r.hours:,} hours "
                      f"({r.rollup_rows:,} rollup rows written, {r.late_readings:,} late "
                      f"readings added); chunks dropped: {dropped}; raw readings kept from "
                      f"{r.cutoff.isoformat(timespec='minutes')}; {r.seconds:.1f} s"
                      + (" (dry run: rolled back)" if dry_run else ""))
    for statement in outcome.statements:
        params = f"  -- {', '.join(map(str, statement.params))}" if statement.params else ""
        console.print(f"{'would run' if dry_run else 'ran'}: {statement.sql}{params}",
                      highlight=False)


_EVERY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def _seconds(text: str) -> float:
    """'90s', '15m', '1h', '1d' or plain seconds, as seconds."""
    match = _EVERY.match(text)
    if not match or float(match.group(1)) <= 0:
        raise TwinError(f"--every takes a positive duration such as 90s, 15m, 1h or 1d, "
                        f"not {text!r}")
    unit = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}[match.group(2)]
    return timedelta(seconds=float(match.group(1)) * unit).total_seconds()


# --- queries ---------------------------------------------------------------------------

@query_app.command("building")
def query_building(building_id: str) -> None:
    """Everything in one building."""
    from twin.store import queries

    with command_connection() as conn:
        c = queries.building_contents(conn, building_id)
    b = c.building
    console.print(f"[bold]{b.name}[/] ({b.id}): {b.floors} floors, {b.height_m:.1f} m, "
                  f"{b.units_per_floor} units per floor, grid {b.grid_id}")
    console.print(f"entrances {c.entrances}, units {c.units} ({c.occupied_units} occupied), "
                  f"residents {c.residents} ({c.care_residents} with special care)")
    print_counts(c.devices_by_type, title="devices")
    if c.facilities_by_kind:
        print_counts(c.facilities_by_kind, title="facilities")


@query_app.command("near")
def query_near(
    lon: float, lat: float,
    radius: Annotated[float, typer.Option(help="Metres.")] = 200.0,
    device_type: Annotated[str | None, typer.Option("--type", help="A device type code.")] = None,
) -> None:
    """Devices within a radius of a point, nearest first."""
    from twin.store import queries

    with command_connection() as conn:
        found = queries.devices_within(conn, lon, lat, radius, device_type=device_type)
    table = Table("device", "type", "building", "floor", "distance (m)")
    for n in found:
        d = n.device
        table.add_row(d.id, d.type, d.building_id or "", "" if d.floor is None else str(d.floor),
                      f"{n.distance_m:.1f}")
    console.print(table)
    console.print(f"{len(found)} devices within {radius:g} m")


@query_app.command("grid")
def query_grid(grid_id: str) -> None:
    """Latest state of every device in a grid."""
    from twin.store import queries

    with command_connection() as conn:
        states = queries.latest_state_in_grid(conn, grid_id)
    table = Table("device", "type", "online", "last seen")
    for s in states:
        table.add_row(s.device.id, s.device.type,
                      "?" if s.online is None else ("yes" if s.online else "no"),
                      s.last_seen.isoformat(timespec="seconds") if s.last_seen else "never")
    console.print(table)


# --- commands of the adapters ------------------------------------------------------------

def _register_plugins() -> None:
    """Commands that live beside the adapter they drive (GIS data, MQTT, the dashboard).

    They are declared as ``twin.cli`` entry points in pyproject.toml, so that the
    core imports none of its adapters; each entry point is ``register(app)``.
    """
    from importlib.metadata import entry_points

    from twin.cli_audit import audit_command
    from twin.cli_credentials import credentials_app
    from twin.cli_whatif import whatif_app
    from twin.rules.cli import rules_app

    app.add_typer(whatif_app, name="whatif")
    app.add_typer(rules_app, name="rules")
    app.add_typer(credentials_app, name="credentials")
    app.command("audit")(audit_command)
    found = sorted(entry_points(group="twin.cli"), key=lambda e: e.name)
    if not found:
        raise RuntimeError("no `twin.cli` entry points: reinstall the project (pip install -e .)")
    for entry in found:
        entry.load()(app)


_register_plugins()
