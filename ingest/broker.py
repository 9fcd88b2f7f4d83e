"""Broker addresses and paho clients set up the way the twin uses them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from twin.errors import TwinError

#: A session that outlives any outage: unacknowledged messages wait for us.
SESSION_NEVER_EXPIRES = 0xFFFFFFFF
#: PUBACK reason 0x10. Ingest's persistent subscription always matches, so this
#: only happens while a broker is shutting down: a publisher must send again.
NO_MATCHING_SUBSCRIBERS = 16


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """``mqtt://[user:password@]host[:port]``."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise TwinError(f"not an MQTT URL (mqtt://host:port): {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or 1883,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


@dataclass(slots=True)
class Received:
    """A message taken from paho's network thread, waiting to be decoded and acknowledged.

    ``generation`` counts connections: an acknowledgement for a message of an
    earlier connection must not be sent on the new one.
    """

    mid: int
    qos: int
    topic: str
    payload: bytes
    received: float
    generation: int

    @classmethod
    def of(cls, msg: mqtt.MQTTMessage, generation: int) -> Received:
        # paho reads payloads as bytes (annotated bytes | bytearray); bytes() of bytes is itself
        return cls(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.time(), generation)


def with_service_credentials(url: str, service: str) -> str:
    """The URL as it is if it names a user; else with the service's own credentials.

    Those come from TWIN_MQTT_USERNAME/PASSWORD or are derived from this
    installation's broker secret (see ingest.broker_auth); without either,
    the broker is anonymous and the URL is returned unchanged.
    """
    from ingest.broker_auth import mqtt_credentials

    parts = urlsplit(url)
    if parts.username:
        return url
    credentials = mqtt_credentials(service)
    if credentials is None:
        return url
    user, password = (quote(v, safe="") for v in credentials)
    return parts._replace(netloc=f"{user}:{password}@{parts.netloc}").geturl()


def make_client(address: BrokerAddress, client_id: str, *, manual_ack: bool = False
                ) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    if address.username:
        client.username_pw_set(address.username, address.password)
    # paho annotates the delays int, but waits any number of seconds
    client.reconnect_delay_set(min_delay=0.2, max_delay=5)  # type: ignore[arg-type]
    return client


def session_properties(*, receive_maximum: int) -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_NEVER_EXPIRES
    props.ReceiveMaximum = receive_maximum
    return props


def forget_session(url: str, client_id: str) -> None:
    """Ask the broker to drop a persistent session and its queue (a retired consumer)."""
    address = BrokerAddress.parse(url)
    client = make_client(address, client_id)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0
    client.connect(address.host, address.port, clean_start=True, properties=props)
    client.loop_start()
    time.sleep(0.1)
    client.disconnect()
    client.loop_stop()
