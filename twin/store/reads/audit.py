"""The audit log, read back newest first, filtered and a page at a time.

It is written by `twin.store.audit`. The control room's audit page and `twin audit`
both read it here. Nothing here knows who is asking: the page checks that the
reader is an admin (`dashboard.audit.read_log`), and audits the read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from twin.errors import TwinError

#: The actions that record a refusal: a request outside the user's role or grid, a wrong
#: password. Every other action records something that was allowed and done.
REFUSALS: tuple[str, ...] = ("denied", "login_failed")
OUTCOMES: tuple[str, ...] = ("allowed", "refused")
#: The longest actor, action or target a filter takes (ids and names are far shorter).
MAX_FILTER_CHARS = 200
#: The most rows one read returns.
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    time: datetime
    user_name: str
    role: str
    action: str
    subject_kind: str
    subject_id: str
    detail: dict[str, Any]

    @property
    def outcome(self) -> str:
        """'refused' for a refusal (`REFUSALS`), 'allowed' for anything else."""
        return "refused" if self.action in REFUSALS else "allowed"

    def detail_line(self, *, items: int = 5,
                    label: Callable[[str], str] = lambda key: key) -> str:
        """The detail on one line: ``key: value; ...``, a list as its first ``items``
        and a count of the rest, each key as ``label`` names it (the reader's words)."""
        parts = []
        for key, value in self.detail.items():
            if isinstance(value, list):
                more = f" (+{len(value) - items})" if len(value) > items else ""
                value = ", ".join(str(v) for v in value[:items]) + more
            parts.append(f"{label(key)}: {value}")
        return "; ".join(parts)

    @property
    def cursor(self) -> tuple[datetime, int]:
        """Where the next (older) page starts: pass it as `entries(..., before=...)`."""
        return (self.time, self.id)


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What to look for; a field left None matches every row.

    actor    the user name, exactly ("?" for failed logins with no name)
    action   one action, exactly (login, login_failed, logout, denied,
             view_residents_unmasked, view_audit_log, ...)
    outcome  'allowed' or 'refused' (`REFUSALS`)
    target   what the row is about: a subject id (a building, unit, staff member,
             order...) or a resident id among those seen whole
    since    from this moment on (inclusive; timezone-aware)
    until    before this moment (exclusive; timezone-aware)
    """

    actor: str | None = None
    action: str | None = None
    outcome: str | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for name in ("actor", "action", "target"):
            value = getattr(self, name)
            if value is not None and len(value) > MAX_FILTER_CHARS:
                raise TwinError(f"the {name} filter is {len(value)} characters long; "
                                f"at most {MAX_FILTER_CHARS}")
        if self.outcome is not None and self.outcome not in OUTCOMES:
            raise TwinError(f"unknown outcome {self.outcome!r}; expected one of {OUTCOMES}")
        for name in ("since", "until"):
            moment = getattr(self, name)
            if moment is not None and moment.tzinfo is None:
                raise TwinError(f"{name} must be timezone-aware")
        if self.since is not None and self.until is not None and self.until <= self.since:
            raise TwinError(f"the time range ends ({self.until:%Y-%m-%d %H:%M}) before it "
                            f"starts ({self.since:%Y-%m-%d %H:%M})")

    def as_detail(self) -> dict[str, str]:
        """The filters that are set, as text (for the audit row of a read of the log)."""
        out = {}
        for name in ("actor", "action", "outcome", "target", "since", "until"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out


def entries(conn: psycopg.Connection, query: AuditQuery | None = None, *,
            before: tuple[datetime, int] | None = None, limit: int = 200
            ) -> list[AuditEntry]:
    """Rows matching `query`, newest first, at most `limit`; with `before` (the `cursor`
    of the last row of a page), only the rows older than it: the next page."""
    query = query or AuditQuery()
    if not 1 <= limit <= MAX_LIMIT:
        raise TwinError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    before_time, before_id = before if before is not None else (None, None)
    rows = conn.execute(
        """SELECT id, time, user_name, role, action, subject_kind, subject_id, detail
           FROM audit_log
           WHERE (%(actor)s::text IS NULL OR user_name = %(actor)s)
             AND (%(action)s::text IS NULL OR action = %(action)s)
             AND (%(outcome)s::text IS NULL
                  OR (action = ANY(%(refusals)s::text[])) = (%(outcome)s = 'refused'))
             AND (%(target)s::text IS NULL
                  OR subject_id = %(target)s OR detail -> 'residents' ? %(target)s)
             AND (%(since)s::timestamptz IS NULL OR time >= %(since)s)
             AND (%(until)s::timestamptz IS NULL OR time < %(until)s)
             AND (%(bt)s::timestamptz IS NULL
                  OR time < %(bt)s OR (time = %(bt)s AND id < %(bi)s))
           ORDER BY time DESC, id DESC
           LIMIT %(n)s""",
        {"actor": query.actor, "action": query.action, "outcome": query.outcome,
         "refusals": list(REFUSALS), "target": query.target, "since": query.since,
         "until": query.until, "bt": before_time, "bi": before_id, "n": limit},
    ).fetchall()
    return [AuditEntry(*r) for r in rows]


def actions(conn: psycopg.Connection) -> list[str]:
    """Every action the log holds, in order (a skip scan of its action index, so a long
    log costs one index probe per action, not a scan)."""
    rows = conn.execute(
        """WITH RECURSIVE found(action) AS (
               (SELECT action FROM audit_log ORDER BY action LIMIT 1)
               UNION ALL
               SELECT (SELECT a.action FROM audit_log a WHERE a.action > found.action
                       ORDER BY a.action LIMIT 1)
               FROM found WHERE found.action IS NOT NULL)
           SELECT action FROM found WHERE action IS NOT NULL"""
    ).fetchall()
    return [r[0] for r in rows]
