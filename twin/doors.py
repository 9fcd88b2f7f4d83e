"""Doors, visitor passes and cloud broadcasts: who may open which door, what a pass is
and when it is good, and what a broadcast may say.

Pure (no database, no broker): the store (`twin.store.doors`) reads and writes, the
control room's services (`dashboard.doors`) ask here, and the rules service answers a
gate's scan with what `pass_verdict` decides.

A resident may open their own building's entrances and the community's gates (a
building's access doors are its entrances: the twin does not tie a unit to one of
them); an operator any door of their community. A visitor pass lets one visitor
through the community's gates once, between its two times; its QR code carries only
an opaque random token, and the twin keeps the token's SHA-256, so a copy of the
database opens nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from twin.access import User, require, require_community
from twin.errors import AccessDenied, TwinError

#: The device types that open: a building's entrance, a community gate.
DOOR_TYPES: tuple[str, ...] = ("access_door", "access_gate")
#: How long a visitor pass may be good for, and the default.
PASS_MAX_HOURS, PASS_DEFAULT_HOURS = 72, 4
#: How many passes a household may issue in a day: a party, not a hotel's front desk.
PASSES_PER_DAY = 20
#: Why a gate was told not to open a pass (the ``deny`` command's reason, an event's attr).
DENY_REASONS: tuple[str, ...] = ("unknown", "used", "expired", "not_yet", "other_community")
#: The longest text a speaker is asked to say.
BROADCAST_MAX_CHARS = 300


@dataclass(frozen=True, slots=True)
class Door:
    """A device that opens, and where it is."""

    id: str
    name: str
    type: str
    community_id: str
    building_id: str | None
    grid_id: str | None

    @property
    def is_gate(self) -> bool:
        return self.type == "access_gate"


@dataclass(frozen=True, slots=True)
class Home:
    """Where a resident lives (`twin.store.reads.residents.ResidentHome`, what counts here)."""

    resident_id: str
    building_id: str
    community_id: str


def resident_may_open(door: Door, home: Home) -> bool:
    """A resident's doors: the gates of their community, the entrances of their building."""
    if door.community_id != home.community_id or door.type not in DOOR_TYPES:
        return False
    return door.is_gate or door.building_id == home.building_id


def require_door(user: User, door: Door, home: Home | None) -> None:
    """Refuse (AccessDenied) a user who may not open ``door``: an operator another
    community's, a resident anything but their building's entrances and the gates."""
    what = f"door {door.id}"
    require(user, "door.open", what=f"open {what}")
    require_community(user, door.community_id, what=what)
    if door.type not in DOOR_TYPES:
        raise AccessDenied(f"{door.id} is a {door.type}, not a door")
    if user.role == "resident" and (home is None or home.resident_id != user.resident_id
                                    or not resident_may_open(door, home)):
        # the actor by id: a resident's login name is their phone number
        raise AccessDenied(f"{what} is not one of {actor_ref(user)}'s doors")


def actor_ref(user: User) -> str:
    """Who acted, as a command and an event record it: an id, never a name (a resident's
    login is their phone number, so it is never used)."""
    if user.role in ("resident", "family") and user.resident_id:
        return f"resident:{user.resident_id}"
    if user.staff_id:
        return f"staff:{user.staff_id}"
    return f"user:{user.name}"


# --- visitor passes -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class NewPass:
    """A pass as issued: its id, the token its QR code carries (shown once) and its hash."""

    id: str
    token: str
    token_sha256: bytes
    valid_from: datetime
    valid_until: datetime


def new_pass(now: datetime, hours: object) -> NewPass:
    """A fresh pass good from ``now`` for ``hours`` (1 to PASS_MAX_HOURS)."""
    if isinstance(hours, bool) or not isinstance(hours, int | float | str):
        raise TwinError(f"a pass is good for 1 to {PASS_MAX_HOURS} hours")
    try:
        span = float(hours)
    except ValueError:
        raise TwinError(f"a pass is good for 1 to {PASS_MAX_HOURS} hours, not {hours!r}"
                        ) from None
    if not 1 <= span <= PASS_MAX_HOURS:
        raise TwinError(f"a pass is good for 1 to {PASS_MAX_HOURS} hours, not {span:g}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    token = secrets.token_urlsafe(24)  # 192 random bits: nothing about anyone in it
    return NewPass(id=f"vp-{secrets.token_hex(8)}", token=token, token_sha256=token_hash(token),
                   valid_from=now, valid_until=now + timedelta(hours=span))


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def pass_verdict(*, valid_from: datetime, valid_until: datetime, used: bool,
                 same_community: bool, at: datetime) -> str | None:
    """None if the pass opens the gate at ``at``, else the reason it does not
    (one of DENY_REASONS)."""
    if not same_community:
        return "other_community"
    if used:
        return "used"
    if at < valid_from:
        return "not_yet"
    if at >= valid_until:
        return "expired"
    return None


# --- cloud broadcast ------------------------------------------------------------------------

def broadcast_text(text: object) -> str:
    """The text a speaker is to say, trimmed; a TwinError if there is none or too much."""
    if not isinstance(text, str) or not text.strip():
        raise TwinError("a broadcast needs a text")
    text = " ".join(text.split())
    if len(text) > BROADCAST_MAX_CHARS:
        raise TwinError(f"a broadcast says at most {BROADCAST_MAX_CHARS} characters, "
                        f"not {len(text)}")
    return text
