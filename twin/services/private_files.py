"""Files that only their owner may read: the stack's generated secrets.

Each is written whole under a temporary name, fsynced, given mode 0600 and
only then put in place, so that a reader never sees half a secret and nobody
else ever sees any of it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, readable and writable by its owner only."""
    tmp = _write_aside(path, text)
    try:
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def create_private(path: Path, text: str) -> bool:
    """Create ``path`` (mode 0600) holding ``text`` unless it exists; False if it did.

    The file appears whole (written aside, then hard-linked into place), so two
    processes racing to create it agree: the loser reads the winner's file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _write_aside(path, text)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def _write_aside(path: Path, text: str) -> Path:
    """``text`` in a new file of mode 0600 beside ``path``, on disk."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        tmp.chmod(0o600)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp
