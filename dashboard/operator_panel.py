"""The operators' by-hand controls: a work order made from a point on the map, a building
or an alarm, dispatched at once; an alarm cleared with a reason. On the large screen they
fold out over the map (a tap on open ground gives the point, a tap on an alarm's time in
the feed the alarm), and the reports page shows them open. The services are
`dashboard.operator_actions`, which check the role and audit refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboard import operator_actions
from dashboard.context import ctx, current_user, lang, tr
from dashboard.i18n import t
from dashboard.report_views import (
    PICK_GROUND,
    attempt,
    picked_point,
    staff_role,
    with_pickable_ground,
)
from twin.access import may
from twin.reports import load_catalogue
from twin.store.reports import targets
from twin.work_orders import PRIORITIES, STAFF_ROLES

SOURCE = "h-source"
CATEGORY = "h-category"
ROLE = "h-role"
PRIORITY = "h-priority"
LON = "h-lon"
LAT = "h-lat"
BUILDING = "h-building"
ALARM = "h-alarm"
TEXT = "h-text"
CREATE = "h-create"
MESSAGE = "h-message"
CLEAR_ALARM = "h-clear-alarm"
REASON = "h-reason"
CLEAR = "h-clear"
CLEAR_MESSAGE = "h-clear-message"
#: The large screen's map and feed, whose taps fill the form.
LS_MAP = "ls-map"

#: The broadcast panel's choice of area (dashboard.pages.broadcast_panel.KIND), on the same map.
BROADCAST_KIND = "bc-kind"

__all__ = ["panel", "register_callbacks", "with_pickable_ground"]


def panel(*, folded: bool) -> html.Details | None:
    """The controls, for a user who may use them (None for anyone else)."""
    user = current_user()
    if not (may(user, "order.create") or may(user, "alarm.clear")):
        return None
    lg = lang()
    c = ctx()
    with c.pool.connection() as conn:
        buildings = [(i, n) for k, i, n in targets(conn, c.communities) if k == "building"]
    body = html.Div(className="hand-body", children=[
        html.H3(tr("hand.order")),
        dcc.RadioItems(id=SOURCE, value="building", inline=True, options=[
            {"label": tr(f"hand.source.{s}"), "value": s} for s in ("point", "building", "alarm")]),
        html.Div(tr("hand.point_hint"), className="hint"),
        html.Div(className="hand-row", children=[
            dcc.Input(id=LON, type="text", placeholder="lon", className="input"),
            dcc.Input(id=LAT, type="text", placeholder="lat", className="input")]),
        dcc.Dropdown(id=BUILDING, placeholder=tr("hand.source.building"),
                     options=[{"label": n, "value": i} for i, n in buildings]),
        dcc.Input(id=ALARM, type="text", inputMode="numeric", placeholder=tr("hand.alarm"), className="input"),
        dcc.Dropdown(id=CATEGORY, value="other", clearable=False, options=[
            {"label": c_.name.get(lg, cid), "value": cid}
            for cid, c_ in load_catalogue().categories.items()]),
        dcc.Dropdown(id=ROLE, placeholder=tr("hand.role"), options=[
            {"label": staff_role(r, lg), "value": r} for r in STAFF_ROLES]),
        dcc.Dropdown(id=PRIORITY, placeholder=tr("hand.priority"), options=[
            {"label": t(f"prio.{p}", lg), "value": p} for p in PRIORITIES]),
        dcc.Textarea(id=TEXT, placeholder=tr("hand.text"), maxLength=500, className="input note"),
        html.Button(tr("hand.create"), id=CREATE, className="btn"),
        html.Div(id=MESSAGE, className="message"),
        html.H3(tr("hand.clear")),
        dcc.Input(id=CLEAR_ALARM, type="text", inputMode="numeric", placeholder=tr("hand.alarm"), className="input"),
        dcc.Input(id=REASON, placeholder=tr("hand.reason"), maxLength=300, className="input"),
        html.Button(tr("hand.do_clear"), id=CLEAR, className="btn"),
        html.Div(id=CLEAR_MESSAGE, className="message"),
    ])
    return html.Details([html.Summary(tr("hand.title")), body], open=not folded,
                        className="hand-panel" + (" folded" if folded else ""), id="hand-panel")


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(LON, "value"), Output(LAT, "value"), Output(SOURCE, "value"),
                  Input(LS_MAP, "clickInfo"), State(BROADCAST_KIND, "value"),
                  prevent_initial_call=True)
    def from_map(click, broadcast_kind):
        # a building's tap opens its drill-down; open ground gives the point, unless the
        # broadcast panel is drawing an area (then the tap is one of its corners)
        if not isinstance(click, dict) or click.get("layer") != PICK_GROUND \
                or broadcast_kind == "drawn":
            return no_update, no_update, no_update
        point = picked_point(click)
        if point is None:
            return no_update, no_update, no_update
        return round(point["lon"], 6), round(point["lat"], 6), "point"

    @app.callback(Output(ALARM, "value"), Output(CLEAR_ALARM, "value"),
                  Output(SOURCE, "value", allow_duplicate=True),
                  Input({"type": "feed-row", "id": ALL}, "n_clicks"), prevent_initial_call=True)
    def from_feed(clicks):
        if not any(clicks or []):
            return no_update, no_update, no_update
        trig = dash_ctx.triggered_id
        alarm_id = trig.get("id") if isinstance(trig, dict) else None
        if alarm_id is None:  # a forged trigger without the alarm's id
            return no_update, no_update, no_update
        return alarm_id, alarm_id, "alarm"

    @app.callback(Output(MESSAGE, "children"), Input(CREATE, "n_clicks"),
                  State(SOURCE, "value"), State(CATEGORY, "value"), State(ROLE, "value"),
                  State(PRIORITY, "value"), State(LON, "value"), State(LAT, "value"),
                  State(BUILDING, "value"), State(ALARM, "value"), State(TEXT, "value"),
                  prevent_initial_call=True)
    def create(_n, source, category, role, priority, lon, lat, building, alarm, text):
        return create_order(source=source, category=category, role=role, priority=priority,
                            lon=lon, lat=lat, building_id=building, alarm_id=alarm,
                            text=text or "")

    @app.callback(Output(CLEAR_MESSAGE, "children"), Input(CLEAR, "n_clicks"),
                  State(CLEAR_ALARM, "value"), State(REASON, "value"), prevent_initial_call=True)
    def clear(_n, alarm, reason):
        return clear_alarm(alarm, reason)


def create_order(**form: Any) -> str:
    """Create and dispatch the order the form describes; what to show."""
    from twin.rules.store import Dispatcher

    c = ctx()
    dispatcher = c.cached("dispatcher", 3600.0, Dispatcher)
    made, error = attempt(lambda conn: operator_actions.create_order(
        conn, current_user(), community_id=c.communities[0], at=datetime.now(UTC),
        dispatcher=dispatcher, **form))
    if made is None:
        return error
    order, why_not = made
    said = tr("hand.created").format(code=order.code, state=tr("wo." + order.state))
    return f"✓ {said}" + (f" ({why_not})" if why_not else "")


def clear_alarm(alarm: object, reason: object) -> str:
    cleared, error = attempt(lambda conn: operator_actions.clear_alarm_by_hand(
        conn, current_user(), alarm, reason=reason, at=datetime.now(UTC)))
    return error if cleared is None else "✓ " + tr("hand.cleared").format(alarm=cleared.id)
