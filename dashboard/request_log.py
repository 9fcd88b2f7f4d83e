"""One log line per HTTP request, under a request id that the answer carries back.

The id is the caller's X-Request-ID (a proxy's, so that its log and ours join up) when it
is a plain token, else a new one; every line logged while the request runs carries it
(twin.logs). A line names the method, the path (never the query string, which may hold
what a user typed), the status and the time taken: never the user, an address or a form.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid

import flask

from twin import logs

HEADER = "X-Request-ID"
#: What a caller's id may be: short, and nothing a log reader would trip over.
_USABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
log = logging.getLogger("twin.dashboard.http")


def request_id() -> str:
    """This request's id (outside a request: empty)."""
    return str(flask.g.get("request_id", "")) if flask.has_request_context() else ""


def install(server: flask.Flask) -> None:
    @server.before_request
    def _begin() -> None:
        given = flask.request.headers.get(HEADER, "")
        rid = given if _USABLE.fullmatch(given) else uuid.uuid4().hex
        flask.g.request_id = rid
        flask.g.request_began = time.perf_counter()
        flask.g.request_log_token = logs.bind(request_id=rid)

    @server.after_request
    def _answer(response: flask.Response) -> flask.Response:
        rid = flask.g.get("request_id")
        if rid is None:  # refused before _begin ran (an earlier before_request answered)
            return response
        response.headers[HEADER] = rid
        began = flask.g.get("request_began", time.perf_counter())
        log.info("%s %s %d", flask.request.method, flask.request.path, response.status_code,
                 extra={"method": flask.request.method, "path": flask.request.path,
                        "status": response.status_code, "worker": os.getpid(),
                        "ms": round((time.perf_counter() - began) * 1000, 1)})
        return response

    @server.teardown_request
    def _end(_error: BaseException | None) -> None:
        token = flask.g.pop("request_log_token", None)
        if token is not None:
            logs.unbind(token)
