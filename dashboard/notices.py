"""Notices and activities, as services: an operator publishes to a community, a building or
a grid; the residents it reaches read it on their phone; the operator sees how many it
reached and how many read it. Role and scope are checked here (`twin.access`), and a
refusal is audited where it happens (`dashboard.scoped.audited`)."""

from __future__ import annotations

from datetime import datetime

import psycopg

from dashboard import audit
from dashboard.scoped import audited, brief, whole_number
from twin import access
from twin.access import AccessDenied, User
from twin.calendars import local_moment
from twin.reports import Refused
from twin.store import notices as store
from twin.store.reads.texts import community_timezone

KINDS = ("notice", "activity")
SCOPES = ("community", "building", "grid")
MAX_TITLE_CHARS = 80
MAX_BODY_CHARS = 2000


def publish_notice(conn: psycopg.Connection, user: User, *, kind: object, scope_kind: object,
                   scope_id: object, title: dict[str, object], body: dict[str, object],
                   starts: object = None, ends: object = None, at: datetime) -> int:
    """Publish a notice in the words typed (zh-CN, en or both: a reader gets theirs, else
    the other); an activity may have a time range, typed on the community's clock
    ("2026-12-01 19:00")."""
    with audited(conn, user, "notice.publish", subject_kind="notice", subject_id=scope_id):
        access.require(user, "notice.publish", what="publish a notice")
    if kind not in KINDS:
        raise Refused("pub.err.kind")
    if scope_kind not in SCOPES or not isinstance(scope_id, str) or not scope_id:
        raise Refused("pub.err.scope")
    community = store.scope_community(conn, scope_kind, scope_id)
    if community is None:
        raise Refused("pub.err.scope")
    with audited(conn, user, "notice.publish", subject_kind=scope_kind, subject_id=scope_id):
        access.require_community(user, community, what=f"{scope_kind} {scope_id}")
    titles, bodies = _words(title, MAX_TITLE_CHARS), _words(body, MAX_BODY_CHARS)
    if not titles:
        raise Refused("pub.err.title")
    tz = community_timezone(conn, community)
    start, end = _moment(starts, tz), _moment(ends, tz, end_of_day=True)
    if start is not None and end is not None and not start < end:
        raise Refused("pub.err.order")
    with conn.transaction():
        nid = store.insert_notice(conn, community_id=community, kind=kind,
                                  scope_kind=scope_kind, scope_id=scope_id, title=titles,
                                  body=bodies, starts_at=start, ends_at=end, at=at,
                                  by=user.name)
        audit.record(conn, user, "notice.publish", subject_kind="notice", subject_id=str(nid),
                     detail={"scope": f"{scope_kind}:{scope_id}", "kind": kind})
    conn.commit()
    return nid


def my_notices(conn: psycopg.Connection, user: User) -> list[store.NoticeRow]:
    """The notices that reach the resident (a family member: their relative's)."""
    with audited(conn, user, "notice.read", subject_kind="notices", subject_id=""):
        access.require(user, "notice.read", what="read notices")
        access.require_own_resident(user, user.resident_id, what="these notices")
    assert user.resident_id is not None
    return store.notices_for(conn, user.resident_id)


def read_notice(conn: psycopg.Connection, user: User, notice_id: object, *, at: datetime
                ) -> None:
    """The resident opened a notice: counted once. A notice that does not reach them is
    refused (and audited)."""
    notice_id = whole_number(notice_id, "a notice")
    with audited(conn, user, "notice.read", subject_kind="notice", subject_id=notice_id):
        access.require(user, "notice.read", what="read notices")
        access.require_own_resident(user, user.resident_id, what="this notice")
        assert user.resident_id is not None
        with conn.transaction():
            if not store.mark_read(conn, int(notice_id), user.resident_id, at):
                raise AccessDenied(f"notice {notice_id} does not reach {user.name}")
    conn.commit()


def notice_counts(conn: psycopg.Connection, user: User, communities: list[str]
                  ) -> list[store.NoticeRow]:
    """The published notices with how many residents each reaches and how many read it."""
    with audited(conn, user, "notice.counts", subject_kind="notices", subject_id=""):
        access.require(user, "notice.publish", what="see the notices' read counts")
    return store.published(conn, [user.community_id] if user.community_id else communities)


def _words(by_lang: dict[str, object], limit: int) -> dict[str, str]:
    out = {}
    for lang in ("zh-CN", "en"):
        value = by_lang.get(lang)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise Refused("pub.err.title")
        if len(value) > limit:
            raise Refused("rpt.err.text_long", chars=limit)
        if value.strip():
            out[lang] = value.strip()
    return out


def _moment(value: object, tz: str, *, end_of_day: bool = False) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise Refused("pub.err.time", text=brief(value))
    try:
        return local_moment(value.strip(), tz, end_of_day=end_of_day)
    except ValueError as e:
        raise Refused("pub.err.time", text=brief(value)) from e
