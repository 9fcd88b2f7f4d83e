"""`twin demo`: the live control center on one command.

It does what a newcomer would otherwise do in five terminals: servers up,
schema current, the sample community loaded (once), the scenario library
stored, logins for each role; then it runs ingest, the rules, the
notification worker (when installed), the simulator (with a few incidents in
the first minutes) and the dashboard as one honcho process group, prints the
URL and the logins, and stops everything on Ctrl-C.

Every process is the ordinary `twin` command, so what the demo shows is the
live pipeline: simulated devices -> Mosquitto -> ingest and rules -> the
screen. Nothing on the screen is seeded.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from honcho.manager import Manager
from honcho.printer import Printer

from dashboard.demo import seed_users
from gis_data.cli import setup_sample
from twin.config import Settings, load_settings
from twin.console import command_connection, console
from twin.rules.store import store_library_if_empty
from twin.services import stack

#: What the simulator injects at start, so the screen has something to show in minutes.
DEMO_INCIDENTS: tuple[str, ...] = ("co-leak:1号地库", "trash-overflow:1号垃圾站",
                                    "fire-lane-parking:东门")


def demo_command(
    port: Annotated[int, typer.Option(help="The control room's port.")] = 8050,
    speed: Annotated[float, typer.Option(
        help="Simulated seconds per real second (1: live, until Ctrl-C; more lives the last "
             "day at that speed, with the rules on the data's clock, then stops).")] = 1.0,
    incidents: Annotated[bool, typer.Option(help="Inject a few incidents at start.")] = True,
    password: Annotated[str | None, typer.Option(
        envvar="TWIN_DEMO_PASSWORD",
        help="Password of the demo logins; default: a new random one, printed.")] = None,
    notify_config: Annotated[Path | None, typer.Option(
        envvar="TWIN_NOTIFY_CONFIG",
        help="Deliver notifications with this configuration (docs/notifications.md); "
             "without it they wait in the outbox.")] = None,
) -> None:
    """Run the live center: ingest, rules, notifications, simulator and dashboard, until Ctrl-C."""
    settings = load_settings()
    were_running = _embedded_running(settings)
    setup_sample(reload=False)
    password = password or secrets.token_urlsafe(9)
    with command_connection() as conn:
        store_library_if_empty(conn, at=datetime.now(UTC))
        conn.commit()
        users = seed_users(conn, password=password)
    _open_sessions()
    twin = _twin_command()
    # the processes' logs go to a person at this terminal, through honcho's pipes
    os.environ.setdefault("TWIN_LOG_FORMAT", "text")
    manager = Manager(Printer(sys.stdout))
    for name, args in demo_processes(speed=speed, port=port, incidents=incidents,
                                     notify_config=notify_config):
        manager.add_process(name, shlex.join([twin, *args]))
    console.print(f"\n[bold]control room[/]  http://127.0.0.1:{port}/")
    for role, name in (("admin", users.admin), ("operator", users.operator),
                       ("planner", users.planner), ("grid worker", users.worker),
                       ("resident", users.resident), ("family", users.family)):
        if name:
            console.print(f"  {role:<12} {name} / {password}")
    console.print("  (the resident's and family's phone app: open the same URL on a phone, "
                  "or a narrow window; their inbox fills with --notify-config)")
    console.print("Ctrl-C stops everything.\n")
    manager.loop()
    if not were_running:  # servers this demo started stop with it
        stopped = stack.down(settings)
        if stopped:
            console.print("stopped " + ", ".join(stopped))
    sys.exit(manager.returncode)


def demo_processes(*, speed: float, port: int, incidents: bool,
                   notify_config: Path | None = None) -> list[tuple[str, list[str]]]:
    """The processes of the live center, as `twin` arguments."""
    simulate = ["simulate", "--speed", f"{speed:g}", "--batch", "50"]
    if speed > 1:
        # Devices may not report the future: at speed, the demo lives the last day, ending
        # now (the simulator starts early enough), and then the demo ends.
        simulate += ["--duration", f"{86_400 / speed:g}"]
    if incidents:
        for incident in DEMO_INCIDENTS:
            simulate += ["--inject", incident]
    processes = [
        ("ingest", ["ingest", "--metrics-port", "0"]),
        ("rules", ["rules", "run", "--clock", "wall" if speed == 1 else "data"]),
        ("simulate", simulate),
        ("dashboard", ["dashboard", "--port", str(port)]),
    ]
    if notify_config is not None:
        processes.insert(2, ("notify", ["notify", "run", "--config", str(notify_config)]))
    return processes


def _embedded_running(settings: Settings) -> bool:
    """Whether the embedded servers (those the twin runs itself) are already up."""
    pg, broker = stack.embedded_postgres(settings), stack.embedded_mosquitto(settings)
    return ((not settings.embedded_database or pg.running())
            and (not settings.embedded_broker or (broker.conf.exists() and broker.running())))


def _open_sessions() -> None:
    """Ingest's and the rules' broker sessions exist before the simulator's first message."""
    from ingest.broker import with_service_credentials
    from ingest.consumer import open_session
    from ingest.rules import RULE_KINDS, RulesOptions
    from ingest.service import IngestOptions
    from twin.services.broker_accounts import INGEST, RULES
    url = stack.mqtt_url(load_settings())
    open_session(with_service_credentials(url, INGEST), IngestOptions())
    open_session(with_service_credentials(url, RULES), RulesOptions(), RULE_KINDS)


def _twin_command() -> str:
    """The `twin` script beside this interpreter (the venv's), else the one on PATH."""
    here = Path(sys.executable).with_name("twin")
    found = str(here) if here.exists() else shutil.which("twin")
    if found is None:
        raise typer.BadParameter("cannot find the `twin` command; install the project first")
    return found
