"""The large screen's cloud broadcast panel: choose an area (a grid, a building) or pick
speakers (from the list, or by tapping their dots on the map), choose a preset or type a
text, send; then n of m speakers acknowledged. A folded panel over the map, in its own
module, hooked into `dashboard.pages.large_screen` with two lines; the service
(`dashboard.doors.broadcast`) checks the role again."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dash
from dash import Input, Output, State, dcc, html, no_update

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
#: The large screen's map (its clicks on a speaker's dot pick that speaker).
MAP = "ls-map"
KINDS = ("grid", "building", "speakers")


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
                  State(SPEAKERS, "value"), prevent_initial_call=True)
    def tap(click, picked):
        """A tap on a speaker's dot adds it to (or takes it from) the picked speakers."""
        obj = (click or {}).get("object") or {}
        if obj.get("type") != "speaker" or not obj.get("id"):
            raise dash.exceptions.PreventUpdate
        picked = list(picked or [])
        picked.remove(obj["id"]) if obj["id"] in picked else picked.append(obj["id"])
        return picked, "speakers"

    @app.callback(Output(SENT, "data"), Output(STATUS, "children"), Output(POLL, "disabled"),
                  Input(SEND, "n_clicks"), Input(POLL, "n_intervals"),
                  State(KIND, "value"), State(GRID, "value"), State(BUILDING, "value"),
                  State(SPEAKERS, "value"), State(TEXT, "value"), State(SENT, "data"),
                  prevent_initial_call=True)
    def send_or_poll(_clicks, _n, kind, grid, building, speakers, text, sent):
        if dash.ctx.triggered_id == SEND:
            target = {"grid": {"grid_id": grid}, "building": {"building_id": building},
                      "speakers": {"speakers": speakers}}.get(kind, {})
            broadcast_id, message = send(text, **target)
            return broadcast_id, message, broadcast_id is None
        if not sent:
            return no_update, no_update, True
        message, done = acks(sent)
        return (None if done else sent), message, done


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
    return (f"{ok} {tr('bc.of')} {len(rows)} {tr('bc.acked')}",
            answered == len(rows))


def _community() -> str:
    user = current_user()
    return user.community_id or ctx().communities[0]
