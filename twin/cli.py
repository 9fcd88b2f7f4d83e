"""The `twin` command: a thin entry point that parses options and calls one service each."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Iterator

import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from twin.config import Settings, load_settings
from twin.errors import TwinError
from twin.services import stack
from twin.store import migrations
from twin.store.connection import connect, describe

app = typer.Typer(
    help="Digital-twin operations center for smart residential communities.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="The twin's database schema.", no_args_is_help=True)
query_app = typer.Typer(help="Ask the twin the everyday questions.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(query_app, name="query")

console = Console()


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
    with _connection() as conn:
        applied = migrations.upgrade(conn)
    if applied:
        for m in applied:
            console.print(f"applied {m.version:04d}_{m.name}")
    else:
        console.print("the schema is up to date")


@db_app.command("status")
def db_status() -> None:
    """List migrations and when each was applied."""
    with _connection() as conn:
        rows = migrations.status(conn)
    table = Table("version", "name", "applied at")
    for s in rows:
        table.add_row(f"{s.migration.version:04d}", s.migration.name,
                      s.applied_at.isoformat(timespec="seconds") if s.applied_at else "pending")
    console.print(table)


# --- data ------------------------------------------------------------------------------

@app.command()
def generate(
    out: Annotated[Path, typer.Argument(help="Directory to write the layers to.")],
    buildings: Annotated[int | None, typer.Option(
        help="District scale: number of buildings.")] = None,
    devices: Annotated[int | None, typer.Option(help="District scale: number of devices.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
) -> None:
    """Generate the sample community, or a district with --buildings/--devices."""
    dataset = _generate(buildings=buildings, devices=devices, seed=seed)
    with _progress() as progress:
        progress.add_task(f"writing {out}", total=None)
        dataset.write(out)
    _print_counts(dataset.summary(), title=f"wrote {out}")


@app.command()
def load(
    directory: Annotated[Path | None, typer.Argument(
        help="A directory written by `twin generate`; default: the shipped sample.")] = None,
    buildings: Annotated[int | None, typer.Option(
        help="Generate a district of this many buildings and load it instead.")] = None,
    devices: Annotated[int | None, typer.Option(help="Devices of the generated district.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated district.")] = 7,
) -> None:
    """Load a community into the twin (replacing it if it is there)."""
    from gis_data import SAMPLE_DIR
    from gis_data.dataset import read_dataset

    if buildings is not None:
        dataset = _generate(buildings=buildings, devices=devices, seed=seed)
    else:
        dataset = read_dataset(directory or SAMPLE_DIR)
    with _connection() as conn:
        migrations.upgrade(conn)
        counts = _load_with_progress(conn, dataset)
    _print_counts(counts, title="loaded")


@app.command()
def info() -> None:
    """Summarise every community in the twin."""
    from twin.store import queries

    with _connection() as conn:
        migrations.require_current(conn)
        found = queries.communities(conn)
        if not found:
            console.print("the twin is empty: run `twin load` or `twin demo`")
            return
        for community_id, name, city in found:
            _print_counts(queries.community_summary(conn, community_id),
                          title=f"{name} ({community_id}, {city})")


@app.command()
def demo() -> None:
    """Bring the stack up from nothing, load the sample community and show what loaded."""
    from twin.store import queries

    from gis_data import SAMPLE_DIR
    from gis_data.dataset import read_dataset

    settings = load_settings()
    started = time.monotonic()
    endpoints = stack.up(settings)
    console.print(f"database  {describe(endpoints.database_url)}")
    console.print(f"broker    {endpoints.mqtt_url}")
    dataset = read_dataset(SAMPLE_DIR)
    with _connection(settings) as conn:
        for m in migrations.upgrade(conn):
            console.print(f"applied migration {m.version:04d}_{m.name}")
        _load_with_progress(conn, dataset)
        for community_id, name, city in queries.communities(conn):
            _print_counts(queries.community_summary(conn, community_id),
                          title=f"{name} ({community_id}, {city})")
    console.print(f"ready in {time.monotonic() - started:.1f} s. Try `twin query building "
                  f"{dataset.tables()[2][1]['id'].iloc[0]}`; stop the servers with `twin down`.")


# --- live data -------------------------------------------------------------------------

@app.command()
def ingest(
    group: Annotated[str, typer.Option(help="Shared-subscription group; processes in one "
                                            "group split the stream.")] = "twin-ingest",
    client_id: Annotated[str, typer.Option(help="Stable per process: the broker keeps its "
                                                "session (and unacknowledged messages).")]
    = "twin-ingest-1",
    max_batch: Annotated[int, typer.Option(help="Flush after this many messages.")] = 5000,
    flush_ms: Annotated[int, typer.Option(help="Flush at least this often.")] = 100,
    metrics_port: Annotated[int, typer.Option(help="Serve Prometheus /metrics here "
                                                   "(0: a free port).")] = 9108,
) -> None:
    """Run the MQTT ingest service (readings, events, status, acks) until interrupted."""
    import logging

    from rich.logging import RichHandler

    from ingest.broker import with_service_credentials
    from ingest.broker_auth import INGEST
    from ingest.service import IngestOptions, IngestService

    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])
    settings = load_settings()
    service = IngestService(
        stack.database_url(settings), with_service_credentials(stack.mqtt_url(settings), INGEST),
        IngestOptions(group=group, client_id=client_id, max_batch=max_batch,
                      flush_interval_s=flush_ms / 1000, metrics_port=metrics_port),
    )
    service.run_forever()


@app.command("mqtt-schemas")
def mqtt_schemas(
    out: Annotated[Path | None, typer.Argument(help="Directory; default ingest/schemas.")] = None,
) -> None:
    """Write the JSON Schemas of the MQTT payloads (generated from the contract's models)."""
    from ingest.contract import SCHEMA_DIR, write_schemas

    for path in write_schemas(out or SCHEMA_DIR):
        console.print(f"wrote {path}")


def _register_live_commands() -> None:
    """Commands whose modules live beside the service they configure."""
    from gis_data.importer.command import register_gis_commands
    from ingest.broker_auth import broker_config_command
    from ingest.simulator import simulate_command
    from twin.cli_whatif import whatif_app

    app.command("broker-config")(broker_config_command)
    app.command("simulate")(simulate_command)
    __import__("dashboard.cli").cli.register(app)  # twin dashboard, twin users
    app.add_typer(whatif_app, name="whatif")
    register_gis_commands(app)
    app.add_typer(__import__("twin.rules.cli").rules.cli.rules_app, name="rules")


_register_live_commands()


# --- queries ---------------------------------------------------------------------------

@query_app.command("building")
def query_building(building_id: str) -> None:
    """Everything in one building."""
    from twin.store import queries

    with _connection() as conn:
        c = queries.building_contents(conn, building_id)
    b = c.building
    console.print(f"[bold]{b.name}[/] ({b.id}): {b.floors} floors, {b.height_m:.1f} m, "
                  f"{b.units_per_floor} units per floor, grid {b.grid_id}")
    console.print(f"entrances {c.entrances}, units {c.units} ({c.occupied_units} occupied), "
                  f"residents {c.residents} ({c.care_residents} with special care)")
    _print_counts(c.devices_by_type, title="devices")
    if c.facilities_by_kind:
        _print_counts(c.facilities_by_kind, title="facilities")


@query_app.command("near")
def query_near(
    lon: float, lat: float,
    radius: Annotated[float, typer.Option(help="Metres.")] = 200.0,
    device_type: Annotated[str | None, typer.Option("--type", help="A device type code.")] = None,
) -> None:
    """Devices within a radius of a point, nearest first."""
    from twin.store import queries

    with _connection() as conn:
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

    with _connection() as conn:
        states = queries.latest_state_in_grid(conn, grid_id)
    table = Table("device", "type", "online", "last seen")
    for s in states:
        table.add_row(s.device.id, s.device.type,
                      "?" if s.online is None else ("yes" if s.online else "no"),
                      s.last_seen.isoformat(timespec="seconds") if s.last_seen else "never")
    console.print(table)


# --- internals -------------------------------------------------------------------------

@contextmanager
def _connection(settings: Settings | None = None) -> Iterator[psycopg.Connection]:
    """A connection whose work is committed when the command ends well, rolled back if not."""
    settings = settings or load_settings()
    with connect(stack.database_url(settings)) as conn:
        yield conn


def _generate(*, buildings: int | None, devices: int | None, seed: int):  # -> Dataset
    from gis_data.generator import generate_community, generate_district

    with _progress() as progress:
        if buildings is None and devices is None:
            return generate_community(seed=seed, progress=progress)
        if buildings is None or devices is None:
            raise TwinError("a district needs both --buildings and --devices")
        return generate_district(buildings=buildings, devices=devices, seed=seed,
                                 progress=progress)


def _load_with_progress(conn: psycopg.Connection, dataset) -> dict[str, int]:
    from twin.store.loader import load_dataset

    tables = dataset.tables()
    with _progress() as progress:
        task = progress.add_task("loading", total=len(tables))
        return load_dataset(
            conn, dataset,
            on_table=lambda name, n: progress.update(task, advance=1,
                                                     description=f"loaded {name} ({n:,})"),
        )


def _progress() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def _print_counts(counts: dict[str, int], *, title: str) -> None:
    console.print(f"[bold]{title}[/]")
    table = Table("what", "count")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
