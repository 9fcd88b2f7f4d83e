"""The control room over HTTP, as a browser or an attacker meets it (issue 15): which
paths are open, the security headers, forms that change state, login throttling, the
size of what a user may send, and photos. Real PostgreSQL, Flask's test client.
"""

from __future__ import annotations

import pytest

from dashboard.app import create_app
from dashboard.demo import DEMO_PASSWORD, seed_operations, seed_users
from twin.store.connection import connect


@pytest.fixture
def room(twin_db_url):
    with connect(twin_db_url) as conn:
        users = seed_users(conn)
        ids = seed_operations(conn)
    app = create_app(twin_db_url, secret_key="test")
    yield app, users, ids, twin_db_url
    app.server.config["TWIN"].pool.close()


def _audit(url: str, *actions: str) -> list[tuple[str, str]]:
    with connect(url) as conn:
        return conn.execute("SELECT user_name, action FROM audit_log WHERE action = ANY(%s) "
                            "ORDER BY id", (list(actions),)).fetchall()


# --- which paths are open ------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/loginx", "/healthzfoo", "/login/../", "/_favicon.icox",
                                  "/assetsx/control_room.css", "/assets/../worker"])
def test_only_exact_open_paths_skip_the_login(room, path: str) -> None:
    app, *_ = room
    resp = app.server.test_client().get(path)
    assert resp.status_code == 302 and resp.location.startswith("/login?next="), path


def test_the_open_paths_stay_open(room) -> None:
    app, *_ = room
    client = app.server.test_client()
    assert client.get("/login").status_code == 200
    assert client.get("/healthz").json == {"ok": True}
    assert client.get("/assets/control_room.css").status_code == 200
