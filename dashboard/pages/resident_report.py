"""The resident's report page (/m/report): report a problem (a category of the service list,
their words, an optional photo, their building or a place tapped on a small map), then
follow their reports (status, who handles it, history in community time) and rate the
result. The callbacks only read input and call `dashboard.reports`, which checks the
user and audits refusals."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboard import maps
from dashboard import reports as service
from dashboard.components import badge, denied, when
from dashboard.context import ctx, current_user, lang, tr
from dashboard.deck import TwinDeck
from dashboard.i18n import t
from dashboard.photos import MAX_PHOTO_BYTES, PHOTO_TYPES
from dashboard.report_views import attempt, picked_point, staff_role, with_pickable_ground
from twin.access import AccessDenied, can_open
from twin.reports import MAX_COMMENT_CHARS, MAX_TEXT_CHARS, load_catalogue
from twin.store.graph import walk_routing_graph
from twin.store.reports import ReportRow
from twin.walkgraph import WalkGraph

PATH = "/m/report"
PATH_TEMPLATE = None
NAME = "resident_report"

CATEGORY = "r-category"
TEXT = "r-text"
PHOTO = "r-photo"
PHOTO_NAME = "r-photo-name"
PLACE = "r-place"
MAP = "r-map"
POINT = "r-point"
SUBMIT = "r-submit"
MESSAGE = "r-message"
LIST = "r-list"
SHOWN = "r-shown"
REFRESH = "r-refresh"
DONE = "r-done"
RATE_MESSAGE = "r-rate-message"


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "resident_app"):
        return denied()
    lg = lang()
    c = ctx()
    from dashboard.pages.large_screen import _base_map

    base = c.cached(f"base:{c.scope_key}", c.settings.base_map_ttl_s, lambda: _base_map(c))
    return html.Div(className="m-report", children=[
        dcc.Interval(id=REFRESH, interval=5000),
        dcc.Store(id=SHOWN), dcc.Store(id=DONE), dcc.Store(id=POINT),
        html.H2(tr("rpt.title"), className="m-h"),
        html.Div(className="m-card", children=[
            html.Label(tr("rpt.category"), className="m-label"),
            dcc.RadioItems(id=CATEGORY, className="m-choices", options=[
                {"label": c_.name.get(lg, c_.name["zh-CN"]), "value": cid}
                for cid, c_ in load_catalogue().categories.items()]),
            html.Label(tr("rpt.text"), className="m-label"),
            dcc.Textarea(id=TEXT, placeholder=tr("rpt.text_hint"), maxLength=MAX_TEXT_CHARS,
                         className="input note m-text"),
            dcc.Upload(id=PHOTO, accept=",".join(sorted(PHOTO_TYPES)), max_size=MAX_PHOTO_BYTES,
                       className="upload", children=html.Div(["＋ ", tr("rpt.photo")])),
            html.Div(id=PHOTO_NAME, className="hint"),
            html.Label(tr("rpt.place"), className="m-label"),
            dcc.RadioItems(id=PLACE, value="unit", className="m-choices", options=[
                {"label": tr("rpt.place.unit"), "value": "unit"},
                {"label": tr("rpt.place.map"), "value": "map"}]),
            html.Div(tr("rpt.map_hint"), className="hint"),
            html.Div(className="m-map", children=[TwinDeck(
                id=MAP, layers=with_pickable_ground(maps.order_map_layers(base["frames"])),
                layerData={"route": {}, "target": {}}, featureColors={"buildings": {}},
                tooltips=maps.tooltips(lg), initialViewState={**base["view"], "pitch": 0, "bearing": 0},
                tileUrl=c.settings.tile_url)]),
            html.Div(id="r-picked", className="hint"),
            html.Button(tr("rpt.submit"), id=SUBMIT, className="btn m-button"),
            html.Div(id=MESSAGE, className="message"),
        ]),
        html.H2(tr("rpt.mine"), className="m-h"),
        html.Div(id=RATE_MESSAGE, className="message"),
        html.Div(id=LIST, className="m-reports"),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(POINT, "data"), Output(MAP, "layerData"), Output(PLACE, "value"),
                  Output("r-picked", "children"),
                  Input(MAP, "clickInfo"), prevent_initial_call=True)
    def pick(click):
        point = picked_point(click)
        if point is None:
            return no_update, no_update, no_update, no_update
        layer = {"route": {}, "target": {"picked": {
            "id": "picked", "position": [point["lon"], point["lat"], 2],
            "color": [255, 70, 90, 255]}}}
        return point, layer, "map", f"{tr('rpt.picked')}: {point['lon']:.5f}, {point['lat']:.5f}"

    @app.callback(Output(PHOTO_NAME, "children"), Input(PHOTO, "filename"),
                  prevent_initial_call=True)
    def photo_name(filename):
        return f"✓ {filename}" if filename else ""

    @app.callback(Output(MESSAGE, "children"), Output(DONE, "data"),
                  Output(TEXT, "value"), Output(PHOTO, "contents"),
                  Input(SUBMIT, "n_clicks"), State(CATEGORY, "value"), State(TEXT, "value"),
                  State(PHOTO, "contents"), State(PLACE, "value"), State(POINT, "data"),
                  prevent_initial_call=True)
    def submit(_n, category, text, photo, place, point):
        ok, message = send_report(category=category, text=text, photo=photo,
                                  place=point if place == "map" else "unit")
        if not ok:
            return message, no_update, no_update, no_update
        return message, message, "", None

    @app.callback(Output(LIST, "children"), Output(SHOWN, "data"),
                  Input(REFRESH, "n_intervals"), Input(DONE, "data"),
                  Input(RATE_MESSAGE, "children"), State(SHOWN, "data"))
    def listing(_n, _done, _rated, shown):
        cards = report_cards()
        seen = hashlib.sha1(json.dumps(cards, default=str, sort_keys=True).encode()).hexdigest()
        if seen == shown:
            return no_update, no_update
        return cards, seen

    @app.callback(Output(RATE_MESSAGE, "children"),
                  Input({"type": "r-rate", "report": ALL}, "n_clicks"),
                  State({"type": "r-stars", "report": ALL}, "value"),
                  State({"type": "r-stars", "report": ALL}, "id"),
                  State({"type": "r-comment", "report": ALL}, "value"),
                  State({"type": "r-comment", "report": ALL}, "id"),
                  prevent_initial_call=True)
    def rate(clicks, stars, star_ids, comments, comment_ids):
        if not any(clicks or []):
            return no_update
        report_id = dash_ctx.triggered_id["report"]
        value = next((v for v, i in zip(stars, star_ids) if i["report"] == report_id), None)
        said = next((v for v, i in zip(comments, comment_ids) if i["report"] == report_id), "")
        return rate_report(report_id, value, said or "")


# --- what the callbacks call --------------------------------------------------------------

def send_report(*, category: object, text: object, photo: object, place: object
                ) -> tuple[bool, str]:
    """Submit through the service; (whether it was kept, what to show)."""
    user = current_user()
    c = ctx()
    from twin.rules.store import Dispatcher

    dispatcher = c.cached("dispatcher", 3600.0, Dispatcher)
    done, error = attempt(lambda conn: service.submit_report(
        conn, user, category=category, text=text, place=place if place is not None else "map",
        photo=photo, at=datetime.now(UTC), graph_for=_graph, dispatcher=dispatcher),
        denied="rpt.err.denied")
    if done is None:
        return False, error
    key = "rpt.sent" if done.not_dispatched is None else "rpt.sent_waiting"
    return True, "✓ " + tr(key).format(code=done.order_code)


def rate_report(report_id: object, stars: object, comment: object) -> str:
    user = current_user()
    row, error = attempt(lambda conn: service.rate_report(
        conn, user, report_id, stars=stars, comment=comment, at=datetime.now(UTC)),
        denied="rpt.err.denied")
    if row is None:
        return error
    return f"✓ {tr('rpt.thanks')} ({row.rating}★)"


def report_cards() -> list[Any]:
    """The resident's reports as cards, newest first."""
    user = current_user()
    lg = lang()
    try:
        with ctx().pool.connection() as conn:
            rows = service.my_reports(conn, user)
            histories = {r.id: service.my_report(conn, user, r.id)[1] for r in rows[:10]}
    except AccessDenied:
        return [html.Div(tr("rpt.err.denied"), className="denied")]
    if not rows:
        return [html.Div(tr("rpt.none"), className="empty")]
    return [_card(r, histories.get(r.id, []), lg) for r in rows]


def _card(r: ReportRow, history: list, lg: str) -> html.Div:
    names = load_catalogue().categories
    name = names[r.category].name.get(lg, r.category) if r.category in names else r.category
    handler = (f"{staff_role(r.assignee_role, lg)} · {r.assignee_id}" if r.assignee_id
               else tr("rpt.nobody"))
    steps = [html.Li(f"{when(e.time, '%m-%d %H:%M')} {_step_word(e.action, lg)}"
                     f" → {t('wo.' + e.to_state, lg)}"
                     + (f" ({e.staff_id})" if e.staff_id else ""))
             for e in history if e.action != "note"]
    rating: Any
    if r.rating is not None:
        rating = html.Div(tr("rpt.rated").format(stars=r.rating) + " " + "★" * r.rating,
                          className="m-rated", id=f"r-rated-{r.id}")
    elif r.status == "done" and r.order_state in ("resolved", "closed"):
        rating = html.Div(className="m-rate", children=[
            html.Div(tr("rpt.rate_hint"), className="hint"),
            dcc.RadioItems(id={"type": "r-stars", "report": r.id}, className="m-stars",
                           options=[{"label": f"{n}★", "value": n} for n in range(1, 6)],
                           inline=True),
            dcc.Textarea(id={"type": "r-comment", "report": r.id}, placeholder=tr("rpt.comment"),
                         maxLength=MAX_COMMENT_CHARS, className="input note"),
            html.Button(tr("rpt.rate"), id={"type": "r-rate", "report": r.id},
                        className="btn m-button"),
        ])
    else:
        rating = None
    return html.Div(className=f"m-card report status-{r.status}", id=f"report-{r.id}", children=[
        html.Div(className="card-head", children=[
            badge(tr(f"rpt.status.{r.status}"), r.status), html.Span(name, className="card-title")]),
        html.Div(f"{tr('rpt.order')} {r.order_code or '—'} · "
                 f"{t('wo.' + r.order_state, lg) if r.order_state else ''}",
                 className="card-sub", id=f"report-state-{r.id}"),
        html.Div(f"{tr('rpt.handler')}: {handler}", className="card-sub",
                 id=f"report-handler-{r.id}"),
        html.Div(f"{tr('rpt.reported_at')} {when(r.created_at, '%m-%d %H:%M')}"
                 + (f" · {tr('rpt.with_photo')}" if r.has_photo else ""), className="hint"),
        html.Div(r.text, className="card-desc"),
        html.Details([html.Summary(tr("rpt.history")), html.Ul(steps)], className="m-history"),
        rating,
    ])


def _step_word(action: str, lg: str) -> str:
    """A step of the order's history: 'settle' (closed by the system when its alarm
    cleared) reads as closed."""
    return t("wo.closed" if action == "settle" else f"act.{action}", lg)


def _graph(community_id: str) -> WalkGraph:
    c = ctx()

    def build() -> WalkGraph:
        with c.long_connection() as conn:
            return walk_routing_graph(conn, community_id)

    graph: WalkGraph = c.cached(f"walkgraph:{community_id}", c.settings.base_map_ttl_s, build)
    return graph
