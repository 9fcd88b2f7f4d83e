"""Which devices the twin knows: loaded once, then looked up on a miss.

Every consumer asks for every message, so the answer must come from memory; a
device registered after start (`twin import`, `twin load`) is found by a
single-row query, and an unknown id is remembered as unknown for a short while
so a misbehaving sender cannot turn every message into a query. A consumer of
one community knows only that community's devices.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable

import psycopg

from twin.model import DeviceInfo

_ALL = """SELECT id, type, community_id FROM device
          WHERE (%(c)s::text IS NULL OR community_id = %(c)s)"""
_ONE = """SELECT id, type, community_id FROM device
          WHERE id = %(id)s AND (%(c)s::text IS NULL OR community_id = %(c)s)"""


class DeviceDirectory:
    def __init__(self, connection: Callable[[], psycopg.Connection], *,
                 community_id: str | None = None, unknown_ttl_s: float = 30.0,
                 track_discovered: bool = False) -> None:
        self._connection = connection
        self.community_id = community_id
        self._known: dict[str, DeviceInfo] = {}
        self._unknown: dict[str, float] = {}
        self._ttl = unknown_ttl_s
        #: Only a consumer that drains them (take_discovered) keeps the devices it learns of.
        self._track = track_discovered
        self._discovered: list[DeviceInfo] = []
        self._lock = threading.Lock()

    def load(self) -> int:
        conn = self._connection()
        types: dict[str, str] = {}
        known = {}
        with conn.cursor() as cur:
            for device_id, type_, community in cur.execute(_ALL, {"c": self.community_id}):
                # Many devices share a handful of type and community strings.
                type_ = types.setdefault(type_, sys.intern(type_))
                community = types.setdefault(community, sys.intern(community))
                known[device_id] = DeviceInfo(device_id, type_, community)
        self._known = known
        self._unknown.clear()
        return len(known)

    def __call__(self, device_id: str) -> DeviceInfo | None:
        info = self._known.get(device_id)
        if info is not None:
            return info
        since = self._unknown.get(device_id)
        if since is not None and time.monotonic() - since < self._ttl:
            return None
        row = self._connection().execute(
            _ONE, {"id": device_id, "c": self.community_id}).fetchone()
        if row is None:
            self._unknown[device_id] = time.monotonic()
            return None
        info = self._known[device_id] = DeviceInfo(*row)
        self._unknown.pop(device_id, None)
        if self._track:
            with self._lock:
                self._discovered.append(info)
        return info

    def get(self, device_id: str) -> DeviceInfo | None:
        """Known devices only, never a query (for a thread that must not use the connection)."""
        return self._known.get(device_id)

    def take_discovered(self) -> list[DeviceInfo]:
        """Devices found by a look-up since the last call: the twin learnt of them meanwhile."""
        with self._lock:
            found, self._discovered = self._discovered, []
        return found
