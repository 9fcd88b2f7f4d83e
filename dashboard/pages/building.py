"""A building's drill-down: floors by units, devices with live state and history, open
work orders, and its residents (masked or whole by role; whole views are audited)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update

from dashboard import scoped
from dashboard.components import badge, denied, panel, when
from dashboard.context import ctx, current_user, lang, tr, zone
from dashboard.i18n import t
from dashboard.pages import door_panel
from dashboard.pages.large_screen import _dark
from dashboard.words import titles
from twin.access import AccessDenied, can_open
from twin.device_types import DEVICE_TYPES
from twin.errors import TwinError
from twin.store.operations import work_orders
from twin.store.reads.staff import staff_names
from twin.store.reads.telemetry import HISTORY_BUCKETS
from twin.store.reads.work_orders import BOARD_STATES

PATH = None
PATH_TEMPLATE = "/building/<building_id>"
NAME = "building"

BUILDING = "b-id"
DEVICE = "b-device"
METRIC = "b-metric"
RANGE = "b-range"
HISTORY = "b-history"
DEVICES = "b-devices"
REFRESH = "b-refresh"
UNITS = "b-units"
RESIDENTS = "b-residents"


def layout(building_id: str | None = None, **_query) -> html.Div:
    user = current_user()
    if not can_open(user, "building") or building_id is None:
        return denied()
    c = ctx()
    lg = lang()
    try:
        with c.pool.connection() as conn:
            info = scoped.building_summary(conn, user, building_id)
            units = scoped.unit_grid(conn, user, building_id)
            devices = scoped.building_devices(conn, user, building_id)
            people = scoped.residents(conn, user, building_id=building_id)
            orders = work_orders(conn, info["community_id"], building_id=building_id,
                                 states=BOARD_STATES)
            names = staff_names(conn, info["community_id"])
            shown = titles(conn, user, orders)
    except AccessDenied:  # audited by scoped
        return denied("denied.grid")
    except TwinError as e:
        return html.Div(str(e), className="denied")
    # sensors first in the history picker: a camera's frame rate is the least telling line
    metric_devices = sorted((d for d in devices if _numeric_metrics(d["type"])),
                            key=lambda d: d["type"] in ("ai_camera", "iot_gateway"))
    first = metric_devices[0] if metric_devices else None
    return html.Div(className="bd", children=[
        dcc.Store(id=BUILDING, data=building_id),
        dcc.Interval(id=REFRESH, interval=max(2000, c.settings.live_interval_ms * 2)),
        html.Div(className="bd-head", children=[
            html.A("← " + tr("b.back"), href="/", className="back")
            if can_open(user, "large_screen") else html.A("← " + tr("nav.worker"),
                                                           href="/worker", className="back"),
            html.H1(info["name"], id="b-name"),
            html.Span(f"{info['floors']} {tr('map.floors')} · {info['height_m']:.0f} m · "
                      f"{info['grid'] or ''} · {len(units)} {tr('b.unit')}",
                      className="bd-sub"),
        ]),
        html.Div(className="bd-grid", children=[
            panel(tr("b.floors_units"), _unit_grid(units, lg), className="bd-units", id=UNITS),
            html.Div(className="bd-col", children=[
                panel(tr("b.devices"), html.Div(_device_table(devices, lg), id=DEVICES),
                      className="bd-devices"),
                panel(tr("bd.doors"), door_panel.door_panel(devices, lg, people),
                      className="bd-doors"),
                panel(tr("b.history"), html.Div(className="history-controls", children=[
                    dcc.Dropdown(id=DEVICE, options=[
                        {"label": f"{d['name']} ({d['type']})", "value": d["id"]}
                        for d in metric_devices], value=first["id"] if first else None,
                        clearable=False, className="dd"),
                    dcc.Dropdown(id=METRIC, clearable=False, className="dd dd-small",
                                 options=_metric_options(first["type"]) if first else [],
                                 value=_numeric_metrics(first["type"])[0] if first else None),
                    dcc.RadioItems(id=RANGE, value="24h", inline=True, className="ranges",
                                   options=[{"label": tr(f"range.{k}"), "value": k}
                                            for k in HISTORY_BUCKETS]),
                ]), dcc.Graph(id=HISTORY, config={"displayModeBar": False}, className="chart"),
                      className="bd-history"),
            ]),
            html.Div(className="bd-col", children=[
                panel(tr("b.orders"), _orders(orders, names, shown, lg), className="bd-orders"),
                panel(tr("b.residents"), _residents(people, lg), id=RESIDENTS,
                      className="bd-residents"),
            ]),
        ]),
    ])


def register_callbacks(app: dash.Dash) -> None:
    door_panel.register_callbacks(app)
    @app.callback(Output(METRIC, "options"), Output(METRIC, "value"), Input(DEVICE, "value"),
                  State(BUILDING, "data"), prevent_initial_call=True)
    def pick_device(device_id, building_id):
        if not device_id:
            return [], None
        device_type = device_type_of(building_id, device_id)
        metrics = _numeric_metrics(device_type)
        return _metric_options(device_type), metrics[0] if metrics else None

    @app.callback(Output(HISTORY, "figure"), Input(DEVICE, "value"), Input(METRIC, "value"),
                  Input(RANGE, "value"))
    def history(device_id, metric, range_key):
        return history_figure(device_id, metric, range_key)

    @app.callback(Output(DEVICES, "children"), Input(REFRESH, "n_intervals"),
                  State(BUILDING, "data"), prevent_initial_call=True)
    def refresh(_n, building_id):
        if not building_id:
            return no_update
        with ctx().pool.connection() as conn:
            devices = scoped.building_devices(conn, current_user(), building_id)
        return _device_table(devices, lang())


def device_type_of(building_id: str, device_id: str) -> str:
    with ctx().pool.connection() as conn:
        return scoped.device_type(conn, current_user(), building_id, device_id)


def history_figure(device_id: str | None, metric: str | None, range_key: str) -> go.Figure:
    """A device's history chart; a device outside the user's scope is AccessDenied (403,
    audited) and a range or metric that is not one is a TwinError (400)."""
    fig = go.Figure()
    if device_id and metric:
        with ctx().pool.connection() as conn:
            rows = scoped.device_history(conn, current_user(), device_id, metric, range_key,
                                         now=datetime.now(UTC))
        # on the community's clock (plotly draws a time as the wall time it is written in)
        tz = zone()
        xs = [r[0].astimezone(tz) for r in rows]
        fig.add_scatter(x=xs, y=[r[3] for r in rows], mode="lines", line={"width": 0},
                        showlegend=False, hoverinfo="skip")
        fig.add_scatter(x=xs, y=[r[2] for r in rows], mode="lines", line={"width": 0},
                        fill="tonexty", fillcolor="rgba(77,163,255,0.18)", showlegend=False,
                        hoverinfo="skip")
        fig.add_scatter(x=xs, y=[r[1] for r in rows], mode="lines", name=metric,
                        line={"color": "#4da3ff", "width": 2})
    _dark(fig)
    fig.update_layout(showlegend=False)
    return fig


def _numeric_metrics(device_type: str) -> list[str]:
    return [m for m, spec in DEVICE_TYPES[device_type].metrics.items() if not spec.is_text]


def _metric_options(device_type: str) -> list[dict]:
    metrics = DEVICE_TYPES[device_type].metrics
    return [{"label": f"{m} ({metrics[m].unit})" if metrics[m].unit else m, "value": m}
            for m in _numeric_metrics(device_type)]


def _unit_grid(units: list[dict], lg: str) -> html.Div:
    floors: dict[int, list[dict]] = {}
    for u in units:
        floors.setdefault(u["floor"], []).append(u)
    rows = []
    for floor in sorted(floors, reverse=True):
        cells = []
        for u in floors[floor]:
            classes = f"unit occ-{u['occupancy']}"
            if u["severity"]:
                classes += f" unit-alarm sev-{u['severity']}"
            marks = []
            if u["care"]:
                marks.append(html.Span("♥", className="care-mark", title=t("b.care", lg)))
            if u["alarms"]:
                marks.append(html.Span("!", className="alarm-mark"))
            cells.append(html.Div([html.Span(u["number"]), *marks], className=classes,
                                  title=f"{u['number']}: {u['residents']}", id=f"unit-{u['id']}"))
        rows.append(html.Div([html.Div(f"{floor}F", className="floor-label"),
                              html.Div(cells, className="floor-units")],
                             className="floor-row", **_data(floor=str(floor))))
    legend = html.Div(className="unit-legend", children=[
        html.Span([html.Span(className="swatch occ-owner"), t("b.occupied", lg)]),
        html.Span([html.Span(className="swatch occ-tenant"), t("b.tenant", lg)]),
        html.Span([html.Span(className="swatch occ-vacant"), t("b.vacant", lg)]),
        html.Span([html.Span("♥", className="care-mark"), t("b.care", lg)]),
        html.Span([html.Span("!", className="alarm-mark"), t("b.alarm", lg)]),
    ])
    return html.Div([legend, html.Div(rows, className="floors", id="floors")])


def _device_table(devices: list[dict], lg: str) -> html.Table:
    head = html.Tr([html.Th(t(k, lg)) for k in ("b.device", "b.type", "b.floor", "b.online",
                                                 "b.value", "b.last_seen")])
    body = []
    for d in devices:
        state = ("alarm" if d["severity"] else "online" if d["online"] else
                 "offline" if d["online"] is False else "unknown")
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(d["metrics"].items())[:3])
        body.append(html.Tr(className=f"dev-{state}", children=[
            html.Td(d["name"]), html.Td(d["type"]),
            html.Td("" if d["floor"] is None else str(d["floor"])),
            html.Td(badge(t(f"b.{state}", lg) if state != "alarm" else t(f"sev.{d['severity']}", lg),
                          state if state != "alarm" else d["severity"])),
            html.Td(values, className="mono"), html.Td(when(d["last_seen"], "%H:%M:%S")),
        ]))
    return html.Table([html.Thead(head), html.Tbody(body)], className="table")


def _orders(orders, names: dict[str, str], shown: dict[int, str], lg: str) -> html.Div:
    if not orders:
        return html.Div(t("b.no_orders", lg), className="empty")
    return html.Div([
        html.A(href=f"/work-orders?id={o.id}", className=f"board-row prio-{o.spec.priority}", children=[
            badge(t(f"prio.{o.spec.priority}", lg), o.spec.priority), html.Span(shown.get(o.id, o.spec.title), className="board-title"),
            html.Span(t(f"wo.{o.state}", lg), className=f"board-state wo-{o.state}"),
            html.Span(names.get(o.assignee_id or "", "—"), className="board-who"),
        ]) for o in orders
    ])


def _residents(people: dict, lg: str) -> html.Div:
    note = t("b.masked_note", lg) if people["masked"] else t("b.unmasked_note", lg)
    head = html.Tr([html.Th(t(k, lg)) for k in ("b.unit", "b.name", "b.phone", "b.age",
                                                 "b.care_flags")])
    body = [html.Tr([html.Td(p["unit"]), html.Td(p["name"], className="res-name"),
                     html.Td(p["phone"], className="mono res-phone"), html.Td(p["age_band"]),
                     html.Td(", ".join(p["care_flags"]))],
                    className="care" if p["care_flags"] else "")
            for p in people["residents"]]
    return html.Div([html.Div(note, className="privacy-note"),
                     html.Table([html.Thead(head), html.Tbody(body)], className="table",
                                id="residents-table")])


def _fmt(v) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def _data(**attrs: str) -> dict[str, Any]:
    """HTML data-* attributes, which Dash takes as keywords but cannot name in Python."""
    return {f"data-{k}": v for k, v in attrs.items()}
