"""What ingest accepts and why it refuses the rest: the pure decoder, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from ingest import contract
from ingest.decode import Decoded, Refused, decode
from twin.model import DeviceInfo

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
DEVICES = {
    "co-1": DeviceInfo("co-1", "co_sensor", "c1"),
    "cam-1": DeviceInfo("cam-1", "ai_camera", "c1"),
    "gate-1": DeviceInfo("gate-1", "access_gate", "c1"),
    "pile-1": DeviceInfo("pile-1", "ev_charger", "c1"),
    "gw-1": DeviceInfo("gw-1", "iot_gateway", "c1"),
    "bin-1": DeviceInfo("bin-1", "trash_bin_sensor", "c1"),
    "far-1": DeviceInfo("far-1", "co_sensor", "c2"),
}


def run(kind: str, device: str, body: object, *, community: str = "c1") -> Decoded:
    rows = Decoded()
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    decode(contract.topic(community, device, kind), payload, NOW, DEVICES.get, rows)
    return rows


def reason(rows: Decoded) -> str:
    assert len(rows.dead) == 1, rows.dead
    return rows.dead[0][3]


def test_telemetry_numbers_and_text() -> None:
    rows = run("telemetry", "pile-1", {"ts": "2026-11-24T06:59:59Z",
                                       "readings": {"power": 6.6, "status": "charging"}})
    assert not rows.dead
    assert {(r[2], r[3], r[4]) for r in rows.readings} == {("power", 6.6, None),
                                                            ("status", None, "charging")}
    assert rows.latest["pile-1"]["power"] == (NOW - timedelta(seconds=1), 6.6)
    assert rows.readings[0][5] == NOW  # the server's receive time rides along


def test_epoch_milliseconds_are_utc() -> None:
    rows = run("telemetry", "co-1", {"ts": 1795503600000, "readings": {"co": 4}})
    assert rows.readings[0][0] == datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def test_events_of_each_kind() -> None:
    detection = run("event", "cam-1", {"ts": "2026-11-24T06:58:00Z", "id": "e1",
                                       "kind": "detection", "class": "high_altitude_throw",
                                       "confidence": 0.91, "attrs": {"floor_guess": 17}})
    access = run("event", "gate-1", {"ts": "2026-11-24T06:58:00Z", "id": "a1", "kind": "access",
                                     "method": "face", "direction": "out", "subject": "r-1"})
    stop = run("event", "pile-1", {"ts": "2026-11-24T06:58:00Z", "id": "s1",
                                   "kind": "charge_stop", "energy_kwh": 11.5, "session": "x"})
    (d,), (a,), (s,) = detection.events, access.events, stop.events
    assert (d[3], d[4], d[5]) == ("detection", "high_altitude_throw", pytest.approx(0.91))
    assert orjson.loads(d[10]) == {"floor_guess": 17}
    assert (a[6], a[7], a[8]) == ("face", "out", "r-1")
    assert s[9] == 11.5 and orjson.loads(s[10]) == {"session": "x"}


def test_status_and_last_will_without_time() -> None:
    rows = run("status", "co-1", {"online": False})
    assert rows.statuses["co-1"] == (False, NOW)


def test_gateway_batch_accepts_good_items_and_refuses_bad_ones() -> None:
    items = [
        {"device": "co-1", "ts": "2026-11-24T06:59:00Z", "readings": {"co": 12}},
        {"device": "bin-1", "ts": "2026-11-24T06:59:00Z", "readings": {"fill": 140}},
        {"device": "ghost", "ts": "2026-11-24T06:59:00Z", "readings": {"co": 1}},
        {"device": "cam-1", "event": {"ts": "2026-11-24T06:59:00Z", "id": "e9",
                                      "kind": "detection", "class": "unleashed_dog",
                                      "confidence": 0.8}},
        {"device": "far-1", "ts": "2026-11-24T06:59:00Z", "readings": {"co": 1}},
    ]
    rows = run("batch", "gw-1", {"items": items})
    assert [r[1] for r in rows.readings] == ["co-1"]
    assert [e[1] for e in rows.events] == ["cam-1"]
    assert [(d[3], d[5]) for d in rows.dead] == [("out_of_range", 1), ("unknown_device", 2),
                                                  ("wrong_community", 4)]
    assert rows.dead[0][4].startswith("item 1: fill=140")


@pytest.mark.parametrize(("kind", "device", "body", "why"), [
    ("telemetry", "co-1", b"{not json", "not_json"),
    ("telemetry", "co-1", {"readings": {"co": 1}}, "schema"),
    ("telemetry", "co-1", {"ts": "2026-11-24T06:00:00", "readings": {"co": 1}}, "schema"),
    ("telemetry", "nobody", {"ts": "2026-11-24T06:00:00Z", "readings": {"co": 1}},
     "unknown_device"),
    ("telemetry", "far-1", {"ts": "2026-11-24T06:00:00Z", "readings": {"co": 1}},
     "wrong_community"),
    ("telemetry", "co-1", {"ts": "2026-11-24T09:00:00Z", "readings": {"co": 1}},
     "future_timestamp"),
    ("telemetry", "co-1", {"ts": "2026-11-24T06:00:00Z", "readings": {"co": 5000}},
     "out_of_range"),
    ("telemetry", "co-1", {"ts": "2026-11-24T06:00:00Z", "readings": {"co": "lots"}},
     "out_of_range"),
    ("telemetry", "pile-1", {"ts": "2026-11-24T06:00:00Z", "readings": {"status": "melting"}},
     "out_of_range"),
    ("telemetry", "co-1", {"ts": "2026-11-24T06:00:00Z", "readings": {"fill": 3}},
     "unknown_metric"),
    ("event", "co-1", {"ts": "2026-11-24T06:00:00Z", "id": "x", "kind": "access",
                       "method": "face"}, "unknown_event"),
    ("event", "cam-1", {"ts": "2026-11-24T06:00:00Z", "id": "x", "kind": "detection",
                        "class": "ufo", "confidence": 0.5}, "unknown_event"),
    ("event", "cam-1", {"ts": "2026-11-24T06:00:00Z", "id": "x", "kind": "detection"}, "schema"),
    ("event", "gate-1", {"ts": "2026-11-24T06:00:00Z", "id": "x", "kind": "access",
                         "method": "telepathy"}, "schema"),
    ("batch", "co-1", {"items": [{"device": "co-1", "ts": "2026-11-24T06:00:00Z",
                                  "readings": {"co": 1}}]}, "not_a_gateway"),
    ("telemetry", "co-1", b"x" * (contract.MAX_PAYLOAD_BYTES + 1), "oversized"),
])
def test_each_refusal_names_its_reason(kind, device, body, why) -> None:
    rows = run(kind, device, body)
    assert reason(rows) == why
    assert not rows.readings and not rows.events
    received_at, topic, payload, _, detail, _ = rows.dead[0]
    assert received_at == NOW and topic.endswith(f"/{device}/{kind}")
    assert payload == (body if isinstance(body, bytes) else orjson.dumps(body))
    assert detail


def test_a_late_reading_does_not_replace_a_newer_latest_value() -> None:
    rows = Decoded()
    for ts, value in (("2026-11-24T06:59:00Z", 9.0), ("2026-11-24T06:58:00Z", 7.0)):
        decode(contract.topic("c1", "co-1", "telemetry"),
               orjson.dumps({"ts": ts, "readings": {"co": value}}), NOW, DEVICES.get, rows)
    assert rows.latest["co-1"]["co"][1] == 9.0
    assert rows.last_seen["co-1"] == NOW - timedelta(minutes=1)


def test_committed_schemas_are_generated_from_the_models(tmp_path) -> None:
    generated = contract.write_schemas(tmp_path)
    for path in generated:
        assert (contract.SCHEMA_DIR / path.name).read_text() == path.read_text(), (
            f"ingest/schemas/{path.name} is stale: run `twin mqtt-schemas`")


def _variant(rng, k: int) -> dict:
    """A gateway item, plain most of the time, with one of many ways to be unusual."""
    item: dict = {"device": "co-1", "ts": "2026-11-24T06:59:00.250Z", "readings": {"co": 4}}
    twist = rng.randrange(15)
    if twist == 0:
        item["readings"] = {"co": 5000}  # out of range
    elif twist == 1:
        item["readings"] = {"co": True}
    elif twist == 2:
        item["readings"] = {"co": "4"}
    elif twist == 3:
        item["readings"] = {"co2": 4}
    elif twist == 4:
        item["device"] = "nobody"
    elif twist == 5:
        item["device"] = "far-1"
    elif twist == 6:
        item["ts"] = "2026-02-30T06:00:00Z"
    elif twist == 7:
        item["ts"] = "2026-11-24T09:00:00Z"  # two hours ahead of NOW
    elif twist == 8:
        item["ts"] = "2026-11-24T14:59:00+08:00"
    elif twist == 9:
        item["ts"] = 1795503000000
    elif twist == 10:
        item["extra"] = 1
    elif twist == 11:
        item = {"device": "gate-1", "event": {"ts": "2026-11-24T06:58:00Z", "id": f"a{k}",
                                              "kind": "access", "method": "face"}}
    elif twist == 12:
        item["readings"] = {"co": k % 7 + 0.5}
        item["device"] = "bin-1" if k % 2 else "co-1"
        item["readings"] = {"fill": 50} if k % 2 else item["readings"]
    elif twist == 13:
        item["ts"] = rng.choice(["2026-11-24T06:59:00,250Z", "2026-11-24t06:59:00.250Z",
                                 "2026-11-24 06:59:00.250Z", "2026-11-24T06:59:00.250z",
                                 "2026-11-24T24:00:00.000Z", "20261124T065900.250000Z",
                                 "2026-11-24T06:59:00Z", "2026-11-24T06:59:00.250000Z"])
    return item


def test_the_fast_batch_path_agrees_with_the_models() -> None:
    """The plain-readings path takes only what the models take, and decodes it the same."""
    import random

    from ingest.decode import _batch, _parse, _plain_batch

    rng = random.Random(7)
    topic = contract.topic("c1", "gw-1", "batch")
    took_fast = 0
    for k in range(400):
        items = [_variant(rng, k * 10 + j) if rng.random() < 0.3 else
                 {"device": "co-1", "ts": f"2026-11-24T06:5{j % 10}:00Z", "readings": {"co": j}}
                 for j in range(rng.randrange(1, 6))]
        payload = orjson.dumps({"items": items})
        fast, slow = Decoded(), Decoded()
        ok = _plain_batch(payload, "c1", DEVICES.get, NOW, fast)
        try:
            _batch(topic, payload, _parse(contract.Batch, payload), "c1", DEVICES.get, NOW, slow)
        except Refused:  # the whole message is refused by the models
            slow.dead.append("schema")
        if not ok:
            assert fast == Decoded(), "a refused fast path must add nothing"
            continue
        took_fast += 1
        assert not slow.dead, (items, slow.dead)
        assert fast.readings == slow.readings
        assert fast.latest == slow.latest and fast.last_seen == slow.last_seen
        assert fast.device_times == slow.device_times
    assert 50 < took_fast < 400


def test_a_batch_that_is_not_json_is_still_named() -> None:
    assert reason(run("batch", "gw-1", b"{items: [")) == "not_json"
