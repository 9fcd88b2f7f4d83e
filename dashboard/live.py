"""Live updates of the large screen: read the state, diff it with what the tab shows.

Each open large screen polls once a second with a token naming its tab. The
server keeps the last state it sent to that tab (`LiveCache`), reads the
current one (a handful of bounded, indexed queries), and answers with only
the differences as `dash.Patch` operations: one building recoloured, one
device added to the attention layer, one alarm row. An unchanged tick
answers with no_update everywhere (a few hundred bytes). The diffing is pure
and tested without a browser.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from dashboard.words import retitle
from layers.twin_layers import (
    device_records,
    incident_records,
    route_records,
    severity_colors,
    staff_records,
)
from twin.access import User
from twin.store.connection import snapshot
from twin.store.reads import alarms, kpis, staff, work_orders
from twin.store.reads.devices import attention_devices
from twin.store.reads.scope import Scope

#: The live layers of the large screen, as named in the map spec.
LIVE_LAYERS: tuple[str, ...] = ("attention", "staff", "routes", "incidents")


@dataclass(frozen=True)
class LiveState:
    building_colors: dict[str, list[int]]
    layers: dict[str, dict[str, dict]]
    kpis: dict[str, Any]
    feed: list[dict[str, Any]]
    board: dict[str, Any]
    read_at: float = field(default_factory=time.time)


def read_live(conn: psycopg.Connection, scope: Scope, *, now: datetime,
              devices: dict[str, int] | None = None, user: User | None = None,
              audit: bool = False) -> LiveState:
    """Everything the large screen shows that changes, in one read-only transaction
    (`devices`: the shared answer of `kpis.device_counts`, read now when not given).

    With ``user``, the titles of alarms and orders are rendered for them
    (`dashboard.words.retitle`: their language, residents masked unless they may see
    them whole); ``audit`` writes the audit row when somebody was shown whole.
    """
    with snapshot(conn):
        colors = severity_colors(alarms.building_severity(conn, scope))
        attention = device_records(attention_devices(conn, scope))
        positions = staff_records(staff.staff_positions(conn, scope, now=now))
        routes = work_orders.active_routes(conn, scope)
        incidents = alarms.camera_incidents(conn, scope)
        counts = kpis.kpis(conn, scope, now=now, devices=devices)
        feed = alarms.alarm_feed(conn, scope)
        board = work_orders.order_board(conn, scope)
    if user is not None:
        feed = retitle(conn, user, feed, audit=audit)
        incidents = retitle(conn, user, incidents, audit=False)
        routes = retitle(conn, user, routes, what="work_order", audit=False)
        board = {**board, "orders": retitle(conn, user, board["orders"], what="work_order",
                                            audit=audit)}
    return LiveState(
        building_colors=colors,
        layers={"attention": attention, "staff": positions, "routes": route_records(routes),
                "incidents": incident_records(incidents)},
        kpis=counts, feed=feed, board=board,
    )


@dataclass(frozen=True)
class KeyedDiff:
    """What changed in a {key: value} map: keys to set (new or different) and keys to drop."""

    set: dict[str, Any]
    drop: list[str]

    @property
    def empty(self) -> bool:
        return not self.set and not self.drop


def diff_keyed(old: dict[str, Any], new: dict[str, Any]) -> KeyedDiff:
    return KeyedDiff(
        set={k: v for k, v in new.items() if old.get(k) != v},
        drop=sorted(k for k in old if k not in new),
    )


@dataclass(frozen=True)
class LiveDiff:
    buildings: KeyedDiff
    layers: dict[str, KeyedDiff]
    kpis_changed: bool
    feed_changed: bool
    board_changed: bool

    @property
    def empty(self) -> bool:
        return (self.buildings.empty and all(d.empty for d in self.layers.values())
                and not (self.kpis_changed or self.feed_changed or self.board_changed))


def diff_live(old: LiveState | None, new: LiveState) -> LiveDiff:
    """The difference between what a tab shows (None: nothing yet) and the current state."""
    if old is None:
        old = LiveState({}, {name: {} for name in LIVE_LAYERS}, {}, [], {})
    return LiveDiff(
        buildings=diff_keyed(old.building_colors, new.building_colors),
        layers={name: diff_keyed(old.layers.get(name, {}), new.layers[name])
                for name in LIVE_LAYERS},
        kpis_changed=old.kpis != new.kpis,
        feed_changed=_feed_key(old.feed) != _feed_key(new.feed),
        board_changed=old.board != new.board,
    )


def color_patch(diff: KeyedDiff, layer_id: str = "buildings"):
    """A dash.Patch of TwinDeck.featureColors for one layer."""
    from dash import Patch

    patch = Patch()
    for key, colour in diff.set.items():
        patch[layer_id][key] = colour
    for key in diff.drop:
        del patch[layer_id][key]
    return patch


def data_patch(diffs: dict[str, KeyedDiff]):
    """A dash.Patch of TwinDeck.layerData: record by record, layer by layer."""
    from dash import Patch

    patch = Patch()
    for layer_id, diff in diffs.items():
        for key, record in diff.set.items():
            patch[layer_id][key] = record
        for key in diff.drop:
            del patch[layer_id][key]
    return patch


class LiveCache:
    """The last state sent to each open tab, forgotten after `ttl_s` or beyond `size` tabs."""

    def __init__(self, *, size: int = 256, ttl_s: float = 600.0) -> None:
        self._states: OrderedDict[str, tuple[float, LiveState]] = OrderedDict()
        self._lock = threading.Lock()
        self.size, self.ttl_s = size, ttl_s

    def get(self, token: str) -> LiveState | None:
        with self._lock:
            item = self._states.get(token)
            if item is None or time.monotonic() - item[0] > self.ttl_s:
                self._states.pop(token, None)
                return None
            return item[1]

    def put(self, token: str, state: LiveState) -> None:
        with self._lock:
            self._states[token] = (time.monotonic(), state)
            self._states.move_to_end(token)
            while len(self._states) > self.size:
                self._states.popitem(last=False)


def _feed_key(feed: list[dict[str, Any]]) -> list[tuple]:
    return [(a["id"], a["state"], a["count"], a["severity"], a["last_at"]) for a in feed]
