"""The large screen: 3D map, KPI tiles, live alarm feed, work-order board and charts.

Made for 1920x1080 and 4K walls with no scrolling (the CSS sizes everything in
viewport units). The map's static layers are sent once with the page; after
that a 1-second poll sends only what changed (dashboard/live.py).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import dash
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, dcc, html, no_update

from dashboard import live, maps, operator_panel, scoped
from dashboard.components import badge, denied, panel, tile, when
from dashboard.context import ctx, current_user, lang, local_now, tr, zone
from dashboard.deck import TwinDeck
from dashboard.i18n import t
from dashboard.pages import broadcast_panel
from dashboard.words import titles
from layers.twin_layers import LIVE_COLORS
from twin.access import AccessDenied, can_open
from twin.alarms import DOMAINS, SEVERITIES
from twin.errors import TwinError
from twin.store.reads import base_map, kpis, telemetry

PATH = "/"
PATH_TEMPLATE = None
NAME = "large_screen"

MAP = "ls-map"
TOKEN = "ls-token"
LIVE = "ls-live"
CHARTS = "ls-charts"
NAV = "ls-nav"
FEED = "ls-feed"
BOARD = "ls-board"
UPDATED = "ls-updated"
ACK = "ls-ack"
ACK_MESSAGE = "ls-ack-message"
EVENTS_CHART = "ls-events-chart"
TRENDS_CHART = "ls-trends-chart"
KPI = {
    "online": "kpi-online", "critical": "kpi-critical", "major": "kpi-major",
    "minor": "kpi-minor", "orders_open": "kpi-orders-open", "orders_overdue": "kpi-overdue",
    "response": "kpi-response", "ev_free": "kpi-ev-free", "care": "kpi-care",
}
DOMAIN_COLORS = {"safety": "#eb4048", "environment": "#50c878", "service": "#4da3ff",
                 "activity": "#c77dff", "equipment": "#f6b73c"}


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "large_screen"):
        return denied()
    c = ctx()
    frames_key = f"base:{c.scope_key}"
    base = c.cached(frames_key, c.settings.base_map_ttl_s, lambda: _base_map(c))
    with c.pool.connection() as conn:
        state = live.read_live(conn, c.communities, now=_now(), devices=_device_counts(c),
                               user=user, audit=True)
    token = secrets.token_urlsafe(12)
    c.live.put(token, state)
    the_map = TwinDeck(
        id=MAP,
        # one pickable ground: a tap on it is a hand-made order's place or an area's corner
        layers=(operator_panel.with_pickable_ground(base["layers"]) + broadcast_panel.map_layers()
                + maps.live_layers()),
        layerData={name: maps.encoded(records) for name, records in state.layers.items()},
        featureColors={"buildings": state.building_colors},
        colorBy=LIVE_COLORS,
        pulse=["incidents"],
        tooltips=maps.tooltips(lang()),
        initialViewState=base["view"],
        tileUrl=c.settings.tile_url,
    )
    values = dict(zip(KPI, kpi_texts(state.kpis), strict=True))
    return html.Div(className="ls", children=[
        dcc.Store(id=TOKEN, data=token),
        dcc.Interval(id=LIVE, interval=c.settings.live_interval_ms),
        dcc.Interval(id=CHARTS, interval=c.settings.chart_interval_ms),
        dcc.Location(id=NAV, refresh="callback-nav"),
        html.Div(className="ls-left", children=[
            html.Div(className="kpis", children=[
                tile(tr("kpi.devices_online"), KPI["online"], value=values["online"], accent="accent-green"),
                tile(tr("sev.critical"), KPI["critical"], value=values["critical"], accent="accent-critical"),
                tile(tr("sev.major"), KPI["major"], value=values["major"], accent="accent-major"),
                tile(f"{tr('sev.minor')}/{tr('sev.info')}", KPI["minor"], value=values["minor"], accent="accent-minor"),
                tile(tr("kpi.orders_open"), KPI["orders_open"], value=values["orders_open"], accent="accent-blue"),
                tile(tr("kpi.orders_overdue"), KPI["orders_overdue"], value=values["orders_overdue"], accent="accent-major"),
                tile(tr("kpi.response"), KPI["response"], value=values["response"], unit=tr("kpi.minutes"),
                     accent="accent-blue"),
                tile(tr("kpi.ev_free"), KPI["ev_free"], value=values["ev_free"], accent="accent-green"),
                tile(tr("kpi.care"), KPI["care"], value=values["care"], accent="accent-care"),
            ]),
            panel(tr("ls.events_per_hour"),
                  dcc.Graph(id=EVENTS_CHART, config={"displayModeBar": False},
                            className="chart"), className="grow"),
            panel(tr("ls.trends"),
                  dcc.Graph(id=TRENDS_CHART, config={"displayModeBar": False},
                            className="chart"), className="grow"),
        ]),
        html.Div(className="ls-map", children=[
            the_map,
            html.Div(className="map-legend", children=[
                html.Div(tr("ls.legend"), className="legend-title"),
                *[html.Div([html.Span(className=f"swatch sev-{s}"), tr(f"sev.{s}")])
                  for s in SEVERITIES],
                html.Div([html.Span(className="swatch calm"), "OK"]),
            ]),
            html.Div(id=UPDATED, className="map-updated"),
            operator_panel.panel(folded=True),  # by hand: orders, clears (its own module)
            broadcast_panel.panel(),
        ]),
        html.Div(className="ls-right", children=[
            panel(tr("ls.alarm_feed"), html.Div(_feed(state.feed, lang()), id=FEED,
                                                className="feed"),
                  html.Div(id=ACK_MESSAGE, className="message"), className="grow2"),
            panel(tr("ls.board"), html.Div(_board(state.board, lang()), id=BOARD),
                  className="grow"),
        ]),
    ])


def warm_up(c) -> None:
    """Build the base map and the device counts when the app starts, not on a first visit."""
    c.cached(f"base:{c.scope_key}", c.settings.base_map_ttl_s, lambda: _base_map(c))
    _device_counts(c)


def register_callbacks(app: dash.Dash) -> None:
    broadcast_panel.register_callbacks(app)
    kpi_outputs = [Output(KPI[k], "children") for k in KPI]

    @app.callback(
        Output(MAP, "featureColors"), Output(MAP, "layerData"), *kpi_outputs,
        Output(FEED, "children"), Output(BOARD, "children"), Output(UPDATED, "children"),
        Input(LIVE, "n_intervals"), State(TOKEN, "data"),
    )
    def tick(_n, token):
        return live_update(token)

    @app.callback(Output(EVENTS_CHART, "figure"), Output(TRENDS_CHART, "figure"),
                  Input(CHARTS, "n_intervals"))
    def charts(_n):
        return chart_figures()

    @app.callback(Output(NAV, "href"), Input(MAP, "clickInfo"),
                  State(broadcast_panel.KIND, "value"), prevent_initial_call=True)
    def open_clicked(click, broadcast_area):
        if broadcast_panel.is_drawing(broadcast_area):  # a tap is a corner of the area
            return no_update
        return clicked_target(click) or no_update

    @app.callback(Output(ACK_MESSAGE, "children"), Input({"type": ACK, "id": ALL}, "n_clicks"),
                  prevent_initial_call=True)
    def acknowledge_clicked(clicks):
        trigger = dash.ctx.triggered_id
        if not isinstance(trigger, dict) or not any(clicks or ()):
            return no_update  # the feed was redrawn, nobody clicked
        return acknowledge(trigger.get("id"))


def acknowledge(alarm_id: object) -> str:
    """An operator has seen the alarm: it stops escalating; the next tick redraws the feed.

    ``alarm_id`` is what the browser sent: anything but an alarm's id is a message, and a
    user who may not acknowledge gets AccessDenied (a 403), audited by `scoped`."""
    user = current_user()
    c = ctx()
    try:
        with c.pool.connection() as conn:
            alarm = scoped.acknowledge(conn, user, alarm_id, at=datetime.now(UTC))
            title = titles(conn, user, [alarm])[alarm.id]
    except AccessDenied:
        raise
    except TwinError as e:
        return str(e)
    return f"{tr('ls.acknowledged')}: {title}"


# --- services the callbacks call (tested directly) --------------------------------------

def live_update(token: str | None) -> tuple:
    """Patches for the map, the changed KPIs, feed and board since this tab's last tick."""
    user = current_user()
    if not can_open(user, "large_screen"):
        raise dash.exceptions.PreventUpdate
    c = ctx()
    with c.pool.connection() as conn:
        new = live.read_live(conn, c.communities, now=_now(), devices=_device_counts(c),
                             user=user)
    old = c.live.get(token) if token else None
    if token:
        c.live.put(token, new)
    diff = live.diff_live(old, new)
    stamp = f"{tr('ls.updated')} {local_now():%H:%M:%S}"
    colours = live.color_patch(diff.buildings) if not diff.buildings.empty else no_update
    layer_diffs = {k: d for k, d in diff.layers.items() if not d.empty}
    layer_data = live.data_patch(layer_diffs) if layer_diffs else no_update
    if old is None:  # unknown tab (server restarted): send the live layers whole
        layer_data = new.layers
        colours = {"buildings": new.building_colors}
    kpi_values = kpi_texts(new.kpis) if diff.kpis_changed else [no_update] * len(KPI)
    feed = _feed(new.feed, lang()) if diff.feed_changed else no_update
    board = _board(new.board, lang()) if diff.board_changed else no_update
    return (colours, layer_data, *kpi_values, feed, board, stamp)


def kpi_texts(k: dict) -> list[str]:
    a = k["alarms"]
    return [
        f"{k['online']:,}/{k['devices']:,}", str(a["critical"]), str(a["major"]),
        f"{a['minor']}/{a['info']}", str(k["orders_open"]), str(k["orders_overdue"]),
        "–" if k["response_min"] is None else f"{k['response_min']:.1f}",
        f"{k['ev_free']}/{k['ev_total']}", str(k["care_alerts"]),
    ]


def clicked_target(click: dict | None) -> str | None:
    """Where a click on the map leads: a building's drill-down, or a work order."""
    if not click or not click.get("object"):
        return None
    obj, layer = click["object"], click.get("layer")
    if layer == "buildings":
        return f"/building/{obj['id']}"
    if layer == "attention" and obj.get("building"):
        return f"/building/{obj['building']}"
    if layer == "routes":
        return f"/work-orders?id={obj['id']}"
    return None


def chart_figures() -> tuple[go.Figure, go.Figure]:
    c = ctx()
    now = _now()
    with c.pool.connection() as conn:
        scoped.require(conn, current_user(), "live.view", what="see the large screen's charts",
                       subject_kind="page", subject_id=NAME)
        events = telemetry.events_per_hour(conn, c.communities, now=now)
        trends = telemetry.key_trends(conn, c.communities, now=now)
    lg = lang()
    tz = zone()  # the axes on the community's clock
    ev = go.Figure()
    for domain in DOMAINS:
        hours = [h.astimezone(tz) for h, d, _ in events if d == domain]
        counts = [n for _, d, n in events if d == domain]
        ev.add_bar(x=hours, y=counts, name=t(f"dom.{domain}", lg), marker_color=DOMAIN_COLORS[domain])
    # Whole hours on the axis, even when one hour alone has data (plotly would otherwise
    # zoom into that instant and label fractions of a second).
    ev.update_layout(barmode="stack", xaxis={"tickformat": "%H:%M", "dtick": 3_600_000})
    tr_fig = go.Figure()
    names = {"air_quality_sensor.pm25": "PM2.5 µg/m³", "co_sensor.co": "CO ppm",
             "air_quality_sensor.noise": "dB(A)"}
    colours = {"air_quality_sensor.pm25": "#4da3ff", "co_sensor.co": "#eb4048",
               "air_quality_sensor.noise": "#f6b73c"}
    for key, label in names.items():
        times = [b.astimezone(tz) for b, k, _ in trends if k == key]
        values = [v for _, k, v in trends if k == key]
        tr_fig.add_scatter(x=times, y=values, name=label, mode="lines",
                           line={"color": colours[key], "width": 2})
    tr_fig.update_layout(xaxis={"tickformat": "%H:%M"})
    for fig in (ev, tr_fig):
        _dark(fig)
    return ev, tr_fig


def _dark(fig: go.Figure) -> None:
    fig.update_layout(
        template="plotly_dark", paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        margin={"l": 34, "r": 8, "t": 6, "b": 26}, font={"size": 11, "color": "#9fb4cc"},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0, "font": {"size": 10}},
        xaxis={"gridcolor": "#1b2b40"}, yaxis={"gridcolor": "#1b2b40"},
    )


def _feed(feed: list[dict], lg: str) -> list:
    if not feed:
        return [html.Div(t("ls.no_alarms", lg), className="empty")]
    return [
        html.Div(className=f"feed-row sev-{a['severity']} state-{a['state']}",
                 id={"type": "feed-row", "id": a["id"]}, children=[
            badge(t(f"sev.{a['severity']}", lg), a["severity"]),
            html.A(href=f"/building/{a['building_id']}" if a["building_id"] else None,
                   className="feed-main", children=[
                html.Div(a["title"] + (f" ×{a['count']}" if a["count"] > 1 else ""),
                         className="feed-title"),
                html.Div(" · ".join(x for x in (
                    a["building"] or "", t(f"dom.{a['domain']}", lg),
                    t(f"state.{a['state']}", lg)) if x), className="feed-sub"),
            ]),
            html.Div(when(a["last_at"], "%H:%M:%S"), className="feed-time"),
            html.Button(t("ls.ack", lg), id={"type": ACK, "id": a["id"]}, className="btn-ack",
                        title=t("ls.ack_hint", lg)) if a["state"] == "active" else None,
        ])
        for a in feed
    ]


def _board(board: dict, lg: str) -> list:
    counts = html.Div(className="board-counts", children=[
        html.Div([html.Div(str(n), className="board-n"), html.Div(t(f"wo.{s}", lg))],
                 className=f"board-count wo-{s}")
        for s, n in board["counts"].items()
    ])
    rows = [
        html.A(href=f"/work-orders?id={o['id']}", className=f"board-row prio-{o['priority']}",
               children=[
                   badge(t(f"prio.{o['priority']}", lg), o["priority"]),
                   html.Span(o["title"], className="board-title"),
                   html.Span(t(f"wo.{o['state']}", lg), className=f"board-state wo-{o['state']}"),
                   html.Span(o["assignee"] or "—", className="board-who"),
               ])
        for o in board["orders"]
    ]
    return [counts, html.Div(rows, className="board-rows")]


def _base_map(c) -> dict:
    with c.long_connection() as conn:  # built at start, then in the background
        frames = base_map.map_frames(conn, c.communities,
                                     full_devices_limit=c.settings.full_devices_limit,
                                     walkway_buildings_limit=c.settings.walkway_buildings_limit)
    return {"layers": maps.base_layers(frames), "view": maps.view_state(frames),
            "frames": frames}


def _device_counts(c) -> dict[str, int]:
    def read() -> dict[str, int]:
        with c.pool.connection() as conn:
            return kpis.device_counts(conn, c.communities)

    return c.cached(f"devices:{c.scope_key}", c.settings.device_counts_ttl_s, read)


def _now() -> datetime:
    return datetime.now(UTC)
