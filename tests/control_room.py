"""The control room on a fresh sample twin, for tests that call its pages and services:
the app with the demo's logins, alarms and orders, and a request as one of its users."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask

from dashboard import auth
from dashboard.app import create_app
from dashboard.demo import seed_operations, seed_users
from twin.store.connection import connect


@contextmanager
def control_room(url: str) -> Iterator[tuple[Any, Any, Any, str]]:
    """(app, the demo's users, the seeded ids, url) on the twin at ``url``."""
    with connect(url) as conn:
        users = seed_users(conn)
        ids = seed_operations(conn)
    app = create_app(url, secret_key="test")
    try:
        yield app, users, ids, url
    finally:
        app.server.config["TWIN"].pool.close()


@contextmanager
def as_user(app: Any, name: str, path: str = "/") -> Iterator[auth.User]:
    """Inside a request to ``path`` as the user ``name``, as a callback runs."""
    with connect(app.server.config["TWIN"].pool.conninfo) as conn:
        user = auth.get_user(conn, name)
    assert user is not None, name
    with app.server.test_request_context(path):
        flask.g.user = user
        yield user
