"""One MQTT client for all simulated devices: it publishes, and it takes their commands.

Devices publish at QoS 1 and keep a message until the broker acknowledges it
(docs/mqtt.md, "Delivery"). The actuators among them also subscribe to their
``cmd`` topics; one subscription, ``twin/v1/{community}/+/cmd``, takes the
commands of all of them, and the runner hands each to the simulation.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

from ingest.broker import NO_MATCHING_SUBSCRIBERS, BrokerAddress, make_client
from twin.errors import TwinError

#: Messages published but not yet acknowledged before the publisher waits for the broker.
MAX_UNACKED = 2000
#: Sends of a message the broker keeps acknowledging with "no matching subscribers".
UNMATCHED_ATTEMPTS = 5
#: How long a "no matching subscribers" waits for a disconnect that explains it.
HOLD_S = 2.0
#: How long the broker may take to acknowledge what was published, at the end of a run.
DRAIN_TIMEOUT_S = 60.0


class Publisher:
    """One QoS 1 client for all devices, paced by a token bucket, waiting on the broker.

    As docs/mqtt.md asks of devices, a message the broker acknowledges with
    "no matching subscribers" (0x10) is held: if the connection drops soon
    after, the broker was going down and the message is sent again; if not,
    nobody subscribes (ingest is not running) and it is counted in
    ``unmatched`` rather than sent forever. With ``commands`` (a topic
    filter), it subscribes to it on every connect and queues what arrives for
    :meth:`take_commands`.
    """

    def __init__(self, address: BrokerAddress, *, rate: float, client_id: str,
                 commands: str | None = None, connect_timeout_s: float = 10.0) -> None:
        self._rate = rate
        self._tokens = 1.0
        self._refilled = time.monotonic()
        # (info, topic, payload, retain, attempt) of messages not yet acknowledged
        self._unacked: deque[tuple[mqtt.MQTTMessageInfo, str, bytes, bool, int]] = deque()
        self._unmatched_mids: set[int] = set()
        self._held: list[tuple[float, tuple[mqtt.MQTTMessageInfo, str, bytes, bool, int]]] = []
        self._last_disconnect = float("-inf")
        #: Messages the broker accepted while no one subscribed to them.
        self.unmatched = 0
        self._connected = threading.Event()
        self._refused: str | None = None
        #: The topic filter of the commands to take, subscribed on every connect.
        self._commands_filter = commands
        self._commands: deque[tuple[str, bytes]] = deque()
        self._subscribed = threading.Event()
        #: Why the broker would not let the simulator take commands, if it would not.
        self.commands_refused: str | None = None
        self._where = f"{address.host}:{address.port}"
        self._client = make_client(address, client_id)
        self._client.max_inflight_messages_set(1000)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        try:
            self._client.connect(address.host, address.port, keepalive=30)
        except OSError as e:
            raise TwinError(f"cannot reach the MQTT broker at {self._where}: "
                            f"{e.strerror or e}") from e
        self._client.loop_start()
        if not self._connected.wait(connect_timeout_s):
            self._client.loop_stop()
            reason = self._refused or "no answer"
            raise TwinError(f"the MQTT broker at {self._where} did not accept the simulator "
                            f"({reason}; check credentials and ACLs)")
        if commands is not None and not self._subscribed.wait(connect_timeout_s):
            self.commands_refused = "no answer to the subscription"

    def take_commands(self) -> list[tuple[str, bytes]]:
        """The ``cmd`` messages received since the last call, in arrival order."""
        taken = []
        while self._commands:
            taken.append(self._commands.popleft())
        return taken

    def send(self, topic: str, payload: bytes, *, retain: bool = False,
             paced: bool = True) -> None:
        """Publish at QoS 1 (within the rate unless ``paced`` is false, as for acks)."""
        if paced:
            self._take()
        self._publish(topic, payload, retain)
        if self._held:
            self._review_held()
        unacked = self._unacked
        while unacked and unacked[0][0].is_published():
            self._settle(unacked.popleft())
        if len(unacked) > MAX_UNACKED:
            entry = unacked.popleft()
            self._wait(entry[0], DRAIN_TIMEOUT_S)
            self._settle(entry)

    def close(self) -> None:
        """Wait until the broker has everything, then disconnect."""
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while self._unacked or self._held:
                if self._unacked:
                    entry = self._unacked.popleft()
                    self._wait(entry[0], max(0.0, deadline - time.monotonic()))
                    self._settle(entry)
                else:
                    time.sleep(0.1)
                self._review_held()
        finally:
            self._client.disconnect()
            self._client.loop_stop()

    def _publish(self, topic: str, payload: bytes, retain: bool, attempt: int = 1) -> None:
        info = self._client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise TwinError(f"could not publish to {topic}: {mqtt.error_string(info.rc)}")
        self._unacked.append((info, topic, payload, retain, attempt))

    def _settle(self, entry: tuple[mqtt.MQTTMessageInfo, str, bytes, bool, int]) -> None:
        """An acknowledged message: done, unless the broker matched no subscriber."""
        if entry[0].mid in self._unmatched_mids:
            self._unmatched_mids.discard(entry[0].mid)
            self._held.append((time.monotonic(), entry))

    def _review_held(self) -> None:
        """Resend what a departing broker dropped; count what nobody subscribes to."""
        now, keep = time.monotonic(), []
        for since, entry in self._held:
            _, topic, payload, retain, attempt = entry
            if self._last_disconnect >= since - HOLD_S and attempt < UNMATCHED_ATTEMPTS:
                self._publish(topic, payload, retain, attempt + 1)
            elif now - since > HOLD_S or attempt >= UNMATCHED_ATTEMPTS:
                self.unmatched += 1
            else:
                keep.append((since, entry))
        self._held = keep

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: object,
                       reason_code: object, properties: object) -> None:
        self._last_disconnect = time.monotonic()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int,
                    reason_code: mqtt.ReasonCode, properties: object) -> None:
        if reason_code == NO_MATCHING_SUBSCRIBERS:
            self._unmatched_mids.add(mid)

    def _take(self) -> None:
        if self._rate <= 0:
            return
        now = time.monotonic()
        self._tokens = min(max(1.0, self._rate / 10), self._tokens
                           + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1.0:
            time.sleep((1.0 - self._tokens) / self._rate)
            self._tokens, self._refilled = 1.0, time.monotonic()
        self._tokens -= 1.0

    def _wait(self, info: mqtt.MQTTMessageInfo, timeout: float) -> None:
        """Until the broker acknowledges (a message queued while offline goes on reconnect)."""
        deadline = time.monotonic() + timeout
        while not info.is_published():
            if time.monotonic() > deadline:
                raise TwinError(f"the MQTT broker at {self._where} did not acknowledge the "
                                f"simulator's messages within {timeout:.0f} s")
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                info.wait_for_publish(timeout=0.5)
            else:
                time.sleep(0.05)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: object,
                    reason_code: mqtt.ReasonCode, properties: object) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
            return
        if self._commands_filter is not None:
            client.subscribe(self._commands_filter, qos=1)
        self._connected.set()

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[mqtt.ReasonCode], properties: object) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        self.commands_refused = refused[0] if refused else None
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: object,
                    message: mqtt.MQTTMessage) -> None:
        # paho's network thread only queues; the simulation obeys on the main thread.
        self._commands.append((message.topic, bytes(message.payload)))
