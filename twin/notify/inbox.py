"""The in-app inbox transport: a notification of channel ``app`` is delivered by putting
it in its login's inbox (`twin.store.inbox`), which the resident and family apps read."""

from __future__ import annotations

import psycopg

from twin.notify.routing import Delivery
from twin.notify.transport import DeliveryError
from twin.store import inbox


class InboxTransport:
    """Delivers into the twin's own inbox table, on the worker's (autocommit) connection."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn

    def send(self, delivery: Delivery) -> None:
        if delivery.channel != "app":
            raise DeliveryError(f"the inbox takes channel 'app' only, not {delivery.channel!r}",
                                permanent=True)
        if not inbox.deliver(self.conn, delivery.notification_id):
            raise DeliveryError("the login it is for no longer exists", permanent=True)

    def close(self) -> None:
        """The connection is the worker's."""
