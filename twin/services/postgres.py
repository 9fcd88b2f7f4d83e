"""A private PostgreSQL cluster with PostGIS and TimescaleDB, run by the twin.

PostgreSQL refuses to run as root, so when we are root the server's commands
run as the ``postgres`` system user and the data directory belongs to it.

Nobody is trusted. Over TCP (127.0.0.1 only) every login needs a password
(scram-sha-256); the superuser's is generated at initdb and kept beside the
data directory in libpq's password-file format, mode 0600
(``<TWIN_HOME>/pg.pgpass``), and the URL the twin connects with carries it.
The Unix socket in the data directory admits, by peer authentication, only
the operating-system users that ``pg_ident.conf`` maps to the superuser: the
server's own user and whoever created the cluster. A cluster created before
this (``trust``) is closed the next time it starts.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from twin.errors import MissingComponentError, TwinError
from twin.services.ports import free_port, port_in_use
from twin.services.private_files import create_private, write_private

INSTALL_HINT = "run scripts/install-system.sh as root, or use the timescale/timescaledb-ha image"
#: The cluster's superuser, the role the twin connects as.
SUPERUSER = "postgres"
_SETTINGS_FILE = "twin.conf"
#: The first line of the pg_hba.conf we write; a cluster without it still trusts everyone.
_HBA_MARKER = "# Written by twin: nobody is trusted."
_PASSWORD_BYTES = 24


class EmbeddedPostgres:
    """One cluster in one data directory, listening on 127.0.0.1 only."""

    def __init__(self, data_dir: Path, *, database: str = "twin", durable: bool = True,
                 password_file: Path | None = None) -> None:
        wanted = Path(data_dir)
        self.data_dir = _reachable_data_dir(wanted)
        self.database = database
        # Tests trade crash safety for speed; the demo and real use keep it.
        self.durable = durable
        self.bin_dir = find_bin_dir()
        #: The superuser's password as a libpq password file (``PGPASSFILE``), mode 0600:
        #: beside the data directory as asked for, wherever the cluster itself had to live.
        self.password_file = (Path(password_file) if password_file is not None
                              else wanted.with_name(f"{wanted.name}.pgpass"))

    # --- state
    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    @property
    def port(self) -> int:
        text = (self.data_dir / _SETTINGS_FILE).read_text()
        match = re.search(r"^port\s*=\s*(\d+)", text, re.MULTILINE)
        if not match:
            raise TwinError(f"{self.data_dir / _SETTINGS_FILE} names no port")
        return int(match.group(1))

    @property
    def secured(self) -> bool:
        """Whether the cluster wants passwords (our pg_hba.conf), not ``trust``."""
        try:
            return (self.data_dir / "pg_hba.conf").read_text().startswith(_HBA_MARKER)
        except FileNotFoundError:
            return False

    @property
    def password(self) -> str:
        """The superuser's password, from `password_file`."""
        try:
            line = self.password_file.read_text().splitlines()[0]
        except (FileNotFoundError, IndexError) as e:
            raise TwinError(
                f"the password of the embedded PostgreSQL is missing ({self.password_file}): "
                "restore the file, or set a new one over the socket as docs/architecture.md "
                "describes") from e
        return _pgpass_unescape(line.split(":", 4)[4])

    def url(self, database: str | None = None) -> str:
        """The database's URL with the superuser's password in it."""
        return (f"postgresql://{SUPERUSER}:{quote(self.password, safe='')}@127.0.0.1:"
                f"{self.port}/{database or self.database}")

    def running(self) -> bool:
        if not self.initialized:
            return False
        result = self._run(["pg_ctl", "-D", str(self.data_dir), "status"], check=False)
        return result.returncode == 0

    # --- lifecycle
    def start(self) -> str:
        """Initialise if needed, start if not running, and return the database URL."""
        check_extensions_installed(self.bin_dir)
        if not self.initialized:
            self._initdb()
        trusting = not self.secured  # made by an older twin: close it once it runs
        if not self.running():
            if port_in_use(self.port):
                self._write_settings(free_port())
            log = self.data_dir / "server.log"
            result = self._run(
                ["pg_ctl", "-D", str(self.data_dir), "-l", str(log), "-w", "-t", "60", "start"],
                check=False,
            )
            if result.returncode != 0:
                raise TwinError(
                    f"the embedded PostgreSQL in {self.data_dir} did not start: {_tail(log)}"
                )
        if trusting:
            self._close_trust()
        self._ensure_database()
        return self.url()

    def rotate_password(self) -> None:
        """Give the superuser a new password: in the server, then in `password_file`.

        Sessions already open stay open; every new login needs the new password,
        so services that open connections later must be restarted.
        """
        new = _new_password()
        self._psql("postgres", _set_password_sql(new))
        write_private(self.password_file, _pgpass_text(new))

    def stop(self) -> None:
        if self.running():
            self._run(["pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def create_database(self, name: str, *, template: str | None = None) -> str:
        tmpl = f" TEMPLATE {template}" if template else ""
        self._psql("postgres", f'CREATE DATABASE "{name}"{tmpl}')
        return self.url(name)

    def freeze_as_template(self, name: str) -> None:
        """Make a database a template that CREATE DATABASE can copy at any time.

        TimescaleDB's scheduler keeps a connection open to every database with
        the extension, and a template with a session cannot be copied; so the
        template refuses connections and the scheduler's session is ended.
        """
        self._psql("postgres",
                   f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        self._psql(
            "postgres",
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()",
        )

    def drop_database(self, name: str) -> None:
        self._psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # --- internals
    def _initdb(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _give_to_server_user(self.data_dir)
        with _server_readable(self._ensure_password()) as pwfile:
            self._run(
                ["initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth-local=peer",
                 "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                 "--locale=C.UTF-8"],
            )
        self._write_access_rules()
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(f"\ninclude '{_SETTINGS_FILE}'\n")
        self._write_settings(free_port())

    def _ensure_password(self) -> str:
        """The superuser's password; a new random one in `password_file` if there is none."""
        create_private(self.password_file, _pgpass_text(_new_password()))
        return self.password

    def _write_access_rules(self) -> None:
        """pg_hba.conf: the socket by peer (mapped in pg_ident.conf), TCP by scram-sha-256."""
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text("\n".join([
            _HBA_MARKER,
            "# TCP (127.0.0.1) wants the password, scram-sha-256; the twin keeps the",
            f"# superuser's in {self.password_file}. The socket in the data directory",
            "# admits the operating-system users that pg_ident.conf maps (peer).",
            "# TYPE  DATABASE  USER  ADDRESS       METHOD",
            "local   all       all                 peer map=twin",
            "host    all       all   127.0.0.1/32  scram-sha-256",
            "host    all       all   ::1/128       scram-sha-256",
            "",
        ]))
        me = getpass.getuser()
        people = [SUPERUSER] + ([me] if me != SUPERUSER else [])
        ident = self.data_dir / "pg_ident.conf"
        ident.write_text("\n".join([
            "# Written by twin: who may log in over the socket, as whom.",
            "# MAPNAME  SYSTEM-USERNAME  PG-USERNAME",
            *(f"twin      {who:<16} {SUPERUSER}" for who in people),
            "",
        ]))
        _give_to_server_user(hba)
        _give_to_server_user(ident)

    def _close_trust(self) -> None:
        """A cluster that trusts everyone (made before the twin set passwords): give the
        superuser a password while trust still lets us in, then want it from now on."""
        self._psql("postgres", _set_password_sql(self._ensure_password()))
        self._write_access_rules()
        self._run(["pg_ctl", "-D", str(self.data_dir), "reload"])

    def _write_settings(self, port: int) -> None:
        lines = [
            f"port = {port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{_socket_dir(self.data_dir)}'",
            "shared_preload_libraries = 'timescaledb'",
            "timescaledb.telemetry_level = off",
            "max_connections = 200",
            "shared_buffers = 256MB",
            "max_wal_size = 2GB",
        ]
        if not self.durable:
            lines += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        path = self.data_dir / _SETTINGS_FILE
        path.write_text("\n".join(lines) + "\n")
        _give_to_server_user(path)

    def _ensure_database(self) -> None:
        exists = self._psql(
            "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'"
        )
        if exists.strip() != "1":
            self._psql("postgres", f'CREATE DATABASE "{self.database}"')

    def _psql(self, database: str, sql: str) -> str:
        """Run ``sql`` as the superuser over TCP; the statement and the password go through
        stdin and the environment, never the command line that every local user can read."""
        out = self._run(
            ["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-f", "-"],
            stdin=sql, env={**os.environ, "PGPASSWORD": self.password},
        )
        return out.stdout

    def _run(self, argv: list[str], *, check: bool = True, stdin: str | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        tool = argv[0]
        command = [str(self.bin_dir / tool), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd="/", check=False,
                                input=stdin, env=env)
        if check and result.returncode != 0:
            message = (result.stderr or result.stdout).strip().splitlines()
            raise TwinError(f"{tool} failed: {message[-1] if message else 'no output'}")
        return result


def find_bin_dir() -> Path:
    """The server binaries: ``TWIN_PG_BINDIR``, else the newest Debian PostgreSQL."""
    if os.environ.get("TWIN_PG_BINDIR"):
        return Path(os.environ["TWIN_PG_BINDIR"])
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise MissingComponentError(f"PostgreSQL server binaries were not found: {INSTALL_HINT}")


def check_extensions_installed(bin_dir: Path) -> None:
    """Fail early, in one sentence, when PostGIS or TimescaleDB is missing."""
    pg_config = bin_dir / "pg_config"
    if pg_config.exists():
        share = Path(subprocess.run([str(pg_config), "--sharedir"], capture_output=True,
                                    text=True, check=True).stdout.strip())
    else:
        share = bin_dir.parent.parent.parent.parent / "share" / "postgresql" / bin_dir.parent.name
    for ext in ("timescaledb", "postgis"):
        if not (share / "extension" / f"{ext}.control").exists():
            raise MissingComponentError(
                f"the {ext} extension is not installed in this PostgreSQL ({bin_dir}): "
                f"{INSTALL_HINT}"
            )


def _reachable_data_dir(wanted: Path) -> Path:
    """The data directory, moved where the ``postgres`` user can reach it if we are root.

    A checkout under /root is closed to other users; rather than open it up,
    the cluster then lives under /var/lib/twin, keyed by the wanted path.
    """
    if os.geteuid() != 0 or _postgres_can_reach(wanted):
        return wanted
    key = hashlib.sha1(str(wanted.resolve()).encode()).hexdigest()[:12]
    return Path("/var/lib/twin") / f"pg-{key}"


def _postgres_can_reach(path: Path) -> bool:
    probe = path
    while not probe.exists():
        probe = probe.parent
    result = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(probe)],
                            capture_output=True, check=False)
    return result.returncode == 0


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, user="postgres", group="postgres")
        if path.is_dir():
            path.chmod(0o700)


def _socket_dir(data_dir: Path) -> str:
    # Unix socket paths are limited to 107 bytes; fall back to TCP only.
    return str(data_dir) if len(str(data_dir)) < 80 else ""


def _new_password() -> str:
    return secrets.token_urlsafe(_PASSWORD_BYTES)


def _pgpass_text(password: str) -> str:
    """libpq's password file: the superuser's password for the loopback server, any port."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return "".join(f"{host}:*:*:{SUPERUSER}:{escaped}\n" for host in ("127.0.0.1", "localhost"))


def _pgpass_unescape(field: str) -> str:
    return re.sub(r"\\(.)", r"\1", field)


def _set_password_sql(password: str) -> str:
    quoted = password.replace("'", "''")
    return f"ALTER ROLE {SUPERUSER} PASSWORD '{quoted}'"


@contextmanager
def _server_readable(password: str) -> Iterator[Path]:
    """The password in a private temporary file that initdb, run as the server's user, reads."""
    fd, name = tempfile.mkstemp(prefix="twin-pwfile-")
    path = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        _give_to_server_user(path)
        yield path
    finally:
        path.unlink(missing_ok=True)


def _tail(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no server log was written"
    return lines[-1] if lines else "the server log is empty"
