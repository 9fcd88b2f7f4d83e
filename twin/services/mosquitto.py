"""A private Mosquitto broker on a free loopback port, run by the twin."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

from twin.errors import MissingComponentError, TwinError
from twin.services.ports import free_port, port_in_use, wait_for_port

INSTALL_HINT = "run scripts/install-system.sh as root, or set TWIN_MQTT_URL to a broker"


class EmbeddedMosquitto:
    """A broker whose configuration, persistence and log live in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.conf = self.directory / "mosquitto.conf"
        self.pid_file = self.directory / "mosquitto.pid"
        #: Extra configuration files (password and ACL files come here later).
        self.include_dir = self.directory / "conf.d"

    @property
    def port(self) -> int:
        match = re.search(r"^listener\s+(\d+)", self.conf.read_text(), re.MULTILINE)
        if not match:
            raise TwinError(f"{self.conf} names no listener port")
        return int(match.group(1))

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def running(self) -> bool:
        pid = self._pid()
        return pid is not None and _alive(pid) and port_in_use(self.port)

    def start(self) -> str:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise MissingComponentError(f"mosquitto is not installed: {INSTALL_HINT}")
        if self.running():
            return self.url
        self.directory.mkdir(parents=True, exist_ok=True)
        self.include_dir.mkdir(exist_ok=True)
        port = self.port if self.conf.exists() else free_port()
        if port_in_use(port):
            port = free_port()
        self._write_conf(port)
        self.pid_file.unlink(missing_ok=True)
        result = subprocess.run([binary, "-c", str(self.conf), "-d"], capture_output=True,
                                text=True)
        if result.returncode != 0 or not wait_for_port(port, timeout=10):
            raise TwinError(f"the embedded Mosquitto did not start: {self._tail()}")
        return self.url

    def stop(self) -> None:
        pid = self._pid()
        if pid is None or not _alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def _write_conf(self, port: int) -> None:
        self.conf.write_text(
            "\n".join([
                "# Written by twin; the broker of the embedded stack.",
                "per_listener_settings false",
                f"listener {port} 127.0.0.1",
                "allow_anonymous true",
                "persistence true",
                f"persistence_location {self.directory}/",
                f"pid_file {self.pid_file}",
                f"log_dest file {self.directory / 'mosquitto.log'}",
                "log_type error",
                "log_type warning",
                "log_type notice",
                # Running as root, Mosquitto would switch to its own user, which
                # cannot write here; stay whoever started it.
                f"user {getpass.getuser()}",
                "max_queued_messages 1000000",
                "max_inflight_messages 1000",
                f"include_dir {self.include_dir}",
                "",
            ])
        )

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _tail(self) -> str:
        log = self.directory / "mosquitto.log"
        try:
            lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "no broker log was written"
        return lines[-1] if lines else "the broker log is empty"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still answers kill(0); look at its state too.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
