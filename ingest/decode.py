"""Turning MQTT messages into rows, or into dead letters with a reason.

Pure: no broker, no database. The device directory is passed in (a mapping
from device id to type and community), so the rules of what is accepted can
be tested alone and the service only moves bytes and rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

import orjson
from pydantic import ValidationError

from ingest import contract
from twin.device_types import CAMERA_CLASSES, DEVICE_TYPES, GATEWAY_TYPE
from twin.model import DeviceInfo

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


#: Looks a device up by id; None when the twin does not know it.
Directory = Callable[[str], DeviceInfo | None]

#: A reading row, (time, device_id, metric, value, value_text, received_at): a number
#: or a text, never both.
NumberReading = tuple[datetime, str, str, float, None, datetime]
TextReading = tuple[datetime, str, str, None, str, datetime]
Reading = NumberReading | TextReading

_Payload = TypeVar("_Payload", bound=contract.Message)


class Refused(Exception):
    """A message or batch item that ingest will not write, and why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Decoded:
    """Rows decoded from many messages, ready for one transaction."""

    readings: list[Reading] = field(default_factory=list)
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
    # (time, badge device_id, lon, lat, accuracy_m, floor, received_at, topic, payload):
    # whose fix it is, the writer looks up when it commits (the badge's current holder)
    positions: list[tuple] = field(default_factory=list)
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
    if kind == "telemetry":
        telemetry = _parse(contract.Telemetry, payload)
        _readings(device_id, device, telemetry.ts, telemetry.readings, received_at, into)
        into.device_times.append(telemetry.ts)
    elif kind == "event":
        event = _parse(contract.Event, payload)
        _event(device_id, device, event, received_at, into)
        into.device_times.append(event.ts)
    elif kind == "status":
        status = _parse(contract.Status, payload)
        ts = status.ts or received_at
        _not_future(ts, received_at)
        previous = into.statuses.get(device_id)
        if previous is None or previous[1] <= ts:
            into.statuses[device_id] = (status.online, ts)
        _seen(into, device_id, ts)
    elif kind == "ack":
        ack = _parse(contract.Ack, payload)
        _not_future(ack.ts, received_at)
        into.acks.append((ack.id, device_id, ack.ok, ack.detail, ack.ts,
                          received_at, topic, payload))
    elif kind == "position":
        if not DEVICE_TYPES[device.type].positions:
            raise Refused("not_a_badge",
                          f"{device_id} is a {device.type}, which sends no staff positions")
        fix = _parse(contract.Position, payload)
        _not_future(fix.ts, received_at)
        into.positions.append((fix.ts, device_id, fix.lon, fix.lat, fix.accuracy_m, fix.floor,
                               received_at, topic, payload))
        _seen(into, device_id, fix.ts)
        into.device_times.append(fix.ts)
    else:  # batch
        if device.type != GATEWAY_TYPE:
            raise Refused("not_a_gateway", f"{device_id} is a {device.type}, not a gateway")
        if not _plain_batch(payload, community_id, directory, received_at, into):
            _batch(topic, payload, _parse(contract.Batch, payload), community_id, directory,
                   received_at, into)


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


#: What `contract.Name` admits; a name that does not match sends the batch the slow way.
_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
#: Device ids already checked against _NAME: a gateway repeats the same few thousand.
_GOOD_NAMES: set[str] = set()
_GOOD_NAMES_MAX = 1 << 21


def _plain_batch(payload: bytes, community_id: str, directory: Directory,
                 received_at: datetime, into: Decoded) -> bool:
    """Decode a batch of plain, valid readings without building pydantic models.

    Gateways send thousands of readings a second, and pydantic spends about
    7 µs on each; here a reading costs about 1 µs. This path accepts only a
    strict subset of what `contract.Batch` accepts (readings items with the
    canonical timestamp shape, known devices, numbers in range) and adds
    nothing unless every item passes; anything else returns False and the
    batch goes through the models, which stay the one definition of valid
    (a test checks both paths agree).
    """
    try:
        doc = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    if doc.__class__ is not dict or len(doc) != 1:
        return False
    items = doc.get("items")
    if items.__class__ is not list or not 0 < len(items) <= 10_000:
        return False
    future = received_at + _SKEW
    parse_ts = datetime.fromisoformat
    good_names = _GOOD_NAMES
    rows: list[NumberReading] = []
    per_device: list[tuple[str, datetime, int, int]] = []  # device, ts, first row, end row
    oldest: datetime | None = None
    for item in items:
        if item.__class__ is not dict or len(item) != 3:
            return False
        device_id, ts_text, readings = item.get("device"), item.get("ts"), item.get("readings")
        if (device_id.__class__ is not str or ts_text.__class__ is not str
                or readings.__class__ is not dict or not 0 < len(readings) <= 64):
            return False
        if device_id not in good_names:
            if _NAME.fullmatch(device_id) is None:
                return False
            if len(good_names) >= _GOOD_NAMES_MAX:
                good_names.clear()
            good_names.add(device_id)
        # the shape `contract.fmt_time` writes ("2026-11-24T07:00:00.123456Z"), to the
        # second, millisecond or microsecond; fromisoformat then checks the digits
        width = len(ts_text)
        if (width != 27 and width != 24 and width != 20) or ts_text[-1] != "Z" \
                or ts_text[10] != "T" or (width != 20 and ts_text[19] != "."):
            return False
        device = directory(device_id)
        if device is None or device.community_id != community_id:
            return False
        try:
            ts = parse_ts(ts_text)
        except ValueError:  # the right shape but no such date: let the models say so
            return False
        if ts > future:
            return False
        limits = _LIMITS[device.type]
        first = len(rows)
        for name, value in readings.items():
            limit = limits.get(name)
            cls = value.__class__
            if limit is None or limit[0] is not None or (cls is not float and cls is not int):
                return False
            if not limit[1] <= value <= limit[2]:
                return False
            rows.append((ts, device_id, name, float(value), None, received_at))
        per_device.append((device_id, ts, first, len(rows)))
        if oldest is None or ts < oldest:
            oldest = ts
    into.readings.extend(rows)
    latest_of, seen = into.latest, into.last_seen
    for device_id, ts, first, end in per_device:
        latest = latest_of.get(device_id)
        if latest is None:
            latest = latest_of[device_id] = {}
        for row in rows[first:end]:
            held = latest.get(row[2])
            if held is None or held[0] <= ts:
                latest[row[2]] = (ts, row[3])
        held_seen = seen.get(device_id)
        if held_seen is None or held_seen < ts:
            seen[device_id] = ts
    if oldest is not None:  # always: a batch here has at least one item
        into.device_times.append(oldest)
    return True


def _readings(device_id: str, device: DeviceInfo, ts: datetime,
              readings: dict[str, float | str], received_at: datetime, into: Decoded) -> None:
    """Check every value against its type's range, then add rows and latest values.

    The hot path of ingest (one call per device per message), so it works from
    a flat table of limits and touches each value once.
    """
    _not_future(ts, received_at)
    limits = _LIMITS[device.type]
    rows: list[Reading] = []
    for name, value in readings.items():
        limit = limits.get(name)
        if limit is None:
            raise Refused("unknown_metric", f"{device.type} has no metric {name!r}")
        choices, low, high = limit
        if choices is not None:
            if not isinstance(value, str) or value not in choices:
                raise Refused("out_of_range",
                              f"{name}={value!r} is not one of {', '.join(sorted(choices))}")
            rows.append((ts, device_id, name, None, value, received_at))
        elif isinstance(value, str) or not low <= value <= high:
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


def _parse(model: type[_Payload], payload: bytes) -> _Payload:
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

