"""The notification outbox in PostgreSQL: claiming, recording tries, finishing (named SQL).

A claim is committed at once: it moves the notification's ``next_attempt_at``
ahead by the lease and stamps it with the claim's token, so the worker holds
no lock while it talks to a mail server. Rows are claimed with ``FOR UPDATE
SKIP LOCKED``: workers claiming at the same moment take different rows. A
worker that dies leaves its claims pending; they are due again when the lease
runs out. Every write after the claim checks the token, so a worker that
outlived its lease cannot overwrite the outcome of the one that took over.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from twin.notify.routing import Contact, Pending


@dataclass(frozen=True, slots=True)
class Claim:
    token: uuid.UUID
    notifications: list[Pending]


def claim(conn: psycopg.Connection, *, now: datetime, batch: int, lease: timedelta) -> Claim:
    """Take up to ``batch`` due notifications, oldest due first, for ``lease``; committed."""
    token = uuid.uuid4()
    with conn.transaction():
        rows = conn.execute(
            """WITH due AS (
                   SELECT id FROM notification
                   WHERE state = 'pending' AND next_attempt_at <= %(now)s
                   ORDER BY next_attempt_at, id
                   LIMIT %(batch)s
                   FOR UPDATE SKIP LOCKED)
               UPDATE notification n
                  SET attempts = n.attempts + 1, next_attempt_at = %(until)s,
                      claim_token = %(token)s
                 FROM due WHERE n.id = due.id
               RETURNING n.id, n.community_id, n.channel, n.recipient, n.message, n.time,
                         n.rule_id, n.attempts,
                         array(SELECT DISTINCT a.transport FROM notification_attempt a
                               WHERE a.notification_id = n.id AND a.ok),
                         n.text_key, n.text_params""",
            {"now": now, "batch": batch, "until": now + lease, "token": token},
        ).fetchall()
    pending = [Pending(id=r[0], community_id=r[1], channel=r[2], recipient=r[3], message=r[4],
                       time=r[5], rule_id=r[6], attempt=r[7], done=frozenset(r[8]),
                       text_key=r[9], text_params=r[10] or {})
               for r in sorted(rows)]
    return Claim(token, pending)


def renew(conn: psycopg.Connection, token: uuid.UUID, notification_id: int, *,
          until: datetime) -> bool:
    """Hold one claimed notification until ``until``, just before trying it; False if lost.

    A batch's lease starts when it is claimed; renewing each notification as
    its turn comes bounds what the lease must cover to one notification's
    transports, however long the batch takes.
    """
    return _update_held(conn, token, notification_id, "next_attempt_at = %s", (until,),
                   release=False)


def record_attempt(conn: psycopg.Connection, token: uuid.UUID, n: Pending, *, transport: str,
                   started_at: datetime, duration_ms: float, ok: bool,
                   error: str | None = None) -> bool:
    """Keep one try of one transport; False if the claim was lost (nothing written)."""
    with conn.transaction():
        cur = conn.execute(
            """INSERT INTO notification_attempt
                   (notification_id, attempt, transport, started_at, duration_ms, ok, error)
               SELECT id, %s, %s, %s, %s, %s, %s FROM notification
               WHERE id = %s AND claim_token = %s AND state = 'pending'""",
            (n.attempt, transport, started_at, duration_ms, ok, error, n.id, token))
        return cur.rowcount == 1


def mark_delivered(conn: psycopg.Connection, token: uuid.UUID, notification_id: int, *,
                   at: datetime, note: str | None = None) -> bool:
    """Delivered at ``at`` (sent_at); ``note`` keeps what a transport could not do."""
    return _update_held(conn, token, notification_id,
                   "state = 'delivered', sent_at = %s, next_attempt_at = NULL, last_error = %s",
                   (at, note))


def retry_at(conn: psycopg.Connection, token: uuid.UUID, notification_id: int, *,
             at: datetime, error: str) -> bool:
    """Back to pending, due again at ``at``."""
    return _update_held(conn, token, notification_id, "next_attempt_at = %s, last_error = %s",
                   (at, error))


def mark_failed(conn: psycopg.Connection, token: uuid.UUID, notification_id: int, *,
                error: str) -> bool:
    """Given up: no more tries; the reason stays in last_error."""
    return _update_held(conn, token, notification_id,
                   "state = 'failed', next_attempt_at = NULL, last_error = %s", (error,))


def staff_contacts(conn: psycopg.Connection, staff_ids: Iterable[str]) -> dict[str, Contact]:
    """Phones and e-mails of staff members, by id."""
    ids = sorted(set(staff_ids))
    if not ids:
        return {}
    rows = conn.execute("SELECT id, phone, email FROM staff WHERE id = ANY(%s)", (ids,))
    return {sid: Contact(phone=phone or None, email=email or None) for sid, phone, email in rows}


def requeue_failed(conn: psycopg.Connection, ids: Iterable[int], *, now: datetime,
                   community_id: str | None = None) -> int:
    """Give failed notifications a new round of tries (after a gateway was fixed); with
    ``community_id``, only that community's (an operator of one community retries theirs)."""
    with conn.transaction():
        cur = conn.execute(
            """UPDATE notification SET state = 'pending', attempts = 0, next_attempt_at = %s,
                                       claim_token = NULL
               WHERE id = ANY(%s) AND state = 'failed'
                 AND (%s::text IS NULL OR community_id = %s)""",
            (now, sorted(set(ids)), community_id, community_id))
        return cur.rowcount


@dataclass(frozen=True, slots=True)
class Failed:
    id: int
    community_id: str
    channel: str
    time: datetime
    attempts: int
    error: str | None


def counts(conn: psycopg.Connection, community_id: str | None = None) -> dict[str, int]:
    """How many notifications are pending, delivered and failed."""
    rows = conn.execute(
        """SELECT state, count(*) FROM notification
           WHERE %(c)s::text IS NULL OR community_id = %(c)s GROUP BY state""",
        {"c": community_id}).fetchall()
    found = {state: int(n) for state, n in rows}
    return {state: found.get(state, 0) for state in ("pending", "delivered", "failed")}


def failed(conn: psycopg.Connection, *, community_id: str | None = None,
           limit: int = 50) -> list[Failed]:
    """The latest failed notifications with their reasons (no recipient: personal data)."""
    rows = conn.execute(
        """SELECT id, community_id, channel, time, attempts, last_error FROM notification
           WHERE state = 'failed' AND (%(c)s::text IS NULL OR community_id = %(c)s)
           ORDER BY time DESC LIMIT %(n)s""", {"c": community_id, "n": limit}).fetchall()
    return [Failed(*r) for r in rows]


# --- private -----------------------------------------------------------------------------

def _update_held(conn: psycopg.Connection, token: uuid.UUID, notification_id: int, sets: str,
            params: tuple[object, ...], *, release: bool = True) -> bool:
    """Update a notification this claim still holds (and let go of it, unless ``release``)."""
    if release:
        sets += ", claim_token = NULL"
    with conn.transaction():
        cur = conn.execute(
            f"""UPDATE notification SET {sets}
                WHERE id = %s AND claim_token = %s AND state = 'pending'""",
            (*params, notification_id, token))
        return cur.rowcount == 1
