"""Who may talk to the broker, and about what: Mosquitto's password and ACL files.

Every device logs in with its registry ``credentials_id`` and may only speak
on its own topics (``twin/v1/{community}/{device}/{kind}``): publish its
telemetry, events, status and command acks (and, for a gateway, batches),
and read its own commands. The stack's own accounts (``twin-admin``,
``twin-ingest``, ``twin-rules`` and, on request, ``twin-simulator``) complete
the picture; they, the secret, the password hashes and the file format are
``twin.services.broker_accounts``, which the embedded broker starts with
before any device is known.

Nobody else, and nothing anonymous. Passwords are not stored anywhere: each
is HMAC-SHA256 of the account name under one random secret per
installation, so whoever holds the secret (provisioning, the simulator,
ingest) can compute a password and the broker files can be regenerated from
the registry at any time. The files are what ``mosquitto_passwd`` and the
default ACL plugin of Mosquitto 2.0 read; ``auth.conf`` switches them on.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
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
from twin.services.broker_accounts import (
    ACL_FILE,
    ADMIN,
    AUTH_CONF,
    INGEST,
    PASSWORD_FILE,
    RULES,
    RUNNING_SERVICES,
    SECRET_BYTES,
    SECRET_FILE,
    SERVICES,
    SIMULATOR,
    admitted,
    derive_password,
    load_secret,
    password_lines,
    service_acl_lines,
    service_credentials,
    write_auth_files,
)
from twin.services.private_files import write_private
from twin.store import migrations
from twin.store.connection import connect

USERNAME_ENV = "TWIN_MQTT_USERNAME"
PASSWORD_ENV = "TWIN_MQTT_PASSWORD"

#: What a device publishes; a gateway may also publish ``batch``, a staff badge ``position``
#: (only its own: whose fix it is follows from the topic).
DEVICE_WRITES: tuple[contract.Kind, ...] = tuple(
    k for k in contract.DEVICE_TO_TWIN if k not in ("batch", "position"))
GATEWAY_WRITES: tuple[contract.Kind, ...] = (*DEVICE_WRITES, "batch")
BADGE_WRITES: tuple[contract.Kind, ...] = (*DEVICE_WRITES, "position")
#: Mosquitto 2.0 loads a per-user ACL file in time that grows with the square of its
#: users (measured: 10k 0.9 s, 20k 3.8 s, 40k 15.7 s) and serves no one meanwhile.
ACL_USERS_ADVISED = 20_000
_USERNAME = re.compile(r"^[A-Za-z0-9_.@\-]{1,128}$")
_TOPIC_LEVEL = re.compile(r"^[^/+#\s\x00$][^/+#\s\x00]*$")


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
    return (settings or load_settings()).home / "mqtt" / SECRET_FILE


def device_password(secret: bytes, credentials_id: str) -> str:
    """The MQTT password of the device that logs in as ``credentials_id``."""
    return derive_password(secret, credentials_id)


def mqtt_credentials(name: str = INGEST, *, settings: Settings | None = None,
                     environ: Mapping[str, str] | None = None) -> tuple[str, str] | None:
    """The credentials a service connects with, or None to connect anonymously.

    ``TWIN_MQTT_USERNAME`` and ``TWIN_MQTT_PASSWORD`` win when set (a broker
    run elsewhere); otherwise the password is derived from the secret, if
    this installation has one. The embedded broker creates the secret when it
    first starts, so None only happens with a configured broker
    (``TWIN_MQTT_URL``) and no secret here: then that broker decides.
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


def replace_secret(path: Path, secret: bytes) -> Path | None:
    """Make ``secret`` the installation's secret; the one it replaces is kept as
    ``secret.old`` (returned; None if there was none)."""
    old: Path | None = None
    if path.exists():
        old = path.with_name(path.name + ".old")
        write_private(old, path.read_text())
    write_private(path, secret.hex() + "\n")
    return old


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
    out.extend(service_acl_lines(services))
    for d in devices:
        out.append(f"\nuser {d.credentials_id}")
        out.extend(f"topic write {contract.topic(d.community_id, d.device_id, k)}"
                   for k in d.writes)
        out.extend(f"topic read {contract.topic(d.community_id, d.device_id, k)}"
                   for k in contract.TWIN_TO_DEVICE)
    return "\n".join(out) + "\n"


def write_broker_config(conn: psycopg.Connection, directory: Path, *, secret: bytes,
                        community_id: str | None = None,
                        include_simulator: bool = False,
                        include_admin: bool = True) -> BrokerConfigReport:
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
    include_admin
        Admit the ``twin-admin`` account (every topic; the console and the tests).

    Returns
    -------
    BrokerConfigReport
    """
    devices = device_accounts(conn, community_id=community_id)
    services = tuple(s for s in SERVICES if (s != SIMULATOR or include_simulator)
                     and (s != ADMIN or include_admin))
    clash = sorted({d.credentials_id for d in devices} & set(SERVICES))
    if clash:
        raise TwinError(f"device credentials_id {clash[0]!r} is the name of a service account")
    users = [service_credentials(secret, s) for s in services]
    users += [(d.credentials_id, device_password(secret, d.credentials_id)) for d in devices]
    started = time.perf_counter()
    lines = password_lines(users)
    hashing_s = time.perf_counter() - started
    acl = acl_text(devices, services=services)

    password_file, acl_file, auth_conf = write_auth_files(
        directory, password_lines=lines, acl=acl,
        header="Written by `twin broker-config`: devices and services log in; nobody else.")
    return BrokerConfigReport(
        directory=password_file.parent, password_file=password_file, acl_file=acl_file,
        auth_conf=auth_conf, devices=len(devices),
        gateways=sum(d.is_gateway for d in devices), services=services,
        acl_lines=sum(line.startswith("topic ") for line in acl.splitlines()),
        hashing_s=hashing_s,
    )


def admit_simulator(settings: Settings) -> bool:
    """Let ``twin-simulator`` log in to the embedded broker, unless it already may.

    The registry's files are written again with it (and with ``twin-admin`` if
    they had it) and the running broker reloads them. A broker of one's own
    (``TWIN_MQTT_URL``) is left alone: `twin broker-config --simulator` is for it.

    Returns
    -------
    bool
        Whether the files were written.
    """
    if not settings.embedded_broker:
        return False
    broker = stack.embedded_mosquitto(settings)
    users = admitted(broker.password_file)
    if SIMULATOR in users:
        return False
    key = load_secret(broker.secret_file)
    with connect(stack.database_url(settings)) as conn:
        migrations.require_current(conn)
        write_broker_config(conn, broker.include_dir, secret=key, include_simulator=True,
                            include_admin=ADMIN in users or not users)
    broker.reload()
    return True


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
    admin: Annotated[bool, typer.Option(
        "--admin/--no-admin",
        help="Admit twin-admin (every topic: the console, mosquitto_sub, the tests).")] = True,
    rotate: Annotated[bool, typer.Option(
        "--rotate", help="A new secret first (the old one is kept as secret.old): every "
                         "password changes.")] = False,
) -> None:
    """Write the broker's password and ACL files from the device registry."""
    console = Console()
    settings = load_settings()
    broker = stack.embedded_mosquitto(settings)
    directory = (out or broker.include_dir).resolve()
    secret_file = secret or secret_path(settings)
    key = os.urandom(SECRET_BYTES) if rotate else load_secret(secret_file)
    with connect(stack.database_url(settings)) as conn:
        migrations.require_current(conn)
        report = write_broker_config(conn, directory, secret=key, community_id=community,
                                     include_simulator=simulator, include_admin=admin)
    if rotate:
        # The files for the new secret are in place; only now does the secret change.
        old = replace_secret(secret_file, key)
        console.print(f"new secret in {secret_file}" + (f" (the old one: {old})" if old else ""))

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
        console.print(f"the embedded broker at {broker.url} reloaded: these accounts log in "
                      "from now on, and nobody else")
    else:
        console.print("the embedded broker is not running; it reads the files when it starts")

    console.print(f"ingest logs in as {INGEST} and the rule engine as {RULES}: from "
                  f"{USERNAME_ENV}/{PASSWORD_ENV} when set, else with the password derived "
                  f"from {secret_file}")
    if rotate:
        console.print("every password changed: restart ingest, the rules, the notification "
                      "worker and the simulator, and provision the devices again")
    console.print("a device logs in as its credentials_id, with "
                  "ingest.broker_auth.device_password(secret, credentials_id)")


# --- internals ---------------------------------------------------------------------------

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
