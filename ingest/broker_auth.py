"""Who may talk to the broker, and about what: Mosquitto's password and ACL files.

Every device logs in with its registry ``credentials_id`` and may only speak
on its own topics (``twin/v1/{community}/{device}/{kind}``): publish its
telemetry, events, status and command acks (and, for a gateway, batches),
and read its own commands. Three service accounts complete the picture:

``twin-ingest``     reads everything under ``twin/v1/`` (shared subscriptions
                    included) and writes commands (``twin/v1/+/+/cmd``).
``twin-rules``      the rule engine beside ingest: the same reads, and writes
                    the commands its rules send (fans, chargers, speakers).
``twin-simulator``  writes anything under ``twin/v1/`` on behalf of many
                    devices, and reads their commands (``twin/v1/+/+/cmd``)
                    to obey and acknowledge them; a test and demo harness,
                    only written on request.

Nobody else, and nothing anonymous. Passwords are not stored anywhere: each
is HMAC-SHA256 of the account name under one random secret per
installation, so whoever holds the secret (provisioning, the simulator,
ingest) can compute a password and the broker files can be regenerated from
the registry at any time. The files are what ``mosquitto_passwd`` and the
default ACL plugin of Mosquitto 2.0 read; ``auth.conf`` switches them on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import psycopg
import typer
from rich.console import Console
from rich.table import Table

from ingest import contract
from twin.config import Settings, load_settings
from twin.device_types import DEVICE_TYPES, GATEWAY_TYPE
from twin.errors import TwinError
from twin.services import stack
from twin.services.mosquitto import AUTH_CONF
from twin.store import migrations
from twin.store.connection import connect

INGEST = "twin-ingest"
RULES = "twin-rules"
SIMULATOR = "twin-simulator"
SERVICES: tuple[str, ...] = (INGEST, RULES, SIMULATOR)
#: The accounts every broker configuration admits; the simulator only on request.
RUNNING_SERVICES: tuple[str, ...] = (INGEST, RULES)
#: The fixed prefix that keeps service passwords apart from device passwords.
SERVICE_PREFIX = "service:"

PASSWORD_FILE = "passwords"
ACL_FILE = "acl"
#: Iterations of PBKDF2-SHA512, as ``mosquitto_passwd`` 2.0 writes them.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
SECRET_BYTES = 32
PASSWORD_CHARS = 32
USERNAME_ENV = "TWIN_MQTT_USERNAME"
PASSWORD_ENV = "TWIN_MQTT_PASSWORD"

#: What a device publishes; a gateway may also publish ``batch``, a staff badge ``position``
#: (only its own: whose fix it is follows from the topic).
DEVICE_WRITES: tuple[contract.Kind, ...] = tuple(
    k for k in contract.DEVICE_TO_TWIN if k not in ("batch", "position"))
GATEWAY_WRITES: tuple[contract.Kind, ...] = (*DEVICE_WRITES, "batch")
BADGE_WRITES: tuple[contract.Kind, ...] = (*DEVICE_WRITES, "position")
_ALL = f"{contract.ROOT}/{contract.VERSION}/#"
SERVICE_ACL: dict[str, tuple[tuple[str, str], ...]] = {
    INGEST: (("read", _ALL), ("write", contract.topic("+", "+", "cmd"))),
    RULES: (("read", _ALL), ("write", contract.topic("+", "+", "cmd"))),
    # It speaks for every device, so it also takes their commands, as each device would.
    SIMULATOR: (("write", _ALL), ("read", contract.topic("+", "+", "cmd"))),
}

#: Mosquitto 2.0 loads a per-user ACL file in time that grows with the square of its
#: users (measured: 10k 0.9 s, 20k 3.8 s, 40k 15.7 s) and serves no one meanwhile.
ACL_USERS_ADVISED = 20_000
_USERNAME = re.compile(r"^[A-Za-z0-9_.@\-]{1,128}$")
_TOPIC_LEVEL = re.compile(r"^[^/+#\s\x00$][^/+#\s\x00]*$")
_HASH_CHUNK = 2_000


@dataclass(frozen=True, slots=True)
class DeviceAccount:
    """A device as the broker sees it: who logs in, and whose topics they are."""

    credentials_id: str
    community_id: str
    device_id: str
    type: str

    @property
    def is_gateway(self) -> bool:
        return self.type == GATEWAY_TYPE

    @property
    def writes(self) -> tuple[contract.Kind, ...]:
        """The kinds this device may publish on its own topics."""
        if self.type == GATEWAY_TYPE:
            return GATEWAY_WRITES
        known = DEVICE_TYPES.get(self.type)
        return BADGE_WRITES if known is not None and known.positions else DEVICE_WRITES


@dataclass(frozen=True, slots=True)
class BrokerConfigReport:
    """What `write_broker_config` wrote."""

    directory: Path
    password_file: Path
    acl_file: Path
    auth_conf: Path
    devices: int
    gateways: int
    services: tuple[str, ...]
    #: ``topic`` lines in the ACL file.
    acl_lines: int
    #: Wall time spent hashing passwords (PBKDF2), for sizing large registries.
    hashing_s: float

    @property
    def users(self) -> int:
        return self.devices + len(self.services)


# --- secrets and passwords ---------------------------------------------------------------

def secret_path(settings: Settings | None = None) -> Path:
    """Where the installation's secret lives by default: ``<TWIN_HOME>/mqtt/secret``."""
    return (settings or load_settings()).home / "mqtt" / "secret"


def load_secret(path: Path, *, create: bool = True) -> bytes:
    """The installation's secret, created (random, mode 0600) on first use.

    Parameters
    ----------
    path
        The secret file: hex text, one line.
    create
        Create the file when it does not exist; otherwise that is an error.

    Returns
    -------
    bytes
        The secret key.
    """
    path = Path(path)
    if create and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it a moment ago: use theirs
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(SECRET_BYTES) + "\n")
                f.flush()
                os.fsync(f.fileno())
    try:
        text = path.read_text().strip()
    except FileNotFoundError as e:
        raise TwinError(f"there is no broker secret at {path}: run `twin broker-config`") from e
    try:
        secret = bytes.fromhex(text)
    except ValueError as e:
        raise TwinError(f"the broker secret {path} is not hex text") from e
    if len(secret) < 16:
        raise TwinError(f"the broker secret {path} is shorter than 16 bytes")
    return secret


def device_password(secret: bytes, credentials_id: str) -> str:
    """The MQTT password of the device that logs in as ``credentials_id``."""
    return _derive(secret, credentials_id)


def service_credentials(secret: bytes, name: str) -> tuple[str, str]:
    """(username, password) of a service account: ``twin-ingest``, ``twin-rules`` or
    ``twin-simulator``."""
    if name not in SERVICES:
        raise ValueError(f"{name!r} is not a service account; expected one of {SERVICES}")
    return name, _derive(secret, SERVICE_PREFIX + name)


def mqtt_credentials(name: str = INGEST, *, settings: Settings | None = None,
                     environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The credentials a service connects with, or None to connect anonymously.

    ``TWIN_MQTT_USERNAME`` and ``TWIN_MQTT_PASSWORD`` win when set (a broker
    run elsewhere); otherwise the password is derived from the secret, if
    this installation has one; without a secret no auth files were ever
    written and the embedded broker is anonymous.
    """
    env = os.environ if environ is None else environ
    username, password = env.get(USERNAME_ENV) or None, env.get(PASSWORD_ENV) or None
    if (username is None) != (password is None):
        missing = PASSWORD_ENV if password is None else USERNAME_ENV
        raise TwinError(f"{USERNAME_ENV} and {PASSWORD_ENV} go together: set {missing} too")
    if username is not None and password is not None:
        return username, password
    path = secret_path(settings)
    if not path.exists():
        return None
    return service_credentials(load_secret(path, create=False), name)


def hash_password(password: str, *, salt: bytes | None = None,
                  iterations: int = PBKDF2_ITERATIONS) -> str:
    """Mosquitto 2.0's password hash: ``$7$<iterations>$<salt b64>$<PBKDF2-SHA512 b64>``."""
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_password(encoded: str, password: str) -> bool:
    """Whether ``password`` matches a hash as `hash_password` and mosquitto_passwd write it."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7":
        raise ValueError(f"not a Mosquitto PBKDF2-SHA512 ($7$) hash: {encoded[:12]!r}...")
    salt = base64.b64decode(parts[3])
    expected = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(expected, base64.b64decode(parts[4]))


# --- the registry ------------------------------------------------------------------------

def device_accounts(conn: psycopg.Connection, *,
                    community_id: str | None = None) -> list[DeviceAccount]:
    """Every device's broker account (of one community, or all), ordered by username."""
    if community_id is not None and conn.execute(
        "SELECT 1 FROM community WHERE id = %s", (community_id,)
    ).fetchone() is None:
        raise TwinError(f"there is no community {community_id!r} in the twin")
    rows = conn.execute(
        """
        SELECT credentials_id, community_id, id, type
        FROM device
        WHERE %(community)s::text IS NULL OR community_id = %(community)s
        ORDER BY credentials_id
        """,
        {"community": community_id},
    ).fetchall()
    accounts = [DeviceAccount(*row) for row in rows]
    for a in accounts:
        _check_account(a)
    return accounts


# --- the files ---------------------------------------------------------------------------

def acl_text(devices: Iterable[DeviceAccount], *,
             services: Sequence[str] = RUNNING_SERVICES) -> str:
    """The ACL file: each user's topics, and none for anyone else."""
    out = [
        "# Written by `twin broker-config` from the device registry; edits are overwritten.",
        "# No topic line comes before the first user, so anonymous clients get nothing.",
    ]
    for name in services:
        out.append(f"\nuser {name}")
        out.extend(f"topic {access} {pattern}" for access, pattern in SERVICE_ACL[name])
    for d in devices:
        out.append(f"\nuser {d.credentials_id}")
        out.extend(f"topic write {contract.topic(d.community_id, d.device_id, k)}"
                   for k in d.writes)
        out.extend(f"topic read {contract.topic(d.community_id, d.device_id, k)}"
                   for k in contract.TWIN_TO_DEVICE)
    return "\n".join(out) + "\n"


def password_lines(users: Sequence[tuple[str, str]], *, workers: int | None = None) -> list[str]:
    """``user:$7$...`` lines for (username, password) pairs, in the same order.

    PBKDF2 in hashlib releases the GIL, so large registries are hashed by a
    thread per CPU in chunks.
    """
    chunks = [users[i:i + _HASH_CHUNK] for i in range(0, len(users), _HASH_CHUNK)]
    workers = workers or min(os.cpu_count() or 1, 16)
    if workers == 1 or len(chunks) <= 1:
        return _hash_chunk(users)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [line for done in pool.map(_hash_chunk, chunks) for line in done]


def write_broker_config(conn: psycopg.Connection, directory: Path, *, secret: bytes,
                        community_id: str | None = None,
                        include_simulator: bool = False) -> BrokerConfigReport:
    """Write ``passwords``, ``acl`` and ``auth.conf`` for the devices in the registry.

    Each file is written to a temporary name and renamed into place, mode
    0600 (the embedded broker runs as the user who started it, so it can read
    them); ``auth.conf`` comes last, so it never names a file not yet there.

    Parameters
    ----------
    conn
        The twin's database.
    directory
        Where to write; the embedded broker reads ``<TWIN_HOME>/mqtt/conf.d``.
    secret
        The installation's secret (`load_secret`).
    community_id
        Only this community's devices; the broker then admits no other device.
    include_simulator
        Also admit the ``twin-simulator`` account (tests and demos).

    Returns
    -------
    BrokerConfigReport
    """
    devices = device_accounts(conn, community_id=community_id)
    services = SERVICES if include_simulator else RUNNING_SERVICES
    clash = sorted({d.credentials_id for d in devices} & set(SERVICES))
    if clash:
        raise TwinError(f"device credentials_id {clash[0]!r} is the name of a service account")
    users = [service_credentials(secret, s) for s in services]
    users += [(d.credentials_id, device_password(secret, d.credentials_id)) for d in devices]
    started = time.perf_counter()
    lines = password_lines(users)
    hashing_s = time.perf_counter() - started
    acl = acl_text(devices, services=services)

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    password_file, acl_file = directory / PASSWORD_FILE, directory / ACL_FILE
    auth_conf = directory / AUTH_CONF
    _write_private(password_file, "\n".join(lines) + "\n")
    _write_private(acl_file, acl)
    _write_private(auth_conf, "\n".join([
        "# Written by `twin broker-config`: devices and services log in; nobody else.",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        "allow_anonymous false",
        "",
    ]))
    return BrokerConfigReport(
        directory=directory, password_file=password_file, acl_file=acl_file,
        auth_conf=auth_conf, devices=len(devices),
        gateways=sum(d.is_gateway for d in devices), services=services,
        acl_lines=sum(line.startswith("topic ") for line in acl.splitlines()),
        hashing_s=hashing_s,
    )


# --- the command -------------------------------------------------------------------------

def broker_config_command(
    out: Annotated[Path | None, typer.Option(
        "--out", help="Directory to write to; default: the embedded broker's conf.d.")] = None,
    community: Annotated[str | None, typer.Option(
        help="Only this community's devices (a broker of its own).")] = None,
    simulator: Annotated[bool, typer.Option(
        "--simulator/--no-simulator",
        help="Also admit the twin-simulator account (tests and demos).")] = False,
    reload: Annotated[bool, typer.Option(
        "--reload/--no-reload", help="Make the running embedded broker reread the files.")] = True,
    secret: Annotated[Path | None, typer.Option(
        help="The installation's secret file; default: <TWIN_HOME>/mqtt/secret.")] = None,
) -> None:
    """Write the broker's password and ACL files from the device registry."""
    console = Console()
    settings = load_settings()
    broker = stack.embedded_mosquitto(settings)
    directory = (out or broker.include_dir).resolve()
    secret_file = secret or secret_path(settings)
    key = load_secret(secret_file)
    with connect(stack.database_url(settings)) as conn:
        migrations.require_current(conn)
        report = write_broker_config(conn, directory, secret=key, community_id=community,
                                     include_simulator=simulator)

    table = Table("what", "count")
    table.add_row("devices", f"{report.devices:,}")
    table.add_row("  of which gateways (may publish batch)", f"{report.gateways:,}")
    table.add_row("service accounts", ", ".join(report.services))
    table.add_row("ACL topic lines", f"{report.acl_lines:,}")
    console.print(f"[bold]wrote {report.directory}[/] "
                  f"({PASSWORD_FILE}, {ACL_FILE}, {AUTH_CONF}; hashing {report.hashing_s:.1f} s)")
    console.print(table)
    if community is not None:
        console.print(f"only devices of {community} can log in to a broker reading these files")
    if report.users > ACL_USERS_ADVISED:
        console.print(
            f"[yellow]warning:[/] Mosquitto 2.0 needs minutes to load an ACL file of "
            f"{report.users:,} users (its time grows with their square) and serves no one "
            "meanwhile; give each community a broker of its own (--community) or use the "
            "dynamic-security plugin: see docs/broker-auth.md")

    if directory != broker.include_dir.resolve():
        console.print("not the embedded broker's conf.d: include "
                      f"{report.auth_conf} in your broker's configuration and reload it")
    elif settings.mqtt_url:
        console.print(f"the twin uses the broker at {settings.mqtt_url} (TWIN_MQTT_URL); "
                      "the embedded broker reads these files when it runs")
    elif not reload:
        console.print("the embedded broker rereads the files on `twin broker-config --reload` "
                      "or when it starts")
    elif broker.conf.exists() and broker.reload():
        console.print(f"the embedded broker at {broker.url} reloaded: anonymous clients are "
                      "refused from now on")
    else:
        console.print("the embedded broker is not running; it reads the files when it starts")

    console.print(f"ingest logs in as {INGEST} and the rule engine as {RULES}: from "
                  f"{USERNAME_ENV}/{PASSWORD_ENV} when set, else with the password derived "
                  f"from {secret_file}")
    console.print("a device logs in as its credentials_id, with "
                  "ingest.broker_auth.device_password(secret, credentials_id)")


# --- internals ---------------------------------------------------------------------------

def _derive(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:PASSWORD_CHARS]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hash_chunk(users: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{username}:{hash_password(password)}" for username, password in users]


def _check_account(a: DeviceAccount) -> None:
    if not _USERNAME.match(a.credentials_id):
        raise TwinError(
            f"device {a.device_id!r} has credentials_id {a.credentials_id!r}, which cannot be "
            "a broker username (1-128 letters, digits and _ . @ -)")
    for what, value in (("id", a.device_id), ("community_id", a.community_id)):
        if not _TOPIC_LEVEL.match(value):
            raise TwinError(
                f"device {a.device_id!r} has {what} {value!r}, which cannot be an MQTT topic "
                "level (no /, +, #, whitespace, or leading $)")


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable and writable by its owner only."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
