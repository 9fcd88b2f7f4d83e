"""The control room's app factory: a Flask server with logins, and the Dash pages on it.

    app = create_app("postgresql://...")       # a dash.Dash; app.server is the Flask app
    app.run(host="127.0.0.1", port=8050)

Every request but the login page and static files needs a live session; a
request without one gets the login page (pages) or 401 (callbacks). Pages
check their roles in their layout, and every service call checks again.
"""

from __future__ import annotations

import html
import math
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import dash
import flask
import psycopg
from flask_compress import Compress
from psycopg.errors import QueryCanceled
from psycopg_pool import ConnectionPool, PoolTimeout

from dashboard import audit, auth, inputs, request_log, security
from dashboard.context import Context, Settings, ctx
from dashboard.i18n import DEFAULT_LANG, t
from dashboard.pages import PAGES
from dashboard.photos import NOT_AN_IMAGE, served_type
from dashboard.shell import register_callbacks as register_shell_callbacks
from dashboard.shell import shell
from twin.calendars import DEFAULT_TIMEZONE
from twin.errors import TwinError
from twin.store.connection import open_pool, ping
from twin.store.reads.scope import communities_of
from twin.store.reads.texts import community_timezone

_ASSETS = Path(__file__).with_name("assets")
#: What needs no session: these paths exactly, and the files under these folders. Never a
#: bare prefix: "/loginx" is not "/login", and Dash would answer it with the page shell.
_OPEN_PATHS = frozenset({"/login", "/healthz", "/_favicon.ico", "/favicon.ico"})
_OPEN_FOLDERS = ("/_dash-component-suites/", "/assets/")
_TOKEN = "twin_session"
#: Answers compressed with brotli or gzip, as the browser asks (plotly's 3.5 MB bundle
#: travels as about 1 MB); small answers are sent as they are.
_COMPRESS = Compress()
#: How long /healthz waits for a pooled connection before it says the database is down.
_HEALTH_WAIT_S = 2.0


def create_app(
    database_url: str,
    *,
    settings: Settings | None = None,
    secret_key: str | None = None,
    pool: ConnectionPool | None = None,
) -> dash.Dash:
    """The dashboard for the twin at `database_url`: the community settings.community_id, or
    every community loaded (one, or a district)."""
    settings = settings or Settings()
    pool = pool or open_pool(database_url, min_size=2, max_size=settings.pool_size,
                             statement_timeout_s=settings.statement_timeout_s)
    with pool.connection() as conn:
        communities = communities_of(conn, settings.community_id)
        # every time on a page is on the community's clock (the first shown, for a district)
        zone = ZoneInfo(community_timezone(conn, communities[0]) if communities
                        else DEFAULT_TIMEZONE)

    server = flask.Flask(__name__)
    server.config.update(
        SECRET_KEY=secret_key or os.environ.get("TWIN_DASHBOARD_SECRET") or secrets.token_hex(32),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="twin_dashboard",
        PERMANENT_SESSION_LIFETIME=settings.session.lifetime,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        COMPRESS_ALGORITHM=["br", "gzip"],
        COMPRESS_ALGORITHM_STREAMING=["br", "gzip"],  # files (plotly, deck.gl) are streamed
        TWIN=Context(pool=pool, communities=communities, settings=settings, zone=zone),
    )
    request_log.install(server)  # first: the request id is bound before anything logs
    _add_auth_routes(server)

    app = dash.Dash(
        # Dash's annotations say bool and str; its docs (and code) take a Flask app and None.
        __name__, server=server,  # type: ignore[arg-type]
        use_pages=True, pages_folder="", assets_folder=str(_ASSETS),
        serve_locally=True, suppress_callback_exceptions=True,
        update_title=None,  # type: ignore[arg-type]
        title=t("app.title", DEFAULT_LANG),
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    for page in PAGES:
        dash.register_page(page.__name__, path=page.PATH, path_template=page.PATH_TEMPLATE,
                           layout=page.layout, title=t("app.title", DEFAULT_LANG), name=page.NAME)
        page.register_callbacks(app)
    for page in PAGES:  # build what the first page load would otherwise wait for
        getattr(page, "warm_up", lambda _context: None)(server.config["TWIN"])
    register_shell_callbacks(app)
    app.layout = shell
    security.protect(app, settings)  # last: the CSP allows the callbacks' inline scripts
    _COMPRESS.init_app(server)
    return app


# --- logins ---------------------------------------------------------------------------

def _refuse_nul(path: str) -> tuple[flask.Response, int] | None:
    """A callback whose input holds a NUL character: refused with a 400 here. PostgreSQL
    takes no NUL in text (nor \\u0000 in jsonb), and its error quotes the text up to it,
    which a 500's trace would then copy into the log."""
    if path.startswith("/_dash-") and flask.request.method == "POST":
        body = flask.request.get_data(cache=True)
        if b"\\u0000" in body or b"\x00" in body:
            return flask.jsonify({"error": "a text may not hold a NUL character"}), 400
    return None


def _add_auth_routes(server: flask.Flask) -> None:
    @server.before_request
    def _require_session():
        path = flask.request.path
        flask.g.user = None
        token = flask.session.get(_TOKEN)
        if token:
            with ctx().pool.connection() as conn:
                flask.g.user = auth.session_user(conn, token, now=_now(),
                                                 policy=ctx().settings.session)
            if flask.g.user is None:
                flask.session.pop(_TOKEN, None)
                flask.g.session_ended = True
        if flask.g.user is not None:
            return _refuse_nul(path)
        if _is_open(path):
            return None
        if path.startswith("/_dash-") or flask.request.method != "GET":
            return flask.jsonify({"error": "login required"}), 401
        expired = "&expired=1" if getattr(flask.g, "session_ended", False) else ""
        return flask.redirect(f"/login?next={_safe_next(flask.request.full_path)}{expired}")

    def address_locked(limit: security.RequestLimit) -> flask.Response:
        """Too many wrong logins from this address: refused, audited (without the address,
        which is personal data), and said in the page's language."""
        until = datetime.fromtimestamp(limit.reset_at, UTC)
        with ctx().pool.connection() as conn:
            audit.record(conn, _typed_name()[:inputs.USERNAME_CHARS], "login_locked", role="",
                         detail={"by": "address", "until": until.isoformat()})
        lang = _login_lang()
        return flask.Response(_login_page(lang, _locked(until, lang)), status=429,
                              mimetype="text/html")

    @server.route("/login", methods=["GET", "POST"])
    @security.login_throttle(server, server.config["TWIN"].settings, address_locked)
    def login():
        lang = _login_lang()
        error = ""
        if flask.request.method == "POST":
            security.check_form()
            name = _typed_name()
            password = flask.request.form.get("password", "")
            if len(name) > inputs.USERNAME_CHARS or len(password) > inputs.PASSWORD_CHARS:
                return _login_page(lang, t("input.too_long", lang).format(
                    limit=inputs.USERNAME_CHARS if len(name) > inputs.USERNAME_CHARS
                    else inputs.PASSWORD_CHARS)), 400
            policy = ctx().settings.login
            now = _now()
            user = None
            with ctx().pool.connection() as conn:
                locked = auth.login_locked_until(conn, name, now=now, policy=policy)
                if locked is not None:  # the right password too: nothing is checked
                    audit.record(conn, name, "login_locked", role="",
                                 detail={"by": "user", "until": locked.isoformat()})
                    return _login_page(lang, _locked(locked, lang)), 429
                user = auth.authenticate(conn, name, password)
                if user is None:
                    audit.record(conn, name, "login_failed", role="")
                    error = t("login.failed", lang)
                else:
                    token = auth.open_session(conn, user, now=now,
                                              policy=ctx().settings.session)
                    audit.record(conn, user, "login")
            if user is not None:
                flask.session.clear()
                flask.session[_TOKEN] = token
                flask.session.permanent = True
                # The forms' CSRF token goes into the session cookie now, with the login: made
                # later, by the page's layout request, it would be lost whenever a request
                # running beside that one (a callback) answered with the cookie it came with.
                security.form_token()
                target = _safe_next(flask.request.args.get("next") or "")
                if target in ("", "/") or not target.startswith("/"):
                    target = auth.HOME[user.role]
                return flask.redirect(target)
        elif flask.request.args.get("expired"):
            error = t("login.expired", lang)
        return _login_page(lang, error), (401 if error and flask.request.method == "POST" else 200)

    @server.route("/logout", methods=["POST"])
    def logout():
        security.check_form()
        token = flask.session.pop(_TOKEN, None)
        if token:
            with ctx().pool.connection() as conn:
                if flask.g.user is not None:
                    audit.record(conn, flask.g.user, "logout")
                auth.end_session(conn, token)
        return flask.redirect("/login", code=303)

    @server.route("/lang/<code>", methods=["POST"])
    def set_lang(code: str):
        security.check_form()
        if code in auth.LANGS:
            with ctx().pool.connection() as conn:
                auth.set_language(conn, flask.g.user.name, code)
        return flask.redirect(_safe_next(_back()), code=303)

    @server.errorhandler(security.CSRFError)
    def _stale_form(_error):
        """A form without this session's token: a forged post, or a page left open across a
        restart. Nothing was done; say so in the reader's language."""
        if flask.request.path == "/login":
            return _login_page(_login_lang(), t("form.stale", _login_lang())), 400
        user = flask.g.get("user")
        return flask.Response(t("form.stale", user.lang if user else DEFAULT_LANG),
                              status=400, mimetype="text/plain")

    @server.route("/healthz")
    def healthz():
        """This worker can answer and reach the database (200), or not (503): what a load
        balancer or Prometheus asks; it says nothing about the twin's contents."""
        try:
            with ctx().pool.connection(timeout=_HEALTH_WAIT_S) as conn:
                ping(conn)
            database = True
        except (psycopg.Error, PoolTimeout):
            database = False
        body = {"ok": database, "database": "up" if database else "down",
                "worker": os.getpid()}
        return flask.jsonify(body), 200 if database else 503

    @server.route("/photo/<int:order_id>/<int:index>")
    def photo(order_id: int, index: int):
        from dashboard.scoped import order_for_user
        from twin.store.operations import work_order_photos

        with ctx().pool.connection() as conn:
            try:
                order_for_user(conn, flask.g.user, order_id, asked="photo")  # audits a refusal
            except auth.AccessDenied:
                flask.abort(403)
            photos = work_order_photos(conn, order_id)
        if not 0 <= index < len(photos):
            flask.abort(404)
        kind = served_type(photos[index])
        response = flask.Response(photos[index].data, mimetype=kind)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Disposition"] = (
            "inline" if kind != NOT_AN_IMAGE
            else f'attachment; filename="photo-{order_id}-{index}"')
        response.headers["Cache-Control"] = "private, max-age=3600"
        # opened on its own, a photo may do nothing but be an image
        response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
        return response

    @server.errorhandler(auth.AccessDenied)
    def _denied(error):
        return flask.jsonify({"error": str(error)}), 403

    @server.errorhandler(TwinError)
    def _bad_input(error):
        """A callback's input named nothing there is, or was not what it must be: the
        browser (or whoever posted it) is told why, with nothing changed."""
        return flask.jsonify({"error": str(error)}), 400

    @server.errorhandler(QueryCanceled)
    def _too_long(_error):
        """A statement ran past its class's timeout (Settings.statement_timeout_s): the
        connection is free again; tell the reader, not a 500."""
        user = flask.g.get("user")
        return flask.jsonify({"error": t("busy", user.lang if user else DEFAULT_LANG)}), 503


def _login_page(lang: str, error: str) -> str:
    other = "en" if lang == DEFAULT_LANG else DEFAULT_LANG
    nxt = html.escape(_safe_next(flask.request.args.get("next") or ""), quote=True)
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(t('app.title', lang))}</title>
<link rel="stylesheet" href="/assets/control_room.css"></head>
<body class="login-body">
<form class="login-card" method="post" action="/login?next={nxt}&lang={lang}">
  <div class="login-logo">◆</div>
  <h1>{html.escape(t('app.title', lang))}</h1>
  <label>{html.escape(t('login.user', lang))}
    <input id="username" name="username" autocomplete="username" required autofocus></label>
  <label>{html.escape(t('login.password', lang))}
    <input id="password" name="password" type="password" autocomplete="current-password" required>
  </label>
  <input type="hidden" name="csrf_token" value="{html.escape(security.form_token(), quote=True)}">
  <div class="login-error" id="login-error">{html.escape(error)}</div>
  <button id="login-submit" type="submit">{html.escape(t('login.submit', lang))}</button>
  <a class="login-lang" href="/login?lang={other}&next={nxt}">{t('nav.lang', lang)}</a>
</form></body></html>"""


def _typed_name() -> str:
    """The user name of a login post ("?" if none was typed; a NUL, which no name holds and
    PostgreSQL refuses, as "?" too)."""
    name = flask.request.form.get("username", "").strip()
    return name if name and "\x00" not in name else "?"


def _locked(until: datetime, lang: str) -> str:
    minutes = max(1, math.ceil((until - _now()).total_seconds() / 60))
    return t("login.locked", lang).format(minutes=minutes)


def _login_lang() -> str:
    lang = flask.request.args.get("lang", DEFAULT_LANG)
    return lang if lang in auth.LANGS else DEFAULT_LANG


def _back() -> str:
    """Where a form posted from a page should return: that page (path and query)."""
    parts = urlsplit(flask.request.referrer or "/")
    return parts.path + (f"?{parts.query}" if parts.query else "") or "/"


def _is_open(path: str) -> bool:
    return path in _OPEN_PATHS or (path.startswith(_OPEN_FOLDERS) and ".." not in path)


def _safe_next(target: str) -> str:
    """Only a path on this site: never an absolute URL (an open redirect)."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target.rstrip("?")


def _now() -> datetime:
    return datetime.now(UTC)
