"""The control room as production serves it: `twin dashboard` (gunicorn) as a subprocess on a
free port, for every test that goes through real HTTP or a browser."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from twin.services.ports import free_port

TWIN = Path(sys.executable).with_name("twin")
#: Building the app (the base map, the pages) in each worker on a loaded 2-core machine.
READY_S = 180.0


@dataclass
class DashboardProcess:
    base: str
    process: subprocess.Popen[bytes]
    #: Where its stderr (the JSON log lines) goes.
    log_path: Path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()


@contextmanager
def dashboard_process(database_url: str, *, workers: int = 2, threads: int = 8,
                      secret: str = "test", env: dict[str, str] | None = None,
                      args: tuple[str, ...] = ()) -> Iterator[DashboardProcess]:
    """`twin dashboard` on the twin at `database_url`, answering /healthz; stopped after."""
    port = free_port()
    logs = Path(tempfile.mkstemp(prefix="twin-dashboard-", suffix=".log")[1])
    environ = {**os.environ, "TWIN_DATABASE_URL": database_url, "TWIN_DASHBOARD_SECRET": secret,
               "TWIN_LOG_FORMAT": "json", **(env or {})}
    with logs.open("wb") as err:
        process = subprocess.Popen(
            [str(TWIN), "dashboard", "--port", str(port), "--workers", str(workers),
             "--threads", str(threads), *args],
            env=environ, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    served = DashboardProcess(f"http://127.0.0.1:{port}", process, logs)
    try:
        _wait_ready(served)
        yield served
    finally:
        stop(served)
        logs.unlink(missing_ok=True)


def stop(served: DashboardProcess) -> None:
    """SIGTERM to gunicorn's master (it stops its workers), SIGKILL to the group if stuck."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(served.process.pid, signal.SIGKILL)
            served.process.wait(timeout=10)


def _wait_ready(served: DashboardProcess) -> None:
    deadline = time.monotonic() + READY_S
    while True:
        try:
            with urllib.request.urlopen(f"{served.base}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if served.process.poll() is not None:
            raise AssertionError("twin dashboard exited:\n" + "\n".join(served.log_lines()[-40:]))
        if time.monotonic() > deadline:
            raise AssertionError("twin dashboard never answered /healthz:\n"
                                 + "\n".join(served.log_lines()[-40:]))
        time.sleep(0.3)
