"""Logins, sessions and role scopes of the control room, against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboard import audit, auth
from dashboard.auth import AccessDenied, SessionPolicy, User
from twin.errors import TwinError
from twin.store.reads.audit import AuditQuery

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


@pytest.fixture
def users_conn(twin_db_url):
    from twin.store.connection import connect

    with connect(twin_db_url) as conn:
        yield conn


def test_passwords_are_stored_as_scrypt_hashes_and_checked(users_conn) -> None:
    auth.add_user(users_conn, "op", "correct horse", "operator")
    (stored,) = users_conn.execute("SELECT password_hash FROM app_user WHERE name = 'op'").fetchone()
    assert stored.startswith("scrypt:") and "correct horse" not in stored
    assert auth.authenticate(users_conn, "op", "correct horse").role == "operator"
    assert auth.authenticate(users_conn, "op", "wrong horse!") is None
    assert auth.authenticate(users_conn, "nobody", "correct horse") is None
    with pytest.raises(TwinError, match="at least 8"):
        auth.add_user(users_conn, "weak", "short", "operator")
    with pytest.raises(TwinError, match="unknown role"):
        auth.add_user(users_conn, "x", "long enough", "janitor")


def test_a_grid_worker_needs_a_grid_and_acts_as_its_worker(users_conn) -> None:
    with pytest.raises(TwinError, match="needs --grid"):
        auth.add_user(users_conn, "w", "long enough", "grid_worker")
    user = auth.add_user(users_conn, "w", "long enough", "grid_worker", grid_id="wh-guanggu-g2")
    assert user.grid_id == "wh-guanggu-g2" and user.staff_id == "wh-guanggu-s02"
    assert user.community_id == "wh-guanggu"


def test_sessions_expire_when_idle_and_at_their_lifetime(users_conn) -> None:
    user = auth.add_user(users_conn, "op", "correct horse", "operator")
    policy = SessionPolicy(idle=timedelta(minutes=30), lifetime=timedelta(hours=8))
    token = auth.open_session(users_conn, user, now=NOW, policy=policy)
    assert auth.session_user(users_conn, token, now=NOW + timedelta(minutes=20), policy=policy)
    # kept alive by that request: 20 + 25 minutes is still within the idle limit
    assert auth.session_user(users_conn, token, now=NOW + timedelta(minutes=45), policy=policy)
    assert auth.session_user(users_conn, token, now=NOW + timedelta(minutes=80), policy=policy) is None
    # ended for good: the row is gone
    assert auth.session_user(users_conn, token, now=NOW + timedelta(minutes=46), policy=policy) is None

    token = auth.open_session(users_conn, user, now=NOW, policy=policy)
    for minutes in range(20, 8 * 60 + 1, 20):
        alive = auth.session_user(users_conn, token, now=NOW + timedelta(minutes=minutes),
                                  policy=policy)
    assert alive is None  # the lifetime ends it however busy it is


def test_logout_disable_and_a_new_password_end_sessions(users_conn) -> None:
    user = auth.add_user(users_conn, "op", "correct horse", "operator")
    a = auth.open_session(users_conn, user, now=NOW)
    auth.end_session(users_conn, a)
    assert auth.session_user(users_conn, a, now=NOW) is None
    b = auth.open_session(users_conn, user, now=NOW)
    auth.add_user(users_conn, "op", "another horse", "operator")
    assert auth.session_user(users_conn, b, now=NOW) is None
    c = auth.open_session(users_conn, user, now=NOW)
    auth.disable_user(users_conn, "op")
    assert auth.session_user(users_conn, c, now=NOW) is None
    assert auth.authenticate(users_conn, "op", "another horse") is None


def test_pages_and_grids_by_role() -> None:
    admin, operator = User("a", "admin"), User("o", "operator")
    worker, planner = User("w", "grid_worker", grid_id="g1"), User("p", "planner")
    assert auth.can_open(operator, "large_screen") and not auth.can_open(worker, "large_screen")
    assert not auth.can_open(planner, "building") and auth.can_open(planner, "planner")
    assert auth.can_open(worker, "worker") and not auth.can_open(operator, "worker")
    auth.require_grid(worker, "g1", what="x")
    auth.require_grid(admin, "g2", what="x")
    with pytest.raises(AccessDenied, match="not in w's grid"):
        auth.require_grid(worker, "g2", what="building b9")
    with pytest.raises(AccessDenied, match="aggregates only"):
        auth.require_grid(planner, "g1", what="building b9")
    assert auth.sees_residents_whole(admin) and auth.sees_residents_whole(worker)
    assert not auth.sees_residents_whole(operator) and not auth.sees_residents_whole(planner)


def test_audit_entries_say_who_what_and_when(users_conn) -> None:
    user = auth.add_user(users_conn, "admin", "correct horse", "admin")
    audit.record(users_conn, user, "view_residents_unmasked", subject_kind="unit",
                 subject_id="u1", detail={"residents": ["r1"]})
    (entry,) = audit.entries(users_conn, AuditQuery(actor="admin"))
    assert (entry.user_name, entry.role, entry.action, entry.subject_id) == (
        "admin", "admin", "view_residents_unmasked", "u1")
    assert entry.detail == {"residents": ["r1"]} and entry.time is not None


def test_residents_log_in_by_phone_and_family_follow_one_special_care_resident(
        users_conn) -> None:
    rid, phone = users_conn.execute(
        "SELECT id, phone FROM resident WHERE care_flags = '{}' ORDER BY id LIMIT 1").fetchone()
    cared = users_conn.execute(
        "SELECT id FROM resident WHERE care_flags <> '{}' ORDER BY id LIMIT 1").fetchone()[0]
    with pytest.raises(TwinError, match="needs --resident"):
        auth.add_user(users_conn, phone, "long enough", "resident")
    with pytest.raises(TwinError, match="phone number"):
        auth.add_user(users_conn, "somebody", "long enough", "resident", resident_id=rid)
    with pytest.raises(TwinError, match="takes no --resident"):
        auth.add_user(users_conn, "op", "long enough", "operator", resident_id=rid)
    with pytest.raises(TwinError, match="not in special care"):
        auth.add_user(users_conn, "kin", "long enough", "family", resident_id=rid)
    resident = auth.add_user(users_conn, phone, "long enough", "resident", resident_id=rid)
    assert (resident.resident_id, resident.community_id) == (rid, "wh-guanggu")
    assert auth.authenticate(users_conn, phone, "long enough") == resident
    kin = auth.add_user(users_conn, "kin", "long enough", "family", resident_id=cared)
    assert kin.resident_id == cared and auth.HOME[kin.role] == "/family"
    for page in auth.PAGE_ROLES:
        assert auth.can_open(resident, page) == (page == "resident_app")
        assert auth.can_open(kin, page) == (page == "family")


def test_the_demo_has_a_resident_who_logs_in_by_phone_and_a_family_login(users_conn) -> None:
    from dashboard.demo import DEMO_PASSWORD, seed_users

    users = seed_users(users_conn)
    resident = auth.authenticate(users_conn, users.resident, DEMO_PASSWORD)
    family = auth.authenticate(users_conn, users.family, DEMO_PASSWORD)
    assert resident is not None and resident.role == "resident"
    assert users_conn.execute("SELECT phone FROM resident WHERE id = %s",
                              (resident.resident_id,)).fetchone()[0] == users.resident
    assert family is not None and family.role == "family" and family.resident_id
