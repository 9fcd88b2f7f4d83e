"""The operators' reports page (/reports): the queue of residents' reports (new, in
progress, done; the order each became and its rating), notices published to a
community, building or grid with how many each reached and how many read it, and the
by-hand controls (`dashboard.operator_panel`). Every read and write goes through the
services, which check the role (report.queue, notice.publish) and audit refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html

from dashboard import notices, operator_panel
from dashboard import reports as service
from dashboard.components import denied, when
from dashboard.context import ctx, current_user, lang, tr
from dashboard.pages.resident_notices import in_lang
from dashboard.report_views import attempt
from twin.access import AccessDenied, can_open
from twin.errors import TwinError
from twin.reports import load_catalogue
from twin.store.notices import NoticeRow
from twin.store.reports import ReportRow, targets

PATH = "/reports"
PATH_TEMPLATE = None
NAME = "reports"

QUEUE = "q-queue"
REFRESH = "q-refresh"
P_KIND = "p-kind"
P_SCOPE = "p-scope"
P_TITLE = {"zh-CN": "p-title-zh", "en": "p-title-en"}
P_BODY = {"zh-CN": "p-body-zh", "en": "p-body-en"}
P_STARTS = "p-starts"
P_ENDS = "p-ends"
P_PUBLISH = "p-publish"
P_MESSAGE = "p-message"
P_LIST = "p-list"
STATUSES = ("new", "in_progress", "done")


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "reports"):
        return denied()
    c = ctx()
    with c.pool.connection() as conn:
        scopes = targets(conn, c.communities)
    return html.Div(className="reports-page", children=[
        html.Section(className="panel q-panel", children=[
            html.H2([tr("rq.title"), html.Button(tr("rq.refresh"), id=REFRESH,
                                                className="btn q-refresh")],
                    className="panel-title"),
            html.Div(queue_view(), id=QUEUE, className="q-columns"),
        ]),
        html.Section(className="panel p-panel", children=[
            html.H2(tr("pub.title"), className="panel-title"),
            dcc.RadioItems(id=P_KIND, value="notice", inline=True, options=[
                {"label": tr(f"ntc.kind.{k}"), "value": k} for k in notices.KINDS]),
            dcc.Dropdown(id=P_SCOPE, clearable=False,
                         value=f"community:{c.communities[0]}", options=[
                             {"label": f"{tr('pub.scope.' + k)} · {n}", "value": f"{k}:{i}"}
                             for k, i, n in scopes]),
            *[dcc.Input(id=P_TITLE[lg], placeholder=tr(f"pub.title_{lg[:2]}"), maxLength=80,
                        className="input") for lg in ("zh-CN", "en")],
            *[dcc.Textarea(id=P_BODY[lg], placeholder=tr(f"pub.body_{lg[:2]}"), maxLength=2000,
                           className="input note") for lg in ("zh-CN", "en")],
            html.Div(className="hand-row", children=[
                dcc.Input(id=P_STARTS, placeholder=tr("pub.starts"), className="input"),
                dcc.Input(id=P_ENDS, placeholder=tr("pub.ends"), className="input")]),
            html.Button(tr("pub.publish"), id=P_PUBLISH, className="btn"),
            html.Div(id=P_MESSAGE, className="message"),
            html.H3(tr("pub.list")),
            html.Div(notice_list(), id=P_LIST),
        ]),
        html.Section(className="panel h-panel", children=[operator_panel.panel(folded=False)]),
    ])


def register_callbacks(app: dash.Dash) -> None:
    operator_panel.register_callbacks(app)  # once, for this page and the large screen

    @app.callback(Output(QUEUE, "children"), Input(REFRESH, "n_clicks"),
                  prevent_initial_call=True)
    def refresh(_n):
        return queue_view()

    @app.callback(Output(P_MESSAGE, "children"), Output(P_LIST, "children"),
                  Input(P_PUBLISH, "n_clicks"), State(P_KIND, "value"), State(P_SCOPE, "value"),
                  State(P_TITLE["zh-CN"], "value"), State(P_TITLE["en"], "value"),
                  State(P_BODY["zh-CN"], "value"), State(P_BODY["en"], "value"),
                  State(P_STARTS, "value"), State(P_ENDS, "value"), prevent_initial_call=True)
    def publish(_n, kind, scope, title_zh, title_en, body_zh, body_en, starts, ends):
        said = publish_notice(kind=kind, scope=scope, title={"zh-CN": title_zh, "en": title_en},
                              body={"zh-CN": body_zh, "en": body_en}, starts=starts, ends=ends)
        return said, notice_list()


def publish_notice(*, kind: object, scope: object, title: dict[str, object],
                   body: dict[str, object], starts: object, ends: object) -> str:
    scope_kind, _, scope_id = scope.partition(":") if isinstance(scope, str) else ("", "", "")
    published, error = attempt(lambda conn: notices.publish_notice(
        conn, current_user(), kind=kind, scope_kind=scope_kind, scope_id=scope_id, title=title,
        body=body, starts=starts, ends=ends, at=datetime.now(UTC)))
    return error if published is None else "✓ " + tr("pub.published")


def queue_view() -> list[Any]:
    """The reports in three columns by where they stand."""
    c = ctx()
    try:
        with c.pool.connection() as conn:
            rows = service.report_queue(conn, current_user(), c.communities)
    except AccessDenied:
        return [html.Div(tr("denied"), className="denied")]
    return [html.Div(className=f"q-column q-{s}", id=f"q-{s}", children=[
        html.H3(f"{tr('rpt.status.' + s)} ({sum(r.status == s for r in rows)})"),
        *([_row(r) for r in rows if r.status == s] or [html.Div(tr("rq.empty"), className="empty")]),
    ]) for s in STATUSES]


def _row(r: ReportRow) -> html.Div:
    lg = lang()
    names = load_catalogue().categories
    name = names[r.category].name.get(lg, r.category) if r.category in names else r.category
    return html.Div(className="q-row", id=f"q-report-{r.id}", children=[
        html.Div([html.B(name), f" · {when(r.created_at, '%m-%d %H:%M')}"]),
        html.Div(" ".join(x for x in (r.building or "", r.unit or "") if x), className="hint"),
        html.Div(r.text, className="q-text"),
        html.Div([html.A(r.order_code, href=f"/work-orders?id={r.order_id}")
                  if r.order_id else "—",
                  f" · {tr('wo.' + r.order_state) if r.order_state else ''}",
                  f" · {r.assignee_id}" if r.assignee_id else ""], className="card-sub"),
        html.Div(f"{tr('rq.rating')}: {'★' * r.rating} {r.rating_comment}", className="q-rating")
        if r.rating is not None else None,
    ])


def notice_list() -> list[Any]:
    c = ctx()
    lg = lang()
    try:
        with c.pool.connection() as conn:
            rows = notices.notice_counts(conn, current_user(), c.communities)
    except (AccessDenied, TwinError):
        return []
    return [html.Div(className="q-row", id=f"p-notice-{n.id}", children=[
        html.Div([html.B(in_lang(n.title, lg)), _about(n)]),
        html.Div(tr("pub.reach").format(n=n.reached, m=n.read_count), className="p-reach",
                 id=f"p-reach-{n.id}"),
    ]) for n in rows]


def _about(n: NoticeRow) -> str:
    return (f" · {tr('ntc.kind.' + n.kind)} · {tr('pub.scope.' + n.scope_kind)} {n.scope_id}"
            f" · {when(n.published_at, '%m-%d %H:%M')}")
