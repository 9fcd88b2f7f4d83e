"""Logins of the control room, read. Their writes are `twin.store.users`; the User type
is `twin.access`'s."""

from __future__ import annotations

from datetime import datetime

import psycopg

from twin.access import User
from twin.errors import TwinError
from twin.store.users import USER_COLUMNS

_COLUMNS = ", ".join(USER_COLUMNS)


def user(conn: psycopg.Connection, name: str) -> User:
    row = conn.execute(f"SELECT {_COLUMNS} FROM app_user WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise TwinError(f"there is no user {name!r}")
    return User(*row)


def users(conn: psycopg.Connection) -> list[tuple[User, bool]]:
    """Every login, by name, with whether it is disabled."""
    rows = conn.execute(f"SELECT {_COLUMNS}, disabled FROM app_user ORDER BY name").fetchall()
    return [(User(*r[:-1]), bool(r[-1])) for r in rows]


def credentials(conn: psycopg.Connection, name: str) -> tuple[User, str, bool] | None:
    """(user, password hash, disabled) of a login, or None if there is none: what a login
    is checked against."""
    row = conn.execute(
        f"SELECT {_COLUMNS}, password_hash, disabled FROM app_user WHERE name = %s", (name,),
    ).fetchone()
    if row is None:
        return None
    *fields, pw_hash, disabled = row
    return User(*fields), pw_hash, bool(disabled)


def login_failures(conn: psycopg.Connection, name: str, *, since: datetime, limit: int
                   ) -> list[datetime]:
    """The newest `limit` wrong-password attempts at `name` (the audit log's `login_failed`
    rows) after `since` and after its last successful login, newest first."""
    rows = conn.execute(
        """
        SELECT time FROM audit_log
        WHERE user_name = %(n)s AND action = 'login_failed' AND time > %(since)s
          AND time > coalesce((SELECT max(time) FROM audit_log
                               WHERE user_name = %(n)s AND action = 'login'
                                 AND time > %(since)s), '-infinity')
        ORDER BY time DESC LIMIT %(k)s
        """,
        {"n": name, "since": since, "k": limit},
    ).fetchall()
    return [r[0] for r in rows]
