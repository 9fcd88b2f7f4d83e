"""The audit log, written: who saw residents whole, who logged in and out, who was refused.

Written in the caller's transaction, so an unmasked read and its audit row commit
together. Reading it back is `twin.store.reads.audit`.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb


def record(conn: psycopg.Connection, user_name: str, role: str, action: str, *,
           subject_kind: str = "", subject_id: str = "",
           detail: dict[str, Any] | None = None) -> None:
    conn.execute(
        """INSERT INTO audit_log (user_name, role, action, subject_kind, subject_id, detail)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (user_name, role, action, subject_kind, subject_id,
         Jsonb(detail or {}, dumps=lambda v: orjson.dumps(v, default=str).decode())),
    )
