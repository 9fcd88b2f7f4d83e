"""The live commands: `twin ingest`, `twin rules run`, `twin simulate`, `twin broker-config`
and `twin mqtt-schemas`.

Registered on the `twin` command through the ``twin.cli`` entry point, so the
core's CLI imports no adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ingest.broker import with_service_credentials
from ingest.broker_auth import broker_config_command
from twin.config import load_settings
from twin.console import command_connection, console
from twin.rules.cli import rules_app
from twin.services import stack
from twin.services.broker_accounts import INGEST, RULES
from twin.store import migrations


def register(app: typer.Typer) -> None:
    from ingest.simulator import simulate_command

    app.command()(ingest)
    app.command("simulate")(simulate_command)
    app.command("broker-config")(broker_config_command)
    app.command("mqtt-schemas")(mqtt_schemas)
    app.command("broker-tls")(broker_tls)
    rules_app.command("run")(rules_run)


def ingest(
    group: Annotated[str, typer.Option(help="Shared-subscription group; processes in one "
                                            "group split the stream.")] = "twin-ingest",
    client_id: Annotated[str, typer.Option(help="Stable per process: the broker keeps its "
                                                "session (and unacknowledged messages).")]
    = "twin-ingest-1",
    community: Annotated[str | None, typer.Option(
        help="Only this community's topics; default: every community.")] = None,
    max_batch: Annotated[int, typer.Option(help="Flush after this many messages.")] = 5000,
    flush_ms: Annotated[int, typer.Option(help="Flush at least this often.")] = 100,
    metrics_port: Annotated[int, typer.Option(
        envvar="TWIN_INGEST_METRICS_PORT",
        help="Serve Prometheus /metrics and /healthz here (0: a free port); on "
             "TWIN_METRICS_HOST, default loopback.")] = 9108,
) -> None:
    """Run the MQTT ingest service (readings, events, status, acks) until interrupted."""
    from ingest.service import IngestOptions, IngestService

    _log_to_console()
    settings = load_settings()
    IngestService(
        stack.database_url(settings), with_service_credentials(stack.mqtt_url(settings), INGEST),
        IngestOptions(group=group, client_id=client_id, community_id=community,
                      max_batch=max_batch, flush_interval_s=flush_ms / 1000,
                      metrics_port=metrics_port),
    ).run_forever()


def rules_run(
    group: Annotated[str, typer.Option(help="Shared-subscription group of rule services.")]
    = "twin-rules",
    client_id: Annotated[str | None, typer.Option(
        help="Stable per process: the broker keeps its session. Default: twin-rules-1, or "
             "twin-rules-<community> with --community.")] = None,
    community: Annotated[str | None, typer.Option(
        help="Only this community: its topics, its devices, its staff.")] = None,
    tick_s: Annotated[float, typer.Option(help="Seconds between clock ticks (timers, "
                                               "escalation).")] = 5.0,
    metrics_port: Annotated[int | None, typer.Option(
        envvar="TWIN_RULES_METRICS_PORT",
        help="Serve Prometheus /metrics and /healthz here (0: a free port); default: "
             "none.")] = None,
    max_fix_age_s: Annotated[float, typer.Option(
        help="Dispatch uses a staff member's newest position fix up to this age (seconds); "
             "older, it starts them from their post.")] = 600.0,
    clock: Annotated[str, typer.Option(
        help="'wall' to live through the day; 'data' (the newest device time seen) while "
             "`twin simulate --speed` or a replay feeds the past at speed.")] = "wall",
) -> None:
    """Run the rule engine beside ingest until interrupted."""
    from ingest.rules import RulesOptions, RulesService
    from twin.clock import Watermark, wall_clock

    if clock not in ("wall", "data"):
        raise typer.BadParameter("expected 'wall' or 'data'", param_hint="--clock")

    _log_to_console()
    settings = load_settings()
    url = stack.database_url(settings)
    with command_connection(settings) as conn:
        migrations.require_current(conn)
    # Its own service account: reads what ingest reads, writes device commands.
    mqtt_url = with_service_credentials(stack.mqtt_url(settings), RULES)
    RulesService(url, mqtt_url, RulesOptions(
        group=group, client_id=client_id or (f"twin-rules-{community}" if community
                                             else "twin-rules-1"),
        community_id=community, tick_s=tick_s, metrics_port=metrics_port,
        max_fix_age_s=max_fix_age_s),
        clock=Watermark() if clock == "data" else wall_clock).run_forever()


def mqtt_schemas(
    out: Annotated[Path | None, typer.Argument(help="Directory; default ingest/schemas.")] = None,
) -> None:
    """Write the JSON Schemas of the MQTT payloads (generated from the contract's models)."""
    from ingest.contract import SCHEMA_DIR, write_schemas

    for path in write_schemas(out or SCHEMA_DIR):
        console.print(f"wrote {path}")


def broker_tls(
    out: Annotated[Path, typer.Argument(help="Directory for ca.crt, ca.key, server.crt and "
                                             "server.key (e.g. deploy/tls).")],
    host: Annotated[list[str] | None, typer.Option(
        help="A name or address clients dial (repeat); default: localhost and "
             "127.0.0.1.")] = None,
) -> None:
    """Make the broker's CA and server certificate for its TLS listener (kept if they
    already name every host). Clients trust ca.crt: mqtts://host:8883?ca=.../ca.crt."""
    from twin.services.tls import DEFAULT_HOSTS, ensure_certificates

    files = ensure_certificates(out, tuple(host) if host else DEFAULT_HOSTS)
    console.print(f"CA {files.ca}\nserver certificate {files.cert}, key {files.key} (0600)")


def _log_to_console() -> None:
    """JSON lines for a service, text at a terminal (TWIN_LOG_FORMAT; twin.logs)."""
    from twin import logs

    logs.configure()
