"""`twin credentials`: the embedded servers' generated secrets, where they live and how to
connect with them, and a new database password.

Nothing here prints a password unless asked for a URL (`twin credentials url`), which
is meant for ``$(...)`` on the command line of ``psql`` or ``mosquitto_sub``.
"""

from __future__ import annotations

import shlex
from typing import Annotated

import typer

from twin.config import load_settings
from twin.console import console
from twin.errors import TwinError
from twin.services import stack
from twin.services.broker_accounts import ADMIN, SERVICES, admitted
from twin.services.postgres import SUPERUSER

credentials_app = typer.Typer(
    help="The embedded servers' generated passwords: where they are, how to use and rotate "
         "them.", no_args_is_help=True)


@credentials_app.command("show")
def show() -> None:
    """Where each embedded server's secret lives and how to connect (no password printed)."""
    settings = load_settings()
    lines: list[str] = []
    if not settings.embedded_database:
        lines.append("PostgreSQL: configured (TWIN_DATABASE_URL), not the twin's own")
    else:
        pg = stack.embedded_postgres(settings)
        lines.append(f"PostgreSQL (embedded, {pg.data_dir}): user {SUPERUSER}, scram-sha-256 "
                     "over TCP, peer on the socket")
        if not pg.initialized:
            lines.append("  not created yet: `twin up`")
        else:
            passfile = shlex.quote(str(pg.password_file))
            psql = f"psql -h 127.0.0.1 -p {pg.port} -U {SUPERUSER} {pg.database}"
            lines.append(f"  password file  {pg.password_file} (mode 0600)")
            lines.append(f"  psql           PGPASSFILE={passfile} {psql}")
            lines.append('                 psql "$(twin credentials url database)"')
    if not settings.embedded_broker:
        lines.append("Mosquitto: configured (TWIN_MQTT_URL), not the twin's own; services log "
                     "in with TWIN_MQTT_USERNAME/TWIN_MQTT_PASSWORD")
    else:
        broker = stack.embedded_mosquitto(settings)
        lines.append(f"Mosquitto (embedded, {broker.directory}): nobody anonymous")
        if not broker.conf.exists():
            lines.append("  not created yet: `twin up`")
        else:
            users = admitted(broker.password_file)
            services = [s for s in SERVICES if s in users]
            devices = len(users) - len(services)
            accounts = ", ".join(services) + (f" and {devices:,} devices" if devices else "")
            lines.append(f"  secret         {broker.secret_file} (mode 0600; every password "
                         "is derived from it)")
            lines.append(f"  accounts       {accounts}")
            if ADMIN not in users:
                lines.append(f"                 no {ADMIN} (files of an older `twin broker-config`"
                             ", or --no-admin): `twin broker-config` writes it")
            lines.append('  mosquitto_sub  mosquitto_sub -L "$(twin credentials url mqtt)'
                         '/twin/v1/#" -v')
    lines.append("rotate: `twin credentials rotate-database`, `twin broker-config --rotate` "
                 "(docs/architecture.md, docs/broker-auth.md)")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


@credentials_app.command("url")
def url(
    server: Annotated[str, typer.Argument(help="'database' or 'mqtt'.")],
    account: Annotated[str, typer.Option(
        help=f"The broker account ({', '.join(SERVICES)}).")] = ADMIN,
) -> None:
    """Print the URL of an embedded server with the password in it (for $(...))."""
    settings = load_settings()
    if server == "database":
        if not settings.embedded_database:
            raise TwinError("the twin uses the database of TWIN_DATABASE_URL, not its own")
        print(stack.database_url(settings))
    elif server == "mqtt":
        if not settings.embedded_broker:
            raise TwinError("the twin uses the broker of TWIN_MQTT_URL, not its own")
        if account not in SERVICES:
            raise typer.BadParameter(f"expected one of {', '.join(SERVICES)}",
                                     param_hint="--account")
        stack.mqtt_url(settings)  # started, and its secret created, if it was not
        print(stack.embedded_mosquitto(settings).service_url(account))
    else:
        raise typer.BadParameter("expected 'database' or 'mqtt'", param_hint="SERVER")


@credentials_app.command("rotate-database")
def rotate_database() -> None:
    """Give the embedded PostgreSQL's superuser a new password (and its file)."""
    settings = load_settings()
    if not settings.embedded_database:
        raise TwinError("the twin uses the database of TWIN_DATABASE_URL: rotate its password "
                        "where it is run")
    pg = stack.embedded_postgres(settings)
    stack.database_url(settings)  # running, so that it can be told
    pg.rotate_password()
    console.print(f"new password in {pg.password_file}; sessions already open stay open: "
                  "restart ingest, the rules, the notification worker and the dashboard")
