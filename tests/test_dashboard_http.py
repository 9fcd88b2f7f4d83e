"""The control room over HTTP, as a browser or an attacker meets it (issue 15): which
paths are open, the security headers, forms that change state, login throttling, the
size of what a user may send, and photos. Real PostgreSQL, Flask's test client.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re

import pytest

from dashboard.app import create_app
from dashboard.demo import DEMO_PASSWORD, seed_users
from tests.control_room import as_user
from twin.store.connection import connect


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
    health = client.get("/healthz").json
    assert health["ok"] is True and health["database"] == "up"
    assert client.get("/assets/control_room.css").status_code == 200


# --- security headers ----------------------------------------------------------------------

def _login(client, name: str, password: str = DEMO_PASSWORD, **form):
    """Log in the way the form does: the page first (for its CSRF token), then the post."""
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    data = {"username": name, "password": password, **form}
    if token is not None:
        data.setdefault("csrf_token", token.group(1))
    return client.post("/login", data=data)


def _csp(resp) -> dict[str, list[str]]:
    policy = resp.headers["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in policy.split(";")) if d}


def test_every_response_carries_the_security_headers(room) -> None:
    app, users, *_ = room
    client = app.server.test_client()
    answers = [client.get("/login"), client.get("/"), client.post("/_dash-update-component",
                                                                  json={})]
    assert _login(client, users.operator).status_code == 302
    shell = client.get("/")
    answers += [shell, client.get("/assets/control_room.css"), client.get("/_dash-layout")]
    for resp in answers:
        assert resp.headers["X-Frame-Options"] == "DENY", resp.request.path
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        csp = _csp(resp)
        assert csp["default-src"] == ["'self'"] and csp["frame-ancestors"] == ["'none'"]
        assert csp["object-src"] == ["'none'"] and csp["form-action"] == ["'self'"]
        assert not {"'unsafe-inline'", "'unsafe-eval'", "*"} & set(csp["script-src"])
    # the page shell's inline scripts (Dash's renderer, the clientside callbacks) run by hash
    html = re.sub(r"<!--.*?-->", "", shell.get_data(as_text=True), flags=re.DOTALL)
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>(.*?)</script>",
                        html, re.DOTALL)
    assert len(inline) >= 2
    allowed = set(_csp(shell)["script-src"])
    for script in inline:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in allowed, script[:60]


def test_an_online_tile_server_is_the_one_other_origin_allowed(twin_db_url) -> None:
    from dashboard.context import Settings

    app = create_app(twin_db_url, secret_key="test",
                     settings=Settings(tile_url="https://{s}.tiles.example.org/{z}/{x}/{y}.png"))
    try:
        csp = _csp(app.server.test_client().get("/login"))
    finally:
        app.server.config["TWIN"].pool.close()
    assert "https://*.tiles.example.org" in csp["img-src"]
    assert "https://*.tiles.example.org" in csp["connect-src"]
    assert csp["script-src"][0] == "'self'" and not any("example" in s for s in csp["script-src"])


def test_responses_name_no_server_or_python_version(twin_db_url) -> None:
    """Through `twin dashboard` itself (gunicorn, as production), not the test client (which
    has no server)."""
    import urllib.request

    from tests.dashboard_process import dashboard_process

    with dashboard_process(twin_db_url, workers=1, threads=2) as served, \
            urllib.request.urlopen(f"{served.base}/login", timeout=30) as answer:
        headers = answer.headers
    banner = " ".join(headers.get_all("Server") or [])  # not "gunicorn" nor "Python/3.11"
    assert "Werkzeug" not in banner and "Python" not in banner and "gunicorn" not in banner
    assert not re.search(r"\d", banner), banner  # no version of any server
    assert headers["X-Frame-Options"] == "DENY" and "Content-Security-Policy" in headers


# --- forms that change state ---------------------------------------------------------------

def _token(client) -> str:
    """This session's CSRF token, as the login form carries it."""
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_logout_and_the_language_change_nothing_on_get(room) -> None:
    app, users, _, url = room
    client = app.server.test_client()
    assert _login(client, users.operator).status_code == 302
    for path in ("/logout", "/lang/en", "/logout?next=/", "/lang/en?next=/"):
        assert client.get(path).status_code in (200, 404, 405), path  # no redirect: no action
    assert client.get("/work-orders").status_code == 200  # still logged in
    with connect(url) as conn:
        assert conn.execute("SELECT lang FROM app_user WHERE name = %s",
                            (users.operator,)).fetchone() == ("zh-CN",)
    assert _audit(url, "logout") == []


def test_logout_and_the_language_are_posts_with_the_sessions_token(room) -> None:
    app, users, _, url = room
    client = app.server.test_client()
    assert _login(client, users.operator).status_code == 302
    # a forged post (no token, or another session's) does nothing
    assert client.post("/lang/en").status_code == 400
    other = app.server.test_client()
    assert client.post("/logout", data={"csrf_token": _token(other)}).status_code == 400
    assert client.get("/work-orders").status_code == 200
    # the top bar's forms carry the token and post where the routes listen
    layout = client.get("/_dash-layout").get_data(as_text=True)
    forms = {f["props"]["action"]: f["props"]["children"][0]["props"]
             for f in _components(json.loads(layout), "Form")}
    assert set(forms) == {"/lang/en", "/logout"}
    token = forms["/logout"]["value"]
    assert forms["/logout"]["name"] == "csrf_token" and forms["/lang/en"]["value"] == token
    resp = client.post("/lang/en", data={"csrf_token": token},
                       headers={"Referer": "http://localhost/work-orders?id=3"})
    assert resp.status_code == 303 and resp.location == "/work-orders?id=3"
    resp = client.post("/logout", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.location == "/login"
    assert client.get("/work-orders").status_code == 302
    with connect(url) as conn:
        assert conn.execute("SELECT lang FROM app_user WHERE name = %s",
                            (users.operator,)).fetchone() == ("en",)
    assert _audit(url, "logout") == [(users.operator, "logout")]


def test_the_forms_token_is_in_the_session_cookie_from_the_login_on(room) -> None:
    """The browser loads a page's layout and its callbacks at once, and each answer sets the
    (signed, client-side) session cookie it came with: a token first made by the layout
    request was overwritten by a callback's answer, and the top bar's forms were refused."""
    app, users, *_ = room
    client = app.server.test_client()
    assert _login(client, users.operator).status_code == 302
    with client.session_transaction() as session:
        stored = session.get("csrf_token")
    assert stored
    # a callback answered with the cookie as it was at the login keeps the token
    client.post("/_dash-update-component", json={})
    with client.session_transaction() as session:
        assert session.get("csrf_token") == stored
    layout = client.get("/_dash-layout").get_data(as_text=True)
    (logout,) = [f for f in _components(json.loads(layout), "Form")
                 if f["props"]["action"] == "/logout"]
    token = logout["props"]["children"][0]["props"]["value"]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303


def test_the_login_form_carries_a_token_and_a_post_without_it_is_refused(room) -> None:
    app, users, _, url = room
    client = app.server.test_client()
    resp = client.post("/login", data={"username": users.operator, "password": DEMO_PASSWORD})
    assert resp.status_code == 400 and "页面已过期".encode() in resp.data
    resp = client.post("/login?lang=en", data={"username": users.operator,
                                                "password": DEMO_PASSWORD, "csrf_token": "x"})
    assert resp.status_code == 400 and b"This page has expired" in resp.data
    assert client.get("/work-orders").status_code == 302  # no session was opened
    assert _audit(url, "login", "login_failed") == []
    assert _login(client, users.operator).status_code == 302


def test_the_session_cookie_is_secure_when_served_over_https(twin_db_url, monkeypatch) -> None:
    from dashboard.context import Settings

    with connect(twin_db_url) as conn:
        users = seed_users(conn)

    def cookie(settings: Settings) -> str:
        app = create_app(twin_db_url, secret_key="test", settings=settings)
        try:
            resp = _login(app.server.test_client(), users.operator)
        finally:
            app.server.config["TWIN"].pool.close()
        assert resp.status_code == 302
        return "; ".join(v for v in resp.headers.get_all("Set-Cookie")
                         if v.startswith("twin_dashboard="))

    plain = cookie(Settings())
    assert "HttpOnly" in plain and "SameSite=Lax" in plain and "Secure" not in plain
    assert "Secure" in cookie(Settings(secure_cookies=True))
    monkeypatch.setenv("TWIN_DASHBOARD_SECURE_COOKIES", "1")
    assert Settings().secure_cookies is True
    monkeypatch.setenv("TWIN_DASHBOARD_SECURE_COOKIES", "perhaps")
    with pytest.raises(ValueError, match="TWIN_DASHBOARD_SECURE_COOKIES"):
        Settings()


def _components(node, kind: str) -> list[dict]:
    """Every component of type `kind` in a layout as Dash serialises it."""
    found = []
    if isinstance(node, dict):
        if node.get("type") == kind:
            found.append(node)
        for value in node.values():
            found += _components(value, kind)
    elif isinstance(node, list):
        for value in node:
            found += _components(value, kind)
    return found


# --- login throttling ----------------------------------------------------------------------

@pytest.fixture
def strict_room(twin_db_url):
    """The demo's logins under a tight policy: 3 wrong passwords lock a name, 6 an address."""
    from datetime import timedelta

    from dashboard.auth import LoginPolicy
    from dashboard.context import Settings

    with connect(twin_db_url) as conn:
        users = seed_users(conn)
    policy = LoginPolicy(max_failures=3, window=timedelta(minutes=15),
                         lockout=timedelta(minutes=15), address_failures=6)
    app = create_app(twin_db_url, secret_key="test", settings=Settings(login=policy))
    yield app, users, twin_db_url, policy
    app.server.config["TWIN"].pool.close()


def test_wrong_passwords_lock_the_name_and_then_even_the_right_one_is_refused(strict_room):
    from datetime import UTC, datetime, timedelta

    from dashboard import auth

    app, users, url, policy = strict_room
    client = app.server.test_client()
    for _ in range(3):
        assert _login(client, users.operator, "wrong horse!").status_code == 401
    refused = _login(client, users.operator)  # the right password
    assert refused.status_code == 429
    assert "登录失败次数过多，请 15 分钟后再试".encode() in refused.data
    assert client.get("/work-orders").status_code == 302  # no session
    english = client.post(
        "/login?lang=en", data={"username": users.operator, "password": DEMO_PASSWORD,
                                "csrf_token": _token(client)})
    assert english.status_code == 429 and b"Too many failed logins: try again in" in english.data
    assert _audit(url, "login_failed", "login_locked", "login") == [
        (users.operator, "login_failed")] * 3 + [(users.operator, "login_locked")] * 2
    with connect(url) as conn:
        (detail,) = conn.execute("SELECT detail FROM audit_log WHERE action = 'login_locked' "
                                 "ORDER BY id LIMIT 1").fetchone()
        assert detail["by"] == "user" and "until" in detail
        # another name, from the same address, is not locked
        assert _login(client, users.admin).status_code == 302
        # the lock ends `lockout` after the last wrong password
        now = datetime.now(UTC)
        assert auth.login_locked_until(conn, users.operator, now=now, policy=policy)
        assert auth.login_locked_until(conn, users.operator, now=now + timedelta(minutes=16),
                                       policy=policy) is None


def test_a_name_that_is_no_login_locks_alike_and_a_success_starts_the_count_again(strict_room):
    app, users, _, _ = strict_room
    client = app.server.test_client()
    for _ in range(3):
        assert _login(client, "nobody-here", "guess guess").status_code == 401
    assert _login(client, "nobody-here", "guess guess").status_code == 429  # not 401
    client = app.server.test_client()  # from elsewhere: the address's own count is apart
    client.environ_base["REMOTE_ADDR"] = "10.0.0.2"
    for _ in range(2):
        assert _login(client, users.planner, "wrong horse!").status_code == 401
    assert _login(client, users.planner).status_code == 302
    client.post("/logout", data={"csrf_token": _token(client)})
    for _ in range(2):
        assert _login(client, users.planner, "wrong horse!").status_code == 401
    assert _login(client, users.planner).status_code == 302  # 2 + 2 wrong: no lock


def test_one_address_is_throttled_whatever_the_names(strict_room) -> None:
    app, users, url, _ = strict_room
    attacker = app.server.test_client()
    attacker.environ_base["REMOTE_ADDR"] = "10.9.8.7"
    for i in range(6):  # two wrong passwords per name: no name is locked
        assert _login(attacker, f"guess{i // 2}", "wrong horse!").status_code == 401
    refused = _login(attacker, users.operator)  # even the right password of a good name
    assert refused.status_code == 429 and "登录失败次数过多".encode() in refused.data
    assert attacker.get("/work-orders").status_code == 302
    colleague = app.server.test_client()
    colleague.environ_base["REMOTE_ADDR"] = "10.9.8.6"
    assert _login(colleague, users.operator).status_code == 302
    with connect(url) as conn:
        rows = conn.execute("SELECT user_name, detail FROM audit_log "
                            "WHERE action = 'login_locked'").fetchall()
    assert [(n, d["by"]) for n, d in rows] == [(users.operator, "address")]
    assert "10.9.8.7" not in json.dumps([d for _, d in rows])  # no address in the log


def test_behind_a_proxy_the_forwarded_address_is_throttled(twin_db_url) -> None:
    from datetime import timedelta

    from dashboard.auth import LoginPolicy
    from dashboard.context import Settings

    with connect(twin_db_url) as conn:
        users = seed_users(conn)
    app = create_app(twin_db_url, secret_key="test", settings=Settings(
        login=LoginPolicy(max_failures=10, window=timedelta(minutes=5), address_failures=2),
        trusted_proxies=1))
    try:
        client = app.server.test_client()  # every request comes from the proxy's address

        def login_from(address: str, password: str) -> int:
            return client.post("/login", data={
                "username": users.operator, "password": password,
                "csrf_token": _token(client)},
                headers={"X-Forwarded-For": address}).status_code

        assert [login_from("203.0.113.5", "wrong horse!") for _ in range(2)] == [401, 401]
        assert login_from("203.0.113.5", DEMO_PASSWORD) == 429
        assert login_from("203.0.113.6", DEMO_PASSWORD) == 302
    finally:
        app.server.config["TWIN"].pool.close()


def test_the_lock_is_the_last_failures_within_the_window() -> None:
    from datetime import UTC, datetime, timedelta

    from dashboard.auth import LoginPolicy, locked_until

    policy = LoginPolicy(max_failures=3, window=timedelta(minutes=10),
                         lockout=timedelta(minutes=15))
    t0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    at = [t0 + timedelta(minutes=m) for m in (9, 5, 0)]  # newest first
    assert locked_until(at, policy=policy) == t0 + timedelta(minutes=24)
    assert locked_until(at[:2], policy=policy) is None
    spread = [t0 + timedelta(minutes=m) for m in (11, 5, 0)]  # 11 minutes apart: no lock
    assert locked_until(spread, policy=policy) is None


# --- how much one user may ask for ---------------------------------------------------------

def _pool_requests(app) -> int:
    return app.server.config["TWIN"].pool.get_stats().get("requests_num", 0)


def test_a_huge_look_up_is_refused_before_it_takes_a_connection(room) -> None:
    """A 5 MB look-up held a connection for 36 s; 14 of 1 MB starved the pool."""
    import time

    from dashboard.pages import worker

    app, users, *_ = room
    with as_user(app, users.worker):
        before = _pool_requests(app)
        started = time.monotonic()
        shown = worker.found_list("1栋 " * 1_300_000)  # 5 MB of UTF-8
        assert time.monotonic() - started < 1.0
        assert _pool_requests(app) == before  # no connection was taken
        assert "输入过长：最多 64 个字符" in json.dumps(
            [c.to_plotly_json() for c in shown], default=str, ensure_ascii=False)
        fine = worker.found_list("1栋 101")
        assert _pool_requests(app) == before + 1 and fine  # an ordinary look-up still works


def test_a_note_too_long_is_refused_with_the_order_untouched(room) -> None:
    from dashboard.pages import work_orders
    from twin.store.operations import get_work_order

    app, users, ids, url = room
    with as_user(app, users.operator):
        message = work_orders.perform(ids["order_bin"], "assign", staff_id="wh-guanggu-s01",
                                      note="很" * 2001)
        assert message.startswith("✗") and "2000" in message
    with connect(url) as conn:
        assert get_work_order(conn, ids["order_bin"]).state == "created"


def test_the_page_inputs_say_their_caps_to_the_browser(room) -> None:
    from dashboard.inputs import LOOKUP_CHARS, NOTE_CHARS, SCENARIO_NAME_CHARS
    from dashboard.pages import planner, worker

    app, users, *_ = room
    with as_user(app, users.worker):
        page = json.dumps(worker.layout().to_plotly_json(), default=_plain)
        assert f'"maxLength": {LOOKUP_CHARS}' in page
        cards = json.dumps(worker.task_cards(), default=_plain)
        assert f'"maxLength": {NOTE_CHARS}' in cards
    with as_user(app, users.planner):
        page = json.dumps(planner.layout().to_plotly_json(), default=_plain)
        assert f'"maxLength": {SCENARIO_NAME_CHARS}' in page


def test_a_login_form_with_a_megabyte_in_it_is_refused_without_hashing(room) -> None:
    app, users, _, url = room
    client = app.server.test_client()
    resp = _login(client, users.operator, "x" * 100_000)
    assert resp.status_code in (400, 413) and b"x" * 1000 not in resp.data
    resp = _login(client, "y" * 5000)
    assert resp.status_code == 400 and "输入过长".encode() in resp.data
    assert _audit(url, "login_failed", "login") == []


def test_a_request_body_over_the_cap_is_refused_with_413(room) -> None:
    app, users, *_ = room
    client = app.server.test_client()
    assert _login(client, users.worker).status_code == 302
    cap = app.server.config["MAX_CONTENT_LENGTH"]
    assert cap == 8 * 1024 * 1024
    body = json.dumps({"output": "w-found.children", "outputs": {"id": "w-found",
                       "property": "children"}, "inputs": [{"id": "w-lookup",
                       "property": "value", "value": "1" * (cap + 1)}], "changedPropIds": []})
    resp = client.post("/_dash-update-component", data=body,
                       content_type="application/json")
    assert resp.status_code == 413


def test_statements_time_out_by_class(twin_db_url) -> None:
    """Interactive reads are cut short; what-if runs, exports and the base map get longer;
    the longer limit does not outlive its block on the pooled connection."""
    import psycopg

    from dashboard.context import Settings

    app = create_app(twin_db_url, secret_key="test", settings=Settings(
        statement_timeout_s=0.3, long_statement_timeout_s=5.0))
    c = app.server.config["TWIN"]
    try:
        with c.pool.connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("300ms",)
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(1)")
        with c.long_connection() as conn:
            assert conn.execute("SHOW statement_timeout").fetchone() == ("5s",)
            conn.execute("SELECT pg_sleep(0.5)")
        for _ in range(c.pool.get_stats()["pool_size"]):  # whichever connection comes back
            with c.pool.connection() as conn:
                assert conn.execute("SHOW statement_timeout").fetchone() == ("300ms",)
    finally:
        c.pool.close()


def test_a_statement_cut_short_answers_503_in_the_readers_words(room) -> None:
    import psycopg

    app, users, *_ = room
    server = app.server

    @server.route("/slow-for-test")
    def slow():
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")

    client = server.test_client()
    assert _login(client, users.operator).status_code == 302
    resp = client.get("/slow-for-test")
    assert resp.status_code == 503 and resp.json["error"].startswith("查询超时")


def _plain(value):
    import orjson

    if isinstance(value, orjson.Fragment):
        return orjson.loads(orjson.dumps(value))
    return value.to_plotly_json()


# --- photos --------------------------------------------------------------------------------

def _image(kind: str, size=(8, 6)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, format=kind)
    return out.getvalue()


def _data_url(content_type: str, data: bytes) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize("kind, content_type", [("JPEG", "image/jpeg"), ("PNG", "image/png"),
                                                 ("WEBP", "image/webp")])
def test_a_real_photo_is_kept_under_its_real_type(kind: str, content_type: str) -> None:
    from dashboard.photos import decode_photo

    data = _image(kind)
    assert decode_photo(_data_url(content_type, data)).content_type == content_type
    # the browser's word is not taken: a PNG declared as JPEG is kept as the PNG it is
    other = "image/jpeg" if content_type != "image/jpeg" else "image/png"
    photo = decode_photo(_data_url(other, data))
    assert photo.content_type == content_type and photo.data == data


@pytest.mark.parametrize("data", [
    b"\x89PNG fake but typed",                             # the signature and nothing behind it
    b"<html><script>alert(document.cookie)</script></html>",  # HTML under an image type
    b"\xff\xd8\xff\xe0" + b"\x00" * 64,                    # a JPEG's first bytes only
    None,                                                  # a PNG cut short (below)
])
def test_bytes_that_are_not_an_image_are_refused(data: bytes | None) -> None:
    from dashboard.photos import NotAPhoto, decode_photo

    data = data if data is not None else _image("PNG", (64, 64))[:60]
    with pytest.raises(NotAPhoto, match="JPEG、PNG 或 WebP"):
        decode_photo(_data_url("image/png", data))
    with pytest.raises(NotAPhoto):
        decode_photo("data:text/html;base64," + base64.b64encode(_image("PNG")).decode())
    with pytest.raises(NotAPhoto):
        decode_photo("data:image/png;base64,not*base64!")


def test_a_photo_over_the_size_limits_is_refused() -> None:
    from dashboard.photos import MAX_PHOTO_BYTES, NotAPhoto, checked_photo, decode_photo

    big = _image("JPEG") + b"\x00" * MAX_PHOTO_BYTES
    with pytest.raises(NotAPhoto, match="最多 5 MB"):
        decode_photo(_data_url("image/jpeg", big))
    with pytest.raises(NotAPhoto, match="最多 5 MB"):
        checked_photo(big)
    # small in bytes, enormous in pixels: a decompression bomb
    with pytest.raises(NotAPhoto):
        checked_photo(_image("PNG", (9000, 9000)))


def test_the_worker_is_told_why_a_photo_was_refused_and_the_order_stays(room) -> None:
    from dashboard.pages import work_orders, worker
    from twin.store.operations import get_work_order

    app, users, ids, url = room
    order_id = ids["order_bin"]
    with as_user(app, users.operator):
        assert work_orders.perform(order_id, "assign", staff_id="wh-guanggu-s01").startswith("✓")
    with as_user(app, users.worker):
        for action in ("accept", "arrive"):
            assert work_orders.perform(order_id, action).startswith("✓")
        message = worker.act_on_task(order_id, "resolve", note="done",
                                     contents=_data_url("image/png", b"<svg onload=alert(1)>"))
        assert message == "✗ 照片须为 JPEG、PNG 或 WebP 图片"
        with connect(url) as conn:
            assert get_work_order(conn, order_id).state == "arrived"
        ok = worker.act_on_task(order_id, "resolve", note="done",
                                contents=_data_url("image/png", _image("PNG")))
        assert ok.startswith("✓")


def test_photos_are_served_as_the_image_they_are_with_nosniff(room) -> None:
    from datetime import UTC, datetime

    from dashboard.pages import work_orders
    from twin.store.operations import Photo, act_on_work_order
    from twin.work_orders import Actor

    app, users, ids, url = room
    order_id = ids["order_bin"]
    with as_user(app, users.operator):
        assert work_orders.perform(order_id, "assign", staff_id="wh-guanggu-s01").startswith("✓")
    png = _image("PNG")
    worker_actor = Actor(users.worker, "grid_worker", staff_id="wh-guanggu-s01")
    with connect(url) as conn:  # one checked photo, and one stored before the checks were
        at = datetime.now(UTC)
        act_on_work_order(conn, order_id, "accept", actor=worker_actor,
                          at=at, photo=Photo(content_type="image/png", data=png))
        act_on_work_order(conn, order_id, "arrive", actor=worker_actor,
                          at=at, photo=Photo(content_type="image/png",
                                             data=b"<html><script>alert(1)</script>"))
        conn.commit()
    client = app.server.test_client()
    assert _login(client, users.operator).status_code == 302
    image = client.get(f"/photo/{order_id}/0")
    assert image.status_code == 200 and image.data == png
    assert image.headers["Content-Type"] == "image/png"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in image.headers["Content-Security-Policy"]
    junk = client.get(f"/photo/{order_id}/1")
    assert junk.headers["Content-Type"] == "application/octet-stream"
    assert junk.headers["Content-Disposition"].startswith("attachment")
    assert junk.headers["X-Content-Type-Options"] == "nosniff"
