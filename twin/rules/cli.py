"""`twin rules ...`: check, load, list, enable and disable rules (thin: one service call each).

`twin rules run`, the engine as an MQTT consumer, is registered by `ingest.cli`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from twin.console import command_connection, console
from twin.rules.compile import library_dir, load_directory
from twin.store import migrations

rules_app = typer.Typer(help="Rules: alarms, device linkage and work orders from what devices "
                             "say.", no_args_is_help=True)
_DIR = Annotated[Path | None, typer.Argument(
    help="A directory of rule YAML files (searched recursively); default: the shipped library.")]


@rules_app.command("check")
def check(directory: _DIR = None) -> None:
    """Validate rule files; errors name the rule, node and field."""
    rules = load_directory(directory or library_dir())
    table = Table("rule", "domain", "nodes", "listens to")
    for r in rules:
        table.add_row(r.id, r.rule.domain, str(len(r.order)), ", ".join(sorted(r.device_types)))
    console.print(table)
    console.print(f"{len(rules)} rules are valid")


@rules_app.command("load")
def load(
    directory: _DIR = None,
    replace: Annotated[bool, typer.Option(help="Delete stored rules that are not in DIR.")]
    = False,
) -> None:
    """Validate rule files and store them; a running `twin rules run` reloads them."""
    from twin.rules import store

    root = directory or library_dir()
    rules = load_directory(root)
    origins = {r.id: r.origin for r in rules if r.origin}
    with command_connection() as conn:
        migrations.require_current(conn)
        revision = store.store_rules(conn, rules, at=datetime.now(UTC),
                                     origins=origins, replace_all=replace)
        conn.commit()
    console.print(f"stored {len(rules)} rules from {root} (rule set revision {revision})")


@rules_app.command("list")
def list_rules() -> None:
    """Stored rules with their counters (evaluated, fired, last fired)."""
    from twin.rules import store

    with command_connection() as conn:
        rows = store.rule_table(conn)
    if not rows:
        console.print("no rules stored: run `twin rules load`")
        return
    table = Table("rule", "domain", "on", "evaluated", "fired", "last fired")
    for r in rows:
        table.add_row(r.id, r.domain, "yes" if r.enabled else "no", f"{r.evaluated:,}",
                      f"{r.fired:,}",
                      r.last_fired.isoformat(timespec="seconds") if r.last_fired else "")
    console.print(table)


@rules_app.command("enable")
def enable(rule_id: str) -> None:
    """Switch a stored rule on (the running service picks it up)."""
    _set(rule_id, True)


@rules_app.command("disable")
def disable(rule_id: str) -> None:
    """Switch a stored rule off (its state is kept)."""
    _set(rule_id, False)


def _set(rule_id: str, enabled: bool) -> None:
    from twin.rules import store

    with command_connection() as conn:
        revision = store.set_enabled(conn, rule_id, enabled, at=datetime.now(UTC))
        conn.commit()
    console.print(f"{rule_id} {'enabled' if enabled else 'disabled'} (revision {revision})")


