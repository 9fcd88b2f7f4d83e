"""The `twin import` and `twin export` commands: parse options, call the service, print tables."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gis_data.importer.report import ImportReport

if TYPE_CHECKING:
    from gis_data.importer.walkgraph import GraphReport

#: Rows of notes shown under the summary (notes with the same reason share a row).
NOTES_SHOWN = 30


def import_command(
    path: Annotated[Path, typer.Argument(
        help="A GeoJSON/GeoPackage/Shapefile, an .osm.pbf extract, a CityJSON file, "
             "or a directory of them (a `twin export` too).")],
    community: Annotated[str, typer.Option(
        help="Community id (letters, digits, '-', '_'); it prefixes every imported id.")],
    layer: Annotated[list[str] | None, typer.Option(
        help="Only this layer (repeatable).")] = None,
    mapping: Annotated[Path | None, typer.Option(
        help="TOML file naming each layer's role and columns (see docs/import.md).")] = None,
    replace: Annotated[bool, typer.Option(
        help="Also delete what the source no longer has; devices and history of rows "
             "whose ids still match are kept.")] = False,
    name: Annotated[str | None, typer.Option(help="Display name of the community.")] = None,
    city: Annotated[str | None, typer.Option(help="City of the community.")] = None,
) -> None:
    """Import buildings, entrances and paths from GIS files into a community."""
    from gis_data.importer.service import STEPS, import_path
    from twin.config import load_settings
    from twin.services import stack
    from twin.store import migrations
    from twin.store.connection import connect

    console = Console()
    with connect(stack.database_url(load_settings())) as conn:
        migrations.upgrade(conn)
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task(f"importing {path}", total=len(STEPS) - 1)

            def step(what: str) -> None:
                progress.update(task, completed=STEPS.index(what), description=what)

            result = import_path(conn, path, community_id=community, layers=layer,
                                 mapping=mapping, replace=replace, name=name, city=city,
                                 step=step)
    print_report(console, result.report, title=f"imported {path} into {community}")


def export_command(
    path: Annotated[Path, typer.Argument(
        help="File to write (.gpkg, .city.json) or, for geojson, a directory.")],
    community: Annotated[str, typer.Option(help="Community id.")],
    format: Annotated[str, typer.Option(
        "--format", help="geojson, gpkg or cityjson.")] = "gpkg",
) -> None:
    """Export a community's buildings, facilities, devices (with latest state) and walkways."""
    from gis_data.exporter import export_community
    from twin.config import load_settings
    from twin.services import stack
    from twin.store import migrations
    from twin.store.connection import connect

    console = Console()
    with connect(stack.database_url(load_settings())) as conn:
        migrations.require_current(conn)
        written = export_community(conn, community, format, path)
    table = Table("layer", "rows")
    for layer, rows in written.items():
        table.add_row(layer, f"{rows:,}")
    console.print(f"[bold]wrote {path}[/] ({format})")
    console.print(table)


def register_gis_commands(app: typer.Typer) -> None:
    """Add `import` and `export` to the `twin` command."""
    app.command("import")(import_command)
    app.command("export")(export_command)


def print_report(console: Console, report: ImportReport, *, title: str) -> None:
    """The summary: layers read and imported, rows written, then every note (up to a limit)."""
    console.print(f"[bold]{title}[/]")
    layers = Table("layer", "as", "read", "imported", "repaired", "skipped", "default height")
    for c in report.layers:
        layers.add_row(c.layer, c.role, f"{c.read:,}", f"{c.imported:,}", f"{c.repaired:,}",
                       f"{c.skipped:,}", f"{c.defaulted:,}")
    console.print(layers)
    if report.written:
        written = Table("table", "inserted", "updated", "unchanged", "deleted")
        for table, n in report.written.items():
            written.add_row(table, *(f"{n[k]:,}" for k in ("inserted", "updated", "unchanged",
                                                           "deleted")))
        console.print(written)
    # the build step puts the walkway graph's GraphReport there
    graph = cast("GraphReport | None", report.graph)
    if graph is not None:
        console.print(
            f"walkway graph: {graph.lines:,} lines, {graph.gaps_closed:,} gaps closed, "
            f"{graph.nodes_merged:,} nodes merged, {graph.places_attached:,} places attached "
            f"({graph.doors_derived:,} doors placed on footprints), "
            f"{graph.components:,} component{'s' if graph.components != 1 else ''}"
            + (f" ([yellow]{len(graph.disconnected)} not connected to the main one[/])"
               if graph.disconnected else " (connected)"))
    if report.notes:
        notes = Table("layer", "feature", "what", "why")
        groups = _grouped(report)
        for layer, features, kind, why in groups[:NOTES_SHOWN]:
            label = features[0] if len(features) == 1 else (
                f"{len(features):,} features ({', '.join(features[:3])} ...)")
            notes.add_row(layer, label, kind, why)
        console.print(notes)
        if len(groups) > NOTES_SHOWN:
            console.print(f"... and {len(groups) - NOTES_SHOWN:,} more kinds of note "
                          f"({len(report.notes):,} notes in all)")


def _grouped(report: ImportReport) -> list[tuple[str, list[str], str, str]]:
    """Notes with the same layer, kind and reason as one row, in first-seen order."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for note in report.notes:
        groups.setdefault((note.layer, note.kind, note.why), []).append(note.feature)
    return [(layer, features, kind, why) for (layer, kind, why), features in groups.items()]
