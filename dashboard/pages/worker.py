"""The grid worker's phone view: my open tasks nearest first, accept / arrive / resolve
with a note and a photo, and a look-up of a building or household in my grid."""

from __future__ import annotations

import base64

import dash
from dash import ALL, MATCH, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboard import audit, scoped
from dashboard.auth import AccessDenied, can_open
from dashboard.components import badge, denied
from dashboard.context import ctx, current_user, lang, tr
from dashboard.i18n import t
from dashboard.pages.work_orders import allowed_actions, perform
from twin.errors import TwinError
from twin.store.operations import Photo, get_work_order

PATH = "/worker"
PATH_TEMPLATE = None
NAME = "worker"

TASKS = "w-tasks"
REFRESH = "w-refresh"
DONE = "w-done"
LOOKUP = "w-lookup"
LOOKUP_GO = "w-lookup-go"
FOUND = "w-found"
HOUSEHOLD = "w-household"

WORKER_ACTIONS = ("accept", "arrive", "resolve", "decline", "escalate")
PHOTO_TYPES = {"image/jpeg", "image/png", "image/webp"}


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "worker"):
        return denied()
    return html.Div(className="worker", children=[
        dcc.Interval(id=REFRESH, interval=5000),
        dcc.Store(id=DONE),
        html.Div(className="w-head", children=[
            html.Div(f"{tr('w.my_grid')}: {user.grid_id or '—'}", className="w-grid"),
        ]),
        html.H2(tr("w.my_tasks"), className="w-title"),
        html.Div(id=TASKS, className="w-tasks"),
        html.H2(tr("w.lookup"), className="w-title"),
        html.Div(className="w-lookup", children=[
            dcc.Input(id=LOOKUP, placeholder=tr("w.lookup_hint"), className="input",
                      type="search", debounce=True),
            html.Button(tr("w.search"), id=LOOKUP_GO, className="btn"),
        ]),
        html.Div(id=FOUND, className="w-found"),
        html.Div(id=HOUSEHOLD, className="w-household"),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(TASKS, "children"), Input(REFRESH, "n_intervals"), Input(DONE, "data"))
    def tasks(_n, _done):
        return task_cards()

    @app.callback(Output(DONE, "data"),
                  Input({"type": "w-act", "order": ALL, "action": ALL}, "n_clicks"),
                  State({"type": "w-note", "order": ALL}, "value"),
                  State({"type": "w-note", "order": ALL}, "id"),
                  State({"type": "w-photo", "order": ALL}, "contents"),
                  State({"type": "w-photo", "order": ALL}, "id"),
                  prevent_initial_call=True)
    def act(clicks, notes, note_ids, photos, photo_ids):
        if not any(clicks or []):
            return no_update
        trig = dash_ctx.triggered_id
        order_id, action = trig["order"], trig["action"]
        note = next((v for v, i in zip(notes, note_ids) if i["order"] == order_id), "") or ""
        contents = next((v for v, i in zip(photos, photo_ids) if i["order"] == order_id), None)
        return perform(order_id, action, note=note, photo=decode_photo(contents))

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

def decode_photo(contents: str | None) -> Photo | None:
    """A dcc.Upload data URL ("data:image/jpeg;base64,...") as a Photo, or None."""
    if not contents:
        return None
    header, _, payload = contents.partition(",")
    content_type = header.removeprefix("data:").split(";")[0]
    if content_type not in PHOTO_TYPES:
        raise TwinError(f"a photo must be JPEG, PNG or WebP, not {content_type or 'unknown'}")
    return Photo(content_type=content_type, data=base64.b64decode(payload))


def task_cards() -> list:
    user = current_user()
    lg = lang()
    with ctx().pool.connection() as conn:
        tasks = scoped.my_tasks(conn, user)
        orders = {task["id"]: get_work_order(conn, task["id"], history=False) for task in tasks}
    if not tasks:
        return [html.Div(t("w.no_tasks", lg), className="empty")]
    cards = []
    for task in tasks:
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
            html.Div(task["description"], className="card-desc") if task["description"] else None,
            dcc.Textarea(id={"type": "w-note", "order": task["id"]}, placeholder=t("wo.note", lg),
                         className="input note"),
            dcc.Upload(id={"type": "w-photo", "order": task["id"]}, accept="image/*",
                       className="upload", children=html.Div(["＋ ", t("wo.photo", lg)])),
            html.Div(id={"type": "w-photo-name", "order": task["id"]}, className="hint"),
            html.Div([html.Button(t(f"act.{a}", lg), className=f"btn btn-{a}",
                                  id={"type": "w-act", "order": task["id"], "action": a})
                      for a in actions], className="btn-row"),
        ]))
    return cards


def found_list(query: str) -> list:
    user = current_user()
    lg = lang()
    if not query.strip():
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
    except AccessDenied as e:
        with ctx().pool.connection() as conn:
            audit.refused(conn, user, e, subject_kind="unit", subject_id=unit_id)
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
