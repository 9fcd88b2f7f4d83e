"""Work orders: a filterable list, the detail with its route on the map and its full
history, and the lifecycle actions, each one call to twin.store.operations."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import dash
from dash import ALL, Input, Output, State, dcc, html, no_update
from dash import ctx as dash_ctx

from dashboard import maps, scoped
from dashboard.components import badge, denied, when
from dashboard.context import ctx, current_user, lang, tr, zone
from dashboard.deck import TwinDeck
from dashboard.i18n import t
from dashboard.inputs import NOTE_CHARS, check_length
from dashboard.words import description, notes, titles
from twin.access import User, actor, can_open
from twin.alarms import DOMAINS
from twin.errors import TwinError
from twin.store.operations import work_orders
from twin.store.reads.grids import grid_ids
from twin.store.reads.staff import staff_choices, staff_names
from twin.store.reads.work_orders import photo_count
from twin.work_orders import ACTIONS, PRIORITIES, STATES, TransitionError, WorkOrder, transition

PATH = "/work-orders"
PATH_TEMPLATE = None
NAME = "work_orders"

F_STATE = "wo-f-state"
F_PRIORITY = "wo-f-priority"
F_DOMAIN = "wo-f-domain"
F_GRID = "wo-f-grid"
LIST = "wo-list"
SELECTED = "wo-selected"
DETAIL = "wo-detail"
MAP = "wo-map"
STAFF = "wo-staff"
NOTE = "wo-note"
MESSAGE = "wo-message"
ACTION = "wo-action"  # pattern: {"type": ACTION, "action": ...}
REFRESH = "wo-refresh"

OPERATOR_ACTIONS = ("assign", "escalate", "close", "cancel")


def layout(id: str | None = None, **_query) -> html.Div:
    user = current_user()
    if not can_open(user, "work_orders"):
        return denied()
    c = ctx()
    with c.pool.connection() as conn:
        grids = grid_ids(conn, c.communities)
    selected = int(id) if id and str(id).isdecimal() else None
    base = c.cached(f"base:{c.scope_key}", c.settings.base_map_ttl_s,
                    lambda: _base(c))
    return html.Div(className="wo", children=[
        dcc.Store(id=SELECTED, data=selected),
        dcc.Interval(id=REFRESH, interval=3000),
        html.Div(className="wo-left", children=[
            html.Div(className="filters", children=[
                dcc.Dropdown(id=F_STATE, multi=True, placeholder=tr("wo.filter_state"),
                             value=["created", "assigned", "accepted", "arrived", "resolved",
                                    "escalated"],
                             options=[{"label": tr(f"wo.{s}"), "value": s} for s in STATES]),
                dcc.Dropdown(id=F_PRIORITY, multi=True, placeholder=tr("wo.filter_priority"),
                             options=[{"label": tr(f"prio.{p}"), "value": p} for p in PRIORITIES]),
                dcc.Dropdown(id=F_DOMAIN, multi=True, placeholder=tr("wo.filter_domain"),
                             options=[{"label": tr(f"dom.{d}"), "value": d} for d in DOMAINS]),
                dcc.Dropdown(id=F_GRID, placeholder=tr("wo.filter_grid"),
                             options=[{"label": g, "value": g} for g in grids]),
            ]),
            html.Div(id=LIST, className="wo-list"),
        ]),
        html.Div(className="wo-right", children=[
            html.Div(className="wo-map", children=[TwinDeck(
                id=MAP, layers=maps.order_map_layers(base["frames"]),
                layerData={"route": {}, "target": {}}, featureColors={"buildings": {}},
                tooltips=maps.tooltips(lang()), initialViewState=base["view"],
                tileUrl=c.settings.tile_url)]),
            html.Div(id=MESSAGE, className="message"),
            html.Div(id=DETAIL, className="wo-detail"),
        ]),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(LIST, "children"),
                  Input(F_STATE, "value"), Input(F_PRIORITY, "value"), Input(F_DOMAIN, "value"),
                  Input(F_GRID, "value"), Input(REFRESH, "n_intervals"), Input(SELECTED, "data"))
    def show_list(states, priorities, domains, grid, _n, selected):
        return _list(list_orders(states, priorities, domains, grid), selected, lang())

    @app.callback(Output(SELECTED, "data"),
                  Input({"type": "wo-row", "id": ALL}, "n_clicks"), prevent_initial_call=True)
    def pick(clicks):
        if not any(clicks or []):
            return no_update
        return dash_ctx.triggered_id["id"]

    @app.callback(Output(DETAIL, "children"), Output(MAP, "layerData"), Output(MAP, "viewState"),
                  Input(SELECTED, "data"), Input(MESSAGE, "children"))
    def detail(order_id, _message):
        return detail_view(order_id)

    @app.callback(Output(MESSAGE, "children"),
                  Input({"type": ACTION, "action": ALL}, "n_clicks"),
                  State(SELECTED, "data"), State(STAFF, "value"), State(NOTE, "value"),
                  prevent_initial_call=True)
    def act(clicks, order_id, staff_id, note):
        if not any(clicks or []) or order_id is None:
            return no_update
        action = dash_ctx.triggered_id["action"]
        return perform(order_id, action, staff_id=staff_id, note=note or "")


# --- services the callbacks call -----------------------------------------------------------

def list_orders(states, priorities, domains, grid) -> list[dict]:
    """The orders the filters pick, newest first (the filters are what the browser sent:
    a value outside the dropdowns' options is refused with a TwinError, a 400)."""
    user = current_user()
    c = ctx()
    with c.pool.connection() as conn:
        scoped.require(conn, user, "order.list", what="list the work orders",
                       subject_kind="page", subject_id=NAME)
        states, domains = _picked(states, STATES, "state"), _picked(domains, DOMAINS, "domain")
        priorities = _picked(priorities, PRIORITIES, "priority")
        if grid is not None and not isinstance(grid, str):
            raise TwinError(f"not a grid: {scoped.brief(grid)}")
        orders = [o for community in c.communities
                  for o in work_orders(conn, community, grid_id=grid or None, limit=300,
                                       states=tuple(states) if states else None)]
        orders.sort(key=lambda o: (o.created_at, o.id), reverse=True)
        names = staff_names(conn, c.communities)
        orders = [o for o in orders if (not priorities or o.spec.priority in priorities)
                  and (not domains or o.spec.domain in domains)]
        shown = titles(conn, user, orders)
    return order_rows(orders, names, shown, zone())


def order_rows(orders: list[WorkOrder], names: dict[str, str],
               shown: dict[int, str] | None = None, tz: tzinfo | None = None) -> list[dict]:
    """Work orders as the list shows them (pure): titles as rendered for the user
    (``shown``, by id; else as stored), times on the community's clock (``tz``)."""
    shown = shown or {}
    return [
        {"id": o.id, "code": o.code, "title": shown.get(o.id, o.spec.title), "kind": o.spec.kind,
         "state": o.state, "priority": o.spec.priority, "domain": o.spec.domain,
         "grid": o.spec.grid_id or "", "building": o.spec.building_id or "",
         "assignee": names.get(o.assignee_id or "", ""),
         "created": f"{o.created_at.astimezone(tz):%m-%d %H:%M}",
         "due": f"{o.due_at.astimezone(tz):%m-%d %H:%M}" if o.due_at else ""}
        for o in orders
    ]


def allowed_actions(order: WorkOrder, user: User) -> list[str]:
    """The lifecycle actions this user may take on this order now (twin.work_orders decides)."""
    out = []
    for action in ACTIONS:
        try:
            transition(order.id, order.state, action, actor(user), assignee_id=order.assignee_id)
        except TransitionError:
            continue
        out.append(action)
    return out


def perform(order_id: object, action: str, *, staff_id: object = None, note: object = "",
            photo=None) -> str:
    """One lifecycle step (or the dispatcher's assignment) in the user's name; returns the
    message to show. The arguments are what the browser sent: `scoped` checks the user's
    role and scope, and a refusal (audited there) or bad input is a message, not a change."""
    user = current_user()
    c = ctx()
    try:
        check_length(note, NOTE_CHARS)  # before any database work
        with c.pool.connection() as conn:
            if action == "dispatch":
                return _auto_dispatch(conn, user, order_id)
            if action == "assign" and not staff_id:
                return tr("wo.pick_staff")
            order = scoped.act_on_order(conn, user, order_id, action, at=datetime.now(UTC),
                                        staff_id=staff_id, note=note if note is not None else "",
                                        photo=photo)
        return f"✓ {order.code}: {tr('wo.' + order.state)}"
    except TwinError as e:  # AccessDenied and TransitionError among them
        return f"✗ {e}"


def detail_view(order_id: object):
    lg = lang()
    if order_id is None:
        return html.Div(tr("wo.none"), className="empty"), {"route": {}, "target": {}}, no_update
    user = current_user()
    c = ctx()
    try:
        with c.pool.connection() as conn:
            order = scoped.order_for_user(conn, user, order_id)
            names = staff_names(conn, order.spec.community_id)
            # the order's role first, nearest first; anyone else after them
            choices = sorted(staff_choices(conn, order.spec.community_id,
                                           near=(order.spec.location.x, order.spec.location.y)),
                             key=lambda s: s["role"] != order.spec.role)
            photos = photo_count(conn, order.id)
            title = titles(conn, user, [order])[order.id]
            notes_shown = notes(conn, user, order.history, order.spec.grid_id)
            about = description(conn, user, order)
    except TwinError as e:  # refused (and audited), or not an order at all
        return html.Div(str(e), className="denied"), no_update, no_update
    layer_data = {
        "route": ({str(order.id): {"id": order.id, "code": order.code, "title": title,
                                   "state": order.state, "color": [90, 200, 255, 255],
                                   "path": [list(p) for p in order.route.coords]}}
                  if order.route is not None else {}),
        "target": {"t": {"id": order.id, "position": [order.spec.location.x, order.spec.location.y, 2],
                         "color": [255, 70, 90, 255]}},
    }
    view = {"longitude": order.spec.location.x, "latitude": order.spec.location.y, "zoom": 17.6,
            "pitch": 45, "bearing": -18}
    actions = allowed_actions(order, user)
    history = html.Table(className="table history", children=[
        html.Thead(html.Tr([html.Th(x) for x in ("", t("wo.state", lg), t("wo.assignee", lg),
                                                  t("wo.note", lg))])),
        html.Tbody([html.Tr([
            html.Td(when(e.time)),
            html.Td(f"{t('act.' + e.action, lg) if 'act.' + e.action in _ACT_KEYS else e.action}"
                    f" → {t('wo.' + e.to_state, lg)}"),
            html.Td(f"{e.actor}" + (f" / {names.get(e.staff_id, e.staff_id)}" if e.staff_id else "")),
            html.Td(note),
        ]) for e, note in zip(order.history, notes_shown)]),
    ])
    body = html.Div([
        html.Div(className="wo-head", children=[
            html.H2(f"{order.code} · {title}", id="wo-title"),
            badge(t(f"prio.{order.spec.priority}", lg), order.spec.priority),
            html.Span(t(f"wo.{order.state}", lg), className=f"board-state wo-{order.state}",
                      id="wo-state"),
        ]),
        html.Div(className="wo-facts", children=[
            _fact(t("wo.kind", lg), order.spec.kind), _fact(t("wo.filter_domain", lg),
                                                       t(f"dom.{order.spec.domain}", lg)),
            _fact(t("wo.assignee", lg), names.get(order.assignee_id or "", "—")),
            _fact(t("wo.where", lg), " ".join(x for x in (order.spec.building_id, order.spec.unit_id) if x)
                  or f"{order.spec.location.y:.5f}, {order.spec.location.x:.5f}"),
            _fact(t("wo.created_at", lg), when(order.created_at)),
            _fact(t("wo.due", lg), when(order.due_at)),
            _fact(t("wo.route", lg), f"{order.route_m:.0f} m" if order.route_m else "—"),
        ]),
        html.P(about, className="wo-desc") if about else None,
        html.Div(className="wo-actions", children=[
            html.Div(t("wo.dispatch_hint", lg), className="hint") if "assign" in actions else None,
            dcc.Dropdown(id=STAFF, placeholder=t("wo.pick_staff", lg), className="dd",
                         options=[{"label": f"{s['name']} · {s['role']}"
                                   + (f" · {s['distance_m']:.0f} m" if s["distance_m"] else ""),
                                   "value": s["id"]} for s in choices],
                         style={} if "assign" in actions else {"display": "none"}),
            dcc.Input(id=NOTE, placeholder=t("wo.note", lg), className="input", debounce=False,
                      maxLength=NOTE_CHARS),
            html.Div([html.Button(t(f"act.{a}", lg), id={"type": ACTION, "action": a},
                                  className=f"btn btn-{a}")
                      for a in (["dispatch"] if "assign" in actions else []) + actions],
                     className="btn-row"),
        ]),
        html.H3(t("wo.history", lg)), history,
        html.Div([html.Img(src=f"/photo/{order.id}/{i}", className="photo")
                  for i in range(photos)], className="photos"),
    ])
    return body, layer_data, view


_ACT_KEYS = {f"act.{a}" for a in (*ACTIONS, "created")}


def _auto_dispatch(conn, user: User, order_id: object) -> str:
    """The dispatcher (twin.dispatch through the rule engine's Dispatcher) picks the nearest
    qualified staff member by walkway, with route and ETA, in the user's name."""
    from twin.rules.store import Dispatcher

    dispatcher = ctx().cached("dispatcher", 3600.0, Dispatcher)
    order, why_not = scoped.dispatch_order(conn, user, order_id, at=datetime.now(UTC),
                                           dispatcher=dispatcher)
    if why_not is not None:
        return f"✗ {why_not}"
    return f"✓ {order.code}: {tr('wo.' + order.state)}"


def _picked(values: object, allowed: tuple[str, ...], what: str) -> list[str] | None:
    """A multi-select's values as the browser sent them: None or a list of known ones."""
    if values is None:
        return None
    if not isinstance(values, list) or any(v not in allowed for v in values):
        raise TwinError(f"not a {what}: {scoped.brief(values)}")
    return values


def _fact(label: str, value: str) -> html.Div:
    return html.Div([html.Div(label, className="fact-label"), html.Div(value or "—")],
                    className="fact")


def _list(rows: list[dict], selected: int | None, lg: str) -> html.Div | html.Table:
    if not rows:
        return html.Div(t("b.no_orders", lg), className="empty")
    head = html.Tr([html.Th(t(k, lg)) for k in ("wo.code", "wo.kind", "wo.state",
                                                 "wo.priority", "wo.assignee", "wo.created_at")])
    body = [html.Tr(id={"type": "wo-row", "id": r["id"]}, n_clicks=0,
                    className="row" + (" selected" if r["id"] == selected else ""),
                    children=[html.Td(r["code"], className="mono"),
                              html.Td(r["title"]),
                              html.Td(html.Span(t(f"wo.{r['state']}", lg),
                                                className=f"board-state wo-{r['state']}")),
                              html.Td(badge(t(f"prio.{r['priority']}", lg), r["priority"])),
                              html.Td(r["assignee"] or "—"), html.Td(r["created"])])
            for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], className="table clickable")


def _base(c):
    from dashboard.pages.large_screen import _base_map

    return _base_map(c)
