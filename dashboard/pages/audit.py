"""The audit log, for admins: who saw residents whole, who logged in and out, who was
refused, and who read this log. Filtered by actor, action, outcome, target and time,
newest first, a page at a time, with every time on the community's clock.

Every read goes through `dashboard.audit.read_log`, which checks the role itself and
writes the read (or the refusal) to the log, so a callback called without the page is
held to the same rule. The page's own check only spares a non-admin the form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

import dash
from dash import Input, Output, State, dcc, html
from dash import ctx as dash_ctx

from dashboard import audit
from dashboard.auth import AccessDenied
from dashboard.components import badge, denied
from dashboard.context import ctx, current_user, lang, tr, zone
from dashboard.i18n import LABELS, t
from twin.calendars import local_moment
from twin.errors import TwinError
from twin.store.reads.audit import MAX_FILTER_CHARS, OUTCOMES, AuditEntry, AuditQuery

PATH = "/audit"
PATH_TEMPLATE = None
NAME = "audit"

ACTOR = "au-actor"
ACTION = "au-action"
OUTCOME = "au-outcome"
TARGET = "au-target"
SINCE = "au-since"
UNTIL = "au-until"
TABLE = "au-table"
MESSAGE = "au-message"
CURSORS = "au-cursors"
NEWER = "au-newer"
OLDER = "au-older"
REFRESH = "au-refresh"
PAGE = "au-page"

#: Rows on one page.
PAGE_SIZE = 50
#: The longest detail shown in a cell (the rest is in the cell's tooltip).
DETAIL_CHARS = 160


@dataclass(frozen=True, slots=True)
class Filters:
    """The page's filters as typed: text, '' or None for "any"."""

    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    target: str | None = None
    since: str | None = None
    until: str | None = None


@dataclass
class LogPage:
    """One page of the log as the page shows it (pure data, for the tests too)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    #: Where each page shown so far starts (None: the newest), and where the next starts.
    cursors: dict[str, Any] = field(default_factory=lambda: {"starts": [None], "next": None})
    number: int = 1
    has_older: bool = False
    message: str = ""
    refused: bool = False


def layout(**_query) -> html.Div:
    user = current_user()
    try:
        with ctx().pool.connection() as conn:
            found = audit.log_actions(conn, user)
    except AccessDenied:
        return denied()
    lg = lang()
    return html.Div(className="audit", children=[
        html.H1(tr("au.title")),
        html.Div(f"{tr('au.note')} · {tr('au.zone')}: {zone().key}", className="privacy-note",
                 id="au-note"),
        html.Div(className="au-filters", children=[
            _text_input(ACTOR, tr("au.actor")),
            dcc.Dropdown(id=ACTION, placeholder=tr("au.action"), className="dd",
                         options=[{"label": action_label(a, lg), "value": a} for a in found]),
            dcc.Dropdown(id=OUTCOME, placeholder=tr("au.outcome"), className="dd",
                         options=[{"label": tr(f"au.{o}"), "value": o} for o in OUTCOMES]),
            _text_input(TARGET, f"{tr('au.target')}: {tr('au.target_hint')}"),
            _text_input(SINCE, f"{tr('au.since')} {tr('au.time_hint')}"),
            _text_input(UNTIL, f"{tr('au.until')} {tr('au.time_hint')}"),
        ]),
        html.Div(id=MESSAGE, className="message"),
        html.Div(id=TABLE, className="au-list"),
        html.Div(className="btn-row au-pager", children=[
            html.Button(tr("au.newer"), id=NEWER, className="btn", disabled=True),
            html.Span(id=PAGE, className="au-page-no"),
            html.Button(tr("au.older"), id=OLDER, className="btn", disabled=True),
            html.Button(tr("au.refresh"), id=REFRESH, className="btn"),
        ]),
        dcc.Store(id=CURSORS),
    ])


def register_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(TABLE, "children"), Output(MESSAGE, "children"),
                  Output(CURSORS, "data"), Output(NEWER, "disabled"), Output(OLDER, "disabled"),
                  Output(PAGE, "children"),
                  Input(ACTOR, "value"), Input(ACTION, "value"), Input(OUTCOME, "value"),
                  Input(TARGET, "value"), Input(SINCE, "value"), Input(UNTIL, "value"),
                  Input(NEWER, "n_clicks"), Input(OLDER, "n_clicks"), Input(REFRESH, "n_clicks"),
                  State(CURSORS, "data"))
    def show(actor, action, outcome, target, since, until, _newer, _older, _refresh, cursors):
        move = dash_ctx.triggered_id if dash_ctx.triggered_id in (NEWER, OLDER) else None
        page = log_page(Filters(actor, action, outcome, target, since, until),
                        cursors=cursors, move=move)
        return (_table(page.rows, lang()) if not page.refused else denied(),
                page.message, page.cursors, page.number == 1, not page.has_older,
                t("au.page", lang()).format(n=page.number))


# --- the service the callback calls ----------------------------------------------------

def log_page(filters: Filters, *, cursors: Mapping[str, Any] | None = None,
             move: str | None = None) -> LogPage:
    """The page of the log the user asked for: the first (newest) page when a filter
    changed (``move`` None), the next older one (``OLDER``) or the previous (``NEWER``),
    from the ``cursors`` the last answer returned. A non-admin is refused (and the
    refusal audited by `dashboard.audit.read_log`); bad input is a message, not an error.
    """
    user = current_user()
    tz = zone()
    try:
        query = query_of(filters, tz.key)
        starts, following = _cursors(cursors)
    except TwinError as e:
        return LogPage(message=f"✗ {e}")
    if move == OLDER and following is not None:
        starts.append(following)
    elif move == NEWER and len(starts) > 1:
        starts.pop()
    elif move not in (OLDER, NEWER):
        starts = [None]
    try:
        with ctx().pool.connection() as conn:
            found = audit.read_log(conn, user, query, before=starts[-1], limit=PAGE_SIZE + 1)
    except AccessDenied as e:
        return LogPage(message=f"✗ {e}", refused=True)
    shown = found[:PAGE_SIZE]
    older = len(found) > PAGE_SIZE
    return LogPage(
        rows=entry_rows(shown, tz, lang()),
        cursors={"starts": [_json_cursor(c) for c in starts],
                 "next": _json_cursor(shown[-1].cursor) if older else None},
        number=len(starts), has_older=older)


def query_of(filters: Filters, tz: str) -> AuditQuery:
    """The filters as a query: blanks match anything; times on the community's clock (a
    date alone for "until" takes that whole day in)."""
    def text(value: str | None) -> str | None:
        return (value.strip() or None) if isinstance(value, str) else None

    try:
        since = local_moment(s, tz) if (s := text(filters.since)) else None
        until = local_moment(u, tz, end_of_day=True) if (u := text(filters.until)) else None
    except ValueError as e:
        raise TwinError(str(e)) from e
    return AuditQuery(actor=text(filters.actor), action=text(filters.action),
                      outcome=text(filters.outcome), target=text(filters.target),
                      since=since, until=until)


def entry_rows(entries: Sequence[AuditEntry], tz: tzinfo, lg: str) -> list[dict[str, Any]]:
    """The entries as the table shows them (pure): times on the community's clock
    (``tz``), actions, roles and kinds in the reader's language."""
    return [{
        "id": e.id,
        "time": f"{e.time.astimezone(tz):%Y-%m-%d %H:%M:%S}",
        "actor": e.user_name,
        "role": _label("role.", e.role, lg) if e.role else "",
        "action": e.action,
        "action_label": action_label(e.action, lg),
        "outcome": e.outcome,
        "target": " ".join(x for x in (_label("au.kind.", e.subject_kind, lg), e.subject_id)
                           if x),
        "detail": e.detail_line(label=lambda key: _label("au.d.", key, lg)),
    } for e in entries]


def action_label(action: str, lg: str) -> str:
    return _label("au.act.", action, lg)


def _label(prefix: str, value: str, lg: str) -> str:
    """The label of a known value, or the value itself (a new action is still shown)."""
    return t(prefix + value, lg) if prefix + value in LABELS else value


def _cursors(data: Mapping[str, Any] | None
             ) -> tuple[list[tuple[datetime, int] | None], tuple[datetime, int] | None]:
    """The pager's state as the browser sent it back, checked."""
    if not data:
        return [None], None
    try:
        starts = [None if c is None else _cursor(c) for c in data["starts"]]
        following = None if data.get("next") is None else _cursor(data["next"])
    except (KeyError, TypeError, ValueError) as e:
        raise TwinError("the pager's state is not one this page wrote") from e
    if not starts or starts[0] is not None:
        raise TwinError("the pager's state is not one this page wrote")
    return starts, following


def _cursor(value: Any) -> tuple[datetime, int]:
    when, row_id = value
    moment = datetime.fromisoformat(when)
    if moment.tzinfo is None or not isinstance(row_id, int):
        raise ValueError("not a cursor")
    return moment, row_id


def _json_cursor(cursor: tuple[datetime, int] | None) -> list[Any] | None:
    return None if cursor is None else [cursor[0].isoformat(), cursor[1]]


def _text_input(id: str, placeholder: str) -> dcc.Input:
    """A filter that is sent on Enter or when it loses focus, not on every key."""
    return dcc.Input(id=id, placeholder=placeholder, type="text", className="input",
                     debounce=True, maxLength=MAX_FILTER_CHARS)


def _table(rows: list[dict[str, Any]], lg: str) -> html.Div | html.Table:
    if not rows:
        return html.Div(t("au.none", lg), className="empty")
    head = html.Tr([html.Th(t(k, lg)) for k in ("au.time", "au.actor", "au.role", "au.action",
                                                 "au.outcome", "au.target", "au.detail")])
    body = [html.Tr(className=f"au-{r['outcome']}", children=[
        html.Td(r["time"], className="mono"),
        html.Td(r["actor"]),
        html.Td(r["role"]),
        html.Td(r["action_label"], title=r["action"]),
        html.Td(badge(t(f"au.{r['outcome']}", lg),
                      "critical" if r["outcome"] == "refused" else "online")),
        html.Td(r["target"], className="mono"),
        html.Td(r["detail"][:DETAIL_CHARS] + ("…" if len(r["detail"]) > DETAIL_CHARS else ""),
                title=r["detail"], className="au-detail"),
    ]) for r in rows]
    return html.Table([html.Thead(head), html.Tbody(body)], className="table", id="au-rows")
