"""The servers the twin talks to: configured ones, or the embedded pair it runs."""

from __future__ import annotations

from dataclasses import dataclass

from twin.config import Settings
from twin.services.mosquitto import EmbeddedMosquitto
from twin.services.postgres import EmbeddedPostgres


@dataclass(frozen=True, slots=True)
class Endpoints:
    database_url: str
    mqtt_url: str


def embedded_postgres(settings: Settings) -> EmbeddedPostgres:
    return EmbeddedPostgres(settings.home / "pg")


def embedded_mosquitto(settings: Settings) -> EmbeddedMosquitto:
    return EmbeddedMosquitto(settings.home / "mqtt", tls=settings.mqtt_tls)


def database_url(settings: Settings) -> str:
    """The configured database, or the embedded one (started if it is not running)."""
    return settings.database_url or embedded_postgres(settings).start()


def mqtt_url(settings: Settings) -> str:
    """The configured broker, or the embedded one (started if it is not running); its TLS
    listener when TWIN_MQTT_TLS is set."""
    if settings.mqtt_url:
        return settings.mqtt_url
    broker = embedded_mosquitto(settings)
    url = broker.start()
    return broker.tls_url if settings.mqtt_tls else url


def up(settings: Settings) -> Endpoints:
    return Endpoints(database_url=database_url(settings), mqtt_url=mqtt_url(settings))


def down(settings: Settings) -> list[str]:
    """Stop the embedded servers; configured ones are not ours to stop."""
    stopped = []
    if settings.embedded_database:
        pg = embedded_postgres(settings)
        if pg.running():
            pg.stop()
            stopped.append("PostgreSQL")
    if settings.embedded_broker:
        broker = embedded_mosquitto(settings)
        if broker.conf.exists() and broker.running():
            broker.stop()
            stopped.append("Mosquitto")
    return stopped
