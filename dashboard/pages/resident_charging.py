"""The resident app's charging tab (/m/charging): my session live (energy, time, power,
state, the cut-off when full) and the EV sheds nearest me on foot, with their free piles;
a free pile starts with one press once the bike is plugged in. Every read and write goes
through `dashboard.people`."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboard import people
from dashboard.components import denied, when
from dashboard.context import Context, ctx, current_user, tr
from twin.access import can_open
from twin.errors import TwinError
from twin.store.graph import walk_routing_graph
from twin.walkgraph import WalkGraph

PATH = "/m/charging"
PATH_TEMPLATE = None
NAME = "resident_charging"

TICK = "rc-tick"
SESSION = "rc-session"
SHEDS = "rc-sheds"
MESSAGE = "rc-message"
DONE = "rc-done"
#: My session and the piles are looked at this often while the page is open.
TICK_MS = 3000
#: How many free piles of each shed are listed.
FREE_SHOWN = 4


def layout(**_query: Any) -> html.Div:
    user = current_user()
    if not can_open(user, "resident_app"):
        return denied()
    return html.Div(className="m-charging", children=[
        dcc.Interval(id=TICK, interval=TICK_MS),
        dcc.Store(id=DONE),
        html.H2(tr("m.charging"), className="m-title"),
        html.Section(className="m-card", children=[
            html.H3(tr("m.my_session")), html.Div(id=SESSION, className="m-session")]),
        html.Div(id=MESSAGE, className="message"),
        html.Section(className="m-card", children=[
            html.H3(tr("m.sheds")), html.Div(id=SHEDS, className="m-sheds")]),
    ])


def graph_of(c: Context, community_id: str) -> WalkGraph:
    """The community's walkway graph, built once an hour at most (as the dispatcher keeps)."""
    def build() -> WalkGraph:
        with c.pool.connection() as conn:
            return walk_routing_graph(conn, community_id)
    return c.cached(f"walkgraph:{community_id}", 3600.0, build)


def session_card(s: dict[str, Any] | None, *, now: datetime) -> list[Any]:
    """My newest session, live: state, energy, time, power; why it ended."""
    if s is None:
        return [html.Div(tr("m.no_session"), className="hint", id="rc-none")]
    start = s["started_at"] or s["requested_at"]
    # while it charges, up to what the pile last reported (its clock, not the server's)
    end = s["ended_at"] or (max(s["pile_seen_at"] or now, start) if s["state"] == "charging"
                            else start)
    minutes = max(0, round((end - start).total_seconds() / 60)) if s["started_at"] else 0
    state = tr(f"m.session.{s['state']}")
    if s["end_reason"]:
        state += f" · {tr('m.reason.' + s['end_reason'])}"
    rows = [
        (tr("m.state"), state, "rc-state"),
        (tr("m.energy"), f"{s['energy_kwh']:.3f} kWh", "rc-energy"),
        (tr("m.elapsed"), tr("m.minutes").format(n=minutes), "rc-elapsed"),
        (tr("m.power"), f"{(s['power_kw'] or 0):.2f} kW", "rc-power"),
        (tr("m.started"), when(s["started_at"] or s["requested_at"], "%m-%d %H:%M"), "rc-at"),
    ]
    if s["ended_at"]:
        rows.append((tr("m.ended"), when(s["ended_at"], "%m-%d %H:%M"), "rc-ended"))
    out: list[Any] = [html.Div(s["device"], className="m-address", id="rc-pile")]
    out += [html.Div(className="m-kv", children=[html.Span(k, className="hint"),
                                                 html.Span(v, id=i, className="m-value")])
            for k, v, i in rows]
    if s["state"] == "charging" and not s["stop_requested_at"]:
        out.append(html.Button(tr("m.stop"), id={"type": "rc-stop", "session": s["id"]},
                               className="m-button"))
    return out


def shed_cards(sheds: list[dict[str, Any]], *, can_start: bool) -> list[Any]:
    out = []
    for shed in sheds:
        metres = shed["metres"]
        walk = tr("m.walk_unknown") if not math.isfinite(metres) \
            else tr("m.walk_m").format(m=round(metres))
        out.append(html.Div(className="m-shed", id=f"rc-shed-{shed['shed_id']}", children=[
            html.Div(className="m-row", children=[
                html.Strong(shed["shed"]), html.Span(walk, className="hint m-walk")]),
            html.Div(tr("m.free_of").format(free=shed["free"], total=len(shed["piles"])),
                     className="m-free"),
            html.Ul(className="m-piles", children=[
                html.Li(className="m-pile", children=[
                    html.Span(p["device"]), html.Span(" · " + _pile_state(p), className="hint"),
                    html.Button(tr("m.start"), id={"type": "rc-start", "pile": p["device_id"]},
                                className="m-button m-small")
                    if p["free"] and can_start else None])
                for p in _shown(shed["piles"])]),
        ]))
    return out


def _shown(piles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A shed's first free piles (a phone screen, not a list of 30): the one a bike is
    plugged into is among them, or the resident walks to the next."""
    free = [p for p in piles if p["free"]]
    return free[:FREE_SHOWN]


def _pile_state(p: dict[str, Any]) -> str:
    if not p["online"]:
        return tr("m.pile.offline")
    if p["taken"] and p["status"] == "idle":  # a session being started there
        return tr("m.pile.taken")
    key = f"m.pile.{p['status']}"
    return tr(key if p["status"] in ("idle", "charging", "full", "fault") else "m.pile.unknown")


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(SESSION, "children"), Output(SHEDS, "children"),
                  Input(TICK, "n_intervals"), Input(DONE, "data"))
    def refresh(_n, _done):
        return charging_view()

    @app.callback(Output(DONE, "data"), Output(MESSAGE, "children"),
                  Input({"type": "rc-start", "pile": ALL}, "n_clicks"),
                  Input({"type": "rc-stop", "session": ALL}, "n_clicks"),
                  State(DONE, "data"), prevent_initial_call=True)
    def act(starts, stops, done):
        trig = dash.ctx.triggered_id
        if not isinstance(trig, dict) or not any((starts or []) + (stops or [])):
            return no_update, no_update
        # the service refuses a missing or forged id with a message
        if trig.get("type") == "rc-start":
            message = start_at(trig.get("pile"))
        else:
            message = stop(trig.get("session"))
        return (done or 0) + 1, message


def charging_view() -> tuple[list[Any], list[Any]]:
    """My newest session and the sheds nearest first, as the logged-in resident."""
    user = current_user()
    c = ctx()
    try:
        with c.pool.connection() as conn:
            mine = people.my_sessions(conn, user, user.resident_id, limit=1)
            home = people.own_home(conn, user, user.resident_id, "charging.use",
                                   what="look for charging piles")
            sheds = people.charging_piles(conn, user, user.resident_id,
                                          graph=graph_of(c, home.community_id))
    except TwinError as e:
        return [html.Div(f"✗ {e}", className="message")], []
    current = mine[0] if mine else None
    busy = current is not None and current["state"] in ("requested", "charging")
    return session_card(current, now=datetime.now(UTC)), shed_cards(sheds, can_start=not busy)


def start_at(device_id: object) -> str:
    user = current_user()
    try:
        with ctx().pool.connection() as conn:
            people.start_charging(conn, user, user.resident_id, device_id, at=datetime.now(UTC))
    except TwinError as e:
        return f"✗ {e}"
    return "✓ " + tr("m.started_ok")


def stop(session_id: object) -> str:
    user = current_user()
    try:
        with ctx().pool.connection() as conn:
            people.stop_charging(conn, user, user.resident_id, session_id, at=datetime.now(UTC))
    except TwinError as e:
        return f"✗ {e}"
    return "✓ " + tr("m.stop_sent")
