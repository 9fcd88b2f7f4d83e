"""What every transport is: something that sends one delivery or raises DeliveryError."""

from __future__ import annotations

from typing import Protocol

from twin.notify.routing import Delivery


class DeliveryError(Exception):
    """A delivery that did not happen. ``permanent``: retrying cannot help (refused address).

    The message is stored in notification_attempt and logged: it must never hold
    an address, a name or the text, only what the server or the transport said.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Transport(Protocol):
    def send(self, delivery: Delivery) -> None:
        """Deliver, or raise DeliveryError; return only once the other side took it."""

    def close(self) -> None:
        """Let go of connections."""
