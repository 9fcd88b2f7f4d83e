"""The Planner page's what-if tools: edit a scenario on the map, run it, compare, export.

Click walkways on the map to close or reopen them, tick staff who are away,
save the scenario, and run coverage for a role and shift against a response
target: the buildings are coloured by the scenario's walking time, and a
table and a histogram set it beside the twin as it is. Everything shown is
per building or a count; no resident is named. The analysis is
`twin.store.scenarios.compare_coverage`, the same as `twin whatif coverage`.
"""

from __future__ import annotations

import itertools
from typing import Any

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, dcc, html, no_update

from dashboard import maps, scoped
from dashboard.components import panel
from dashboard.context import ctx, current_user, lang, tr
from dashboard.deck import TwinDeck
from dashboard.inputs import SCENARIO_NAME_CHARS
from twin.access import AccessDenied
from twin.errors import TwinError

MAP = "wi-map"
SCENARIO = "wi-scenario"
NAME = "wi-name"
CLOSED = "wi-closed"
AWAY = "wi-away"
ROLE = "wi-role"
SHIFT = "wi-shift"
SLA = "wi-sla"
SAVE = "wi-save"
RUN = "wi-run"
MESSAGE = "wi-message"
RESULT = "wi-result"
HISTOGRAM = "wi-histogram"
LAST = "wi-last"
EXPORT_GEOJSON = "wi-export-geojson"
EXPORT_CSV = "wi-export-csv"
DOWNLOAD = "wi-download"

ROLES = ("security", "grid_worker", "engineer", "cleaning", "manager")
SHIFTS = ("day", "night", "office")
#: Building colours by the scenario's walking time against the target.
WITHIN, NEAR, OVER, CUT_OFF = [80, 200, 120, 230], [255, 196, 61, 235], [239, 68, 68, 240], \
    [120, 120, 130, 235]
CLOSED_COLOR = [239, 68, 68, 255]


def section(base: dict[str, Any]) -> html.Div:
    """The tools, given the cached base map of the community."""
    c = ctx()
    from twin.store.scenarios import list_scenarios, staff_at_posts

    community = c.communities[0]
    with c.pool.connection() as conn:
        saved = [s.scenario.name for s in list_scenarios(conn, community)]
        staff = staff_at_posts(conn, community)
    return html.Div(className="whatif", children=[
        dcc.Store(id=CLOSED, data=[]),
        dcc.Store(id=LAST),
        dcc.Download(id=DOWNLOAD),
        panel(tr("wi.title"), html.Div(tr("wi.intro"), className="hint", id="whatif-note"),
              html.Div(className="wi-grid", children=[
            html.Div(className="wi-controls", children=[
                html.Label(tr("wi.scenario")),
                dcc.Dropdown(id=SCENARIO, options=_options(saved), value=None,
                             placeholder=tr("wi.new")),
                html.Label(tr("wi.name")),
                dcc.Input(id=NAME, type="text", debounce=False, className="input",
                          placeholder="north-road-works", maxLength=SCENARIO_NAME_CHARS),
                html.Div(tr("wi.hint"), className="hint"),
                html.Div(id="wi-closed-list", className="hint"),
                html.Label(tr("wi.away")),
                dcc.Dropdown(id=AWAY, multi=True, options=[
                    {"label": f"{m.id} · {m.role} · {m.shift}", "value": m.id} for m in staff]),
                html.Div(className="wi-row", children=[
                    html.Div([html.Label(tr("wi.role")), dcc.Dropdown(
                        id=ROLE, value="security", clearable=False,
                        options=[{"label": r, "value": r} for r in ROLES])]),
                    html.Div([html.Label(tr("wi.shift")), dcc.Dropdown(
                        id=SHIFT, value="day", clearable=False,
                        options=[{"label": s, "value": s} for s in SHIFTS])]),
                    html.Div([html.Label(tr("wi.sla")), dcc.Input(
                        id=SLA, type="number", value=3, min=0.5, step=0.5, className="input")]),
                ]),
                html.Div(className="wi-row", children=[
                    html.Button(tr("wi.save"), id=SAVE, className="btn"),
                    html.Button(tr("wi.run"), id=RUN, className="btn btn-primary"),
                    html.Button("GeoJSON", id=EXPORT_GEOJSON, className="btn"),
                    html.Button("CSV", id=EXPORT_CSV, className="btn"),
                ]),
                html.Div(id=MESSAGE, className="message"),
            ]),
            html.Div(className="wi-map", children=[TwinDeck(
                id=MAP, layers=maps.planner_map_layers(base["frames"]), layerData={"closed": {}},
                featureColors={"buildings": {}}, initialViewState=base["view"],
                tooltips={"walkways": "{id} · {kind}",
                          "buildings": maps.tooltips(lang())["buildings"]},
                tileUrl=c.settings.tile_url)]),
            html.Div(className="wi-results", children=[
                html.Div(id=RESULT),
                dcc.Graph(id=HISTOGRAM, config={"displayModeBar": False}, className="chart"),
            ]),
        ])),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(CLOSED, "data"), Output(AWAY, "value"), Output(NAME, "value"),
                  Output(MESSAGE, "children", allow_duplicate=True),
                  Input(SCENARIO, "value"), prevent_initial_call=True)
    def load(name):
        return load_saved(name)

    @app.callback(Output(CLOSED, "data", allow_duplicate=True), Input(MAP, "clickInfo"),
                  State(CLOSED, "data"), prevent_initial_call=True)
    def toggle(click, closed):
        return toggle_closed(click, closed)

    @app.callback(Output(MAP, "layerData"), Output("wi-closed-list", "children"),
                  Input(CLOSED, "data"))
    def show_closed(closed):
        return closed_layer(closed)

    @app.callback(Output(MESSAGE, "children"), Output(SCENARIO, "options"),
                  Output(SCENARIO, "value"),
                  Input(SAVE, "n_clicks"), State(NAME, "value"), State(CLOSED, "data"),
                  State(AWAY, "value"), State(SCENARIO, "value"), prevent_initial_call=True)
    def save(_n, name, closed, away, loaded):
        return save_edited(name, closed, away, loaded)

    @app.callback(Output(RESULT, "children"), Output(HISTOGRAM, "figure"),
                  Output(MAP, "featureColors"), Output(LAST, "data"),
                  Output(MESSAGE, "children", allow_duplicate=True),
                  Input(RUN, "n_clicks"), State(NAME, "value"), State(CLOSED, "data"),
                  State(AWAY, "value"), State(SCENARIO, "value"), State(ROLE, "value"),
                  State(SHIFT, "value"), State(SLA, "value"), prevent_initial_call=True)
    def run(_n, name, closed, away, loaded, role, shift, sla):
        return run_edited(name, closed, away, loaded, role, shift, sla)

    @app.callback(Output(DOWNLOAD, "data"), Input(EXPORT_GEOJSON, "n_clicks"),
                  Input(EXPORT_CSV, "n_clicks"), State(LAST, "data"), prevent_initial_call=True)
    def export(_g, _c, last):
        return export_last(last, as_csv=dash.ctx.triggered_id == EXPORT_CSV)


# --- services the callbacks call (tested directly); each checks the role first -------------

def load_saved(name: object) -> tuple:
    """A saved scenario's closures, absences and name, to edit; an unknown one is a message."""
    _require_whatif("load a scenario", name)
    if not name:
        return [], [], "", ""
    try:
        scenario = _load(name)
    except TwinError as e:
        return no_update, no_update, no_update, f"{tr('wi.not_found')}: {e}"
    return list(scenario.closed_edges), list(scenario.staff_removed), scenario.name, ""


def toggle_closed(click: object, closed: object) -> list[str] | Any:
    """Close a clicked walkway, or reopen it."""
    _require_whatif("close a walkway")
    closed = _names(closed, "closed walkways")
    edge = None
    if isinstance(click, dict) and click.get("layer") in ("walkways", "closed"):
        found = click.get("object")
        edge = found.get("id") if isinstance(found, dict) else None
    if not isinstance(edge, str):
        return no_update
    return [e for e in closed if e != edge] if edge in closed else [*closed, edge]


def closed_layer(closed: object) -> tuple[dict[str, Any], str]:
    """The closed walkways drawn over the map, and listed."""
    _require_whatif("see the closed walkways")
    closed = _names(closed, "closed walkways")
    paths = _edge_paths()
    records = {e: {"id": e, "path": paths[e], "color": CLOSED_COLOR} for e in closed
               if e in paths}
    text = f"{tr('wi.closed')}: {', '.join(closed)}" if closed else ""
    return {"closed": maps.encoded(records)}, text


def save_edited(name: object, closed: object, away: object, loaded: object) -> tuple:
    """Save the scenario as edited, in the user's name; a refusal or bad input is a message."""
    from pydantic import ValidationError

    from twin.store.scenarios import list_scenarios, save_scenario

    user = current_user()
    try:
        _require_whatif("save a scenario", name)
    except AccessDenied:
        return tr("denied"), no_update, no_update
    c = ctx()
    try:
        scenario = _edited(name, closed, away, loaded, default="")
        with c.pool.connection() as conn:
            save_scenario(conn, c.communities[0], scenario, actor=user.name)
            saved = [s.scenario.name for s in list_scenarios(conn, c.communities[0])]
    except (ValidationError, TwinError) as e:
        return f"{tr('wi.not_saved')}: {_reason(e)}", no_update, no_update
    return f"{tr('wi.saved')}: {scenario.name}", _options(saved), scenario.name


def run_edited(name: object, closed: object, away: object, loaded: object, role: object,
               shift: object, sla: object) -> tuple:
    """Run coverage of the scenario as edited; a refusal or bad input is a message."""
    from pydantic import ValidationError

    nothing = (no_update, no_update, no_update, no_update)
    try:
        _require_whatif("run a scenario", name)
    except AccessDenied:
        return (*nothing, tr("denied"))
    try:
        if role not in ROLES or shift not in SHIFTS:
            raise TwinError(f"{tr('wi.role')}/{tr('wi.shift')}: "
                            f"{scoped.brief(role)}, {scoped.brief(shift)}")
        scenario = _edited(name, closed, away, loaded, default="draft")
        result = run_coverage(scenario, role=str(role), shift=str(shift),
                              sla_s=_minutes(sla) * 60)
    except (ValidationError, TwinError, ValueError) as e:
        return (*nothing, _reason(e))
    return (result["table"], result["figure"], {"buildings": result["colors"]},
            result["export"], "")


def export_last(last: object, *, as_csv: bool) -> dict[str, Any] | Any:
    """The last comparison as CSV or GeoJSON (with the buildings' footprints)."""
    _require_whatif("export a comparison")
    if not last:
        return no_update
    rows = last.get("rows") if isinstance(last, dict) else None
    name = last.get("scenario") if isinstance(last, dict) else None
    if not isinstance(rows, list) or not isinstance(name, str) or not all(
            isinstance(r, dict) and isinstance(r.get("building_id"), str) for r in rows):
        raise TwinError("not a comparison to export")
    import pandas as pd

    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["building_id"])
    if as_csv:
        return dcc.send_data_frame(frame.to_csv, f"coverage-{name}.csv", index=False)
    return {"content": _geojson(frame), "filename": f"coverage-{name}.geojson"}


def run_coverage(scenario, *, role: str, shift: str, sla_s: float) -> dict[str, Any]:
    """The comparison, as the page shows it: a table, a histogram, building colours, rows."""
    from twin.store.scenarios import building_names, compare_coverage

    c = ctx()
    with c.long_connection() as conn:
        result = compare_coverage(conn, c.communities[0], scenario, role=role, shifts=[shift],
                                  sla_s=sla_s)[shift]
        names = building_names(conn, c.communities[0])
    table = result.table()
    summary = result.summary()
    rows = [("wi.over", summary["over_target_baseline"], summary["over_target_scenario"]),
            ("wi.median", _min(summary["median_baseline_s"]), _min(summary["median_scenario_s"])),
            ("wi.slowest", _min(table["baseline_s"].max()), _min(table["scenario_s"].max()))]
    newly = [names.get(b, b) for b in result.newly_over]
    body = html.Div(id="wi-comparison", children=[
        html.Div(f"{role} · {shift} · {tr('wi.on_duty')} {len(result.baseline.staff_ids)} → "
                 f"{len(result.scenario.staff_ids)}", className="hint"),
        html.Table(className="table", children=[
            html.Thead(html.Tr([html.Th(""), html.Th(tr("wi.baseline")),
                                html.Th(scenario.name)])),
            html.Tbody([html.Tr([html.Td(tr(k)), html.Td(str(a)), html.Td(str(b))])
                        for k, a, b in rows]),
        ]),
        html.Div([html.B(f"{tr('wi.newly_over')}: "),
                  html.Span(", ".join(newly) or tr("wi.none"), id="wi-newly")]),
    ])
    edges = np.arange(0, 11) * 60.0
    fig = go.Figure()
    for label, column, color in ((tr("wi.baseline"), "baseline_s", "#4da3ff"),
                                 (scenario.name, "scenario_s", "#ef4444")):
        values = table[column].to_numpy()
        counts, _ = np.histogram(np.clip(values[np.isfinite(values)], 0, edges[-1] - 1e-9), edges)
        fig.add_bar(x=[f"{a / 60:g}-{b / 60:g}" for a, b in itertools.pairwise(edges)],
                    y=counts, name=label, marker_color=color)
    fig.update_layout(barmode="group", paper_bgcolor="rgba(0,0,0,0)",
                      plot_bgcolor="rgba(0,0,0,0)", font={"color": "#c9d6e8"},
                      margin={"l": 30, "r": 10, "t": 10, "b": 30}, height=220,
                      xaxis_title=tr("wi.minutes"), legend={"orientation": "h"})
    colors = {}
    for building, seconds in table["scenario_s"].items():
        colors[building] = CUT_OFF if not np.isfinite(seconds) else OVER if seconds > sla_s \
            else NEAR if seconds > 0.8 * sla_s else WITHIN
    export_rows = table.reset_index().replace([np.inf, -np.inf], None)
    export_rows["name"] = export_rows["building_id"].map(names)
    return {"table": body, "figure": fig, "colors": colors,
            "export": {"scenario": scenario.name, "rows": export_rows.to_dict("records")}}


def _require_whatif(what: str, scenario: object = "") -> None:
    """Refuse (and audit) a user whose role may not use the what-if tools, whichever
    callback asks: a forged request reaches them without the page."""
    c = ctx()
    with c.pool.connection() as conn:
        scoped.require(conn, current_user(), "whatif.use", what=what, subject_kind="scenario",
                       subject_id=scenario if isinstance(scenario, str) else "")


def _edited(name: object, closed: object, away: object, loaded: object, *, default: str):
    """The scenario as the tools show it: the loaded one with the edits (pydantic checks
    the values the browser sent)."""
    from twin.whatif.scenario import Scenario

    base = _load(loaded).model_dump() if loaded else {}
    return Scenario.model_validate({**base,
                                    "name": (name if isinstance(name, str) else "").strip()
                                    or default,
                                    "closed_edges": closed or [], "staff_removed": away or []})


def _names(values: object, what: str) -> list[str]:

    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TwinError(f"not {what}: {scoped.brief(values)}")
    return values


def _minutes(value: object) -> float:
    """The response target as the browser sent it (3 by default)."""
    if value is None or value == "":
        return 3.0
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TwinError(f"{tr('wi.sla')}: {scoped.brief(value)}")
    return float(value)


def _load(name: object):
    from twin.store.scenarios import load_scenario

    if not isinstance(name, str):
        raise TwinError(f"not a scenario: {scoped.brief(name)}")
    c = ctx()
    with c.pool.connection() as conn:
        return load_scenario(conn, c.communities[0], name)


def _edge_paths() -> dict[str, list]:
    """Every walkway's path, rounded to 7 decimals, cached with the base map."""
    def build() -> dict[str, list]:
        from twin.store.reads.base_map import walkway_lines

        c = ctx()
        with c.long_connection() as conn:
            lines = walkway_lines(conn, c.communities[0])
        return {e: np.asarray(line.coords)[:, :2].round(7).tolist() for e, line in lines.items()}

    c = ctx()
    return c.cached(f"whatif-edges:{c.scope_key}", c.settings.base_map_ttl_s, build)


def _geojson(frame) -> str:
    import geopandas as gpd

    from twin.store.reads.buildings import footprints

    c = ctx()
    with c.long_connection() as conn:  # an export
        shapes = footprints(conn, frame["building_id"].tolist())
    out = gpd.GeoDataFrame(frame, geometry=[shapes.get(b) for b in frame["building_id"]],
                           crs=4326)
    return out.to_json(drop_id=True)


def _options(names: list[str]) -> list[dict[str, str]]:
    return [{"label": n, "value": n} for n in names]


def _min(seconds: float) -> str:
    return "∞" if not np.isfinite(seconds) else f"{seconds / 60:.1f}"


def _reason(error: Exception) -> str:
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(error)
