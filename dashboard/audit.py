"""The audit log: who saw residents whole, who logged in, who was refused; and when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from dashboard.auth import User


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: datetime
    user_name: str
    role: str
    action: str
    subject_kind: str
    subject_id: str
    detail: dict[str, Any]


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
    name = user.name if isinstance(user, User) else user
    role = role or (user.role if isinstance(user, User) else "")
    conn.execute(
        """INSERT INTO audit_log (user_name, role, action, subject_kind, subject_id, detail)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (name, role, action, subject_kind, subject_id,
         Jsonb(detail or {}, dumps=lambda v: orjson.dumps(v, default=str).decode())),
    )


def refused(conn: psycopg.Connection, user: User, error: Exception, *, subject_kind: str,
            subject_id: str) -> None:
    """A user asked for something outside their role or grid: written down, then refused."""
    record(conn, user, "denied", subject_kind=subject_kind, subject_id=subject_id,
           detail={"reason": str(error)})


def entries(
    conn: psycopg.Connection, *, user_name: str | None = None, action: str | None = None,
    limit: int = 200,
) -> list[AuditEntry]:
    rows = conn.execute(
        """SELECT time, user_name, role, action, subject_kind, subject_id, detail FROM audit_log
           WHERE (%(u)s::text IS NULL OR user_name = %(u)s)
             AND (%(a)s::text IS NULL OR action = %(a)s)
           ORDER BY time DESC, id DESC LIMIT %(n)s""",
        {"u": user_name, "a": action, "n": limit},
    ).fetchall()
    return [AuditEntry(*r) for r in rows]
