"""`twin rules ...`: check, load, list and run the rule engine (thin: one service call each)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin.config import load_settings
from twin.rules.compile import library_dir, load_directory
from twin.services import stack
from twin.store import migrations
from twin.store.connection import connect

rules_app = typer.Typer(help="Rules: alarms, device linkage and work orders from what devices "
                             "say.", no_args_is_help=True)
console = Console()
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
    with _connection() as conn:
        migrations.require_current(conn)
        revision = store.store_rules(conn, rules, at=datetime.now(timezone.utc),
                                     origins=origins, replace_all=replace)
        conn.commit()
    console.print(f"stored {len(rules)} rules from {root} (rule set revision {revision})")


@rules_app.command("list")
def list_rules() -> None:
    """Stored rules with their counters (evaluated, fired, last fired)."""
    from twin.rules import store

    with _connection() as conn:
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


@rules_app.command("run")
def run(
    group: Annotated[str, typer.Option(help="Shared-subscription group of rule services.")]
    = "twin-rules",
    client_id: Annotated[str, typer.Option(help="Stable per process: the broker keeps its "
                                                "session.")] = "twin-rules-1",
    community: Annotated[str | None, typer.Option(help="Only this community.")] = None,
    tick_s: Annotated[float, typer.Option(help="Seconds between clock ticks (timers, "
                                               "escalation).")] = 5.0,
) -> None:
    """Run the rule engine beside ingest until interrupted."""
    import logging

    from rich.logging import RichHandler

    from ingest.broker import with_service_credentials
    from ingest.broker_auth import RULES
    from twin.rules.service import RulesOptions, RulesService

    logging.basicConfig(level=logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=Console(stderr=True), show_path=False)])
    settings = load_settings()
    url = stack.database_url(settings)
    with connect(url) as conn:
        migrations.require_current(conn)
    # Its own service account: reads what ingest reads, writes device commands.
    mqtt_url = with_service_credentials(stack.mqtt_url(settings), RULES)
    RulesService(url, mqtt_url, RulesOptions(group=group, client_id=client_id,
                                             community_id=community, tick_s=tick_s)
                 ).run_forever()


def _set(rule_id: str, enabled: bool) -> None:
    from twin.rules import store

    with _connection() as conn:
        revision = store.set_enabled(conn, rule_id, enabled, at=datetime.now(timezone.utc))
        conn.commit()
    console.print(f"{rule_id} {'enabled' if enabled else 'disabled'} (revision {revision})")


def _connection():
    return connect(stack.database_url(load_settings()))
