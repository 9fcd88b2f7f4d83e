"""The building page's door panel: pick one of the building's doors, open it remotely (an
operator), and read its access history (who passed masked per role). Its own module,
hooked into `dashboard.pages.building` with two lines."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html, no_update

from dashboard import doors
from dashboard.components import when
from dashboard.context import ctx, current_user, lang, tr
from dashboard.i18n import t
from dashboard.pages.resident_doors import method_label
from twin.access import AccessDenied, may
from twin.errors import TwinError

DOOR = "bd-door"
OPEN = "bd-door-open"
STATUS = "bd-door-status"
COMMAND = "bd-door-command"
POLL = "bd-door-poll"
HISTORY = "bd-door-history"
#: The building page's refresh tick (`dashboard.pages.building.REFRESH`): the history
#: follows the door's reports.
REFRESH = "b-refresh"


def door_panel(devices: list[dict[str, Any]], lg: str) -> html.Div:
    """The panel's body for a building's devices (as `dashboard.scoped.building_devices`
    gave them, already checked for the user)."""
    found = [d for d in devices if d["type"] in ("access_door", "access_gate")]
    if not found:
        return html.Div(t("dr.none", lg), className="empty")
    user = current_user()
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
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(HISTORY, "children"), Input(DOOR, "value"), Input(POLL, "disabled"),
                  Input(REFRESH, "n_intervals"))
    def history(device_id, _polling, _n):
        return door_history(device_id)

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
    if not seen["rows"]:
        return html.Div(t("ah.none", lg), className="empty")
    head = html.Tr([html.Th(t(k, lg)) for k in ("ah.time", "ah.method", "ah.direction",
                                                 "ah.who", "ah.result")])
    body = [html.Tr([
        html.Td(when(r["time"], "%m-%d %H:%M:%S"), className="mono"),
        html.Td(method_label(r["method"], lg)),
        html.Td(t("ah." + r["direction"], lg) if r["direction"] else ""),
        html.Td(r["who"] or r["by"] or "", className="ah-who"),
        html.Td(t("ah.denied" if r["kind"] == "access_denied" else "ah.granted", lg)),
    ]) for r in seen["rows"]]
    return html.Table([html.Thead(head), html.Tbody(body)], className="table",
                      id="door-history-table")
