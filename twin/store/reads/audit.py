"""The audit log, read back (newest first). It is written by `twin.store.audit`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class AuditEntry:
    time: datetime
    user_name: str
    role: str
    action: str
    subject_kind: str
    subject_id: str
    detail: dict[str, Any]


def entries(conn: psycopg.Connection, *, user_name: str | None = None,
            action: str | None = None, limit: int = 200) -> list[AuditEntry]:
    rows = conn.execute(
        """SELECT time, user_name, role, action, subject_kind, subject_id, detail FROM audit_log
           WHERE (%(u)s::text IS NULL OR user_name = %(u)s)
             AND (%(a)s::text IS NULL OR action = %(a)s)
           ORDER BY time DESC, id DESC LIMIT %(n)s""",
        {"u": user_name, "a": action, "n": limit},
    ).fetchall()
    return [AuditEntry(*r) for r in rows]
