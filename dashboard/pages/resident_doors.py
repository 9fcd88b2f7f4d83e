"""The resident's doors on their phone (/m/doors): one button per door they may open (the
community's gates, their building's entrances) with the door's answer, a visitor pass
(a QR code good at the gates once, its hours in the community's time zone), and their
own access history. Every action is checked again by `dashboard.doors`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboard import doors
from dashboard.components import denied, when
from dashboard.context import ctx, current_user, lang, tr
from dashboard.i18n import t
from twin.access import AccessDenied, can_open
from twin.doors import PASS_DEFAULT_HOURS, PASS_MAX_HOURS
from twin.errors import TwinError

PATH = "/m/doors"
PATH_TEMPLATE = None
NAME = "resident_doors"

OPEN = "dr-open"          # pattern: {"type": OPEN, "door": device id}
STATUS = "dr-status"      # pattern: {"type": STATUS, "door": device id}
PENDING = "dr-pending"    # {door: command id} of the openings not yet answered
POLL = "dr-poll"
HOURS = "vp-hours"
ISSUE = "vp-issue"
PASS = "vp-result"
PASSES = "vp-recent"
HISTORY = "dr-history"
#: How often the page asks for the door's ack while one is awaited, and for how long.
POLL_MS = 1000
ANSWER_WITHIN_S = 30.0


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "resident_app"):
        return denied()
    try:
        with ctx().pool.connection() as conn:
            mine = doors.my_doors(conn, user)
            passes = doors.my_passes(conn, user)
            history = doors.resident_history(conn, user, user.resident_id, limit=10)
    except AccessDenied:
        return denied()
    lg = lang()
    cards = [html.Div(className="m-card dr-door " + ("dr-gate" if d.is_gate else "dr-entrance"),
                      children=[
        html.Div([html.Div(d.name, className="dr-name"),
                  html.Div(t("dr.gate" if d.is_gate else "dr.entrance", lg),
                           className="dr-kind")]),
        html.Button(t("dr.open", lg), id={"type": OPEN, "door": d.id},
                    className="m-button dr-open-button"),
        html.Div(id={"type": STATUS, "door": d.id}, className="dr-status"),
    ]) for d in mine]
    return html.Div(className="m-doors", children=[
        dcc.Store(id=PENDING, data={}),
        dcc.Interval(id=POLL, interval=POLL_MS, disabled=True),
        html.H2(t("dr.title", lg)),
        html.Div(cards or t("dr.none", lg), id="dr-doors"),
        html.H2(t("vp.title", lg)),
        html.Div(className="m-card", children=[
            html.Label(t("vp.hours", lg), htmlFor=HOURS),
            dcc.Dropdown(id=HOURS, value=PASS_DEFAULT_HOURS, clearable=False,
                         options=[{"label": str(h), "value": h}
                                  for h in (1, 2, 4, 8, 24, PASS_MAX_HOURS)],
                         className="dd"),
            html.Button(t("vp.issue", lg), id=ISSUE, className="m-button"),
            html.Div(id=PASS, className="vp-result"),
        ]),
        html.Div(_passes(passes, lg), id=PASSES),
        html.H2(t("ah.title", lg)),
        html.Div(_history(history["rows"], lg), id=HISTORY),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(PENDING, "data"), Output({"type": STATUS, "door": ALL}, "children"),
                  Output(POLL, "disabled"),
                  Input({"type": OPEN, "door": ALL}, "n_clicks"), Input(POLL, "n_intervals"),
                  State(PENDING, "data"), prevent_initial_call=True)
    def open_or_poll(clicks, _n, pending):
        shown = [o["id"]["door"] for o in dash.ctx.outputs_list[1]]
        trigger = dash.ctx.triggered_id
        pending = dict(pending) if isinstance(pending, dict) else {}  # the browser's store
        messages: dict[str, str] = {}
        if isinstance(trigger, dict) and trigger.get("type") == OPEN:
            if not any(clicks or ()):
                raise dash.exceptions.PreventUpdate  # the cards were drawn, nobody tapped
            door = trigger.get("door")
            command_id, message = open_door(door)
            if command_id:
                pending[str(door)] = command_id
            messages[str(door)] = message
        answers = door_answers(pending)
        for door, message in answers.items():
            messages[door] = message
            if message != tr("dr.sent"):
                pending.pop(door, None)
        return (pending, [messages.get(d, no_update) for d in shown],
                not pending)

    @app.callback(Output(PASS, "children"), Output(PASSES, "children"),
                  Input(ISSUE, "n_clicks"), State(HOURS, "value"), prevent_initial_call=True)
    def issue(_clicks, hours):
        return issue_pass(hours)


# --- what the callbacks call (tested directly) --------------------------------------------

def open_door(door: object) -> tuple[str | None, str]:
    """Send ``open`` for the current user: (command id, what to show). A door that is not
    theirs is AccessDenied (403, audited by `dashboard.doors`)."""
    try:
        with ctx().pool.connection() as conn:
            return doors.open_door(conn, current_user(), door, at=datetime.now(UTC)), \
                tr("dr.sent")
    except AccessDenied:
        raise
    except TwinError as e:
        return None, str(e)


def door_answers(pending: dict[str, Any]) -> dict[str, str]:
    """door -> what to show for each awaited opening: still waiting, or the door's ack."""
    out: dict[str, str] = {}
    if not pending:
        return out
    with ctx().pool.connection() as conn:
        for door, command_id in pending.items():
            row = doors.door_command(conn, current_user(), command_id)
            if row["acked_at"] is None:
                waited = (datetime.now(UTC) - row["sent_at"]).total_seconds()
                out[door] = tr("dr.sent") if waited < ANSWER_WITHIN_S else tr("dr.no_answer")
            else:
                out[door] = (f"{tr('dr.acked_ok' if row['ok'] else 'dr.acked_fail')} "
                             f"{when(row['acked_at'], '%H:%M:%S')}")
    return out


def issue_pass(hours: object) -> tuple[Any, Any]:
    """A new pass for the current user's household: its QR code, code and validity on the
    community's clock; the recent passes redrawn."""
    user = current_user()
    lg = lang()
    try:
        with ctx().pool.connection() as conn:
            issued = doors.issue_pass(conn, user, user.resident_id, hours,
                                      at=datetime.now(UTC))
            passes = doors.my_passes(conn, user)
    except AccessDenied:
        raise
    except TwinError as e:
        return html.Div(str(e), className="message"), no_update
    card = html.Div(className="vp-pass", id="vp-pass", children=[
        html.Img(src=issued["qr"], alt=t("vp.title", lg), className="vp-qr", id="vp-qr"),
        html.Div([t("vp.code", lg), ": ", html.Span(issued["token"], id="vp-token",
                                                    className="mono vp-token")]),
        html.Div([t("vp.valid", lg), ": ",
                  html.Span(f"{when(issued['valid_from'], '%Y-%m-%d %H:%M')} "
                            f"{t('vp.to', lg)} {when(issued['valid_until'], '%Y-%m-%d %H:%M')}",
                            id="vp-valid")]),
        html.Div(t("vp.once", lg), className="muted"),
    ])
    return card, _passes(passes, lg)


def _passes(passes: list[dict[str, Any]], lg: str) -> html.Div:
    if not passes:
        return html.Div()
    now = datetime.now(UTC)
    rows = []
    for p in passes:
        state = ("vp.used" if p["used_at"] else "vp.expired" if p["valid_until"] <= now
                 else "vp.unused")
        used = f" · {p['used_gate'] or ''} {when(p['used_at'], '%m-%d %H:%M')}" \
            if p["used_at"] else ""
        rows.append(html.Li(f"{when(p['valid_from'], '%m-%d %H:%M')} – "
                            f"{when(p['valid_until'], '%m-%d %H:%M')} · {t(state, lg)}{used}",
                            className=f"vp-{state.split('.')[1]}"))
    return html.Div(className="m-card", children=[html.Div(t("vp.recent", lg)),
                                                  html.Ul(rows, className="vp-list")])


def _history(rows: list[dict[str, Any]], lg: str) -> html.Div:
    if not rows:
        return html.Div(t("ah.none", lg), className="m-card empty")
    return html.Div(className="m-card", children=[html.Ul(className="ah-list", children=[
        html.Li([html.Span(when(r["time"], "%m-%d %H:%M"), className="mono"), " ",
                 r["door"], " · ", method_label(r["method"], lg),
                 f" · {t('ah.' + r['direction'], lg)}" if r["direction"] else "",
                 f" · {t('ah.denied', lg)}" if r["kind"] == "access_denied" else ""])
        for r in rows])])


def method_label(method: str | None, lg: str) -> str:
    return t(f"am.{method}", lg) if method else ""
