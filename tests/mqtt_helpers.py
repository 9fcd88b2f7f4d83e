"""Test-side MQTT helpers: a publisher that retries like a real device, and waiting."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from ingest.broker import (
    NO_MATCHING_SUBSCRIBERS,
    BrokerAddress,
    make_client,
    session_properties,
)


class Publisher:
    """QoS 1 publisher as the contract asks devices to be (docs/mqtt.md, "Delivery").

    `send` returns once the broker has accepted the message for a subscriber;
    a PUBACK saying "no matching subscribers" (0x10) means the broker is going
    down, and the message is sent again.
    """

    def __init__(self, url: str, client_id: str | None = None) -> None:
        address = BrokerAddress.parse(url)
        self.client = make_client(address, client_id or f"pub-{uuid.uuid4().hex[:8]}")
        self._unmatched: set[int] = set()
        self.client.on_publish = self._on_publish
        self.client.connect(address.host, address.port, clean_start=False,
                            properties=session_properties(receive_maximum=1000))
        self.client.loop_start()

    def send(self, topic: str, payload: bytes, *, timeout: float = 30.0) -> None:
        """Publish until the broker acknowledges (a device retries; duplicates are harmless)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.client.publish(topic, payload, qos=1)
            try:
                info.wait_for_publish(timeout=2)
                if info.is_published() and info.mid not in self._unmatched:
                    return
            except (RuntimeError, ValueError):
                pass  # not connected right now: try again
            self._unmatched.discard(info.mid)

            if time.monotonic() > deadline:
                raise TimeoutError(f"the broker never acknowledged {topic}")
            time.sleep(0.2)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_publish(self, client, userdata, mid: int, reason_code, properties) -> None:
        if reason_code == NO_MATCHING_SUBSCRIBERS:
            self._unmatched.add(mid)


def clear_retained(url: str, topics: list[str]) -> None:
    """Clear retained messages a test left, so later tests meet a clean broker."""
    address = BrokerAddress.parse(url)
    client = make_client(address, f"cleaner-{uuid.uuid4().hex[:6]}")
    client.connect(address.host, address.port)
    client.loop_start()
    for start in range(0, len(topics), 20_000):  # packet ids wrap at 65,535
        chunk = set(topics[start:start + 20_000])
        infos = [client.publish(t, b"", qos=1, retain=True) for t in chunk]
        for info in infos:
            info.wait_for_publish(timeout=10)
    client.disconnect()
    client.loop_stop()


def wait_until(check: Callable[[], bool], *, timeout: float = 30.0, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f} s")
        time.sleep(every)
