"""How the control room is served: one function, used by `twin dashboard` and by the tests
that go through real HTTP, so that they meet what production sends."""

from __future__ import annotations

import dash
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler
from werkzeug.serving import make_server as _make_server

#: What the `Server` header says: not the server's or Python's version (which tells an
#: attacker which known flaws to try).
SERVER_NAME = "community-twin"


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without its `Werkzeug/x.y Python/x.y` banner."""

    def version_string(self) -> str:
        return SERVER_NAME


def make_server(app: dash.Dash, host: str, port: int) -> BaseWSGIServer:
    """A threaded HTTP server for `app` (call `serve_forever`, and `shutdown` from another
    thread)."""
    return _make_server(host, port, app.server, threaded=True, request_handler=_QuietHandler)
