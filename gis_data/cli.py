"""`twin generate`, `twin load`, `twin setup`, `twin import` and `twin export`: data in and out.

Registered on the `twin` command through the ``twin.cli`` entry point, so the
core's CLI imports no adapter.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import psycopg
import typer

from gis_data import SAMPLE_DIR
from gis_data.dataset import Dataset, read_dataset
from gis_data.importer.command import register_gis_commands
from twin.config import load_settings
from twin.console import command_connection, console, print_counts, progress_bar
from twin.errors import TwinError
from twin.services import stack
from twin.store import migrations
from twin.store.connection import describe


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.command()(load)
    app.command()(setup)
    register_gis_commands(app)


def generate(
    out: Annotated[Path, typer.Argument(help="Directory to write the layers to.")],
    buildings: Annotated[int | None, typer.Option(
        help="District scale: number of buildings.")] = None,
    devices: Annotated[int | None, typer.Option(help="District scale: number of devices.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same files.")] = 7,
) -> None:
    """Generate the sample community, or a district with --buildings/--devices."""
    dataset = _generate(buildings=buildings, devices=devices, seed=seed)
    with progress_bar() as progress:
        progress.add_task(f"writing {out}", total=None)
        dataset.write(out)
    print_counts(dataset.summary(), title=f"wrote {out}")


def load(
    directory: Annotated[Path | None, typer.Argument(
        help="A directory written by `twin generate`; default: the shipped sample.")] = None,
    buildings: Annotated[int | None, typer.Option(
        help="Generate a district of this many buildings and load it instead.")] = None,
    devices: Annotated[int | None, typer.Option(help="Devices of the generated district.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the generated district.")] = 7,
) -> None:
    """Load a community into the twin (replacing it if it is there)."""
    if buildings is not None:
        dataset = _generate(buildings=buildings, devices=devices, seed=seed)
    else:
        dataset = read_dataset(directory or SAMPLE_DIR)
    with command_connection() as conn:
        migrations.upgrade(conn)
        counts = load_with_progress(conn, dataset)
    print_counts(counts, title="loaded")


def setup() -> None:
    """Bring the servers up from nothing, migrate, load the sample community, show what loaded.

    `twin demo` does this and then runs the live center.
    """
    setup_sample()


def setup_sample(*, reload: bool = True) -> str:
    """Servers up, schema current, the sample loaded (again only if ``reload``); its first
    building's id, for the hint."""
    from twin.store import queries

    settings = load_settings()
    started = time.monotonic()
    endpoints = stack.up(settings)
    console.print(f"database  {describe(endpoints.database_url)}")
    console.print(f"broker    {endpoints.mqtt_url}")
    dataset = read_dataset(SAMPLE_DIR)
    with command_connection(settings) as conn:
        for m in migrations.upgrade(conn):
            console.print(f"applied migration {m.version:04d}_{m.name}")
        if reload or not queries.communities(conn):
            load_with_progress(conn, dataset)
        for community_id, name, city in queries.communities(conn):
            print_counts(queries.community_summary(conn, community_id),
                          title=f"{name} ({community_id}, {city})")
    building = str(dataset.tables()[2][1]["id"].iloc[0])
    console.print(f"ready in {time.monotonic() - started:.1f} s. Try `twin query building "
                  f"{building}`; stop the servers with `twin down`.")
    return building


def load_with_progress(conn: psycopg.Connection, dataset: Dataset) -> dict[str, int]:
    from twin.store.loader import load_dataset

    tables = dataset.tables()
    with progress_bar() as progress:
        task = progress.add_task("loading", total=len(tables))
        return load_dataset(
            conn, dataset,
            on_table=lambda name, n: progress.update(task, advance=1,
                                                     description=f"loaded {name} ({n:,})"),
        )


def _generate(*, buildings: int | None, devices: int | None, seed: int) -> Dataset:
    from gis_data.generator import generate_community, generate_district

    with progress_bar() as progress:
        if buildings is None and devices is None:
            return generate_community(seed=seed, progress=progress)
        if buildings is None or devices is None:
            raise TwinError("a district needs both --buildings and --devices")
        return generate_district(buildings=buildings, devices=devices, seed=seed,
                                 progress=progress)
