"""How the control room is served in production: gunicorn with threaded (gthread) workers,
each building its own app (its own connection pool) after the fork.

`twin dashboard` is the one way in, and the tests that go through real HTTP start it as a
subprocess, so that they meet what production sends. Why gunicorn: it is the well-kept
pre-fork WSGI server on Debian and PyPI; several worker processes use both cores (one
Python process cannot), a worker that dies is replaced, and gthread workers keep Dash's
concurrent callbacks of one page from queueing behind each other. See docs/deploy.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import flask
import gunicorn.http.wsgi
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from twin import logs

#: What the `Server` header says: not the server's or Python's version (which tells an
#: attacker which known flaws to try).
SERVER_NAME = "community-twin"

log = logging.getLogger("twin.dashboard")


@dataclass(frozen=True, slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8050
    #: Worker processes; each holds its own pool of `pool_size` connections.
    workers: int = 2
    #: Requests each worker answers at once (a page's callbacks run side by side).
    threads: int = 8
    #: A request running longer than this kills its worker (a stuck statement is cut
    #: earlier, by the statement timeouts).
    timeout_s: int = 180
    #: Seconds a stopping worker may finish what it answers.
    graceful_timeout_s: int = 20


def pool_size(threads: int) -> int:
    """Connections one worker needs: one per request thread, and a few for the background
    refreshes of the cached base map and counts."""
    return threads + 4


def serve(factory: Callable[[], flask.Flask], options: ServeOptions) -> None:
    """Serve `factory()` (called once in each worker) until SIGINT or SIGTERM."""
    _DashboardServer(factory, options).run()


class _DashboardServer(BaseApplication):
    """gunicorn configured in code: no gunicorn.conf.py or command line of its own to read."""

    def __init__(self, factory: Callable[[], flask.Flask], options: ServeOptions) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        o = self._options
        settings: dict[str, Any] = {
            "bind": [f"[{o.host}]:{o.port}" if ":" in o.host else f"{o.host}:{o.port}"],
            "workers": o.workers,
            "worker_class": "gthread",
            "threads": o.threads,
            "timeout": o.timeout_s,
            "graceful_timeout": o.graceful_timeout_s,
            "keepalive": 5,
            # each worker builds its own app after the fork: a psycopg pool and its
            # threads do not survive a fork
            "preload_app": False,
            # the app logs each request itself, as JSON with its request id
            "accesslog": None,
            "errorlog": "-",
            "logger_class": _Logger,
            "proc_name": "twin-dashboard",
            # gunicorn 23+ opens a control socket in $HOME by default: one path for every
            # dashboard of a user (several would fight over it), and nothing the twin uses
            "control_socket_disable": True,
            # headers and request lines past these get 400/431 from gunicorn itself
            "limit_request_line": 8190,
            "limit_request_fields": 100,
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> flask.Flask:
        return self._factory()


class _Logger(GunicornLogger):
    """gunicorn's own messages (workers booting, dying) in the twin's log format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(logs.formatter())


def _hide_version() -> None:
    """gunicorn writes `Server: gunicorn` (its name) on every answer; say ours instead."""
    gunicorn.http.wsgi.SERVER = SERVER_NAME  # read by Response() for each answer


_hide_version()
