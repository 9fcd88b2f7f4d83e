"""The small HTTP server of each background service (ingest, rules, notifications):
Prometheus' /metrics and a /healthz that says whether the database and the broker are up.

/healthz answers 200 with ``{"ok": true, "database": "up", "broker": "up"}`` when every
connection the service needs is up, else 503 naming what is down (a service that does not
use the broker says ``"broker": "unused"``). A load balancer, systemd's watchdog script or
a compose healthcheck asks it; Prometheus scrapes /metrics from the same port.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from twin.store.connection import connect, ping

#: What a check says of one connection: True up, False down, None not used.
Checks = Callable[[], dict[str, bool | None]]
log = logging.getLogger("twin.health")
#: How long the database probe may take before the service is called unhealthy.
PROBE_TIMEOUT_S = 3.0


def serve(registry: CollectorRegistry, checks: Checks, port: int,
          host: str | None = None) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on `port` (0: a free one; `.server_port` says which) from
    a daemon thread. `host` defaults to TWIN_METRICS_HOST, else loopback only."""
    bind = host or os.environ.get("TWIN_METRICS_HOST") or "127.0.0.1"
    server = ThreadingHTTPServer((bind, port), _handler(registry, checks))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"health:{port}", daemon=True).start()
    return server


def database_reachable(url: str) -> bool:
    """A new connection answers a statement within PROBE_TIMEOUT_S."""
    try:
        with connect(url, timeout=PROBE_TIMEOUT_S) as conn:
            ping(conn)
        return True
    except Exception:  # any failure to connect or answer is "down"; the reason goes to the log
        log.warning("health: the database does not answer", exc_info=True)
        return False


def health(checks: dict[str, bool | None]) -> tuple[int, bytes]:
    """The status and JSON body for these check results."""
    ok = all(up is not False for up in checks.values())
    body = {"ok": ok, **{name: "unused" if up is None else "up" if up else "down"
                         for name, up in checks.items()}}
    return (200 if ok else 503), orjson.dumps(body)


def _handler(registry: CollectorRegistry, checks: Checks) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def version_string(self) -> str:
            """Not Python's version (see dashboard.serving.SERVER_NAME)."""
            return "community-twin"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._answer(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                status, body = health(checks())
                self._answer(status, body, "application/json")
            else:
                self._answer(404, b'{"error": "not found"}', "application/json")

        def _not_allowed(self) -> None:
            """Only GET: anything else is the caller's mistake (405), never a 501."""
            self._answer(405, b'{"error": "only GET"}', "application/json")

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _not_allowed

        def _answer(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Not to stderr, and without the scraper's address."""

    return Handler
