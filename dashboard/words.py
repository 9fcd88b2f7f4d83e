"""Texts and times for the person looking: one call per page read.

Alarms, orders and notifications keep a text key and parameters (ids, never
names); `retitle` renders them with `twin.texts` in the user's language, with
residents masked unless the user may see them whole (an admin; a grid worker in
their own grid). Showing a resident whole writes the audit log, as every
unmasked view does. Times are written in the community's zone by
`dashboard.components.when` (the zone is `dashboard.context.zone`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg

from dashboard import audit as audit_log
from twin.access import User, sees_residents_whole_in
from twin.alarms import Alarm
from twin.rules.compile import RULE_TITLE
from twin.store.reads.texts import wording
from twin.texts import DEFAULT_LANG, LANGS, Viewer
from twin.work_orders import WorkOrder, WorkOrderEvent


def viewer(user: User, grid_id: str | None = None) -> Viewer:
    """The user as a reader of one text about something in ``grid_id``."""
    whole = sees_residents_whole_in(user, grid_id)
    return Viewer(lang=user.lang if user.lang in LANGS else DEFAULT_LANG, whole=whole)


def retitle(conn: psycopg.Connection, user: User, rows: Iterable[dict[str, Any]], *,
            field: str = "title", what: str = "alarm", audit: bool = True
            ) -> list[dict[str, Any]]:
    """Each row with ``field`` rendered for the user from its ``text_key`` and
    ``text_params`` (a row without a key keeps its stored text).

    Rows may carry ``grid_id`` (whole for the grid worker of that grid). With ``audit``
    (the default), showing a resident whole writes the audit log (the live feed's
    repeats of the same rows pass False).
    """
    rows = list(rows)
    words = wording(conn, ((r.get("text_key"), r.get("text_params") or {}) for r in rows))
    shown: list[str] = []
    out = []
    for r in rows:
        v = viewer(user, r.get("grid_id"))
        key, params = r.get("text_key"), r.get("text_params") or {}
        out.append({**r, field: words.render(key, params, viewer=v, fallback=r.get(field) or "")})
        resident = words.names_resident(key, params)
        if v.whole and resident is not None:
            shown.append(resident)
    if shown and audit:
        audit_log.record(conn, user, "view_residents_unmasked", subject_kind=what,
                     subject_id=",".join(str(r["id"]) for r in rows if "id" in r)[:200],
                     detail={"residents": sorted(set(shown))})
    return out


def titles(conn: psycopg.Connection, user: User, items: Iterable[Alarm | WorkOrder]
           ) -> dict[int, str]:
    """{id: title for the user} of kept alarms or work orders."""
    items = list(items)
    rows = [{"id": i.id, "title": i.spec.title, "text_key": i.spec.text_key,
             "text_params": i.spec.text_params,
             "grid_id": i.spec.grid_id if isinstance(i, WorkOrder) else None} for i in items]
    what = "work_order" if items and isinstance(items[0], WorkOrder) else "alarm"
    return {r["id"]: r["title"] for r in retitle(conn, user, rows, what=what)}


def notes(conn: psycopg.Connection, user: User, events: Iterable[WorkOrderEvent],
          grid_id: str | None = None) -> list[str]:
    """Each history line's note for the user: what the system said (dispatch, escalation,
    settling; `twin.system_texts`) in their language, a person's own note as written."""
    events = list(events)
    said = [e.detail.get("said") if isinstance(e.detail, dict) else None for e in events]
    words = wording(conn, ((s["key"], s.get("params") or {}) for s in said if s))
    v = viewer(user, grid_id)
    return [words.render(s["key"], s.get("params"), viewer=v, fallback=e.note) if s else e.note
            for e, s in zip(events, said)]


def description(conn: psycopg.Connection, user: User, order: WorkOrder) -> str:
    """The order's description for the user: the rule's title in their language."""
    key = f"{order.spec.rule_id}/{RULE_TITLE}" if order.spec.rule_id else None
    words = wording(conn, [(key, {})])
    return words.render(key, {}, viewer=viewer(user, order.spec.grid_id),
                        fallback=order.spec.description)
