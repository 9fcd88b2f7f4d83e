"""The resident app's home (/m): my household, shortcuts to the other tabs, my messages,
and a one-key SOS (一键报警) with a confirm step. Every read and write goes through
`dashboard.people`, which checks the login again whatever the page sent."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html, no_update

from dashboard import people
from dashboard.components import denied, when
from dashboard.context import ctx, current_user, tr
from dashboard.shell import MOBILE_NAV
from twin.access import can_open
from twin.errors import TwinError

PATH = "/m"
PATH_TEMPLATE = None
NAME = "resident_home"

SOS = "m-sos"
SOS_ASK = "m-sos-ask"
SOS_YES = "m-sos-yes"
SOS_NO = "m-sos-no"
SOS_FIX = "m-sos-fix"
SOS_DONE = "m-sos-done"
INBOX = "m-inbox"
INBOX_TICK = "m-inbox-tick"
READ = "m-read"
#: The inbox is looked at this often while the page is open.
INBOX_INTERVAL_MS = 5000

#: On the SOS press, the phone's position if the browser gives it (optional: a refusal or
#: no answer in 8 s leaves it out, and help goes to the building's entrance).
GEOLOCATE_JS = """
function(n) {
    const dc = window.dash_clientside;
    if (!n || !navigator.geolocation) { return dc.no_update; }
    return new Promise(function(resolve) {
        navigator.geolocation.getCurrentPosition(
            function(p) { resolve({lon: p.coords.longitude, lat: p.coords.latitude}); },
            function() { resolve(null); }, {enableHighAccuracy: true, timeout: 8000});
    });
}
"""


def layout(**_query: Any) -> html.Div:
    user = current_user()
    if not can_open(user, "resident_app"):
        return denied()
    try:
        with ctx().pool.connection() as conn:
            home = people.household(conn, user, user.resident_id)
    except TwinError as e:
        return html.Div(f"✗ {e}", className="message", id="m-error")
    return html.Div(className="m-home", children=[
        dcc.Interval(id=INBOX_TICK, interval=INBOX_INTERVAL_MS),
        dcc.Store(id=SOS_FIX),
        household_card(home),
        html.Section(className="m-card m-sos-card", children=[
            html.Button(tr("m.sos"), id=SOS, className="m-button m-sos"),
            html.Div(tr("m.sos_hint"), className="hint"),
            html.Div(id=SOS_ASK, className="m-sos-ask", hidden=True, children=[
                html.Div(tr("m.sos_ask"), className="m-sos-question"),
                html.Button(tr("m.sos_confirm"), id=SOS_YES, className="m-button m-sos-yes"),
                html.Button(tr("m.sos_cancel"), id=SOS_NO, className="m-button"),
            ]),
            html.Div(id=SOS_DONE, className="message"),
        ]),
        html.Section(className="m-card", children=[
            html.H3(tr("m.shortcuts")),
            html.Div(className="m-shortcuts", children=[
                html.A([html.Span(icon, className="m-tab-icon"), html.Span(tr(label))],
                       href=href, className="m-shortcut",
                       id="m-go-" + href.strip("/").replace("/", "-"))
                for href, label, icon in MOBILE_NAV if href != PATH]),
        ]),
        html.Section(className="m-card", children=[
            html.Div(className="m-row", children=[
                html.H3(tr("m.inbox")),
                html.Button(tr("m.mark_read"), id=READ, className="m-button m-small")]),
            html.Div(id=INBOX, className="m-inbox"),
        ]),
    ])


def household_card(home: dict[str, Any]) -> html.Section:
    """The unit, building and members (the resident's own, whole)."""
    return html.Section(className="m-card m-household", id="m-household", children=[
        html.H3(tr("m.household")),
        html.Div(f"{home['building']} · {home['unit']}", className="m-address"),
        html.Div(f"{tr('m.floor')} {home['floor']} · {home['community']}", className="hint"),
        html.H4(tr("m.members")),
        html.Ul(className="m-members", children=[
            html.Li(className="m-member", children=[
                html.Span(m["name"]), html.Span(f" · {m['age_band']}", className="hint"),
                html.Span(f" ({tr('m.me')})", className="hint") if m["me"] else None,
                html.Span(" · " + tr("m.care"), className="badge badge-minor")
                if m["care_flags"] else None,
            ]) for m in home["members"]]),
    ])


def inbox_list(messages: list[dict[str, Any]]) -> list[Any]:
    if not messages:
        return [html.Div(tr("m.inbox_empty"), className="hint")]
    return [html.Div(className="m-message" + ("" if m["read_at"] else " unread"),
                     children=[html.Div(when(m["at"], "%m-%d %H:%M"), className="hint"),
                               html.Div(m["text"], className="m-message-text"),
                               html.Span(tr("m.unread"), className="badge badge-info")
                               if not m["read_at"] else None])
            for m in messages]


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(SOS_ASK, "hidden"), Input(SOS, "n_clicks"), Input(SOS_NO, "n_clicks"),
                  Input(SOS_DONE, "children"), prevent_initial_call=True)
    def ask(_sos, _no, _done):
        return dash.ctx.triggered_id != SOS

    app.clientside_callback(GEOLOCATE_JS, Output(SOS_FIX, "data"), Input(SOS, "n_clicks"))

    @app.callback(Output(SOS_DONE, "children"), Input(SOS_YES, "n_clicks"),
                  State(SOS_FIX, "data"), prevent_initial_call=True)
    def sos(n, fix):
        if not n:
            return no_update
        return press_sos(fix)

    @app.callback(Output(INBOX, "children"), Input(INBOX_TICK, "n_intervals"),
                  Input(READ, "n_clicks"), Input(SOS_DONE, "children"))
    def messages(_n, read, _sos):
        user = current_user()
        with ctx().pool.connection() as conn:
            if dash.ctx.triggered_id == READ and read:
                people.read_inbox(conn, user, at=datetime.now(UTC))
            return inbox_list(people.my_inbox(conn, user))


def press_sos(fix: Any) -> str:
    """The confirmed SOS, as the logged-in resident; what to show."""
    from twin.rules.store import Dispatcher

    user = current_user()
    where = None
    if isinstance(fix, dict):
        try:
            where = (float(fix["lon"]), float(fix["lat"]))
        except (KeyError, TypeError, ValueError):
            where = None
    try:
        with ctx().pool.connection() as conn:
            done = people.raise_sos(conn, user, user.resident_id, at=datetime.now(UTC),
                                    dispatcher=ctx().cached("dispatcher", 3600.0, Dispatcher),
                                    fix=where)
    except TwinError as e:
        return f"✗ {e}"
    if not done["new"]:
        return "✓ " + tr("m.sos_repeat").format(count=done["count"])
    return "✓ " + tr("m.sos_nobody" if done["not_dispatched"] else "m.sos_sent")
