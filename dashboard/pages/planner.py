"""The planner's page: the what-if tools, and the aggregates a planner may see.

Everything here is per building, a count or a share: no resident, no unit
and no device is named. The what-if tools are in `dashboard/whatif.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dash
import plotly.graph_objects as go
from dash import dcc, html

from dashboard import whatif
from dashboard.components import denied, panel
from dashboard.context import ctx, current_user, tr
from dashboard.pages.large_screen import DOMAIN_COLORS, _dark
from twin.access import can_open
from twin.store.reads.alarms import alarms_by_domain
from twin.store.reads.grids import grid_aggregates
from twin.store.reads.residents import age_structure

PATH = "/planner"
PATH_TEMPLATE = None
NAME = "planner"

GRID_TABLE = "p-grids"


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "planner"):
        return denied()
    c = ctx()
    now = datetime.now(UTC)
    with c.pool.connection() as conn:
        grids = grid_aggregates(conn, c.communities, now=now)
        ages = age_structure(conn, c.communities)
        domains = alarms_by_domain(conn, c.communities, now=now)
    cols = ("p.grid", "p.buildings", "p.units", "p.occupancy", "p.care", "p.devices",
            "p.alarms_30d", "p.orders_30d")
    table = html.Table(className="table", id=GRID_TABLE, children=[
        html.Thead(html.Tr([html.Th(tr(k)) for k in cols])),
        html.Tbody([html.Tr([html.Td(g["grid"]), html.Td(g["buildings"]), html.Td(g["units"]),
                             html.Td(f"{g['occupancy']:.1f}%"), html.Td(g["care"]),
                             html.Td(g["devices"]), html.Td(g["alarms_30d"]),
                             html.Td(g["orders_30d"])]) for g in grids]),
    ])
    age_fig = go.Figure(go.Bar(x=list(ages), y=list(ages.values()), marker_color="#4da3ff"))
    dom_fig = go.Figure(go.Bar(x=[tr(f"dom.{d}") for d in domains], y=list(domains.values()),
                               marker_color=[DOMAIN_COLORS.get(d, "#888") for d in domains]))
    occ_fig = go.Figure(go.Bar(x=[g["grid"] for g in grids], y=[g["occupancy"] for g in grids],
                               marker_color="#50c878"))
    for fig in (age_fig, dom_fig, occ_fig):
        _dark(fig)
    return html.Div(className="planner", children=[
        html.H1(tr("p.title")),
        whatif.section(_base(c)),
        panel(tr("p.grids"), table),
        html.Div(className="planner-charts", children=[
            panel(tr("p.occupancy"), dcc.Graph(figure=occ_fig, config={"displayModeBar": False},
                                               className="chart")),
            panel(tr("p.age"), dcc.Graph(figure=age_fig, config={"displayModeBar": False},
                                         className="chart")),
            panel(tr("p.alarms_by_domain"), dcc.Graph(figure=dom_fig,
                                                      config={"displayModeBar": False},
                                                      className="chart")),
        ]),
    ])


def register_callbacks(app: dash.Dash) -> None:
    whatif.register_callbacks(app)


def _base(c) -> dict:
    from dashboard.pages.large_screen import _base_map

    return c.cached(f"base:{c.scope_key}", c.settings.base_map_ttl_s, lambda: _base_map(c))
