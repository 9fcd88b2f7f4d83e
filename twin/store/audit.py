"""The audit log, written: who saw residents whole, who logged in and out, who was refused.

Written in the caller's transaction, so an unmasked read and its audit row commit
together. Reading it back is `twin.store.reads.audit`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from twin.store.reads.audit import AuditEntry, AuditQuery, entries


def record(conn: psycopg.Connection, user_name: str, role: str, action: str, *,
           subject_kind: str = "", subject_id: str = "",
           detail: dict[str, Any] | None = None) -> None:
    conn.execute(
        """INSERT INTO audit_log (user_name, role, action, subject_kind, subject_id, detail)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (user_name, role, action, subject_kind, subject_id,
         Jsonb(detail or {}, dumps=lambda v: orjson.dumps(v, default=str).decode())),
    )


def read_log(conn: psycopg.Connection, reader_name: str, reader_role: str, query: AuditQuery,
             *, before: tuple[datetime, int] | None = None, limit: int = 50
             ) -> list[AuditEntry]:
    """One page of the log, newest first, and a ``view_audit_log`` row saying who read it
    with which filters, committed together: reading the log is itself in the log. Whether
    the reader may is the caller's to check (the audit page, `twin audit`)."""
    with conn.transaction():
        rows = entries(conn, query, before=before, limit=limit)
        detail: dict[str, Any] = {**query.as_detail(), "rows": len(rows)}
        if before is not None:
            detail["older_than"] = before[0].isoformat()
        record(conn, reader_name, reader_role, "view_audit_log", subject_kind="audit_log",
               detail=detail)
    return rows
