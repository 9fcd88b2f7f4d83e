"""The delivery configuration: transports, retries and, per community, each channel's route.

One YAML file, validated on load like the rules are: an error names the file,
the key and what was expected. Secrets are never in the file, only the names
of the environment variables that hold them (``password_env``, ``secret_env``).

Each channel is routed ``via`` named transports. A transport needs one kind of
address: ``smtp`` an e-mail, ``webhook`` a phone number (or none, for a group
bot), ``mqtt`` device ids. The recipient supplies it where it can (a staff
member's phone and e-mail, a family contact's phone, the speakers of a
broadcast); otherwise the channel's ``duty`` address is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from twin.config_errors import KeyCheckError, describe
from twin.errors import TwinError
from twin.notify.retry import RetryPolicy
from twin.yaml12 import load_mapping

CHANNELS: tuple[str, ...] = ("family", "grid_worker", "security_desk", "staff", "broadcast")
#: Channels a file may route but need not: without a route of its own, ``department``
#: (an escalated order handed to a city department, twin.escalation) goes the way of
#: ``staff``, to the department's own addresses only.
OPTIONAL_CHANNELS: tuple[str, ...] = ("department", "app")
Channel = Literal["family", "grid_worker", "security_desk", "staff", "broadcast", "department",
                  "app"]
AddressKind = Literal["email", "phone", "devices", "none"]

#: The kinds of address each channel's recipient can give (twin.rules.engine._recipients):
#: family: "name <phone>" of a family contact; grid_worker, staff: a staff id (phone, and
#: e-mail where staff.email is set); security_desk: the word itself; broadcast: speaker ids.
RECIPIENT_GIVES: dict[str, frozenset[str]] = {
    "family": frozenset({"phone"}),
    "grid_worker": frozenset({"phone", "email"}),
    "staff": frozenset({"phone", "email"}),
    "security_desk": frozenset(),
    "broadcast": frozenset({"devices"}),
    "department": frozenset({"phone", "email"}),
    # a resident's or family member's login: the in-app inbox needs no address
    "app": frozenset(),
}
#: The built-in transport of the ``app`` channel: the twin's own in-app inbox.
INBOX = "inbox"


class NotifyConfigError(TwinError):
    """The delivery configuration is wrong; the message names the file and the key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SmtpSettings(_Model):
    """An SMTP server to send mail through (smtplib)."""

    kind: Literal["smtp"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    #: none: plain; starttls: upgrade after connecting (port 587); ssl: TLS from the start (465)
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    #: The environment variable holding the password (with ``username``).
    password_env: str | None = None
    sender: str = Field(min_length=3)
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    #: CA certificates to trust for TLS (a private CA); default: the system's.
    ca_file: Path | None = None

    @property
    def address(self) -> AddressKind:
        return "email"

    @model_validator(mode="after")
    def _login(self) -> SmtpSettings:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both 'username' and 'password_env' to log in, or neither")
        return self


class WebhookSettings(_Model):
    """An HTTP endpoint taking signed JSON: an SMS gateway, a WeChat Work or DingTalk bot."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    #: The environment variable holding the shared HMAC secret.
    secret_env: str = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    #: phone: one request per notification to the recipients' phones (an SMS gateway);
    #: none: the text only (a group bot posts it to its chat).
    to: Literal["phone", "none"] = "phone"

    @property
    def address(self) -> AddressKind:
        return self.to


class MqttSettings(_Model):
    """The twin's own broker: a ``broadcast`` command on each device's cmd topic, QoS 1."""

    kind: Literal["mqtt"]
    #: How long to wait for the broker's PUBACK.
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @property
    def address(self) -> AddressKind:
        return "devices"


class InboxSettings(_Model):
    """The twin's own in-app inbox (resident and family logins): always there, added to
    every file's transports as ``inbox`` unless the file names one itself."""

    kind: Literal["inbox"]
    timeout_s: float = Field(default=5.0, gt=0, le=60)

    @property
    def address(self) -> AddressKind:
        return "none"


Transport = Annotated[SmtpSettings | WebhookSettings | MqttSettings | InboxSettings,
                      Field(discriminator="kind")]


class Duty(_Model):
    """Where a channel's notification goes when its recipient has no address of the kind."""

    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 -]{4,}$")
    devices: tuple[str, ...] = ()

    def gives(self) -> frozenset[str]:
        return frozenset(k for k, v in (("email", self.email), ("phone", self.phone),
                                        ("devices", self.devices)) if v)


class Route(_Model):
    """One channel's route: the transports, in order, and its duty addresses."""

    via: tuple[str, ...] = Field(min_length=1)
    duty: Duty = Duty()


class NotifyConfig(_Model):
    """The whole file: ``transports``, ``retry``, ``default`` routes and per-``communities``."""

    transports: dict[str, Transport] = Field(min_length=1)
    retry: RetryPolicy = RetryPolicy()
    #: A route for every channel.
    default: dict[Channel, Route]
    #: Per community, the channels routed otherwise than the default.
    communities: dict[str, dict[Channel, Route]] = {}

    @model_validator(mode="before")
    @classmethod
    def _with_inbox(cls, data: Any) -> Any:
        """Every configuration can deliver to the in-app inbox (channel ``app``)."""
        if isinstance(data, dict) and isinstance(data.get("transports"), dict) \
                and data["transports"] and INBOX not in data["transports"]:
            data = {**data, "transports": {**data["transports"], INBOX: {"kind": "inbox"}}}
        return data

    @model_validator(mode="after")
    def _complete(self) -> NotifyConfig:
        missing = [c for c in CHANNELS if c not in self.default]
        if missing:
            raise KeyCheckError("default", f"every channel needs a route; missing {missing}")
        for where, routes in [("default", self.default),
                              *((f"communities.{c}", r) for c, r in self.communities.items())]:
            for channel, route in routes.items():
                for i, name in enumerate(route.via):
                    key = f"{where}.{channel}.via.{i}"
                    settings = self.transports.get(name)
                    if settings is None:
                        raise KeyCheckError(key, f"there is no transport {name!r}; the transports "
                                             f"are {self._named()}")
                    need = settings.address
                    if need != "none" and need not in RECIPIENT_GIVES[channel] \
                            and need not in route.duty.gives():
                        raise KeyCheckError(key, f"{channel} recipients give no {need} for "
                                             f"{settings.kind} transport {name!r}: set "
                                             f"'{where}.{channel}.duty.{need}'")
                slowest = sum(self.transports[name].timeout_s for name in route.via)
                if self.retry.lease_s < 2 * slowest:
                    raise KeyCheckError("retry.lease_s", f"{self.retry.lease_s:g} s is too short for "
                                    f"{where}.{channel} (via {', '.join(route.via)}: up to "
                                    f"{slowest:g} s of timeouts); give at least twice that")
        return self

    def _named(self) -> list[str]:
        """The transports the file names (not the built-in inbox it did not)."""
        return sorted(n for n, t in self.transports.items()
                      if n != INBOX or not isinstance(t, InboxSettings))

    def route(self, community_id: str, channel: str) -> Route:
        """The route of a channel in a community: its own, else the default.

        ``department`` without a route of its own takes the ``staff`` transports
        with no duty addresses: a department is told at its own addresses only.
        """
        key = cast(Channel, channel)
        own = self.communities.get(community_id, {}).get(key) or self.default.get(key)
        if own is None and channel == "department":
            return Route(via=self.route(community_id, "staff").via)
        if own is None and channel == "app":
            return Route(via=(INBOX,))
        assert own is not None, f"no route for channel {channel!r}"
        return own


def parse_config(text: str, *, origin: str = "<text>") -> NotifyConfig:
    """The configuration in a YAML text, or a NotifyConfigError naming ``origin`` and the key."""
    data = load_mapping(text, origin=origin, error=NotifyConfigError,
                        holds="transports, retry, default, communities")
    try:
        return NotifyConfig.model_validate(data)
    except ValidationError as e:
        raise NotifyConfigError(_describe_notify(origin, e)) from None


def load_config(path: Path) -> NotifyConfig:
    """Read and check a configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise NotifyConfigError(f"{path}: cannot read: {e.strerror}") from None
    return parse_config(text, origin=str(path))


# --- private -----------------------------------------------------------------------------


def _describe_notify(origin: str, error: ValidationError) -> str:
    # a transport's tagged union adds its kind to the path: transports.mail.smtp.port;
    # duty addresses are people's or desks' contacts: not echoed
    return describe(origin, error, path=_untagged, unechoed=("duty",))


def _untagged(loc: list[Any]) -> list[Any]:
    if len(loc) > 2 and loc[0] == "transports" and loc[2] in ("smtp", "webhook", "mqtt",
                                                                 "inbox"):
        return loc[:2] + loc[3:]
    return loc
