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
#: The include file that switches authentication on (written by `twin broker-config`).
AUTH_CONF = "auth.conf"


class EmbeddedMosquitto:
    """A broker whose configuration, persistence and log live in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.conf = self.directory / "mosquitto.conf"
        self.pid_file = self.directory / "mosquitto.pid"
        #: Extra configuration files, read in order after the main file.
        self.include_dir = self.directory / "conf.d"
        #: When present, its password and ACL files replace anonymous access.
        self.auth_conf = self.include_dir / AUTH_CONF

    @property
    def authenticated(self) -> bool:
        """Whether clients must log in (an ``auth.conf`` is in ``conf.d``)."""
        return self.auth_conf.exists()

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
                                text=True, check=False)
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

    def reload(self) -> bool:
        """Make a running broker reread its configuration, password and ACL files (SIGHUP).

        The main file is rewritten first (same port), so that it agrees with
        whether ``conf.d/auth.conf`` is there now. The broker applies the new
        files on its next loop turn, within a moment of this call returning;
        clients that the new files no longer admit are disconnected.

        Returns
        -------
        bool
            False when the broker is not running (it reads the files when it starts).
        """
        pid = self._pid()
        if pid is None or not self.running():
            return False
        self._write_conf(self.port)
        # Before its handler is installed, SIGHUP would end a broker that is still starting.
        _wait_for_handler(pid, signal.SIGHUP, timeout=10)
        os.kill(pid, signal.SIGHUP)
        return True

    def _write_conf(self, port: int) -> None:
        # Mosquitto 2.0 keeps the last allow_anonymous it reads (across include files)
        # and refuses a second password_file, so anonymous access is said in exactly
        # one place: here without auth.conf, in auth.conf with it.
        anonymous = (f"# allow_anonymous: see {self.auth_conf}" if self.authenticated
                     else "allow_anonymous true")
        text = "\n".join([
            "# Written by twin; the broker of the embedded stack.",
            "per_listener_settings false",
            f"listener {port} 127.0.0.1",
            anonymous,
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
        # Atomically: a broker reloading now must never read half a file.
        tmp = self.conf.with_name(f".{self.conf.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(self.conf)

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


def _wait_for_handler(pid: int, signum: int, *, timeout: float) -> None:
    """Wait until process ``pid`` catches ``signum`` (Linux /proc); elsewhere, return at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return
        match = re.search(r"^SigCgt:\s*([0-9a-f]+)", status, re.MULTILINE)
        if match is None or int(match.group(1), 16) & (1 << (signum - 1)):
            return
        time.sleep(0.02)


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
