"""Residents' reports, as services: a resident submits, follows and rates their own; the
operators read the queue. Every call checks role and scope here (`twin.access`), whichever
page or forged request made it, and every refusal is written to the audit log where it
happens (`dashboard.audit`), a bad photo and a report past the allowance among them.

A report becomes a work order through the same store and dispatcher as a rule's
(`twin.store.operations.open_work_order`, `twin.rules.store.Dispatcher`): dispatched to the
nearest suitable staff member by walkway, escalated like any other. The resident's words
are kept in the report and shown to the staff who handle it (the order's description);
the order's title is a key and the building's id, and the audit log gets ids only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

import psycopg

from dashboard import audit
from dashboard.photos import NotAPhoto, decode_photo
from dashboard.scoped import brief, whole_number
from twin import access
from twin.access import AccessDenied, User
from twin.errors import TwinError
from twin.reports import (
    MAX_SNAP_M,
    RATE_LIMIT,
    RATE_WINDOW,
    ReportRefused,
    Where,
    check_rate,
    checked_point,
    checked_rating,
    checked_text,
    load_catalogue,
    order_spec,
    snap_place,
)
from twin.store import reports as store
from twin.store.operations import Photo, get_work_order, open_work_order
from twin.store.reads.residents import resident_home
from twin.walkgraph import WalkGraph
from twin.work_orders import SYSTEM, WorkOrderEvent

if TYPE_CHECKING:
    from twin.rules.store import Dispatcher

__all__ = ["Submitted", "my_report", "my_reports", "rate_report", "report_photo",
           "report_queue", "submit_report"]


@dataclass(frozen=True, slots=True)
class Submitted:
    report_id: int
    order_id: int
    order_code: str
    state: str
    assignee_id: str | None
    #: why nobody could be sent yet (the order waits and escalates), None if somebody was
    not_dispatched: str | None


def submit_report(conn: psycopg.Connection, user: User, *, category: object, text: object,
                  place: object, photo: object, at: datetime,
                  graph_for: Callable[[str], WalkGraph], dispatcher: Dispatcher,
                  limit: int = RATE_LIMIT) -> Submitted:
    """Keep the resident's report and open the work order it becomes, dispatched now.

    ``place`` is "unit" (their own unit's building) or {"lon", "lat"} picked on the map;
    ``photo`` a dcc.Upload data URL or None. Refused (and audited): a role that may not
    report, a report past ``limit`` in an hour, a photo that is no image, a place off the
    community's walkways, an unknown category, empty text.
    """
    from twin.rules.store import Outcome

    with _refusals(conn, user, "report.submit", "report", ""):
        access.require(user, "report.submit", what="report a problem")
        access.require_own_resident(user, user.resident_id, what="the report's resident")
        assert user.resident_id is not None
        home = resident_home(conn, user.resident_id)
        if home is None:
            raise TwinError(f"there is no resident {user.resident_id}")
        category_id, entry = load_catalogue().get(category)
        words = checked_text(text)
        kept_photo = decode_photo(photo)
        where = _where(conn, home.unit_id, home.community_id, place)
        snapped = snap_place(graph_for(home.community_id), where.point)
        with conn.transaction():
            check_rate(store.lock_and_count(conn, user.resident_id, at - RATE_WINDOW),
                       limit=limit)
            store.store_texts(conn, load_catalogue())
            report_id = store.insert_report(conn, resident_id=user.resident_id,
                                            category=category_id, text=words, where=where,
                                            snapped=snapped, at=at)
            spec = order_spec(category_id, entry, where, resident_id=user.resident_id, at=at)
            # the staff who handle it read the resident's words as the order's description
            order = open_work_order(conn, replace(spec, description=words),
                                    actor=access.actor(user))
            store.link_order(conn, report_id, order.id, photo=kept_photo, at=at)
            audit.record(conn, user, "report.submit", subject_kind="report",
                         subject_id=str(report_id),
                         detail={"category": category_id, "work_order": order.id,
                                 "photo": kept_photo is not None})
            outcome = Outcome()
            # the dispatcher assigns as it does a rule's order: the system's step
            order = dispatcher.assign(conn, order, now=at, outcome=outcome, actor=SYSTEM)
    conn.commit()
    why = outcome.not_dispatched[0][1] if outcome.not_dispatched else None
    return Submitted(report_id, order.id, order.code, order.state, order.assignee_id, why)


def my_reports(conn: psycopg.Connection, user: User) -> list[store.ReportRow]:
    """The resident's own reports, newest first."""
    with _refusals(conn, user, "report.list", "resident", user.resident_id or ""):
        access.require(user, "report.submit", what="follow reports")
        access.require_own_resident(user, user.resident_id, what="these reports")
    assert user.resident_id is not None
    return store.reports_of(conn, user.resident_id)


def my_report(conn: psycopg.Connection, user: User, report_id: object
              ) -> tuple[store.ReportRow, list[WorkOrderEvent]]:
    """One of the resident's own reports and its order's history; another's is refused."""
    number = whole_number(report_id, "a report")
    row = store.get_report(conn, number)
    with _refusals(conn, user, "report.view", "report", number):
        access.require(user, "report.submit", what=f"see report {number}")
        if row is None:
            raise AccessDenied(f"report {number} is not {user.name}'s own")
        access.require_own_resident(user, row.resident_id, what=f"report {number}")
    assert row is not None
    history = list(get_work_order(conn, row.order_id).history) if row.order_id else []
    return row, history


def rate_report(conn: psycopg.Connection, user: User, report_id: object, *, stars: object,
                comment: object, at: datetime) -> store.ReportRow:
    """The resident rates their report's result (1-5 and a comment) once it is resolved or
    closed; once only."""
    row, _ = my_report(conn, user, report_id)
    with _refusals(conn, user, "report.rate", "report", row.id):
        value, said = checked_rating(stars, comment, state=row.order_state,
                                     rated=row.rating is not None)
        with conn.transaction():
            if not store.rate(conn, row.id, stars=value, comment=said, at=at):
                raise ReportRefused("r.err.rated")
            audit.record(conn, user, "report.rate", subject_kind="report",
                         subject_id=str(row.id), detail={"stars": value})
    conn.commit()
    found = store.get_report(conn, row.id)
    assert found is not None
    return found


def report_photo(conn: psycopg.Connection, user: User, report_id: object) -> Photo | None:
    """A report's photo: its resident's, or an operator's (who handles the queue)."""
    number = whole_number(report_id, "a report")
    row = store.get_report(conn, number)
    with _refusals(conn, user, "report.photo", "report", number):
        if row is None:
            raise AccessDenied(f"report {number} is not {user.name}'s to see")
        if access.may(user, "report.queue"):
            access.require_community(user, row.community_id, what=f"report {number}")
        else:
            access.require_own_resident(user, row.resident_id, what=f"report {number}")
    return store.report_photo(conn, number)


def report_queue(conn: psycopg.Connection, user: User, communities: list[str]
                 ) -> list[store.ReportRow]:
    """The residents' reports of the user's communities, newest first (operators only); the
    read is written to the audit log, as the reports hold residents' own words."""
    with _refusals(conn, user, "report.queue", "reports", ""):
        access.require(user, "report.queue", what="read the residents' reports")
    scope = [user.community_id] if user.community_id else communities
    with conn.transaction():
        rows = store.queue(conn, scope)
        audit.record(conn, user, "view_reports", subject_kind="reports",
                     subject_id=",".join(scope)[:200], detail={"rows": len(rows)})
    return rows


# --- private -------------------------------------------------------------------------------

@contextmanager
def _refusals(conn: psycopg.Connection, user: User, asked: str, subject_kind: str,
              subject_id: object) -> Iterator[None]:
    """Write down and commit a refusal raised inside (of the role or scope, or of the input:
    a bad photo, the allowance), then let it go on up. The reason names ids and keys only."""
    try:
        yield
    except (AccessDenied, ReportRefused, NotAPhoto) as e:
        conn.rollback()
        reason = e.key if isinstance(e, ReportRefused) else \
            "not an acceptable photo" if isinstance(e, NotAPhoto) else str(e)
        audit.record(conn, user, "denied", subject_kind=subject_kind,
                     subject_id=brief(str(subject_id)), detail={"reason": reason,
                                                                "asked": asked})
        conn.commit()
        raise


def _where(conn: psycopg.Connection, unit_id: str, community_id: str, place: object) -> Where:
    if place == "unit":
        found = store.unit_place(conn, unit_id)
    elif isinstance(place, dict):
        point = checked_point(place.get("lon"), place.get("lat"))
        found = store.map_place(conn, community_id, point, max_m=MAX_SNAP_M)
        if found is None:
            raise ReportRefused("r.err.far", metres=round(MAX_SNAP_M))
    else:
        raise ReportRefused("r.err.place")
    if found is None:
        raise ReportRefused("r.err.place")
    return found


