"""The frame around every page: title, navigation for the user's role, language, logout."""

from __future__ import annotations

import dash
import flask
from dash import dcc, html

from dashboard import security
from dashboard.context import current_user, tr, zone
from twin.access import PEOPLE, can_open

_NAV = (
    ("large_screen", "/", "nav.large_screen"),
    ("work_orders", "/work-orders", "nav.work_orders"),
    ("worker", "/worker", "nav.worker"),
    ("planner", "/planner", "nav.planner"),
    ("reports", "/reports", "nav.reports"),
    ("audit", "/audit", "nav.audit"),  # admins only (auth.PAGE_ROLES)
)

#: The resident app's tabs, at the foot of the phone's screen: (href, label, icon). Every
#: /m page is the "resident_app" page (`twin.access.PAGE_ROLES`); each checks again.
MOBILE_NAV: tuple[tuple[str, str, str], ...] = (
    ("/m", "m.nav.home", "⌂"),
    ("/m/report", "m.nav.report", "✎"),
    ("/m/notices", "m.nav.notices", "✉"),
    ("/m/doors", "m.nav.doors", "▣"),
    ("/m/charging", "m.nav.charging", "⚡"),
)


def shell() -> html.Div:
    if getattr(flask.g, "user", None) is None:
        # Dash builds the layout once outside any page request to validate it.
        return html.Div([dash.page_container])
    user = current_user()
    if user.role in PEOPLE:
        return _phone_shell(user)
    here = flask.request.path
    links = [
        html.A(tr(label), href=href, className="nav-link" + (" active" if here == href else ""),
               id=f"nav-{page}")
        for page, href, label in _NAV if can_open(user, page)
    ]
    other = "en" if user.lang == "zh-CN" else "zh-CN"
    return html.Div(className=f"app lang-{user.lang}", children=[
        html.Header(className="topbar", children=[
            html.Div(className="brand", children=[html.Span("◆", className="brand-mark"),
                                                   html.Span(tr("app.title"))]),
            html.Nav(links, className="nav"),
            html.Div(className="topbar-right", children=[
                html.Span(id="clock", className="clock"),
                html.Span(f"{user.label} · {tr('role.' + user.role)}", className="who",
                          id="who"),
                _post_button(tr("nav.lang"), f"/lang/{other}", "lang-toggle"),
                _post_button(tr("nav.logout"), "/logout", "logout"),
            ]),
        ]),
        html.Main(dash.page_container, className="page"),
        dcc.Interval(id="clock-tick", interval=1000),
        # the clock shows the community's time, wherever the browser is
        dcc.Store(id="clock-zone", data={"tz": zone().key, "lang": user.lang}),
    ])


def _phone_shell(user) -> html.Div:
    """A resident's or a family member's frame: a phone's screen, with the app's tabs at
    its foot (a family member has one page and no tabs)."""
    here = flask.request.path
    tabs = [] if user.role != "resident" else [
        html.A([html.Span(icon, className="m-tab-icon"), html.Span(tr(label))], href=href,
               className="m-tab" + (" active" if here == href else ""),
               id="m-tab-" + (href.strip("/").replace("/", "-") or "home"))
        for href, label, icon in MOBILE_NAV]
    other = "en" if user.lang == "zh-CN" else "zh-CN"
    return html.Div(className=f"app phone lang-{user.lang}", children=[
        html.Header(className="m-topbar", children=[
            html.Span(tr("m.title"), className="m-brand"),
            html.Span(user.label if user.role == "family" else tr("role." + user.role),
                      className="who", id="who"),
            _post_button(tr("nav.lang"), f"/lang/{other}", "lang-toggle"),
            _post_button(tr("nav.logout"), "/logout", "logout"),
        ]),
        html.Main(dash.page_container, className="page m-page"),
        html.Nav(tabs, className="m-tabs") if tabs else None,
    ])


def _post_button(label: str, action: str, button_id: str) -> html.Form:
    """A top-bar link that changes state: a form posted with this session's CSRF token (the
    button's own value), never a GET."""
    return html.Form(method="post", action=action, className="nav-form", children=[
        html.Button(label, type="submit", name="csrf_token", value=security.form_token(),
                    className="nav-link", id=button_id)])


def register_callbacks(app) -> None:
    """The clock ticks in the browser: no server round trip for it."""
    app.clientside_callback(
        """function(n, z) {
            z = z || {};
            return new Date().toLocaleString(z.lang || 'zh-CN',
                                             {timeZone: z.tz || 'Asia/Shanghai', hour12: false});
        }""",
        dash.Output("clock", "children"), dash.Input("clock-tick", "n_intervals"),
        dash.State("clock-zone", "data"),
    )
