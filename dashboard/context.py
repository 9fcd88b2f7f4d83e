"""Per-app state the pages reach from inside a request: pool, community, settings, user."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import flask
import psycopg
from psycopg_pool import ConnectionPool

from dashboard.auth import LoginPolicy, SessionPolicy
from dashboard.i18n import DEFAULT_LANG, t
from dashboard.live import LiveCache
from twin.access import User
from twin.calendars import DEFAULT_TIMEZONE
from twin.store.connection import statement_timeout


@dataclass
class Settings:
    """What `create_app` is told; every field has a production default."""

    community_id: str | None = None
    session: SessionPolicy = field(default_factory=SessionPolicy)
    #: Wrong passwords: when a user name, and an address, are refused for a while.
    login: LoginPolicy = field(default_factory=LoginPolicy)
    #: An online raster basemap ("https://.../{z}/{x}/{y}.png"); None draws only the twin.
    tile_url: str | None = None
    #: How often an open large screen asks for changes.
    live_interval_ms: int = 1000
    #: Charts and slow aggregates refresh this often.
    chart_interval_ms: int = 30_000
    full_devices_limit: int = 5000
    #: Connections in this process's pool: one per request thread, a few for background
    #: refreshes (`twin dashboard` sets it from --threads; times the workers, it must fit the
    #: database's max_connections).
    pool_size: int = 12
    #: How long the static base map (geometry) is cached.
    base_map_ttl_s: float = 600.0
    #: How long the device counts (total, reporting, EV chargers) are shared between tabs.
    device_counts_ttl_s: float = 5.0
    #: Above this many buildings the walkways are left off the base map (a district).
    walkway_buildings_limit: int = 1000
    #: Statement timeouts by query class: what a page or a tick reads (a person waits for
    #: it), and what-if runs, exports and the base map (built once, then in the background).
    statement_timeout_s: float = 5.0
    long_statement_timeout_s: float = 120.0
    #: The largest request body (Flask's MAX_CONTENT_LENGTH; 413 past it): a photo of at
    #: most 5 MB, base64-encoded, with the page's state.
    max_body_bytes: int = 8 * 1024 * 1024
    #: The session cookie is sent over HTTPS only: set it when a proxy serves the control
    #: room over HTTPS (TWIN_DASHBOARD_SECURE_COOKIES=1).
    secure_cookies: bool = field(
        default_factory=lambda: _env_flag("TWIN_DASHBOARD_SECURE_COOKIES"))
    #: How many reverse proxies in front set X-Forwarded-For and -Proto (0: none, the
    #: client's own address is the one throttled). TWIN_DASHBOARD_PROXIES.
    trusted_proxies: int = field(
        default_factory=lambda: int(os.environ.get("TWIN_DASHBOARD_PROXIES") or 0))
    #: Where the per-address login counts live: in each process by default; a redis://
    #: URL shares them between worker processes. TWIN_DASHBOARD_RATELIMIT_STORAGE.
    ratelimit_storage: str = field(
        default_factory=lambda: os.environ.get("TWIN_DASHBOARD_RATELIMIT_STORAGE")
        or "memory://")
    #: How many processes count an address's wrong logins apart (`twin dashboard`'s workers,
    #: with counts in memory): each allows its share of `LoginPolicy.address_failures`, so
    #: that the address gets no more than that in all (rounded up per worker).
    login_processes: int = 1


@dataclass
class Context:
    pool: ConnectionPool
    #: The communities shown: one, or every one loaded (a district).
    communities: list[str]
    settings: Settings
    #: The community's time zone (`community.timezone`), read when the app starts.
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))
    live: LiveCache = field(default_factory=LiveCache)
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    _refreshing: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scope_key(self) -> str:
        return ",".join(self.communities) if len(self.communities) < 4 else \
            f"{self.communities[0]}+{len(self.communities) - 1}"

    def cached(self, key: str, ttl_s: float, build: Callable[[], Any]) -> Any:
        """A value built at most once per `ttl_s` (the base map, the device counts).

        Only the very first request waits for it: once built, an expired value is still
        answered while a background thread builds its successor (stale while revalidating),
        so no page load pays for rebuilding the district's base map."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                if time.monotonic() - hit[0] >= ttl_s and key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key, build), daemon=True,
                                     name=f"refresh {key}").start()
                return hit[1]
        value = build()
        with self._lock:
            self._cache[key] = (time.monotonic(), value)
        return value

    @contextmanager
    def long_connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in one transaction with the long statement timeout: for
        what-if runs, exports and the base map, not for what a page reads on every tick."""
        with self.pool.connection() as conn, \
                statement_timeout(conn, self.settings.long_statement_timeout_s):
            yield conn

    def _refresh(self, key: str, build: Callable[[], Any]) -> None:
        try:
            value = build()
            with self._lock:
                self._cache[key] = (time.monotonic(), value)
        finally:
            with self._lock:
                self._refreshing.discard(key)


def _env_flag(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"{name} must be 1 or 0 (true or false), not {value!r}")


def ctx() -> Context:
    return flask.current_app.config["TWIN"]


def current_user() -> User:
    user = getattr(flask.g, "user", None)
    if user is None:  # before_request lets no request without a session reach a page
        flask.abort(401)
    return user


def zone() -> ZoneInfo:
    """The time zone every time on a page is shown in: the community's."""
    return ctx().zone if flask.has_app_context() and "TWIN" in flask.current_app.config \
        else ZoneInfo(DEFAULT_TIMEZONE)


def local_now() -> datetime:
    """Now, on the community's clock."""
    return datetime.now(zone())


def lang() -> str:
    """The current user's language; the default outside a request."""
    if not flask.has_app_context():
        return DEFAULT_LANG
    user = getattr(flask.g, "user", None)
    return user.lang if user is not None else DEFAULT_LANG


def tr(key: str) -> str:
    """The label in the current user's language."""
    return t(key, lang())
