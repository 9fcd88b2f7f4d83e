"""Small readings the report pages and the by-hand panel share: a tap on a map as a
place, and a staff role in the reader's words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

from dashboard.context import ctx, lang, tr
from dashboard.i18n import t
from twin.access import AccessDenied
from twin.errors import TwinError
from twin.reports import Refused
from twin.system_texts import SYSTEM_TEXTS


def refusal(e: Refused) -> str:
    """A refused input in the reader's words."""
    return "✗ " + t(e.key, lang()).format(**e.values)


T = TypeVar("T")


def attempt(action: Callable[[psycopg.Connection], T], *, denied: str = "denied"
            ) -> tuple[T | None, str]:
    """A service call on a pooled connection: (its result, "") or (None, why not, in the
    reader's words: a refused input, a refused role as the ``denied`` label, or the
    service's own message). The service has audited a refusal already."""
    try:
        with ctx().pool.connection() as conn:
            return action(conn), ""
    except Refused as e:
        return None, refusal(e)
    except AccessDenied:
        return None, "✗ " + tr(denied)
    except TwinError as e:
        return None, f"✗ {e}"


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


#: The id of the ground's tappable copy: a tap on it is a tap on open ground.
PICK_GROUND = "ground-pick"


def with_pickable_ground(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers and, over them, an all but invisible tappable copy of the community's
    ground (`PICK_GROUND`), so that a tap on open ground gives a place: the map component
    reports a tap only on something pickable. Drawn last, the copy also answers where the
    walkways and the flat areas lie over the ground; the base's own specs, cached and
    shared, are not changed."""
    ground = next((dict(spec) for spec in layers if spec.get("id") == "ground"), None)
    if ground is None:
        return list(layers)
    ground.update(id=PICK_GROUND, pickable=True, stroked=False, getFillColor=[0, 0, 0, 1])
    return [*layers, ground]