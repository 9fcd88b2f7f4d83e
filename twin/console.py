"""What every `twin` command shares: the console, a committing connection, progress, counts.

The core's commands and the adapters' commands (registered as ``twin.cli``
entry points) print and connect the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from twin.config import Settings, load_settings
from twin.services import stack
from twin.store.connection import connect

console = Console()


@contextmanager
def command_connection(settings: Settings | None = None) -> Iterator[psycopg.Connection]:
    """A connection whose work is committed when the command ends well, rolled back if not."""
    settings = settings or load_settings()
    with connect(stack.database_url(settings)) as conn:
        yield conn


def progress_bar() -> Progress:
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TimeElapsedColumn(), console=console, transient=True)


def print_counts(counts: dict[str, int], *, title: str) -> None:
    console.print(f"[bold]{title}[/]")
    table = Table("what", "count")
    for key, value in counts.items():
        table.add_row(key, f"{value:,}")
    console.print(table)
