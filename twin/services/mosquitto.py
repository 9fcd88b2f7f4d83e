"""A private Mosquitto broker on a free loopback port, run by the twin.

It admits nobody anonymous: from its first start it reads a password file and
an ACL (``conf.d/auth.conf``) for the stack's own accounts, with passwords
derived from the installation's secret (``<directory>/secret``, mode 0600;
see ``twin.services.broker_accounts``). `twin broker-config` rewrites the
same files with the registry's devices in them.
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

from twin.errors import MissingComponentError, TwinError
from twin.services.broker_accounts import (
    ADMIN,
    AUTH_CONF,
    PASSWORD_FILE,
    RUNNING_SERVICES,
    SECRET_FILE,
    load_secret,
    service_credentials,
    write_service_accounts,
)
from twin.services.ports import free_port, port_in_use, wait_for_port

INSTALL_HINT = "run scripts/install-system.sh as root, or set TWIN_MQTT_URL to a broker"


class EmbeddedMosquitto:
    """A broker whose configuration, persistence and log live in one directory."""

    def __init__(self, directory: Path, *,
                 services: Sequence[str] = RUNNING_SERVICES, tls: bool = False) -> None:
        """
        Parameters
        ----------
        directory
            Its configuration, secret, password and ACL files, persistence and log.
        services
            The stack's accounts it admits before `twin broker-config` has run:
            ``twin-admin``, ``twin-ingest`` and ``twin-rules`` by default; the
            test suite adds ``twin-simulator``.
        tls
            Listen with TLS too, on a second port, with a certificate signed by the
            installation's own CA (``<directory>/tls/``; twin.services.tls). The plain
            listener stays, on loopback only.
        """
        self.directory = Path(directory)
        self.conf = self.directory / "mosquitto.conf"
        self.pid_file = self.directory / "mosquitto.pid"
        #: Extra configuration files, read in order after the main file.
        self.include_dir = self.directory / "conf.d"
        #: Names the password and ACL files and refuses anonymous clients.
        self.auth_conf = self.include_dir / AUTH_CONF
        self.password_file = self.include_dir / PASSWORD_FILE
        #: The installation's secret, from which every password is derived.
        self.secret_file = self.directory / SECRET_FILE
        self.services = tuple(services)
        self.tls = tls
        self.tls_dir = self.directory / "tls"

    @property
    def port(self) -> int:
        match = re.search(r"^listener\s+(\d+)", self.conf.read_text(), re.MULTILINE)
        if not match:
            raise TwinError(f"{self.conf} names no listener port")
        return int(match.group(1))

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (None without one)."""
        match = re.search(r"^listener\s+(\d+)[^\n]*\ncafile ", self.conf.read_text(),
                          re.MULTILINE)
        return int(match.group(1)) if match else None

    @property
    def ca_file(self) -> Path:
        """The CA a TLS client must trust (made with the listener)."""
        return self.tls_dir / "ca.crt"

    @property
    def tls_url(self) -> str:
        """The TLS listener's address, naming the CA to trust (no credentials)."""
        port = self.tls_port
        if port is None:
            raise TwinError(f"the broker in {self.directory} has no TLS listener")
        return f"mqtts://localhost:{port}?ca={quote(str(self.ca_file), safe='/')}"

    def service_tls_url(self, name: str) -> str:
        """The TLS address with the credentials of the stack's account ``name``."""
        user, password = self.credentials(name)
        return self.tls_url.replace("mqtts://", f"mqtts://{quote(user, safe='')}:"
                                                f"{quote(password, safe='')}@", 1)

    @property
    def url(self) -> str:
        """The address, without credentials (safe to print); services add their own."""
        return f"mqtt://127.0.0.1:{self.port}"

    def credentials(self, name: str) -> tuple[str, str]:
        """(username, password) of the stack's account ``name`` (``twin-admin``, ...)."""
        return service_credentials(load_secret(self.secret_file, create=False), name)

    def service_url(self, name: str) -> str:
        """The address with the credentials of the stack's account ``name``."""
        user, password = self.credentials(name)
        return f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        """The address with ``twin-admin``'s credentials: every topic, for tools and tests."""
        return self.service_url(ADMIN)

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
        self._ensure_accounts()
        port = self.port if self.conf.exists() else free_port()
        if port_in_use(port):
            port = free_port()
        tls_port = None
        if self.tls:
            tls_port = (self.tls_port if self.conf.exists() else None) or free_port()
            if port_in_use(tls_port) or tls_port == port:
                tls_port = free_port()
        self._write_conf(port, tls_port)
        self.pid_file.unlink(missing_ok=True)
        result = subprocess.run([binary, "-c", str(self.conf), "-d"], capture_output=True,
                                text=True, check=False)
        if result.returncode != 0 or not wait_for_port(port, timeout=10) or \
                (tls_port is not None and not wait_for_port(tls_port, timeout=10)):
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

        The main file is rewritten first (same port), and the stack's own
        accounts written again if ``conf.d/auth.conf`` went missing, so the
        broker never falls back to admitting anonymous clients. The broker
        applies the new files on its next loop turn, within a moment of this
        call returning; clients that the new files no longer admit are
        disconnected.

        Returns
        -------
        bool
            False when the broker is not running (it reads the files when it starts).
        """
        pid = self._pid()
        if pid is None or not self.running():
            return False
        self._ensure_accounts()
        self._write_conf(self.port, self.tls_port)
        # Before its handler is installed, SIGHUP would end a broker that is still starting.
        _wait_for_handler(pid, signal.SIGHUP, timeout=10)
        os.kill(pid, signal.SIGHUP)
        return True

    def _ensure_accounts(self) -> None:
        """The stack's own accounts, unless ``auth.conf`` (theirs or `twin broker-config`'s)
        is there; the secret is created on first use."""
        if not self.auth_conf.exists():
            write_service_accounts(self.include_dir, secret=load_secret(self.secret_file),
                                   services=self.services)

    def _write_conf(self, port: int, tls_port: int | None = None) -> None:
        # Mosquitto 2.0 keeps the last allow_anonymous it reads (across include files)
        # and refuses a second password_file, so both are said in exactly one place:
        # auth.conf, which _ensure_accounts always writes first.
        text = "\n".join([
            "# Written by twin; the broker of the embedded stack.",
            "per_listener_settings false",
            f"listener {port} 127.0.0.1",
            f"# allow_anonymous false, password_file and acl_file: see {self.auth_conf}",
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
            *self._tls_listener(tls_port),
            f"include_dir {self.include_dir}",
            "",
        ])
        # Atomically: a broker reloading now must never read half a file.
        tmp = self.conf.with_name(f".{self.conf.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(self.conf)

    def _tls_listener(self, tls_port: int | None) -> list[str]:
        """The TLS listener's lines (the same accounts and ACLs: per_listener_settings is
        off), with the certificates made on first use."""
        if tls_port is None:
            return []
        from twin.services.tls import ensure_certificates

        files = ensure_certificates(self.tls_dir)
        return [f"listener {tls_port} 127.0.0.1", f"cafile {files.ca}",
                f"certfile {files.cert}", f"keyfile {files.key}", "tls_version tlsv1.2"]

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
