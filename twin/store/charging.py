"""A resident's charging session at a pile: the session row and the command to the pile,
committed together; the rules service's outbox publishes the command (as it publishes
its own), and the pile's events move the session on (migration 0024's trigger)."""

from __future__ import annotations

import uuid
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from twin.errors import TwinError
from twin.store.connection import one_row


def queue_command(conn: psycopg.Connection, device_id: str, command: str, args: dict,
                  *, issued_by: str, at: datetime) -> str:
    """A command to a device, in the outbox the rules service publishes; its id."""
    command_id = f"a-{uuid.uuid4().hex[:16]}"
    conn.execute(
        """INSERT INTO device_command (id, device_id, command, args, issued_by, sent_at)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (command_id, device_id, command, Jsonb(args), issued_by, at))
    conn.execute("INSERT INTO rule_outbox (command_id, created_at) VALUES (%s, %s)",
                 (command_id, at))
    return command_id


def start_session(conn: psycopg.Connection, *, community_id: str, device_id: str,
                  resident_id: str, login: str, at: datetime) -> int:
    """A new session at a pile and its ``start`` command; TwinError when the pile or the
    resident already has one open."""
    try:
        with conn.transaction():
            command_id = queue_command(
                conn, device_id, "start", {"plugged_in": True, "subject": resident_id},
                issued_by=f"app:{resident_id}", at=at)
            (sid,) = one_row(conn.execute(
                """INSERT INTO charging_session (community_id, device_id, resident_id, login,
                                                 command_id, requested_at)
                   VALUES (%s, %s, %s, %s, %s, %s) RETURNING id""",
                (community_id, device_id, resident_id, login, command_id, at)),
                "starting a charging session")
    except psycopg.errors.UniqueViolation:
        raise TwinError("this pile, or you, already have a charging session open") from None
    return int(sid)


def request_stop(conn: psycopg.Connection, session_id: int, *, resident_id: str,
                 at: datetime) -> None:
    """The resident asks the pile to stop: a ``stop`` command; the pile's charge_stop ends
    the session."""
    with conn.transaction():
        row = conn.execute(
            """UPDATE charging_session SET stop_requested_at = %s
                WHERE id = %s AND state = 'charging' AND stop_requested_at IS NULL
                RETURNING device_id""", (at, session_id)).fetchone()
        if row is None:
            raise TwinError(f"charging session {session_id} is not charging")
        queue_command(conn, row[0], "stop", {}, issued_by=f"app:{resident_id}", at=at)
