"""The resident's notices (/m/notices): the community's notices and activities that reach
them (their building, grid or community), newest first; opening one counts it as read.
The checks are `dashboard.notices`'; this page only shows and forwards."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import ALL, Input, Output, State, html, no_update
from dash import ctx as dash_ctx

from dashboard import notices as service
from dashboard.components import badge, denied, when
from dashboard.context import ctx, current_user, lang, tr
from twin.access import AccessDenied, can_open
from twin.errors import TwinError
from twin.store.notices import NoticeRow

PATH = "/m/notices"
PATH_TEMPLATE = None
NAME = "resident_notices"

LIST = "n-list"
MESSAGE = "n-message"


def layout(**_query) -> html.Div:
    user = current_user()
    if not can_open(user, "resident_app"):
        return denied()
    return html.Div(className="m-notices", children=[
        html.H2(tr("ntc.title"), className="m-h"),
        html.Div(id=MESSAGE, className="message"),
        html.Div(notice_cards(), id=LIST),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(LIST, "children"), Output(MESSAGE, "children"),
                  Input({"type": "n-open", "notice": ALL}, "n_clicks"),
                  State({"type": "n-open", "notice": ALL}, "id"), prevent_initial_call=True)
    def open_notice(clicks, _ids):
        if not any(clicks or []):
            return no_update, no_update
        trig = dash_ctx.triggered_id  # a forged trigger may lack the key: nothing to open
        if not isinstance(trig, dict) or "notice" not in trig:
            return no_update, no_update
        said = read(trig["notice"])  # first: the cards then show it read
        return notice_cards(), said


def read(notice_id: object) -> str:
    try:
        with ctx().pool.connection() as conn:
            service.read_notice(conn, current_user(), notice_id, at=datetime.now(UTC))
    except AccessDenied:
        return "✗ " + tr("rpt.err.denied")
    except TwinError as e:
        return f"✗ {e}"
    return ""


def notice_cards() -> list[Any]:
    try:
        with ctx().pool.connection() as conn:
            rows = service.my_notices(conn, current_user())
    except AccessDenied:
        return [html.Div(tr("rpt.err.denied"), className="denied")]
    if not rows:
        return [html.Div(tr("ntc.none"), className="empty")]
    return [_card(n, lang()) for n in rows]


def in_lang(words: dict[str, str], lg: str) -> str:
    """The text in the reader's language, else the other one the operator typed."""
    return words.get(lg) or next(iter(words.values()), "")


def _card(n: NoticeRow, lg: str) -> html.Div:
    span = ""
    if n.starts_at or n.ends_at:
        span = f"{tr('ntc.when')}: {when(n.starts_at, '%m-%d %H:%M')} – {when(n.ends_at, '%m-%d %H:%M')}"
    return html.Div(className=f"m-card notice kind-{n.kind}" + (" read" if n.read else ""),
                    id=f"notice-{n.id}", children=[
        html.Div(className="card-head", children=[
            badge(tr(f"ntc.kind.{n.kind}"), n.kind),
            html.Span(in_lang(n.title, lg), className="card-title")]),
        html.Div(span, className="card-sub") if span else None,
        html.Div(f"{tr('ntc.published')} {when(n.published_at, '%m-%d %H:%M')}", className="hint"),
        html.Div(in_lang(n.body, lg), className="card-desc notice-body") if n.read else
        html.Button(tr("ntc.open"), id={"type": "n-open", "notice": n.id},
                    className="btn m-button"),
        html.Div(tr("ntc.read"), className="hint notice-read") if n.read else None,
    ])
