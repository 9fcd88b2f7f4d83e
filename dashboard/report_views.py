"""Small readings the report pages and the by-hand panel share: a tap on a map as a
place, and a staff role in the reader's words."""

from __future__ import annotations

from typing import Any

from dashboard.context import lang
from dashboard.i18n import t
from twin.reports import Refused
from twin.system_texts import SYSTEM_TEXTS


def refusal(e: Refused) -> str:
    """A refused input in the reader's words."""
    return "✗ " + t(e.key, lang()).format(**e.values)


def picked_point(click: dict | None) -> dict[str, float] | None:
    """The lon/lat a tap on the map gave (deck.gl's coordinate of the click)."""
    if not isinstance(click, dict):
        return None
    coordinate = click.get("coordinate")
    if not isinstance(coordinate, list | tuple) or len(coordinate) < 2:
        return None
    try:
        return {"lon": float(coordinate[0]), "lat": float(coordinate[1])}
    except (TypeError, ValueError):
        return None


def staff_role(role: str | None, lg: str) -> str:
    """A staff role in the reader's words (the system's own names for them)."""
    texts = SYSTEM_TEXTS.get(f"sys/role/{role}") or SYSTEM_TEXTS["sys/role/staff"]
    return texts.get(lg, texts["zh-CN"])


def with_pickable_ground(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers with the community's ground answering taps (a copy: the base map's specs
    are cached and shared), so that a tap on open ground gives a place: the map component
    reports a tap only on something pickable."""
    return [{**spec, "pickable": True} if spec.get("id") == "ground" else spec
            for spec in layers]
