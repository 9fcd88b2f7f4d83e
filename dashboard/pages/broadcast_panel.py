"""The large screen's cloud broadcast panel: choose an area (a grid, a building, or one
drawn by tapping the map) or pick speakers (from the list, or by tapping their dots on
the map), choose a preset or type a text, send; then n of m speakers acknowledged. A
folded panel over the map, in its own module, hooked into `dashboard.pages.large_screen`
with a few lines (the panel, its two map layers, its callbacks, and a tap that draws
not opening a building); the service (`dashboard.doors.broadcast`) checks the role
again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import dash
import pydeck as pdk
from dash import Input, Output, Patch, State, dcc, html, no_update

from dashboard import doors
from dashboard.context import ctx, current_user, lang, tr
from dashboard.i18n import t
from dashboard.labels.doors import PRESETS
from twin.access import AccessDenied, may
from twin.errors import TwinError

PANEL = "bc-panel"
KIND = "bc-kind"
GRID = "bc-grid"
BUILDING = "bc-building"
SPEAKERS = "bc-speakers"
PRESET = "bc-preset"
TEXT = "bc-text"
SEND = "bc-send"
SENT = "bc-sent"      # the broadcast's id, while its acks are awaited
POLL = "bc-poll"
STATUS = "bc-status"
POINTS = "bc-points"  # the corners tapped on the map, [[lon, lat], ...]
POINT_COUNT = "bc-point-count"
CLEAR = "bc-clear"
#: The large screen's map (its clicks on a speaker's dot pick that speaker).
MAP = "ls-map"
KINDS = ("grid", "building", "drawn", "speakers")
#: How long the panel waits for the speakers' acks (s); then it shows the count it has.
ACKS_WITHIN_S = 60.0
#: The map layers of the panel: the ground, pickable, so that a tap anywhere gives a
#: point; and the area drawn so far.
AREA = "bc-area"
AREA_COLOR = [255, 196, 0, 255]


def panel() -> html.Details | None:
    """The folded panel, for a user who may broadcast; nothing for anyone else."""
    user = current_user()
    if not may(user, "broadcast.send"):
        return None
    c = ctx()
    with c.pool.connection() as conn:
        targets = doors.broadcast_targets(conn, user, _community())
    lg = lang()

    def options(kind: str) -> list[dict[str, str]]:
        return [{"label": name, "value": id_} for id_, name in targets[kind]]

    return html.Details(id=PANEL, className="bc-panel", children=[
        html.Summary(t("bc.title", lg), id="bc-open"),
        dcc.Store(id=SENT),
        dcc.Interval(id=POLL, interval=1000, disabled=True),
        html.Label(t("bc.area", lg)),
        dcc.RadioItems(id=KIND, value="grid", inline=True, className="ranges",
                       options=[{"label": t(f"bc.area.{k}", lg), "value": k} for k in KINDS]),
        dcc.Dropdown(id=GRID, options=options("grid"), placeholder=t("bc.pick", lg),
                     className="dd"),
        dcc.Dropdown(id=BUILDING, options=options("building"), placeholder=t("bc.pick", lg),
                     className="dd"),
        html.Div(className="bc-draw", children=[
            html.Span(t("bc.draw_hint", lg), className="muted"), " ",
            html.Span([t("bc.points", lg), ": ", html.Span("0", id=POINT_COUNT)]),
            html.Button(t("bc.clear", lg), id=CLEAR, className="btn-ack"),
        ]),
        dcc.Store(id=POINTS, data=[]),
        dcc.Dropdown(id=SPEAKERS, options=options("speaker"), multi=True,
                     placeholder=t("bc.pick", lg), className="dd"),
        html.Label(t("bc.preset", lg)),
        dcc.Dropdown(id=PRESET, options=[{"label": t(f"bc.preset.{p}", lg), "value": p}
                                         for p in PRESETS], className="dd"),
        dcc.Textarea(id=TEXT, placeholder=t("bc.text", lg), className="bc-text",
                     maxLength=300),
        html.Button(t("bc.send", lg), id=SEND, className="btn-ack"),
        html.Div(id=STATUS, className="message"),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(TEXT, "value"), Input(PRESET, "value"), prevent_initial_call=True)
    def preset(key):
        return preset_text(key) if key else no_update

    @app.callback(Output(SPEAKERS, "value"), Output(KIND, "value"), Input(MAP, "clickInfo"),
                  State(SPEAKERS, "value"), State(KIND, "value"), prevent_initial_call=True)
    def tap(click, picked, kind):
        """A tap on a speaker's dot adds it to (or takes it from) the picked speakers (not
        while an area is being drawn: then it is a corner)."""
        obj = click.get("object") if isinstance(click, dict) else None
        if kind == "drawn" or not isinstance(obj, dict) or obj.get("type") != "speaker" \
                or not obj.get("id"):
            raise dash.exceptions.PreventUpdate
        picked = list(picked or [])
        picked.remove(obj["id"]) if obj["id"] in picked else picked.append(obj["id"])
        return picked, "speakers"

    @app.callback(Output(POINTS, "data"), Output(POINT_COUNT, "children"),
                  Output(MAP, "layerData", allow_duplicate=True),
                  Input(MAP, "clickInfo"), Input(CLEAR, "n_clicks"), Input(KIND, "value"),
                  State(POINTS, "data"), prevent_initial_call=True)
    def draw(click, _clear, kind, points):
        """While drawing, each tap on the map is a corner of the area; the outline is drawn
        on the map. Clearing, or choosing another kind of area, starts again."""
        if dash.ctx.triggered_id == MAP:
            if kind != "drawn":
                raise dash.exceptions.PreventUpdate
            points = add_corner(points, click)
        else:
            points = []
        patch = Patch()
        patch[AREA] = {"drawn": {"path": outline(points), "color": AREA_COLOR}} \
            if points else {}
        return points, str(len(points)), patch

    @app.callback(Output(SENT, "data"), Output(STATUS, "children"), Output(POLL, "disabled"),
                  Input(SEND, "n_clicks"), Input(POLL, "n_intervals"),
                  State(KIND, "value"), State(GRID, "value"), State(BUILDING, "value"),
                  State(SPEAKERS, "value"), State(TEXT, "value"), State(SENT, "data"),
                  State(POINTS, "data"), prevent_initial_call=True)
    def send_or_poll(_clicks, _n, kind, grid, building, speakers, text, sent, points):
        if dash.ctx.triggered_id == SEND:
            target = {"grid": {"grid_id": grid}, "building": {"building_id": building},
                      "drawn": {"area": area_of(points)},
                      "speakers": {"speakers": speakers}}.get(kind, {})
            broadcast_id, message = send(text, **target)
            return broadcast_id, message, broadcast_id is None
        if not sent:
            return no_update, no_update, True
        message, done = acks(sent)
        return (None if done else sent), message, done


def map_layers() -> list[dict[str, Any]]:
    """The panel's layer, to go after the base map's (whose ground the large screen makes
    pickable, `report_views.with_pickable_ground`): the outline of the area being drawn."""
    return [json.loads(pdk.Layer(
        "PathLayer", data=[], id=AREA, get_path="path", get_color="color", get_width=2,
        width_min_pixels=4, pickable=False).to_json())]


def is_drawing(kind: object) -> bool:
    """Whether taps on the map are corners of an area (the large screen then does not open
    the building tapped)."""
    return kind == "drawn"


def add_corner(points: list[list[float]] | None, click: dict[str, Any] | None
               ) -> list[list[float]]:
    """The corners with the tapped point added (a tap without a coordinate adds nothing)."""
    points = [p for p in points if isinstance(p, list) and len(p) == 2
              and all(isinstance(v, int | float) for v in p)] \
        if isinstance(points, list) else []  # the browser's store: forged, it is dropped
    where = click.get("coordinate") if isinstance(click, dict) else None
    if isinstance(where, list | tuple) and len(where) >= 2 \
            and all(isinstance(v, int | float) for v in where[:2]):
        points.append([round(float(where[0]), 7), round(float(where[1]), 7)])
    return points


def outline(points: list[list[float]]) -> list[list[float]]:
    return points + points[:1] if len(points) >= 3 else points


def area_of(points: list[list[float]] | None) -> str | None:
    """The drawn area as a GeoJSON polygon (the service checks it), None before 3 corners."""
    if not points or len(points) < 3:
        return None
    return json.dumps({"type": "Polygon", "coordinates": [outline(list(points))]})


def preset_text(key: str) -> str:
    if key not in PRESETS:
        raise TwinError(f"no broadcast preset {key!r}")
    return tr(f"bc.say.{key}")


def send(text: object, **target: Any) -> tuple[str | None, str]:
    """Broadcast ``text`` to the target (grid_id, building_id or speakers) as the current
    user: (its id, what to show). A user who may not is AccessDenied (403, audited)."""
    try:
        with ctx().pool.connection() as conn:
            sent = doors.broadcast(conn, current_user(), text, community_id=_community(),
                                   at=datetime.now(UTC), **target)
    except AccessDenied:
        raise
    except TwinError as e:
        return None, str(e)
    return sent["id"], f"0 {tr('bc.of')} {len(sent['speakers'])} {tr('bc.acked')}"


def acks(broadcast_id: str) -> tuple[str, bool]:
    """'n of m acknowledged' for a broadcast, and whether every speaker has answered."""
    with ctx().pool.connection() as conn:
        rows = doors.broadcast_status(conn, current_user(), broadcast_id)
    answered = sum(r["acked_at"] is not None for r in rows)
    ok = sum(bool(r["ok"]) for r in rows)
    late = bool(rows) and (datetime.now(UTC) - min(r["sent_at"] for r in rows)
                           ).total_seconds() >= ACKS_WITHIN_S
    return (f"{ok} {tr('bc.of')} {len(rows)} {tr('bc.acked')}",
            answered == len(rows) or late)


def _community() -> str:
    user = current_user()
    return user.community_id or ctx().communities[0]
