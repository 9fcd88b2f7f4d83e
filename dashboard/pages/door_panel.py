"""The building page's door panel: pick one of the building's doors, open it remotely (an
operator), and read its access history (who passed masked per role); for the roles that
see residents whole (an admin, the grid's worker), a resident's own access history. Its
own module, hooked into `dashboard.pages.building` with two lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html, no_update

from dashboard import doors
from dashboard.components import when
from dashboard.context import ctx, current_user, lang, tr
from dashboard.i18n import t
from dashboard.pages.resident_doors import ANSWER_WITHIN_S, method_label
from twin.access import AccessDenied, may, sees_residents_whole
from twin.errors import TwinError

DOOR = "bd-door"
OPEN = "bd-door-open"
STATUS = "bd-door-status"
COMMAND = "bd-door-command"
POLL = "bd-door-poll"
HISTORY = "bd-door-history"
RESIDENT = "bd-resident"
RESIDENT_HISTORY = "bd-resident-history"
#: The building page's refresh tick (`dashboard.pages.building.REFRESH`): the history
#: follows the door's reports.
REFRESH = "b-refresh"


def door_panel(devices: list[dict[str, Any]], lg: str,
               people: dict[str, Any] | None = None) -> html.Div:
    """The panel's body for a building's devices and residents (as
    `dashboard.scoped.building_devices` and `.residents` gave them, already checked and
    masked for the user)."""
    found = [d for d in devices if d["type"] in ("access_door", "access_gate")]
    if not found:
        return html.Div(t("dr.none", lg), className="empty")
    user = current_user()
    whole = people is not None and not people["masked"] and sees_residents_whole(user)
    residents = html.Div(className="bd-resident-access", children=[
        html.H3(t("ah.resident", lg)),
        dcc.Dropdown(id=RESIDENT, options=[
            {"label": f"{r['unit']} {r['name']}", "value": r["id"]}
            for r in (people or {}).get("residents", [])], placeholder=t("bc.pick", lg),
            className="dd"),
        html.Div(id=RESIDENT_HISTORY),
    ]) if whole else None
    return html.Div(className="bd-doors", children=[
        dcc.Store(id=COMMAND),
        dcc.Interval(id=POLL, interval=1000, disabled=True),
        html.Div(className="history-controls", children=[
            dcc.Dropdown(id=DOOR, options=[{"label": d["name"], "value": d["id"]}
                                           for d in found],
                         value=found[0]["id"], clearable=False, className="dd"),
            html.Button(t("bd.open_door", lg), id=OPEN, className="btn-ack")
            if may(user, "door.open") else None,
        ]),
        html.Div(id=STATUS, className="message"),
        html.Div(id=HISTORY, className="bd-door-history"),
        residents,
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(HISTORY, "children"), Input(DOOR, "value"), Input(POLL, "disabled"),
                  Input(REFRESH, "n_intervals"))
    def history(device_id, _polling, _n):
        return door_history(device_id)

    @app.callback(Output(RESIDENT_HISTORY, "children"), Input(RESIDENT, "value"),
                  prevent_initial_call=True)
    def resident(resident_id):
        return resident_history(resident_id)

    @app.callback(Output(COMMAND, "data"), Output(STATUS, "children"),
                  Output(POLL, "disabled"), Input(OPEN, "n_clicks"), Input(POLL, "n_intervals"),
                  State(DOOR, "value"), State(COMMAND, "data"), prevent_initial_call=True)
    def open_or_poll(_clicks, _n, device_id, command_id):
        if dash.ctx.triggered_id == OPEN:
            command_id, message = open_door(device_id)
            return command_id, message, command_id is None
        if not command_id:
            return no_update, no_update, True
        message, done = answer(command_id)
        return (None if done else command_id), message, done


def open_door(device_id: object) -> tuple[str | None, str]:
    try:
        with ctx().pool.connection() as conn:
            return doors.open_door(conn, current_user(), device_id, at=datetime.now(UTC)), \
                tr("dr.sent")
    except AccessDenied:
        raise
    except TwinError as e:
        return None, str(e)


def answer(command_id: str) -> tuple[str, bool]:
    with ctx().pool.connection() as conn:
        row = doors.door_command(conn, current_user(), command_id)
    if row["acked_at"] is None:
        if (datetime.now(UTC) - row["sent_at"]).total_seconds() >= ANSWER_WITHIN_S:
            return tr("dr.no_answer"), True
        return tr("dr.sent"), False
    return (f"{tr('dr.acked_ok' if row['ok'] else 'dr.acked_fail')} "
            f"{when(row['acked_at'], '%H:%M:%S')} · {row['detail'] or ''}"), True


def door_history(device_id: object) -> Any:
    """The door's latest passages for the current user (a 403 outside their scope)."""
    if not device_id:
        return no_update
    lg = lang()
    try:
        with ctx().pool.connection() as conn:
            seen = doors.door_history(conn, current_user(), device_id, limit=20)
    except AccessDenied:
        raise
    except TwinError as e:
        return str(e)
    return _table(seen["rows"], lg, "door-history-table", ("ah.time", "ah.method",
                                                           "ah.direction", "ah.who", "ah.result"))


def resident_history(resident_id: object) -> Any:
    """A resident's latest passages, for an admin or their grid's worker (a 403 for anyone
    else, audited; the whole view audited too)."""
    if not resident_id:
        return no_update
    lg = lang()
    try:
        with ctx().pool.connection() as conn:
            seen = doors.resident_history(conn, current_user(), resident_id, limit=20)
    except AccessDenied:
        raise
    except TwinError as e:
        return str(e)
    return _table(seen["rows"], lg, "resident-history-table", ("ah.time", "ah.door",
                                                               "ah.method", "ah.direction",
                                                               "ah.result"))


def _table(rows: list[dict[str, Any]], lg: str, table_id: str, columns: tuple[str, ...]
           ) -> Any:
    if not rows:
        return html.Div(t("ah.none", lg), className="empty")
    cells = {
        "ah.time": lambda r: html.Td(when(r["time"], "%m-%d %H:%M:%S"), className="mono"),
        "ah.door": lambda r: html.Td(r["door"]),
        "ah.method": lambda r: html.Td(method_label(r["method"], lg)),
        "ah.direction": lambda r: html.Td(t("ah." + r["direction"], lg) if r["direction"]
                                          else ""),
        "ah.who": lambda r: html.Td(r.get("who") or r["by"] or "", className="ah-who"),
        "ah.result": lambda r: html.Td(t("ah.denied" if r["kind"] == "access_denied"
                                         else "ah.granted", lg)),
    }
    head = html.Tr([html.Th(t(k, lg)) for k in columns])
    body = [html.Tr([cells[k](r) for k in columns]) for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], className="table", id=table_id)
