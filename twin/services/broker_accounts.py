"""The broker's own accounts: one secret per installation, passwords derived from it.

The embedded Mosquitto admits nobody anonymous. From its first start it has
a password file and an ACL for the accounts of the stack itself:

``twin-admin``      reads and writes every topic: you at the console
                    (``mosquitto_sub``) and the test harness. No service
                    logs in with it.
``twin-ingest``     reads everything under ``twin/v1/`` (shared subscriptions
                    included) and writes commands (``twin/v1/+/+/cmd``).
``twin-rules``      the rule engine beside ingest: the same reads, and writes
                    the commands its rules send (fans, chargers, speakers).
``twin-simulator``  writes anything under ``twin/v1/`` on behalf of many
                    devices, and reads their commands (``twin/v1/+/+/cmd``);
                    a test and demo harness, only admitted on request.

Devices are added from the registry by `twin broker-config`
(``ingest.broker_auth``), which writes the same three files with the
devices in them. Passwords are not stored anywhere: each is HMAC-SHA256 of
the account name under the installation's secret (``<TWIN_HOME>/mqtt/secret``,
mode 0600), so whoever holds the secret can compute any password and the
files can be regenerated at any time. The password file is what
``mosquitto_passwd`` 2.0 writes; ``auth.conf`` names it and the ACL file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from twin.errors import TwinError
from twin.services.private_files import create_private, write_private

ADMIN = "twin-admin"
INGEST = "twin-ingest"
RULES = "twin-rules"
SIMULATOR = "twin-simulator"
#: Every account of the stack itself (a device may not take one of these names).
SERVICES: tuple[str, ...] = (ADMIN, INGEST, RULES, SIMULATOR)
#: The accounts every broker configuration admits; the simulator only on request.
RUNNING_SERVICES: tuple[str, ...] = (ADMIN, INGEST, RULES)
#: The fixed prefix that keeps service passwords apart from device passwords.
SERVICE_PREFIX = "service:"

#: The root of the MQTT contract's topics (``ingest.contract``: ROOT/VERSION; a test keeps
#: the two equal, since the core imports no adapter).
TOPIC_ROOT = "twin/v1"
COMMANDS = f"{TOPIC_ROOT}/+/+/cmd"
SERVICE_ACL: dict[str, tuple[tuple[str, str], ...]] = {
    ADMIN: (("readwrite", "#"),),
    INGEST: (("read", f"{TOPIC_ROOT}/#"), ("write", COMMANDS)),
    RULES: (("read", f"{TOPIC_ROOT}/#"), ("write", COMMANDS)),
    # It speaks for every device, so it also takes their commands, as each device would.
    SIMULATOR: (("write", f"{TOPIC_ROOT}/#"), ("read", COMMANDS)),
}

SECRET_FILE = "secret"
PASSWORD_FILE = "passwords"
ACL_FILE = "acl"
#: The include file that switches authentication on.
AUTH_CONF = "auth.conf"
#: Iterations of PBKDF2-SHA512, as ``mosquitto_passwd`` 2.0 writes them.
PBKDF2_ITERATIONS = 101
SALT_BYTES = 12
SECRET_BYTES = 32
PASSWORD_CHARS = 32
_HASH_CHUNK = 2_000


# --- the secret and the passwords --------------------------------------------------------

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
        create_private(path, secrets.token_hex(SECRET_BYTES) + "\n")
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


def derive_password(secret: bytes, message: str) -> str:
    """base64url(HMAC-SHA256(secret, message))[:32]: a device's or a service's password."""
    digest = hmac.new(secret, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:PASSWORD_CHARS]


def service_credentials(secret: bytes, name: str) -> tuple[str, str]:
    """(username, password) of a service account: ``twin-admin``, ``twin-ingest``,
    ``twin-rules`` or ``twin-simulator``."""
    if name not in SERVICES:
        raise ValueError(f"{name!r} is not a service account; expected one of {SERVICES}")
    return name, derive_password(secret, SERVICE_PREFIX + name)


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


# --- the files ---------------------------------------------------------------------------

def service_acl_lines(services: Sequence[str]) -> list[str]:
    """The ACL blocks of the service accounts, one ``user`` line and its ``topic`` lines each."""
    out: list[str] = []
    for name in services:
        out.append(f"\nuser {name}")
        out.extend(f"topic {access} {pattern}" for access, pattern in SERVICE_ACL[name])
    return out


def write_auth_files(directory: Path, *, password_lines: Sequence[str], acl: str,
                     header: str) -> tuple[Path, Path, Path]:
    """Write ``passwords``, ``acl`` and then ``auth.conf`` (which names them) into ``directory``.

    Each file is written to a temporary name and renamed into place, mode
    0600; ``auth.conf`` comes last, so it never names a file not yet there.

    Returns
    -------
    tuple[Path, Path, Path]
        The password file, the ACL file and ``auth.conf``.
    """
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    password_file, acl_file = directory / PASSWORD_FILE, directory / ACL_FILE
    auth_conf = directory / AUTH_CONF
    write_private(password_file, "\n".join(password_lines) + "\n")
    write_private(acl_file, acl)
    write_private(auth_conf, "\n".join([
        f"# {header}",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        "allow_anonymous false",
        "",
    ]))
    return password_file, acl_file, auth_conf


def write_service_accounts(directory: Path, *, secret: bytes,
                           services: Sequence[str] = RUNNING_SERVICES) -> Path:
    """The broker files for the stack's own accounts and no device: what the embedded
    broker starts with until `twin broker-config` adds the registry's devices.

    Returns
    -------
    Path
        The ``auth.conf`` written.
    """
    lines = password_lines([service_credentials(secret, s) for s in services])
    acl = "\n".join([
        "# Written by twin for the stack's own accounts; `twin broker-config` adds the devices.",
        "# No topic line comes before the first user, so anonymous clients get nothing.",
        *service_acl_lines(services),
    ]) + "\n"
    return write_auth_files(directory, password_lines=lines, acl=acl,
                            header="Written by twin: the stack's services log in; nobody else.")[2]


def admitted(password_file: Path) -> set[str]:
    """The usernames in a Mosquitto password file (none if it does not exist)."""
    try:
        text = password_file.read_text()
    except FileNotFoundError:
        return set()
    return {line.split(":", 1)[0] for line in text.splitlines() if ":" in line}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _hash_chunk(users: Sequence[tuple[str, str]]) -> list[str]:
    return [f"{username}:{hash_password(password)}" for username, password in users]
