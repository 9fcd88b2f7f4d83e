"""The MQTT contract, version 1: the topic tree and the payload schemas.

Topics follow Sparkplug B's idea of a fixed, versioned namespace whose levels
say who speaks and what kind of message it is, and OGC SensorThings' idea of
one topic per thing and stream, so a broker ACL can be written per device:

    twin/v1/{community_id}/{device_id}/{kind}

kind            direction          payload
telemetry       device -> twin     Telemetry
event           device -> twin     Event
status          device -> twin     Status (retained; also the device's last will)
ack             device -> twin     Ack (of a command)
batch           gateway -> twin    Batch (readings and events of many devices)
position        badge -> twin      Position (a staff badge's or tracker's fix of its wearer)
cmd             twin -> device     Command

The pydantic models below are the single source of the schemas: ingest
validates with them and ``ingest/schemas/*.json`` are generated from them
(`twin mqtt-schemas`; a test keeps the files current).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from twin.device_types import AccessMethod

Kind = Literal["telemetry", "event", "status", "ack", "batch", "position", "cmd"]

VERSION = "v1"
ROOT = "twin"
DEVICE_TO_TWIN: tuple[Kind, ...] = ("telemetry", "event", "status", "ack", "batch", "position")
TWIN_TO_DEVICE: tuple[Kind, ...] = ("cmd",)
#: Largest payload ingest accepts; anything bigger is dead-lettered unread.
MAX_PAYLOAD_BYTES = 1 << 20
#: How far ahead of the server's clock a device timestamp may be.
MAX_CLOCK_SKEW_S = 300.0

#: What a community or device id may be to stand in a topic level (no wildcards, no '/').
_ID = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")]
Value = float | str
#: RFC 3339 with an offset (UTC recommended: "2026-11-24T07:00:00.123Z") or epoch milliseconds.
Timestamp = Annotated[AwareDatetime, WithJsonSchema({
    "anyOf": [{"type": "string", "format": "date-time"},
              {"type": "integer", "description": "milliseconds since 1970-01-01T00:00:00Z"}],
})]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Telemetry(Message):
    """Readings of one device at one time, in the units of its device type."""

    ts: Timestamp = Field(description="Device time of the readings")
    readings: dict[Name, Value] = Field(min_length=1, max_length=64,
                                        description="metric -> value (number or text)")
    seq: int | None = Field(None, ge=0, description="Device's message counter, if it keeps one")


class EventBody(Message):
    """One discrete occurrence: a detection, an access, a charger session start/stop, ..."""

    ts: Timestamp
    id: Name = Field(description="Device-assigned id; redelivery with the same id is a no-op")
    kind: Name = Field(description="One of the device type's events, e.g. detection, access")
    class_: Name | None = Field(None, alias="class", description="Detection class (cameras)")
    confidence: float | None = Field(None, ge=0, le=1)
    method: AccessMethod | None = Field(
        None, description="How a gate or door was opened")
    direction: Literal["in", "out"] | None = None
    subject: Name | None = Field(None, description="Resident or staff id, when known")
    energy_kwh: float | None = Field(None, ge=0, le=1000, description="Charger session energy")
    session: Name | None = Field(None, description="Charger session id")
    attrs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_needs(self) -> EventBody:
        if self.kind == "detection" and (self.class_ is None or self.confidence is None):
            raise ValueError("a detection needs 'class' and 'confidence'")
        if self.kind == "access" and self.method is None:
            raise ValueError("an access event needs 'method'")
        if self.kind == "charge_stop" and self.energy_kwh is None:
            raise ValueError("charge_stop needs 'energy_kwh'")
        return self


class Event(EventBody):
    """An event published by the device itself on its ``event`` topic."""


class Status(Message):
    """Online/offline. Devices publish it retained and set it as their last will."""

    online: bool
    ts: Timestamp | None = Field(
        None, description="Absent in a last will: the server's receive time is used")
    reason: str | None = Field(None, max_length=200)


class Command(Message):
    id: Name
    ts: Timestamp
    command: Name
    args: dict[str, Any] = Field(default_factory=dict)


class Ack(Message):
    id: Name = Field(description="The id of the command acknowledged")
    ts: Timestamp
    ok: bool
    detail: str | None = Field(None, max_length=500)


class BatchItem(Message):
    """One device's readings or one event, inside a gateway's batch."""

    device: Name
    ts: Timestamp | None = Field(None, description="Required with readings")
    readings: dict[Name, Value] | None = Field(None, min_length=1, max_length=64)
    event: EventBody | None = None

    @model_validator(mode="after")
    def _one_of(self) -> BatchItem:
        if (self.readings is None) == (self.event is None):
            raise ValueError("a batch item has either 'readings' or 'event'")
        if self.readings is not None and self.ts is None:
            raise ValueError("readings in a batch item need 'ts'")
        return self


class Position(Message):
    """Where the wearer of a staff badge or tracker is: one fix.

    Who it is comes from the topic (the badge's device id, which its broker
    credentials alone may publish under) and the staff member the badge is
    issued to, never from the payload.
    """

    ts: Timestamp = Field(description="Device time of the fix")
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS 84 (EPSG:4326)")
    lat: float = Field(ge=-90, le=90, description="Latitude, WGS 84 (EPSG:4326)")
    accuracy_m: float = Field(ge=0, le=10_000,
                              description="Radius of 68 % confidence, in metres")
    floor: int | None = Field(None, ge=-10, le=200,
                              description="Floor, when the tracker knows it (indoor positioning)")


class Batch(Message):
    """Many readings and events of many devices, sent by a gateway of the same community."""

    items: list[BatchItem] = Field(min_length=1, max_length=10_000)


PAYLOADS: dict[str, type[Message]] = {
    "telemetry": Telemetry,
    "event": Event,
    "status": Status,
    "ack": Ack,
    "batch": Batch,
    "position": Position,
    "cmd": Command,
}


def topic(community_id: str, device_id: str, kind: Kind) -> str:
    return f"{ROOT}/{VERSION}/{community_id}/{device_id}/{kind}"


def parse_topic(name: str) -> tuple[str, str, str] | None:
    """(community_id, device_id, kind) of a v1 topic, or None if it is not one."""
    parts = name.split("/")
    if len(parts) != 5 or parts[0] != ROOT or parts[1] != VERSION or parts[4] not in PAYLOADS:
        return None
    return parts[2], parts[3], parts[4]


def subscriptions(group: str, kinds: tuple[str, ...] = DEVICE_TO_TWIN,
                  community_id: str | None = None) -> list[str]:
    """Shared subscriptions to ``kinds`` of every device (ingest: every device-to-twin kind),
    split across the processes of ``group``; of one community's devices only if it is given.

    Processes of one group with different communities hold different filters, so the
    broker gives each only its own community's messages (none is lost to the other).
    """
    where = community_id if community_id is not None else "+"
    if where != "+" and not _ID.fullmatch(where):
        raise ValueError(f"not a community id usable in a topic: {community_id!r}")
    return [f"$share/{group}/{ROOT}/{VERSION}/{where}/+/{kind}" for kind in kinds]


def json_schema(kind: str) -> dict[str, Any]:
    schema = PAYLOADS[kind].model_json_schema(by_alias=True)
    schema["$id"] = f"https://community-twin.invalid/schemas/{VERSION}/{kind}.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


SCHEMA_DIR = Path(__file__).parent / "schemas"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write one JSON Schema per message kind (what `twin mqtt-schemas` does)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in PAYLOADS:
        path = directory / f"{kind}.json"
        path.write_text(json.dumps(json_schema(kind), indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def fmt_time(ts: datetime) -> str:
    """Fixed-width UTC text, so that times compare correctly as strings (latest state)."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def command_message(community_id: str, device_id: str, command_id: str, issued_at: datetime,
                    command: str, args: dict[str, Any]) -> tuple[str, bytes]:
    """The ``cmd`` topic and payload of one command to one device (mqtt.md#cmd-and-ack): what
    the rules' outbox and the notification worker's speakers both publish."""
    return (topic(community_id, device_id, "cmd"),
            orjson.dumps({"id": command_id, "ts": fmt_time(issued_at), "command": command,
                          "args": args}))

