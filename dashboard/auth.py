"""Who may log in, and for how long; what each role may open and do is `twin.access`.

Passwords are stored as werkzeug scrypt hashes; sessions live in the database
(`app_session`) and the browser holds only a random token, so a session ends
for good on logout, on expiry or when its user is disabled.

The roles, the pages and actions each may use and the grid that bounds a grid
worker are the policy in `twin.access`, which the service functions ask whichever
way they are called; it is re-exported here for the pages.
Only an admin reads the audit log (the audit page, `dashboard.audit.read_log`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from werkzeug.security import check_password_hash, generate_password_hash

from twin.access import (
    PAGE_ROLES,
    PEOPLE,
    ROLES,
    UNMASKED_ROLES,
    AccessDenied,
    User,
    can_open,
    require_grid,
    require_page,
    sees_residents_whole,
)
from twin.errors import TwinError
from twin.store import users as stored
from twin.store.queries import communities
from twin.store.reads import users as read
from twin.store.reads.grids import grid_owner
from twin.store.reads.residents import resident_home
from twin.store.reads.staff import staff_exists

__all__ = [
    "HOME", "LANGS", "PAGE_ROLES", "ROLES", "UNMASKED_ROLES", "AccessDenied", "LoginPolicy",
    "SessionPolicy", "User", "add_user", "authenticate", "can_open", "disable_user",
    "end_session", "get_user", "hash_password", "list_users", "locked_until",
    "login_locked_until", "open_session", "purge_sessions", "require_grid", "require_page",
    "sees_residents_whole", "session_user", "set_language",
]

LANGS: tuple[str, ...] = ("zh-CN", "en")

#: Where each role lands after logging in.
HOME: dict[str, str] = {
    "admin": "/", "operator": "/", "grid_worker": "/worker", "planner": "/planner",
    "resident": "/m", "family": "/family",
}

MIN_PASSWORD = 8
_DUMMY_HASH = generate_password_hash("not a password at all", method="scrypt")


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    """A session ends after `idle` without a request, and after `lifetime` in any case."""

    idle: timedelta = timedelta(minutes=30)
    lifetime: timedelta = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """How wrong passwords are slowed down.

    `max_failures` wrong passwords for one user name within `window` lock that name for
    `lockout` after the last of them: the right password is refused too. Counting starts
    again after a successful login. One address may send `address_failures` wrong logins
    per `window` (whatever the names), then it is refused until the oldest leaves the window.
    """

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    address_failures: int = 20


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
    resident_id: str | None = None,
) -> User:
    """Create (or replace the password and role of) a login; its old sessions end.

    A resident's or a family member's login is bound to a resident (``resident_id``) and
    to the community they live in; a resident logs in by their phone number, so their
    login's name is the phone number the twin holds for them."""
    if role not in ROLES:
        raise TwinError(f"unknown role {role!r}; expected one of {ROLES}")
    if lang not in LANGS:
        raise TwinError(f"unknown language {lang!r}; expected one of {LANGS}")
    if role == "grid_worker" and not grid_id:
        raise TwinError("a grid worker needs --grid: the grid they look after")
    if (role in PEOPLE) != (resident_id is not None):
        raise TwinError(f"a {role} login {'needs' if role in PEOPLE else 'takes no'} --resident")
    if resident_id is not None:
        home = resident_home(conn, resident_id)
        if home is None:
            raise TwinError(f"there is no resident {resident_id!r} in the twin")
        if role == "resident" and name != home.phone:
            raise TwinError("a resident logs in by phone number: the login's name must be "
                            "the phone number the twin holds for them")
        if role == "family" and not home.care_flags:
            raise TwinError(f"resident {resident_id} is not in special care: a family login "
                            "follows a special-care resident's status")
        community_id, grid_id, staff_id = home.community_id, None, None
    if grid_id is not None:
        owner = grid_owner(conn, grid_id)
        community_id = community_id or owner.community_id
        if role == "grid_worker" and staff_id is None:
            staff_id = owner.grid_worker_id
    if staff_id is not None and not staff_exists(conn, staff_id):
        raise TwinError(f"there is no staff member {staff_id!r} in the twin")
    if community_id is None:
        found = communities(conn)
        community_id = found[0][0] if len(found) == 1 else None
    stored.save_user(conn, User(name, role, display_name, community_id, grid_id, staff_id, lang,
                                resident_id), password_hash=hash_password(password))
    return get_user(conn, name)


def get_user(conn: psycopg.Connection, name: str) -> User:
    return read.user(conn, name)


def list_users(conn: psycopg.Connection) -> list[tuple[User, bool]]:
    return read.users(conn)


def disable_user(conn: psycopg.Connection, name: str) -> None:
    if not stored.disable_user(conn, name):
        raise TwinError(f"there is no user {name!r}")


def set_language(conn: psycopg.Connection, name: str, lang: str) -> None:
    if lang not in LANGS:
        raise TwinError(f"unknown language {lang!r}; expected one of {LANGS}")
    stored.set_language(conn, name, lang)


def authenticate(conn: psycopg.Connection, name: str, password: str) -> User | None:
    """The user if the password is theirs and they are not disabled; None otherwise."""
    found = read.credentials(conn, name)
    if found is None:
        check_password_hash(_DUMMY_HASH, password)  # the same time as a wrong password
        return None
    user, pw_hash, disabled = found
    if disabled or not check_password_hash(pw_hash, password):
        return None
    return user


def locked_until(failures: Sequence[datetime], *, policy: LoginPolicy) -> datetime | None:
    """When a user name that had these wrong passwords (newest first, since its last
    successful login) may log in again; None if they do not lock it (pure)."""
    if policy.max_failures < 1 or len(failures) < policy.max_failures:
        return None
    newest, oldest = failures[0], failures[policy.max_failures - 1]
    if newest - oldest > policy.window:
        return None
    return newest + policy.lockout


def login_locked_until(conn: psycopg.Connection, name: str, *, now: datetime,
                       policy: LoginPolicy = LoginPolicy()) -> datetime | None:
    """When `name` may log in again, if its wrong passwords (the `login_failed` rows of the
    audit log) lock it now; None if it is not locked. A name that is no login locks alike,
    so a lockout tells nobody which names exist."""
    failures = read.login_failures(conn, name, since=now - policy.window - policy.lockout,
                                   limit=policy.max_failures)
    until = locked_until(failures, policy=policy)
    return until if until is not None and until > now else None


# --- sessions ------------------------------------------------------------------------

def open_session(
    conn: psycopg.Connection, user: User, *, now: datetime, policy: SessionPolicy = SessionPolicy()
) -> str:
    """A new session for `user`; returns the token the browser keeps (the table keeps its
    SHA-256 only)."""
    token = secrets.token_urlsafe(32)
    stored.open_session(conn, _token_hash(token), user.name, now=now,
                        expires_at=now + policy.lifetime)
    return token


def session_user(
    conn: psycopg.Connection, token: str, *, now: datetime,
    policy: SessionPolicy = SessionPolicy(),
) -> User | None:
    """The user of a live session (and the session is kept alive), or None if it has ended."""
    user = stored.touch_session(conn, _token_hash(token), now=now, idle=policy.idle)
    if user is None:
        stored.end_session(conn, _token_hash(token))
    return user


def end_session(conn: psycopg.Connection, token: str) -> None:
    stored.end_session(conn, _token_hash(token))


def purge_sessions(conn: psycopg.Connection, *, now: datetime,
                   policy: SessionPolicy = SessionPolicy()) -> int:
    return stored.purge_sessions(conn, now=now, idle=policy.idle)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
