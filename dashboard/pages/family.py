"""The family page (/family): the one special-care resident a family login looks after,
their care status ("not seen going out since …", from the gates' and doors' access
events) and the care rules' alerts about them, and the messages the notification worker
delivered to this login. Nothing else: `dashboard.people` checks each read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, dcc, html

from dashboard import people
from dashboard.components import denied, when
from dashboard.context import ctx, current_user, tr
from dashboard.pages.resident_home import inbox_list
from twin.access import can_open
from twin.errors import TwinError

PATH = "/family"
PATH_TEMPLATE = None
NAME = "family"

TICK = "f-tick"
STATUS = "f-status"
INBOX = "f-inbox"
TICK_MS = 10_000


def layout(**_query: Any) -> html.Div:
    user = current_user()
    if not can_open(user, "family"):
        return denied()
    return html.Div(className="m-family", children=[
        dcc.Interval(id=TICK, interval=TICK_MS),
        html.H2(tr("f.title"), className="m-title"),
        html.Div(id=STATUS),
        html.Section(className="m-card", children=[
            html.H3(tr("m.inbox")), html.Div(id=INBOX, className="m-inbox")]),
    ])


def status_cards(status: dict[str, Any], *, now: datetime) -> list[Any]:
    out = status["last_out"]
    seen = tr("f.never_out") if out is None else tr("f.not_out_since").format(
        when=when(out, "%m-%d %H:%M"), hours=int((now - out).total_seconds() // 3600))
    flags = [tr(f"f.flag.{f}") for f in status["care_flags"]]
    alerts = status["alarms"]
    return [
        html.Section(className="m-card", id="f-relative", children=[
            html.H3(tr("f.relative")),
            html.Div(" · ".join(flags), className="hint"),
            html.Div(seen, className="m-address", id="f-not-out"),
            html.Div(tr("f.last_in").format(when=when(status["last_in"], "%m-%d %H:%M")),
                     className="hint") if status["last_in"] else None,
        ]),
        html.Section(className="m-card", id="f-alerts", children=[
            html.H3(tr("f.alerts")),
            *([html.Div(tr("f.no_alerts"), className="hint")] if not alerts else [
                html.Div(className="m-message", children=[
                    html.Div(when(a["raised_at"], "%m-%d %H:%M"), className="hint"),
                    html.Div(a["title"], className="m-message-text"),
                    html.Span(tr("f.alert.cleared" if a["state"] == "cleared"
                                 else "f.alert.open"),
                              className="badge " + ("badge-info" if a["state"] == "cleared"
                                                    else "badge-major"))])
                for a in alerts]),
        ]),
    ]


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(STATUS, "children"), Output(INBOX, "children"),
                  Input(TICK, "n_intervals"))
    def refresh(_n):
        return family_view()


def family_view() -> tuple[list[Any], list[Any]]:
    user = current_user()
    now = datetime.now(UTC)
    try:
        with ctx().pool.connection() as conn:
            status = people.care_status(conn, user, user.resident_id, now=now)
            messages = people.my_inbox(conn, user)
    except TwinError as e:
        return [html.Div(f"✗ {e}", className="message")], []
    return status_cards(status, now=now), inbox_list(messages)
