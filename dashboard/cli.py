"""`twin dashboard` (serve the control room) and `twin users ...` (its logins)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from twin.config import load_settings
from twin.services import stack
from twin.store import migrations
from twin.store.connection import connect

if TYPE_CHECKING:
    import flask

console = Console()
users_app = typer.Typer(help="Logins of the control room (admin, operator, grid_worker, planner).",
                        no_args_is_help=True)


def dashboard_command(
    host: Annotated[str, typer.Option(envvar="TWIN_DASHBOARD_HOST",
                                      help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar="TWIN_DASHBOARD_PORT",
                                      help="Port to listen on.")] = 8050,
    community: Annotated[str | None, typer.Option(help="Community to show; default: the only "
                                                       "one loaded.")] = None,
    tiles: Annotated[str | None, typer.Option(
        envvar="TWIN_DASHBOARD_TILES",
        help="Online raster tiles under the twin (a {z}/{x}/{y} URL); default: none, the map "
             "is drawn from the twin's own geometry.")] = None,
    session_minutes: Annotated[int, typer.Option(help="Idle minutes before a session "
                                                      "ends.")] = 30,
    workers: Annotated[int, typer.Option(
        envvar="TWIN_DASHBOARD_WORKERS", min=1, max=64,
        help="gunicorn worker processes (about one per core).")] = 2,
    threads: Annotated[int, typer.Option(
        envvar="TWIN_DASHBOARD_THREADS", min=1, max=256,
        help="Requests each worker answers at once; each holds a database connection "
             "while it runs.")] = 8,
) -> None:
    """Serve the control room (large screen, buildings, work orders, grid workers, planner)
    on gunicorn: several worker processes, compressed answers, JSON logs (docs/deploy.md)."""
    import os
    import secrets
    from dataclasses import replace
    from datetime import timedelta

    from dashboard.app import create_app
    from dashboard.auth import SessionPolicy
    from dashboard.context import Settings
    from dashboard.serving import ServeOptions, pool_size, serve
    from twin import logs
    from twin.store.connection import connection_limit
    from twin.store.reads.scope import communities_of

    logs.configure()
    url = stack.database_url(load_settings())
    per_worker = pool_size(threads)
    with connect(url) as conn:
        migrations.require_current(conn)
        # what each worker's create_app will ask, asked once here: a user error (an empty
        # twin, an unknown community) is one sentence, not a worker that fails to boot
        communities_of(conn, community)
        limit = connection_limit(conn)
    if workers * per_worker > limit:
        raise typer.BadParameter(
            f"{workers} workers x {per_worker} connections ({threads} threads + 4) is more than "
            f"the database takes ({limit}): use fewer workers or threads, or raise the "
            "server's max_connections", param_hint="--workers/--threads")
    # one key for every worker: a session cookie signed by one must be good in the others
    secret = os.environ.get("TWIN_DASHBOARD_SECRET") or secrets.token_hex(32)
    settings = Settings(community_id=community, tile_url=tiles, pool_size=per_worker,
                        session=SessionPolicy(idle=timedelta(minutes=session_minutes)))
    if settings.ratelimit_storage.startswith("memory"):
        # each worker counts wrong logins per address in its own memory: each allows its share
        settings = replace(settings, login_processes=workers)
    console.print(f"control room on http://{host}:{port}/ ({workers} workers x {threads} "
                  "threads; log in with a user from `twin users add`)")

    def build() -> flask.Flask:
        return create_app(url, settings=settings, secret_key=secret).server

    serve(build, ServeOptions(host=host, port=port, workers=workers, threads=threads))


@users_app.command("add")
def users_add(
    name: str,
    role: Annotated[str, typer.Option(help="admin, operator, grid_worker, planner, resident "
                                           "or family.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True,
                                          envvar="TWIN_USER_PASSWORD")],
    grid: Annotated[str | None, typer.Option(help="A grid worker's grid.")] = None,
    staff: Annotated[str | None, typer.Option(help="The staff record a grid worker acts as "
                                                   "(default: the grid's worker).")] = None,
    lang: Annotated[str, typer.Option(help="zh-CN or en.")] = "zh-CN",
    display_name: Annotated[str, typer.Option(help="Shown in the top bar.")] = "",
    resident: Annotated[str | None, typer.Option(
        help="The resident a resident login is (its name is their phone number), or whom a "
             "family login looks after.")] = None,
) -> None:
    """Add a login (or reset its password and role)."""
    from dashboard.auth import add_user

    with connect(stack.database_url(load_settings())) as conn:
        migrations.require_current(conn)
        user = add_user(conn, name, password, role, grid_id=grid, staff_id=staff, lang=lang,
                        display_name=display_name, resident_id=resident)
    console.print(f"user {user.name}: {user.role}" + (f", grid {user.grid_id}" if user.grid_id
                                                       else ""))


@users_app.command("list")
def users_list() -> None:
    """List the logins."""
    from dashboard.auth import list_users

    with connect(stack.database_url(load_settings())) as conn:
        rows = list_users(conn)
    table = Table("name", "role", "grid", "staff", "lang", "state")
    for user, disabled in rows:
        table.add_row(user.name, user.role, user.grid_id or "", user.staff_id or "", user.lang,
                      "disabled" if disabled else "active")
    console.print(table)


@users_app.command("disable")
def users_disable(name: str) -> None:
    """Disable a login and end its sessions."""
    from dashboard.auth import disable_user

    with connect(stack.database_url(load_settings())) as conn:
        disable_user(conn, name)
    console.print(f"user {name} disabled")


def register(app: typer.Typer) -> None:
    from dashboard.live_demo import demo_command

    app.command("demo")(demo_command)
    app.command("dashboard")(dashboard_command)
    app.add_typer(users_app, name="users")
