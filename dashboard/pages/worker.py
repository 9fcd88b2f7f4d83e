"""The grid worker's phone view: my open tasks nearest first, each with the walk there
from where I am; accept / arrive / resolve with a note and a photo; a look-up of a
building or household in my grid. While I am on duty the page sends the phone's
position (on accept, on arrive and every minute) as a staff position fix."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, MATCH, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx
from shapely.geometry import Point

from dashboard import maps, scoped
from dashboard.components import badge, denied, when
from dashboard.context import ctx, current_user, lang, tr
from dashboard.deck import TwinDeck
from dashboard.i18n import t
from dashboard.inputs import LOOKUP_CHARS, NOTE_CHARS, InputTooLong, check_length
from dashboard.pages.work_orders import allowed_actions, perform
from dashboard.photos import MAX_PHOTO_BYTES, PHOTO_TYPES, NotAPhoto, decode_photo
from twin.access import AccessDenied, can_open
from twin.errors import TwinError
from twin.store.graph import walk_routing_graph
from twin.store.operations import work_orders_by_id
from twin.store.positions import latest_fix, staff_on_record
from twin.walkgraph import Route, WalkGraph, walk_route

PATH = "/worker"
PATH_TEMPLATE = None
NAME = "worker"

TASKS = "w-tasks"
REFRESH = "w-refresh"
#: A fingerprint of the task cards on the page, so that an unchanged list is not redrawn.
SHOWN = "w-shown"
DONE = "w-done"
MESSAGE = "w-message"  # what the last step said: done, or why not
LOOKUP = "w-lookup"
LOOKUP_GO = "w-lookup-go"
FOUND = "w-found"
HOUSEHOLD = "w-household"
ME = "w-me"            # the staff id the page reports for: the session's, checked again on write
FIX = "w-fix"          # the browser's geolocation, written by the clientside callback
FIX_TICK = "w-fix-tick"
FIX_STATE = "w-fix-state"
ROUTE_MAP = "w-map"
#: The phone reports its position this often while the page is open (and on accept/arrive).
FIX_INTERVAL_MS = 60_000

#: Asks the browser where it is on accept, on arrive, on opening and every minute; the
#: answer (or nothing, if the user refuses or the phone cannot tell) goes to FIX.
GEOLOCATE_JS = """
function(_n, clicks) {
    const dc = window.dash_clientside;
    const trig = dc.callback_context.triggered_id;
    let why = "interval";
    if (trig && typeof trig === "object") {
        if (!["accept", "arrive"].includes(trig.action) || !(clicks || []).some(Boolean)) {
            return dc.no_update;
        }
        why = trig.action;
    }
    if (!navigator.geolocation) { return dc.no_update; }
    return new Promise(function(resolve) {
        navigator.geolocation.getCurrentPosition(
            function(p) {
                resolve({lon: p.coords.longitude, lat: p.coords.latitude,
                         accuracy_m: p.coords.accuracy, why: why});
            },
            function() { resolve(dc.no_update); },
            {enableHighAccuracy: true, timeout: 20000, maximumAge: 30000});
    });
}
"""

WORKER_ACTIONS = ("accept", "arrive", "resolve", "decline", "escalate")


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "worker"):
        return denied()
    c = ctx()
    base = c.cached(f"base:{c.scope_key}", c.settings.base_map_ttl_s, lambda: _base(c))
    return html.Div(className="worker", children=[
        dcc.Interval(id=REFRESH, interval=5000),
        dcc.Store(id=SHOWN),
        dcc.Interval(id=FIX_TICK, interval=FIX_INTERVAL_MS),
        dcc.Store(id=DONE),
        dcc.Store(id=ME, data=user.staff_id),
        dcc.Store(id=FIX),
        html.Div(className="w-head", children=[
            html.Div(f"{tr('w.my_grid')}: {user.grid_id or '—'}", className="w-grid"),
            html.Div(id=FIX_STATE, className="hint"),
        ]),
        html.Div(className="w-map", children=[TwinDeck(
            id=ROUTE_MAP, layers=maps.order_map_layers(base["frames"]),
            layerData={"route": {}, "target": {}}, featureColors={"buildings": {}},
            tooltips=maps.tooltips(lang()), initialViewState=base["view"],
            tileUrl=c.settings.tile_url)]),
        html.H2(tr("w.my_tasks"), className="w-title"),
        html.Div(id=MESSAGE, className="message"),
        html.Div(id=TASKS, className="w-tasks"),
        html.H2(tr("w.lookup"), className="w-title"),
        html.Div(className="w-lookup", children=[
            dcc.Input(id=LOOKUP, placeholder=tr("w.lookup_hint"), className="input",
                      type="search", debounce=True, maxLength=LOOKUP_CHARS),
            html.Button(tr("w.search"), id=LOOKUP_GO, className="btn"),
        ]),
        html.Div(id=FOUND, className="w-found"),
        html.Div(id=HOUSEHOLD, className="w-household"),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(TASKS, "children"), Output(ROUTE_MAP, "layerData"),
                  Output(SHOWN, "data"),
                  Input(REFRESH, "n_intervals"), Input(DONE, "data"), State(SHOWN, "data"))
    def tasks(_n, _done, shown):
        # redrawn only when what it shows changed: a redraw every 5 s wiped the note being
        # typed and the photo being attached
        cards, layer_data = task_cards()
        seen = hashlib.sha1(json.dumps([cards, layer_data], default=str, sort_keys=True)
                            .encode()).hexdigest()
        if seen == shown:
            return no_update, no_update, no_update
        return cards, layer_data, seen

    app.clientside_callback(GEOLOCATE_JS, Output(FIX, "data"), Input(FIX_TICK, "n_intervals"),
                            Input({"type": "w-act", "order": ALL, "action": ALL}, "n_clicks"))

    @app.callback(Output(FIX_STATE, "children"), Input(FIX, "data"), State(ME, "data"),
                  prevent_initial_call=True)
    def fix(position, staff_id):
        return report_position(staff_id, position)

    @app.callback(Output(DONE, "data"), Output(MESSAGE, "children"),
                  Input({"type": "w-act", "order": ALL, "action": ALL}, "n_clicks"),
                  State({"type": "w-note", "order": ALL}, "value"),
                  State({"type": "w-note", "order": ALL}, "id"),
                  State({"type": "w-photo", "order": ALL}, "contents"),
                  State({"type": "w-photo", "order": ALL}, "id"),
                  prevent_initial_call=True)
    def act(clicks, notes, note_ids, photos, photo_ids):
        if not any(clicks or []):
            return no_update, no_update
        trig = dash_ctx.triggered_id
        order_id, action = trig["order"], trig["action"]
        note = next((v for v, i in zip(notes, note_ids) if i["order"] == order_id), "") or ""
        contents = next((v for v, i in zip(photos, photo_ids) if i["order"] == order_id), None)
        message = act_on_task(order_id, action, note=note, contents=contents)
        return message, message

    @app.callback(Output({"type": "w-photo-name", "order": MATCH}, "children"),
                  Input({"type": "w-photo", "order": MATCH}, "filename"), prevent_initial_call=True)
    def photo_name(filename):
        return f"✓ {filename}" if filename else ""

    @app.callback(Output(FOUND, "children"), Input(LOOKUP, "value"), Input(LOOKUP_GO, "n_clicks"),
                  prevent_initial_call=True)
    def find(query, _go):
        return found_list(query or "")

    @app.callback(Output(HOUSEHOLD, "children"),
                  Input({"type": "w-unit", "unit": ALL}, "n_clicks"), prevent_initial_call=True)
    def household(clicks):
        if not any(clicks or []):
            return no_update
        return household_view(dash_ctx.triggered_id["unit"])


# --- services the callbacks call -----------------------------------------------------------

def act_on_task(order_id: object, action: str, *, note: object, contents: object) -> str:
    """One step on one of my tasks, with its note and photo (checked to be an image); the
    message to show."""
    try:
        photo = decode_photo(contents)
    except NotAPhoto as e:
        return f"✗ {e}"
    return perform(order_id, action, note=note, photo=photo)


def report_position(staff_id: str | None, position: Mapping[str, Any] | None) -> str:
    """Store the browser's geolocation as the logged-in staff member's fix; what to show.

    ``staff_id`` comes from the browser, so it is only a claim: `scoped.record_my_position`
    holds it to the session's own staff record, and audits a refusal.
    """
    user = current_user()
    lg = lang()
    if not isinstance(position, Mapping):
        return ""
    try:
        lon, lat = float(position["lon"]), float(position["lat"])
        accuracy = position.get("accuracy_m")
        accuracy_m = None if accuracy is None else float(accuracy)
    except (KeyError, TypeError, ValueError):
        return "✗ not a position"
    now = datetime.now(UTC)
    try:
        with ctx().pool.connection() as conn:
            stored = scoped.record_my_position(conn, user, staff_id, lon=lon, lat=lat,
                                               accuracy_m=accuracy_m, at=now)
    except TwinError as e:  # a refusal (audited) among them
        return f"✗ {e}"
    return f"✓ {t('w.fix_sent', lg)} {_local(now)}" if stored else t("w.off_duty", lg)


def task_routes(graph: WalkGraph, here: Point, tasks: list[dict[str, Any]]
                ) -> dict[int, Route | None]:
    """The walk from ``here`` to each task (None where the walkways do not lead there)."""
    return {task["id"]: walk_route(graph, here, Point(task["lon"], task["lat"]))
            for task in tasks if task["lon"] is not None}


def _my_way(conn, staff_id: str | None, tasks: list[dict[str, Any]]
            ) -> tuple[tuple[float, float, datetime] | None, dict[int, Route | None]]:
    """My newest fix and the walk from it to each task."""
    if staff_id is None or not tasks:
        return None, {}
    fix = latest_fix(conn, staff_id)
    record = staff_on_record(conn, staff_id)
    if fix is None or record is None:
        return fix, {}
    c = ctx()
    community = record[0]

    def build() -> WalkGraph:
        with c.long_connection() as graph_conn:
            return walk_routing_graph(graph_conn, community)

    try:
        graph = c.cached(f"walkgraph:{community}", c.settings.base_map_ttl_s, build)
    except TwinError:
        return fix, {}
    return fix, task_routes(graph, Point(fix[0], fix[1]), tasks)


def task_cards() -> tuple[list, dict[str, Any]]:
    user = current_user()
    lg = lang()
    with ctx().pool.connection() as conn:
        tasks = scoped.my_tasks(conn, user)
        orders = work_orders_by_id(conn, [task["id"] for task in tasks])
        fix, routes = _my_way(conn, user.staff_id, tasks)
    layer_data: dict[str, Any] = {"route": {}, "target": {}}
    if fix is not None:
        layer_data["target"]["me"] = {"id": "me", "position": [fix[0], fix[1], 2],
                                      "color": [90, 200, 255, 255]}
    if not tasks:
        return [html.Div(t("w.no_tasks", lg), className="empty")], layer_data
    cards = []
    for task in tasks:
        route = routes.get(task["id"])
        if task["lon"] is not None:
            layer_data["target"][str(task["id"])] = {
                "id": task["id"], "position": [task["lon"], task["lat"], 2],
                "color": [255, 70, 90, 255]}
        if route is not None:
            layer_data["route"][str(task["id"])] = {
                "id": task["id"], "code": task["code"], "title": task["title"],
                "state": task["state"], "color": [90, 200, 255, 255],
                "path": [list(p) for p in route.line.coords]}
        way = (t("w.no_fix", lg) if fix is None else "—" if route is None else
               f"{t('w.walk', lg)} {_metres(route.length_m)} · {route.eta_s / 60:.0f} min "
               f"({t('w.fix_age', lg)} {_local(fix[2])})")
        actions = [a for a in allowed_actions(orders[task["id"]], user) if a in WORKER_ACTIONS]
        dist = ("" if task["distance_m"] is None else
                f"{task['distance_m']:.0f} m" if task["distance_m"] < 1000 else
                f"{task['distance_m'] / 1000:.1f} km")
        cards.append(html.Div(className=f"card prio-{task['priority']}",
                              id=f"task-{task['id']}", children=[
            html.Div(className="card-head", children=[
                badge(t(f"prio.{task['priority']}", lg), task["priority"]),
                html.Span(task["title"], className="card-title"),
                html.Span(dist, className="card-dist"),
            ]),
            html.Div(" · ".join(x for x in (task["code"], task["building"], task["unit"],
                                             t(f"wo.{task['state']}", lg)) if x),
                     className="card-sub", id=f"task-state-{task['id']}"),
            html.Div(way, className="card-way", id=f"task-way-{task['id']}"),
            html.Div(task["description"], className="card-desc") if task["description"] else None,
            dcc.Textarea(id={"type": "w-note", "order": task["id"]}, placeholder=t("wo.note", lg),
                         className="input note", maxLength=NOTE_CHARS,
                         persistence=True, persistence_type="memory"),
            dcc.Upload(id={"type": "w-photo", "order": task["id"]},
                       accept=",".join(sorted(PHOTO_TYPES)), max_size=MAX_PHOTO_BYTES,
                       className="upload", children=html.Div(["＋ ", t("wo.photo", lg)])),
            html.Div(id={"type": "w-photo-name", "order": task["id"]}, className="hint"),
            html.Div([html.Button(t(f"act.{a}", lg), className=f"btn btn-{a}",
                                  id={"type": "w-act", "order": task["id"], "action": a})
                      for a in actions], className="btn-row"),
        ]))
    return cards, layer_data


def _local(at: datetime) -> str:
    """Wall-clock time in the community's time zone (the dispatcher's shifts use the same)."""
    return when(at, "%H:%M")


def _metres(m: float) -> str:
    return f"{m:.0f} m" if m < 1000 else f"{m / 1000:.1f} km"


def _base(c) -> dict:
    from dashboard.pages.large_screen import _base_map

    return _base_map(c)


def found_list(query: object) -> list:
    """What the look-up finds for `query` (what the browser sent) in the user's scope."""
    user = current_user()
    lg = lang()
    try:  # before any database work: a megabyte of look-up held a connection for seconds
        check_length(query, LOOKUP_CHARS)
    except InputTooLong as e:
        return [html.Div(str(e), className="denied")]
    if not isinstance(query, str) or not query.strip():
        return []
    try:
        with ctx().pool.connection() as conn:
            hits = scoped.lookup(conn, user, query)
    except AccessDenied:
        return [html.Div(t("denied.grid", lg), className="denied")]
    if not hits:
        return [html.Div(t("w.not_found", lg), className="empty")]
    out: list[html.A | html.Button] = []
    for h in hits:
        if h["kind"] == "building":
            out.append(html.A(f"▣ {h['building']}", href=f"/building/{h['building_id']}",
                              className="hit"))
        else:
            out.append(html.Button(f"⌂ {h['building']} {h['unit']}", className="hit",
                                   id={"type": "w-unit", "unit": h["unit_id"]}))
    return out


def household_view(unit_id: str) -> html.Div:
    user = current_user()
    lg = lang()
    try:
        with ctx().pool.connection() as conn:
            people = scoped.residents(conn, user, unit_id=unit_id)
    except AccessDenied:  # audited by scoped
        return html.Div(t("denied.grid", lg), className="denied")
    except TwinError as e:
        return html.Div(str(e), className="denied")
    rows = [html.Div(className="person" + (" care" if p["care_flags"] else ""), children=[
        html.Div(f"{p['name']} · {p['age_band']}", className="res-name"),
        html.A(p["phone"], href=f"tel:{p['phone']}", className="res-phone"),
        html.Div(", ".join(p["care_flags"]), className="hint"),
        *[html.Div(f"{c['relation']}: {c['name']} {c['phone']}", className="hint")
          for c in p["contacts"]],
    ]) for p in people["residents"]]
    note = t("b.masked_note", lg) if people["masked"] else t("b.unmasked_note", lg)
    return html.Div([html.Div(note, className="privacy-note"), *rows], id="household")
