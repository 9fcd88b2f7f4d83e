"""Which transports a notification goes through, and to which addresses (pure).

The recipient a rule wrote depends on the channel (twin.rules.engine): a family
contact as ``name <phone>``, a staff id for grid_worker and staff, the word
``security_desk``, and the comma-separated speaker ids of a broadcast. Staff
addresses come from the staff table, looked up by the caller. Where a
recipient has no address of the kind a transport needs, the channel's duty
address is used; where there is none either, that transport is unroutable,
which no retry can change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twin.notify.config import NotifyConfig
from twin.texts import DEFAULT_LANG, Viewer

_PHONE_IN_ANGLES = re.compile(r"<\s*(\+?[0-9][0-9 -]*[0-9])\s*>\s*$")
_IN_ANGLES = re.compile(r"<\s*([^<>\s]+)\s*>\s*$")
_BARE_PHONE = re.compile(r"^\s*(\+?[0-9][0-9 -]*[0-9])\s*$")


@dataclass(frozen=True, slots=True)
class Contact:
    """A staff member's or family contact's addresses (personal data: never logged)."""

    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """A claimed notification, as the worker tries it."""

    id: int
    community_id: str
    channel: str
    recipient: str
    message: str
    time: datetime
    rule_id: str | None
    #: This claim's number: 1 on the first try.
    attempt: int
    #: Transports that already took it on an earlier try (not sent again).
    done: frozenset[str] = frozenset()
    #: The rule text it is rendered from (`twin.texts`) and its parameters (ids, no names).
    text_key: str | None = None
    text_params: Mapping[str, Any] = field(default_factory=dict)


#: Who reads a notification of each channel. A family contact and the grid worker (who
#: visits) and the managers (the community office) may read a resident's name; the
#: security desk and the speakers may not. All in zh-CN: the people and speakers the
#: community reaches read Chinese.
READERS: dict[str, Viewer] = {
    "family": Viewer(DEFAULT_LANG, whole=True),
    "grid_worker": Viewer(DEFAULT_LANG, whole=True),
    "staff": Viewer(DEFAULT_LANG, whole=True),
    "security_desk": Viewer(DEFAULT_LANG, whole=False),
    "broadcast": Viewer(DEFAULT_LANG, whole=False),
    # a resident's own app, or a family login about their relative (the app renders it
    # again in the login's own language when it is read)
    "app": Viewer(DEFAULT_LANG, whole=True),
}


def reader(channel: str) -> Viewer:
    """Who reads a notification of this channel (masked when in doubt)."""
    return READERS.get(channel, Viewer(DEFAULT_LANG, whole=False))


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification through one transport, to its addresses."""

    notification_id: int
    community_id: str
    channel: str
    transport: str
    #: e-mail addresses, phone numbers or device ids; empty for a group bot
    to: tuple[str, ...]
    text: str
    time: datetime
    rule_id: str | None = None

    @property
    def key(self) -> str:
        """Stable across retries: lets a gateway or a device drop a repeat."""
        return f"ntf-{self.notification_id}-{self.transport}"


@dataclass(frozen=True, slots=True)
class Unroutable:
    """A transport of the route with no address for this recipient."""

    transport: str
    reason: str


def recipient_addresses(channel: str, recipient: str, staff: Mapping[str, Contact]
                        ) -> dict[str, tuple[str, ...]]:
    """The addresses a recipient gives, by kind (email, phone, devices)."""
    if channel == "family":
        found = _PHONE_IN_ANGLES.search(recipient) or _BARE_PHONE.match(recipient)
        return {"phone": (found.group(1),)} if found else {}
    if channel in ("grid_worker", "staff"):
        contact = staff.get(recipient)
        if contact is None:
            return {}
        return {k: (v,) for k, v in (("phone", contact.phone), ("email", contact.email)) if v}
    if channel == "department":  # "name <phone>" or "name <e-mail>", from twin.escalation
        inside = _IN_ANGLES.search(recipient)
        if inside is None:
            return {}
        address = inside.group(1)
        return {"email": (address,)} if "@" in address else {"phone": (address,)}
    if channel == "broadcast":
        devices = tuple(d.strip() for d in recipient.split(",") if d.strip())
        return {"devices": devices} if devices else {}
    return {}


def route(config: NotifyConfig, n: Pending, *, staff: Mapping[str, Contact]
          ) -> list[Delivery | Unroutable]:
    """Each transport of the notification's route not yet done: a delivery, or why not."""
    plan = config.route(n.community_id, n.channel)
    own = recipient_addresses(n.channel, n.recipient, staff)
    duty = {"email": (plan.duty.email,) if plan.duty.email else (),
            "phone": (plan.duty.phone,) if plan.duty.phone else (),
            "devices": plan.duty.devices}
    out: list[Delivery | Unroutable] = []
    for name in plan.via:
        if name in n.done:
            continue
        need = config.transports[name].address
        to: tuple[str, ...] = () if need == "none" else own.get(need) or duty[need]
        if need != "none" and not to:
            out.append(Unroutable(name, f"the {n.channel} recipient has no {need} and the "
                                        f"route has no duty {need}"))
            continue
        out.append(Delivery(notification_id=n.id, community_id=n.community_id,
                            channel=n.channel, transport=name, to=to, text=n.message,
                            time=n.time, rule_id=n.rule_id))
    return out
