"""The control room served the way production serves it (issue 15, production serving):
`twin dashboard` on gunicorn with several workers, compressed answers, a health check
that asks the database, and JSON logs that carry a request id and no personal data.

Every test here starts `twin dashboard` as a subprocess against a real PostgreSQL and talks
to it over real HTTP.
"""

from __future__ import annotations

import gzip
import http.cookiejar
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from dashboard.demo import DEMO_PASSWORD, seed_users
from dashboard.serving import SERVER_NAME
from tests.dashboard_process import dashboard_process
from twin.store.connection import connect


def _get(url: str, headers: dict[str, str] | None = None, opener=None):
    """(status, headers, body) of a GET; an HTTP error is an answer too."""
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with (opener or urllib.request.build_opener()).open(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _post_login(opener, base: str, name: str, password: str) -> int:
    """Post the login form as a browser does: the page first, for its CSRF token."""
    _, _, page = _get(f"{base}/login", opener=opener)
    token = re.search(rb'name="csrf_token" value="([^"]+)"', page).group(1).decode()
    data = urllib.parse.urlencode({"username": name, "password": password,
                                   "csrf_token": token}).encode()
    request = urllib.request.Request(f"{base}/login", data=data)
    try:
        with opener.open(request, timeout=60) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _browser_like():
    return urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), _NoRedirect())


@pytest.fixture(scope="module")
def serving_db(pg, sample_template):
    """A sample twin with the demo's logins, for this module's servers."""
    name = "serving_test"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
    yield url
    pg.drop_database(name)


@pytest.fixture(scope="module")
def production(serving_db):
    with dashboard_process(serving_db, workers=2, threads=4) as served:
        yield served


def test_several_workers_answer_and_name_no_version(production) -> None:
    def ask(_: int) -> tuple[int, dict]:
        status, headers, body = _get(f"{production.base}/healthz")
        return status, {"server": headers.get_all("Server"), **json.loads(body)}

    workers: set[int] = set()
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(8) as pool:
        while len(workers) < 2 and time.monotonic() < deadline:
            for status, answer in pool.map(ask, range(16)):
                assert status == 200 and answer["ok"] is True and answer["database"] == "up"
                assert answer["server"] == [SERVER_NAME]
                workers.add(answer["worker"])
    assert len(workers) == 2, workers
    assert production.process.pid not in workers  # the master only watches its workers


def test_answers_are_compressed_as_the_browser_asks(production) -> None:
    url = f"{production.base}/assets/control_room.css"
    _, _, plain = _get(url, {"Accept-Encoding": "identity"})
    status, headers, body = _get(url, {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in headers["Vary"]
    assert gzip.decompress(body) == plain and len(body) < len(plain) / 2
    status, headers, body = _get(url, {"Accept-Encoding": "br, gzip"})
    assert status == 200 and headers["Content-Encoding"] == "br"
    import brotli

    assert brotli.decompress(body) == plain


def test_the_request_id_is_echoed_and_on_the_log_line(production) -> None:
    status, headers, _ = _get(f"{production.base}/login", {"X-Request-ID": "lb-4711.a"})
    assert status == 200 and headers["X-Request-ID"] == "lb-4711.a"
    # an id that is no plain token is replaced, not echoed into logs and answers
    status, headers, _ = _get(f"{production.base}/login", {"X-Request-ID": "x\" y" * 50})
    made = headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    lines = _json_lines(production, lambda line: line.get("request_id") in ("lb-4711.a", made))
    assert {(line["method"], line["path"], line["status"]) for line in lines} == {
        ("GET", "/login", 200)}
    assert len(lines) == 2 and all(isinstance(line["worker"], int) for line in lines)


def test_log_lines_carry_no_password_or_phone_number(production, serving_db) -> None:
    phone, password = "13912345678", "not-the-password-Zq81"
    opener = _browser_like()
    assert _post_login(opener, production.base, phone, password) == 401
    assert _post_login(opener, production.base, "operator", password) == 401
    assert _post_login(opener, f"{production.base}", "operator", DEMO_PASSWORD) == 302
    text = production.log_path.read_text()
    assert password not in text and phone not in text and DEMO_PASSWORD not in text
    logins = _json_lines(production, lambda line: line.get("path") == "/login"
                         and line.get("method") == "POST")
    assert sorted(line["status"] for line in logins)[-3:] == [302, 401, 401]
    assert all("operator" not in json.dumps(line) for line in logins)  # nor the user


def test_a_user_name_locks_across_workers(production, serving_db) -> None:
    """The lockout counts wrong passwords in the audit log (the database), so it holds
    whichever worker answers each try; the right password is refused after it."""
    statuses = [_post_login(_browser_like(), production.base, "planner", "wrong-password-x")
                for _ in range(5)]
    assert statuses == [401] * 5
    assert _post_login(_browser_like(), production.base, "planner", DEMO_PASSWORD) == 429


def test_healthz_says_503_when_the_database_is_gone_and_the_server_lives_on(pg,
                                                                           sample_template):
    name = "serving_health"
    url = pg.create_database(name, template=sample_template)
    try:
        with dashboard_process(url, workers=1, threads=2) as served:
            assert _get(f"{served.base}/healthz")[0] == 200
            pg.drop_database(name)  # every connection of the pool is cut, none can open
            for _ in range(2):
                status, headers, body = _get(f"{served.base}/healthz")
                assert status == 503, body
                assert json.loads(body)["database"] == "down"
                assert headers["Content-Type"] == "application/json"
            assert served.process.poll() is None
            status, _, _ = _get(f"{served.base}/login")  # pages need no database to refuse
            assert status == 200
    finally:
        pg.drop_database(name)


def _json_lines(served, keep) -> list[dict]:
    """The server's log lines that are JSON objects (all must be) and that `keep` keeps."""
    time.sleep(0.3)  # a worker writes its line just after the answer
    found = []
    for raw in served.log_lines():
        line = json.loads(raw)  # a line that is not JSON fails here
        assert {"ts", "level", "logger", "msg"} <= set(line), raw
        if keep(line):
            found.append(line)
    return found


def _dashboard_refuses(url: str, *args: str) -> str:
    """`twin dashboard` that must not start: its exit status and one-sentence error."""
    import os
    import subprocess

    from tests.dashboard_process import TWIN
    from twin.services.ports import free_port

    done = subprocess.run([str(TWIN), "dashboard", "--port", str(free_port()), *args],
                          env={**os.environ, "TWIN_DATABASE_URL": url, "COLUMNS": "200"},
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "Worker failed to boot" not in done.stderr
    return " ".join(done.stderr.split())


def test_an_empty_twin_is_one_sentence_not_workers_failing_to_boot(db_url) -> None:
    assert "the twin is empty: run `twin load` first" in _dashboard_refuses(db_url)


def test_workers_times_their_pools_must_fit_the_database(serving_db) -> None:
    said = _dashboard_refuses(serving_db, "--workers", "32", "--threads", "64")
    assert "32 workers x 68 connections" in said and "max_connections" in said


def test_one_address_gets_no_more_wrong_logins_with_two_workers_than_with_one(serving_db
                                                                             ) -> None:
    """Each worker counts an address's wrong logins in its own memory and allows half of
    LoginPolicy.address_failures (20): whichever worker answers, 20 is the most in all."""
    from dashboard.auth import LoginPolicy

    limit = LoginPolicy().address_failures

    def wrong(i: int) -> int:  # a new name each time: no name's own lockout kicks in
        return _post_login(_browser_like(), served.base, f"nobody-{i}", "wrong-password-x")

    with dashboard_process(serving_db, workers=2, threads=4) as served:
        # one after another: tries in flight at once all pass the limiter's check before any
        # is counted (flask-limiter counts a failure after its answer), in one worker or two
        statuses: list[int] = []
        for i in range(2 * limit):
            statuses.append(wrong(i))
            if statuses.count(429) >= 3:
                break
        answered = {line["worker"] for line in _json_lines(
            served, lambda line: line.get("path") == "/login" and line.get("method") == "POST")}
    assert set(statuses) == {401, 429}
    assert statuses.count(401) <= limit, statuses
    assert len(answered) == 2  # both workers took tries, and the total still held


def test_oversized_request_lines_and_headers_get_4xx_and_the_server_lives_on(production
                                                                            ) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(production.base)

    def raw(request: bytes) -> int:
        with socket.create_connection((parts.hostname, parts.port), timeout=30) as s:
            s.sendall(request)
            status_line = s.makefile("rb").readline().decode()
        return int(status_line.split()[1])

    assert 400 <= raw(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n") < 500
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    assert 400 <= raw(b"GET /login HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n") < 500
    assert raw(b"BREW /login HTCPCP/1.0\r\n\r\n") == 400
    status, _, body = _get(f"{production.base}/healthz")
    assert status == 200 and json.loads(body)["ok"] is True
