"""Broker addresses and paho clients set up the way the twin uses them."""

from __future__ import annotations

import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

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
    #: Connect with TLS (``mqtts://``), checking the broker's certificate and host name.
    tls: bool = False
    #: The CA that signed the broker's certificate; None: the system's trusted CAs.
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str, environ: Mapping[str, str] | None = None) -> BrokerAddress:
        """``mqtt://[user:password@]host[:port]``, or ``mqtts://...[?ca=FILE]`` for TLS
        (the CA file from ``?ca=``, else TWIN_MQTT_CA, else the system's CAs)."""
        env = os.environ if environ is None else environ
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp", "mqtts", "ssl") or not parts.hostname:
            raise TwinError(f"not an MQTT URL (mqtt://host:port or mqtts://host:port): "
                            f"{_without_password(url)!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        ca = parse_qs(parts.query).get("ca", [""])[0] or env.get("TWIN_MQTT_CA") or None
        if tls and ca is not None and not os.path.isfile(ca):
            raise TwinError(f"the MQTT CA file {ca} does not exist")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=ca if tls else None,
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
    if address.tls:
        # the broker's certificate must chain to the CA and name the host dialled
        client.tls_set(ca_certs=address.ca_file, tls_version=ssl.PROTOCOL_TLS_CLIENT)
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


def _without_password(url: str) -> str:
    """The URL fit for an error message: the password replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)
                          ).geturl()
