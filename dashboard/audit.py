"""The audit log as the control room writes it: who saw residents whole, who logged in,
who was refused; and when. The rows are written and read by `twin.store.audit` and
`twin.store.reads.audit`, in the caller's transaction.

Reading the log back is for admins only (`read_log`): the role is checked here, not
only by the audit page, and both a refused and an allowed read are written to the log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from twin.access import AccessDenied, User, require_page
from twin.store import audit as log
from twin.store.reads.audit import AuditEntry, AuditQuery, actions, entries

__all__ = ["AuditEntry", "AuditQuery", "audited", "entries", "log_actions", "read_log",
           "record", "refused"]


def record(
    conn: psycopg.Connection,
    user: User | str,
    action: str,
    *,
    subject_kind: str = "",
    subject_id: str = "",
    detail: dict[str, Any] | None = None,
    role: str | None = None,
) -> None:
    """One audit row for a user (or, before a login succeeds, a bare user name)."""
    name = user.name if isinstance(user, User) else user
    role = role or (user.role if isinstance(user, User) else "")
    log.record(conn, name, role, action, subject_kind=subject_kind, subject_id=subject_id,
               detail=detail)


def refused(conn: psycopg.Connection, user: User, error: Exception, *, subject_kind: str,
            subject_id: str, asked: str = "") -> None:
    """A user asked for something outside their role or grid: written down, then refused.

    ``asked`` is what they asked to do (``order.dispatch``, ``history``); the reason is the
    refusal's sentence, which names ids and logins, never a resident."""
    record(conn, user, "denied", subject_kind=subject_kind, subject_id=subject_id,
           detail={"reason": str(error), **({"asked": asked} if asked else {})})


@contextmanager
def audited(conn: psycopg.Connection, user: User, asked: str, *, subject_kind: str,
            subject_id: str) -> Iterator[None]:
    """Write down and commit any refusal raised inside, then let it go on up (the caller's
    rollback keeps it).

    ``asked`` is what the user asked to do (``order.dispatch``, ``history``); the subject
    is what they asked it of. The reason is the refusal's own sentence: ids and login
    names, never a resident's name.
    """
    try:
        yield
    except AccessDenied as e:
        refused(conn, user, e, subject_kind=subject_kind, subject_id=subject_id, asked=asked)
        conn.commit()
        raise


def read_log(conn: psycopg.Connection, user: User, query: AuditQuery, *,
             before: tuple[datetime, int] | None = None, limit: int = 50
             ) -> list[AuditEntry]:
    """One page of the audit log for an admin, newest first (`twin.store.reads.audit`),
    and a `view_audit_log` row saying who read it with which filters, in the same
    transaction.

    Anyone else is refused with AccessDenied, and the refusal is written and committed
    first, so that it stays whatever the caller does with the exception.
    """
    _require_reader(conn, user)
    return log.read_log(conn, user.name, user.role, query, before=before, limit=limit)


def log_actions(conn: psycopg.Connection, user: User) -> list[str]:
    """The actions the log holds (the audit page's action filter); admins only, as
    `read_log`."""
    _require_reader(conn, user)
    return actions(conn)


def _require_reader(conn: psycopg.Connection, user: User) -> None:
    with audited(conn, user, "audit.read", subject_kind="audit_log", subject_id=""):
        require_page(user, "audit")
