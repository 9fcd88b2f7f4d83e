"""Small pieces the pages share: panels, tiles, badges, the refusal message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dash import html

from dashboard.context import tr, zone


def panel(title: str, *children: Any, id: str | None = None, className: str = "") -> html.Section:
    body = [html.H2(title, className="panel-title"),
            html.Div(list(children), className="panel-body")]
    if id:
        return html.Section(body, id=id, className=f"panel {className}")
    return html.Section(body, className=f"panel {className}")


def tile(label: str, value_id: str, *, value: str = "–", unit: str = "", accent: str = ""
         ) -> html.Div:
    return html.Div(className=f"kpi {accent}", children=[
        html.Div(label, className="kpi-label"),
        html.Div([html.Span(value, id=value_id, className="kpi-value"),
                  html.Span(unit, className="kpi-unit")]),
    ])


def badge(text: str, kind: str) -> html.Span:
    return html.Span(text, className=f"badge badge-{kind}")


def denied(reason_key: str = "denied") -> html.Div:
    return html.Div(tr(reason_key), className="denied", id="denied")


def when(value: datetime | None, fmt: str = "%m-%d %H:%M:%S") -> str:
    """A time on the community's clock (`dashboard.context.zone`), '' for none."""
    return value.astimezone(zone()).strftime(fmt) if value else ""
