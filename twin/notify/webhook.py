"""A signed HTTP webhook: JSON to an SMS gateway or a chat bot, HMAC-SHA256 over time and body.

The receiver recomputes ``hex(HMAC-SHA256(secret, timestamp + "." + body))`` and
compares it with the ``X-Twin-Signature`` header (``sha256=<hex>``), and refuses
a timestamp far from its own clock, so a captured request cannot be replayed
later. ``id`` in the body stays the same across retries: a gateway drops a
repeat by it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from twin.notify.config import WebhookSettings
from twin.notify.routing import Delivery
from twin.notify.transport import DeliveryError

SIGNATURE_HEADER = "X-Twin-Signature"
TIMESTAMP_HEADER = "X-Twin-Timestamp"
#: How far the receiver may let a timestamp stray from its clock.
MAX_SKEW_S = 300


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value for a body sent at ``timestamp`` (epoch seconds)."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *,
           now: float | None = None, max_skew_s: float = MAX_SKEW_S) -> bool:
    """What a receiver checks: the signature, in constant time, and a fresh timestamp."""
    try:
        sent = float(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > max_skew_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def body(delivery: Delivery) -> bytes:
    """The JSON the receiver gets."""
    return json.dumps({
        "id": delivery.key,
        "notification_id": delivery.notification_id,
        "community_id": delivery.community_id,
        "channel": delivery.channel,
        "to": list(delivery.to),
        "text": delivery.text,
        "time": delivery.time.isoformat(),
    }, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookTransport:
    """POSTs each delivery; any status outside 2xx is a failure, 4xx (but 408, 429) for good."""

    def __init__(self, settings: WebhookSettings, secret: bytes) -> None:
        if not secret:
            raise ValueError("a webhook needs a non-empty secret")
        self.settings = settings
        self._secret = secret

    def send(self, delivery: Delivery) -> None:
        payload = body(delivery)
        stamp = str(int(time.time()))
        request = urllib.request.Request(self.settings.url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            TIMESTAMP_HEADER: stamp,
            SIGNATURE_HEADER: sign(self._secret, stamp, payload),
            "Idempotency-Key": delivery.key,
        })
        try:
            with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                response.read(65536)
        except urllib.error.HTTPError as e:
            permanent = 400 <= e.code < 500 and e.code not in (408, 429)
            raise DeliveryError(f"HTTP {e.code} {e.reason}", permanent=permanent) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            raise DeliveryError(f"webhook unreachable: {type(reason).__name__}: {reason}"
                                ) from None

    def close(self) -> None:
        """Nothing held between requests."""
