"""Logins of the control room and their sessions: the writes of `app_user` and `app_session`.

Only hashes are stored here (of passwords and of session tokens); making them, and the
rules of who may do what, to `twin.access` (where the User type lives). Reads of users are
`twin.store.reads.users`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg

from twin.access import User  # a login, as the policy knows it; stored here

#: The columns of `app_user` that make a User, in its fields' order.
USER_COLUMNS = ("name", "role", "display_name", "community_id", "grid_id", "staff_id", "lang",
                "resident_id")


def save_user(conn: psycopg.Connection, user: User, *, password_hash: str) -> None:
    """Create a login, or replace the password, role and scope of one (and enable it); the
    sessions opened under the old ones end, in the same transaction."""
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO app_user (name, display_name, password_hash, role, community_id,
                                  grid_id, staff_id, lang, resident_id)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
                display_name = excluded.display_name, password_hash = excluded.password_hash,
                role = excluded.role, community_id = excluded.community_id,
                grid_id = excluded.grid_id, staff_id = excluded.staff_id,
                lang = excluded.lang, resident_id = excluded.resident_id, disabled = false
            """,
            (user.name, user.display_name, password_hash, user.role, user.community_id,
             user.grid_id, user.staff_id, user.lang, user.resident_id),
        )
        conn.execute("DELETE FROM app_session WHERE user_name = %s", (user.name,))


def disable_user(conn: psycopg.Connection, name: str) -> bool:
    """Disable a login and end its sessions; False if there is no such login."""
    with conn.transaction():
        if conn.execute("UPDATE app_user SET disabled = true WHERE name = %s",
                        (name,)).rowcount == 0:
            return False
        conn.execute("DELETE FROM app_session WHERE user_name = %s", (name,))
    return True


def set_language(conn: psycopg.Connection, name: str, lang: str) -> None:
    conn.execute("UPDATE app_user SET lang = %s WHERE name = %s", (lang, name))


def open_session(conn: psycopg.Connection, token_hash: str, user_name: str, *, now: datetime,
                 expires_at: datetime) -> None:
    conn.execute(
        """INSERT INTO app_session (token_hash, user_name, created_at, last_seen, expires_at)
           VALUES (%s, %s, %s, %s, %s)""",
        (token_hash, user_name, now, now, expires_at),
    )


def touch_session(conn: psycopg.Connection, token_hash: str, *, now: datetime,
                  idle: timedelta) -> User | None:
    """The user of a live session, whose idle clock starts again now; None if the session
    has expired, idled out, or its user is disabled (the session row is left to the caller)."""
    row = conn.execute(
        f"""
        UPDATE app_session s SET last_seen = %(now)s
        FROM app_user u
        WHERE s.token_hash = %(t)s AND u.name = s.user_name AND NOT u.disabled
          AND s.expires_at > %(now)s AND s.last_seen > %(now)s - %(idle)s
        RETURNING {", ".join(f"u.{c}" for c in USER_COLUMNS)}
        """,
        {"t": token_hash, "now": now, "idle": idle},
    ).fetchone()
    return None if row is None else User(*row)


def end_session(conn: psycopg.Connection, token_hash: str) -> None:
    conn.execute("DELETE FROM app_session WHERE token_hash = %s", (token_hash,))


def purge_sessions(conn: psycopg.Connection, *, now: datetime, idle: timedelta) -> int:
    """Delete the sessions that have expired or idled out; returns how many."""
    return conn.execute(
        "DELETE FROM app_session WHERE expires_at <= %s OR last_seen <= %s",
        (now, now - idle),
    ).rowcount
