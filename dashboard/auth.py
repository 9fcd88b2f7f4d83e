"""Who may log in, for how long, and what each role may open and see.

Passwords are stored as werkzeug scrypt hashes; sessions live in the database
(`app_session`) and the browser holds only a random token, so a session ends
for good on logout, on expiry or when its user is disabled.

Roles:
- admin: everything, residents whole.
- operator: large screen, buildings, work orders; residents masked.
- grid_worker: the worker view and the buildings of their own grid; residents
  of their grid whole (they visit them), nothing outside their grid.
- planner: the planner page with aggregates only; no residents, no devices' rooms.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from werkzeug.security import check_password_hash, generate_password_hash

from twin.errors import TwinError

ROLES: tuple[str, ...] = ("admin", "operator", "grid_worker", "planner")
LANGS: tuple[str, ...] = ("zh-CN", "en")

#: Which roles may open which page.
PAGE_ROLES: dict[str, frozenset[str]] = {
    "large_screen": frozenset({"admin", "operator"}),
    "building": frozenset({"admin", "operator", "grid_worker"}),
    "work_orders": frozenset({"admin", "operator"}),
    "worker": frozenset({"admin", "grid_worker"}),
    "planner": frozenset({"admin", "operator", "planner"}),
}
#: Where each role lands after logging in.
HOME: dict[str, str] = {
    "admin": "/", "operator": "/", "grid_worker": "/worker", "planner": "/planner",
}
#: Roles that see residents' names and phone numbers whole (within their scope).
UNMASKED_ROLES: frozenset[str] = frozenset({"admin", "grid_worker"})

MIN_PASSWORD = 8
_DUMMY_HASH = generate_password_hash("not a password at all", method="scrypt")


class AccessDenied(TwinError):
    """A user asked for something outside their role or their grid."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str
    display_name: str = ""
    community_id: str | None = None
    grid_id: str | None = None
    staff_id: str | None = None
    lang: str = "zh-CN"

    @property
    def label(self) -> str:
        return self.display_name or self.name


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A session ends after `idle` without a request, and after `lifetime` in any case."""

    idle: timedelta = timedelta(minutes=30)
    lifetime: timedelta = timedelta(hours=12)


# --- permissions (pure) --------------------------------------------------------------

def can_open(user: User, page: str) -> bool:
    return user.role in PAGE_ROLES[page]


def require_page(user: User, page: str) -> None:
    if not can_open(user, page):
        raise AccessDenied(f"{user.name} ({user.role}) may not open the {page} page")


def require_grid(user: User, grid_id: str | None, *, what: str) -> None:
    """A grid worker may reach only what lies in their own grid."""
    if user.role == "grid_worker" and grid_id != user.grid_id:
        raise AccessDenied(f"{what} is not in {user.name}'s grid")
    if user.role == "planner":
        raise AccessDenied(f"a planner sees aggregates only, not {what}")


def sees_residents_whole(user: User) -> bool:
    return user.role in UNMASKED_ROLES


# --- users ---------------------------------------------------------------------------

def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise TwinError(f"a password needs at least {MIN_PASSWORD} characters")
    return generate_password_hash(password, method="scrypt")


def add_user(
    conn: psycopg.Connection,
    name: str,
    password: str,
    role: str,
    *,
    community_id: str | None = None,
    grid_id: str | None = None,
    staff_id: str | None = None,
    lang: str = "zh-CN",
    display_name: str = "",
) -> User:
    """Create (or replace the password and role of) a login."""
    if role not in ROLES:
        raise TwinError(f"unknown role {role!r}; expected one of {ROLES}")
    if lang not in LANGS:
        raise TwinError(f"unknown language {lang!r}; expected one of {LANGS}")
    if role == "grid_worker" and not grid_id:
        raise TwinError("a grid worker needs --grid: the grid they look after")
    if grid_id is not None:
        row = conn.execute("SELECT community_id, grid_worker_id FROM grid WHERE id = %s",
                           (grid_id,)).fetchone()
        if row is None:
            raise TwinError(f"there is no grid {grid_id!r} in the twin")
        community_id = community_id or row[0]
        if role == "grid_worker" and staff_id is None:
            staff_id = row[1]
    if staff_id is not None and conn.execute(
            "SELECT 1 FROM staff WHERE id = %s", (staff_id,)).fetchone() is None:
        raise TwinError(f"there is no staff member {staff_id!r} in the twin")
    if community_id is None:
        found = [r[0] for r in conn.execute("SELECT id FROM community ORDER BY id")]
        community_id = found[0] if len(found) == 1 else None
    with conn.transaction():
        conn.execute(
            """
            INSERT INTO app_user (name, display_name, password_hash, role, community_id,
                                  grid_id, staff_id, lang)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET
                display_name = excluded.display_name, password_hash = excluded.password_hash,
                role = excluded.role, community_id = excluded.community_id,
                grid_id = excluded.grid_id, staff_id = excluded.staff_id,
                lang = excluded.lang, disabled = false
            """,
            (name, display_name, hash_password(password), role, community_id, grid_id,
             staff_id, lang),
        )
        # A changed password or role ends the sessions opened with the old one.
        conn.execute("DELETE FROM app_session WHERE user_name = %s", (name,))
    return get_user(conn, name)


def get_user(conn: psycopg.Connection, name: str) -> User:
    row = conn.execute(f"SELECT {_USER_COLUMNS} FROM app_user WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise TwinError(f"there is no user {name!r}")
    return User(*row)


def list_users(conn: psycopg.Connection) -> list[tuple[User, bool]]:
    rows = conn.execute(f"SELECT {_USER_COLUMNS}, disabled FROM app_user ORDER BY name").fetchall()
    return [(User(*r[:-1]), bool(r[-1])) for r in rows]


def disable_user(conn: psycopg.Connection, name: str) -> None:
    with conn.transaction():
        if conn.execute("UPDATE app_user SET disabled = true WHERE name = %s",
                        (name,)).rowcount == 0:
            raise TwinError(f"there is no user {name!r}")
        conn.execute("DELETE FROM app_session WHERE user_name = %s", (name,))


def set_language(conn: psycopg.Connection, name: str, lang: str) -> None:
    if lang not in LANGS:
        raise TwinError(f"unknown language {lang!r}; expected one of {LANGS}")
    conn.execute("UPDATE app_user SET lang = %s WHERE name = %s", (lang, name))


def authenticate(conn: psycopg.Connection, name: str, password: str) -> User | None:
    """The user if the password is theirs and they are not disabled; None otherwise."""
    row = conn.execute(
        f"SELECT {_USER_COLUMNS}, password_hash, disabled FROM app_user WHERE name = %s",
        (name,),
    ).fetchone()
    if row is None:
        check_password_hash(_DUMMY_HASH, password)  # the same time as a wrong password
        return None
    *fields, pw_hash, disabled = row
    if disabled or not check_password_hash(pw_hash, password):
        return None
    return User(*fields)


# --- sessions ------------------------------------------------------------------------

def open_session(
    conn: psycopg.Connection, user: User, *, now: datetime, policy: SessionPolicy = SessionPolicy()
) -> str:
    """A new session for `user`; returns the token the browser keeps."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        """INSERT INTO app_session (token_hash, user_name, created_at, last_seen, expires_at)
           VALUES (%s, %s, %s, %s, %s)""",
        (_token_hash(token), user.name, now, now, now + policy.lifetime),
    )
    return token


def session_user(
    conn: psycopg.Connection, token: str, *, now: datetime,
    policy: SessionPolicy = SessionPolicy(),
) -> User | None:
    """The user of a live session (and the session is kept alive), or None if it has ended."""
    row = conn.execute(
        f"""
        UPDATE app_session s SET last_seen = %(now)s
        FROM app_user u
        WHERE s.token_hash = %(t)s AND u.name = s.user_name AND NOT u.disabled
          AND s.expires_at > %(now)s AND s.last_seen > %(now)s - %(idle)s
        RETURNING {_prefixed('u')}
        """,
        {"t": _token_hash(token), "now": now, "idle": policy.idle},
    ).fetchone()
    if row is None:
        conn.execute("DELETE FROM app_session WHERE token_hash = %s", (_token_hash(token),))
        return None
    return User(*row)


def end_session(conn: psycopg.Connection, token: str) -> None:
    conn.execute("DELETE FROM app_session WHERE token_hash = %s", (_token_hash(token),))


def purge_sessions(conn: psycopg.Connection, *, now: datetime,
                   policy: SessionPolicy = SessionPolicy()) -> int:
    return conn.execute(
        "DELETE FROM app_session WHERE expires_at <= %s OR last_seen <= %s",
        (now, now - policy.idle),
    ).rowcount


_USER_COLUMNS = "name, role, display_name, community_id, grid_id, staff_id, lang"


def _prefixed(alias: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in _USER_COLUMNS.split(","))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
