"""`twin audit`: the audit log, filtered, newest first, as a table, JSON or CSV.

It reads with the function the control room's audit page reads with
(`twin.store.reads.audit.entries`), and writes its own read to the log, as the page
does, under the name of the system user who ran it (role ``cli``).
"""

from __future__ import annotations

import csv
import getpass
import sys
from datetime import tzinfo
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
import psycopg
import typer
from rich.table import Table

from twin.calendars import DEFAULT_TIMEZONE, local_moment
from twin.console import command_connection, console
from twin.errors import TwinError
from twin.store import audit as log
from twin.store.reads.audit import OUTCOMES, AuditEntry, AuditQuery
from twin.store.reads.scope import one_community
from twin.store.reads.texts import community_timezone

#: The columns of every output, in order.
COLUMNS = ("time", "actor", "role", "action", "outcome", "subject_kind", "subject_id", "detail")


def audit_command(
    actor: Annotated[str | None, typer.Option(help="Only this user's rows ('?' for failed "
                                                   "logins with no name).")] = None,
    action: Annotated[str | None, typer.Option(
        help="Only this action: login, login_failed, logout, denied, "
             "view_residents_unmasked, view_audit_log, ...")] = None,
    outcome: Annotated[str | None, typer.Option(
        help=f"Only {' or '.join(OUTCOMES)} requests (refused: denied, login_failed).")] = None,
    target: Annotated[str | None, typer.Option(
        help="Only rows about this id: a building, unit, staff member..., or a resident "
             "seen whole.")] = None,
    since: Annotated[str | None, typer.Option(
        help="From this moment: 2026-11-24 or '2026-11-24 08:30', on the community's clock "
             "unless it has an offset.")] = None,
    until: Annotated[str | None, typer.Option(
        help="Before this moment (a date alone takes that whole day in).")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows, newest first.")] = 100,
    community: Annotated[str | None, typer.Option(
        help="Whose clock the times are on; default: the only (or first) community.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON (an array of objects) on "
                                                         "stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a header on stdout.")] = False,
) -> None:
    """The audit log: who saw residents whole, logged in or out, was refused, read the log."""
    if as_json and as_csv:
        raise TwinError("choose one of --json and --csv")
    with command_connection() as conn:
        zone = ZoneInfo(_timezone(conn, community))
        try:
            query = AuditQuery(
                actor=actor, action=action, outcome=outcome, target=target,
                since=local_moment(since, zone.key) if since else None,
                until=local_moment(until, zone.key, end_of_day=True) if until else None)
        except ValueError as e:  # a time that is not one; AuditQuery raises TwinError
            raise TwinError(str(e)) from e
        rows = log.read_log(conn, _system_user(), "cli", query, limit=limit)
    records = [as_record(e, zone) for e in rows]
    if as_json:
        sys.stdout.write(orjson.dumps(records, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif as_csv:
        out = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        out.writeheader()
        out.writerows({**r, "detail": orjson.dumps(r["detail"]).decode()} for r in records)
    else:
        _print_table(rows, zone, limit=limit)


def as_record(entry: AuditEntry, tz: tzinfo) -> dict[str, Any]:
    """One row for output: its time on the community's clock, with the offset (pure)."""
    return {"time": entry.time.astimezone(tz).isoformat(timespec="seconds"),
            "actor": entry.user_name, "role": entry.role, "action": entry.action,
            "outcome": entry.outcome, "subject_kind": entry.subject_kind,
            "subject_id": entry.subject_id, "detail": entry.detail}


def _print_table(rows: list[AuditEntry], zone: ZoneInfo, *, limit: int) -> None:
    table = Table()
    table.add_column("time", no_wrap=True)
    for name in ("actor", "role", "action", "outcome", "target", "detail"):
        table.add_column(name, overflow="fold")  # an id cut short with "…" says nothing
    for e in rows:
        table.add_row(f"{e.time.astimezone(zone):%Y-%m-%d %H:%M:%S}", e.user_name, e.role,
                      e.action, e.outcome,
                      " ".join(x for x in (e.subject_kind, e.subject_id) if x),
                      e.detail_line())
    console.print(table)
    more = f" (the newest {limit}; --limit for more)" if len(rows) == limit else ""
    console.print(f"{len(rows)} rows, times in {zone.key}{more}")


def _timezone(conn: psycopg.Connection, community: str | None) -> str:
    """The zone the times are shown in: the community's (the one named, or the only one),
    else, for a district's log, the default zone."""
    try:
        return community_timezone(conn, one_community(conn, community))
    except TwinError:
        if community is not None:
            raise
        return DEFAULT_TIMEZONE


def _system_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        return "?"
