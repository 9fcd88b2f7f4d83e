"""From readings and events to MQTT messages: each device on its own topics, or via its gateway.

Every building has an ``iot_gateway`` that relays its smoke detectors and
meters (:data:`RELAYED_TYPES`). With batching on, their readings and events go
out as the gateway's ``batch`` messages, sent when the gateway holds a full
batch or its oldest item is :data:`BATCH_WINDOW_S` old, as NB-IoT and LoRa
gateways upload in bursts. Everything else publishes on its own topics.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from ingest import contract
from ingest.simulator.clock import iso
from ingest.simulator.world import Event, Reading, World

#: One MQTT message: topic and JSON payload.
Message = tuple[str, bytes]

#: Types a building's gateway relays (as ``batch`` messages when batching is on).
RELAYED_TYPES: tuple[str, ...] = ("smoke_detector", "water_meter", "power_meter")
#: Outdoor battery sensors on the site gateways (LoRaWAN: their server publishes per device).
SITE_SENSOR_TYPES: tuple[str, ...] = ("trash_bin_sensor", "soil_sensor", "water_leak_sensor")
#: A gateway sends what it holds once the oldest item is this old (simulated seconds).
BATCH_WINDOW_S = 300.0


class Gateways:
    """Which gateway relays whom, what each holds, and the messages of each tick."""

    def __init__(self, world: World, *, batch_size: int) -> None:
        self.world = world
        self.batch_size = batch_size
        self._seq = 0
        n = world.n
        gateways = world.rows["iot_gateway"]
        in_building = {world.building[g]: g for g in gateways if world.building[g] is not None}
        relayed = np.isin(world.type, RELAYED_TYPES)
        #: The row of the gateway that relays each device, or -1.
        self.gateway_of = np.array([in_building.get(b, -1) if relayed[i] else -1
                                    for i, b in enumerate(world.building)], dtype=int)
        self.held: dict[int, list[tuple[float, dict[str, Any]]]] = {
            int(g): [] for g in in_building.values()}
        self.connected = np.zeros(n, dtype=int)
        counts = np.bincount(self.gateway_of[self.gateway_of >= 0], minlength=n)
        self.connected[:] = counts
        site = [g for g in gateways if world.building[g] is None]
        outdoor = int((np.isin(world.type, SITE_SENSOR_TYPES)
                       & np.array([b is None for b in world.building])).sum())
        for k, g in enumerate(site):
            self.connected[g] = outdoor // len(site) + (k < outdoor % len(site))

    @property
    def relaying(self) -> bool:
        return self.batch_size > 1

    def silence(self, i: int) -> None:
        """Device row ``i`` went offline; a building gateway takes its relayed devices along."""
        w = self.world
        w.silent[i] = True
        if w.type[i] == "iot_gateway" and self.relaying:
            w.silent[self.gateway_of == i] = True
            self.held.get(int(i), []).clear()

    def route(self, readings: list[Reading], events: list[Event]) -> list[tuple[float, Message]]:
        """Messages of devices that publish themselves; relayed items go to their gateway."""
        w = self.world
        out: list[tuple[float, Message]] = []
        times = iso([t for t, *_ in readings] + [t for t, *_ in events])
        relay = self.relaying
        for (t, i, values), ts in zip(readings, times):
            if w.silent[i]:
                continue
            g = self.gateway_of[i]
            if relay and g >= 0:
                self.held[g].append((t, {"device": w.ids[i], "ts": ts, "readings": values}))
            else:
                out.append((t, (contract.topic(w.cid, w.ids[i], "telemetry"),
                                orjson.dumps({"ts": ts, "readings": values}))))
        for (t, i, kind, fields), ts in zip(events, times[len(readings):]):
            if kind == "status":
                out.append((t, (contract.topic(w.cid, w.ids[i], "status"),
                                orjson.dumps({**fields, "ts": ts}))))
                continue
            if kind == "position":  # a staff badge's fix: on its own topic, never relayed
                if not w.silent[i]:
                    out.append((t, (contract.topic(w.cid, w.ids[i], "position"),
                                    orjson.dumps({"ts": ts, **fields}))))
                continue
            if w.silent[i]:
                continue
            self._seq += 1
            body = {"ts": ts, "id": f"{w.tag}-{self._seq}", "kind": kind, **fields}
            g = self.gateway_of[i]
            if relay and g >= 0:
                self.held[g].append((t, {"device": w.ids[i], "event": body}))
            else:
                out.append((t, (contract.topic(w.cid, w.ids[i], "event"),
                                orjson.dumps(body))))
        return out

    def flush(self, now: float, *, force: bool) -> list[tuple[float, Message]]:
        """Batches due at ``now`` (all that is held, with ``force``)."""
        w = self.world
        out = []
        for g, held in self.held.items():
            if not held:
                continue
            held.sort(key=lambda item: item[0])
            while len(held) >= self.batch_size or (held and (
                    force or now - held[0][0] >= BATCH_WINDOW_S)):
                chunk, held[:] = held[:self.batch_size], held[self.batch_size:]
                out.append((chunk[-1][0], (
                    contract.topic(w.cid, w.ids[g], "batch"),
                    orjson.dumps({"items": [item for _, item in chunk]}))))
        return out
