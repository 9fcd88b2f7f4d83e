"""Turning MQTT messages into rows, or into dead letters with a reason.

Pure: no broker, no database. The device directory is passed in (a mapping
from device id to type and community), so the rules of what is accepted can
be tested alone and the service only moves bytes and rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from pydantic import ValidationError

from ingest import contract
from twin.device_types import CAMERA_CLASSES, DEVICE_TYPES, GATEWAY_TYPE
_CAMERA_CLASSES = frozenset(CAMERA_CLASSES)
_SKEW = timedelta(seconds=contract.MAX_CLOCK_SKEW_S)
_INF = float("inf")
#: type -> metric -> (text choices or None, low, high): the registry, flattened for speed.
_LIMITS: dict[str, dict[str, tuple[frozenset[str] | None, float, float]]] = {
    code: {
        name: (frozenset(m.choices), -_INF, _INF) if m.is_text
        else (None, -_INF if m.min is None else m.min, _INF if m.max is None else m.max)
        for name, m in t.metrics.items()
    }
    for code, t in DEVICE_TYPES.items()
}


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    type: str
    community_id: str


#: Looks a device up by id; None when the twin does not know it.
Directory = Callable[[str], DeviceInfo | None]


class Refused(Exception):
    """A message or batch item that ingest will not write, and why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Decoded:
    """Rows decoded from many messages, ready for one transaction."""

    # (time, device_id, metric, value, value_text, received_at)
    readings: list[tuple] = field(default_factory=list)
    # (time, device_id, event_id, kind, class, confidence, method, direction,
    #  subject_id, value, attrs_json, received_at)
    events: list[tuple] = field(default_factory=list)
    # device_id -> (online, time)
    statuses: dict[str, tuple[bool, datetime]] = field(default_factory=dict)
    # device_id -> {metric: (time, value)}
    latest: dict[str, dict[str, tuple[datetime, float | str]]] = field(default_factory=dict)
    # device_id -> newest time heard from it
    last_seen: dict[str, datetime] = field(default_factory=dict)
    # (command_id, device_id, ok, detail, time, received_at, topic, payload)
    acks: list[tuple] = field(default_factory=list)
    # (received_at, topic, payload, reason, detail, item)
    dead: list[tuple] = field(default_factory=list)
    # device time of each message with accepted rows (a batch: its oldest item), for lag
    device_times: list[datetime] = field(default_factory=list)


def decode(topic: str, payload: bytes, received_at: datetime, directory: Directory,
           into: Decoded) -> None:
    """Decode one message into ``into``; a refusal becomes a dead letter there, never an error."""
    try:
        _decode(topic, payload, received_at, directory, into)
    except Refused as refused:
        into.dead.append((received_at, topic, payload, refused.reason, refused.detail, None))


def _decode(topic: str, payload: bytes, received_at: datetime, directory: Directory,
            into: Decoded) -> None:
    if len(payload) > contract.MAX_PAYLOAD_BYTES:
        raise Refused("oversized", f"{len(payload)} bytes, limit {contract.MAX_PAYLOAD_BYTES}")
    parts = contract.parse_topic(topic)
    if parts is None or parts[2] not in contract.DEVICE_TO_TWIN:
        raise Refused("bad_topic", f"not a device-to-twin topic of {contract.VERSION}")
    community_id, device_id, kind = parts
    device = _known(directory, device_id, community_id)
    message = _parse(contract.PAYLOADS[kind], payload)
    if kind == "telemetry":
        _readings(device_id, device, message.ts, message.readings, received_at, into)
        into.device_times.append(message.ts)
    elif kind == "event":
        _event(device_id, device, message, received_at, into)
        into.device_times.append(message.ts)
    elif kind == "status":
        ts = message.ts or received_at
        _not_future(ts, received_at)
        previous = into.statuses.get(device_id)
        if previous is None or previous[1] <= ts:
            into.statuses[device_id] = (message.online, ts)
        _seen(into, device_id, ts)
    elif kind == "ack":
        _not_future(message.ts, received_at)
        into.acks.append((message.id, device_id, message.ok, message.detail, message.ts,
                          received_at, topic, payload))
    else:  # batch
        if device.type != GATEWAY_TYPE:
            raise Refused("not_a_gateway", f"{device_id} is a {device.type}, not a gateway")
        _batch(topic, payload, message, community_id, directory, received_at, into)


def _batch(topic: str, payload: bytes, batch: contract.Batch, community_id: str,
           directory: Directory, received_at: datetime, into: Decoded) -> None:
    """Accept the good items of a batch; refuse the others one by one."""
    oldest: datetime | None = None
    for index, item in enumerate(batch.items):
        try:
            device = _known(directory, item.device, community_id)
            if item.readings is not None:
                assert item.ts is not None
                _readings(item.device, device, item.ts, item.readings, received_at, into)
                ts = item.ts
            else:
                assert item.event is not None
                _event(item.device, device, item.event, received_at, into)
                ts = item.event.ts
        except Refused as refused:
            into.dead.append((received_at, topic, payload, refused.reason,
                              f"item {index}: {refused.detail}", index))
            continue
        if oldest is None or ts < oldest:
            oldest = ts
    if oldest is not None:  # the message's age, for the lag metric: its oldest item
        into.device_times.append(oldest)


def _readings(device_id: str, device: DeviceInfo, ts: datetime,
              readings: dict[str, float | str], received_at: datetime, into: Decoded) -> None:
    """Check every value against its type's range, then add rows and latest values.

    The hot path of ingest (one call per device per message), so it works from
    a flat table of limits and touches each value once.
    """
    _not_future(ts, received_at)
    limits = _LIMITS[device.type]
    rows = []
    for name, value in readings.items():
        limit = limits.get(name)
        if limit is None:
            raise Refused("unknown_metric", f"{device.type} has no metric {name!r}")
        choices, low, high = limit
        if choices is not None:
            if value not in choices:
                raise Refused("out_of_range",
                              f"{name}={value!r} is not one of {', '.join(sorted(choices))}")
            rows.append((ts, device_id, name, None, value, received_at))
        elif value.__class__ is str or not low <= value <= high:
            unit = DEVICE_TYPES[device.type].metrics[name].unit
            raise Refused("out_of_range", f"{name}={value!r} {unit} outside [{low:g}, {high:g}]")
        else:
            rows.append((ts, device_id, name, float(value), None, received_at))
    into.readings.extend(rows)
    latest = into.latest.get(device_id)
    if latest is None:
        latest = into.latest[device_id] = {}
    for row in rows:
        held = latest.get(row[2])
        if held is None or held[0] <= ts:
            latest[row[2]] = (ts, row[3] if row[4] is None else row[4])
    seen = into.last_seen.get(device_id)
    if seen is None or seen < ts:
        into.last_seen[device_id] = ts


def _event(device_id: str, device: DeviceInfo, event: contract.EventBody,
           received_at: datetime, into: Decoded) -> None:
    _not_future(event.ts, received_at)
    kinds = DEVICE_TYPES[device.type].events
    if event.kind not in kinds:
        raise Refused("unknown_event",
                      f"{device.type} has no event {event.kind!r} (it has {', '.join(kinds)})")
    if event.kind == "detection" and event.class_ not in _CAMERA_CLASSES:
        raise Refused("unknown_event", f"detection class {event.class_!r} is not known")
    attrs = dict(event.attrs)
    if event.session is not None:
        attrs["session"] = event.session
    into.events.append((
        event.ts, device_id, event.id, event.kind, event.class_, event.confidence, event.method,
        event.direction, event.subject, event.energy_kwh, orjson.dumps(attrs).decode(),
        received_at,
    ))
    _seen(into, device_id, event.ts)


def _known(directory: Directory, device_id: str, community_id: str) -> DeviceInfo:
    device = directory(device_id)
    if device is None:
        raise Refused("unknown_device", f"no device {device_id!r} in the twin")
    if device.community_id != community_id:
        raise Refused("wrong_community",
                      f"{device_id} belongs to {device.community_id}, not {community_id}")
    return device


def _parse(model: type[contract.Message], payload: bytes):  # -> the model's instance
    try:
        return model.model_validate_json(payload)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            raise Refused("not_json", first["msg"]) from None
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise Refused("schema", f"{where}: {first['msg']}") from None


def _not_future(ts: datetime, received_at: datetime) -> None:
    if ts - received_at > _SKEW:
        raise Refused("future_timestamp",
                      f"{ts.isoformat()} is {(ts - received_at).total_seconds():.0f} s ahead "
                      "of the server")


def _seen(into: Decoded, device_id: str, ts: datetime) -> None:
    held = into.last_seen.get(device_id)
    if held is None or held < ts:
        into.last_seen[device_id] = ts

