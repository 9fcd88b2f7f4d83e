"""The audit log as the control room writes it: who saw residents whole, who logged in,
who was refused; and when. The rows are written and read by `twin.store.audit` and
`twin.store.reads.audit`, in the caller's transaction."""

from __future__ import annotations

from typing import Any

import psycopg

from twin.access import User
from twin.store import audit as log
from twin.store.reads.audit import AuditEntry, entries

__all__ = ["AuditEntry", "entries", "record", "refused"]


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
