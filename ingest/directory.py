"""Which devices the twin knows: loaded once, then looked up on a miss.

Ingest asks for every message, so the answer must come from memory; a device
registered after start is found by a single-row query, and an unknown id is
remembered as unknown for a short while so a misbehaving sender cannot turn
every message into a query.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import psycopg

from ingest.decode import DeviceInfo

_ALL = "SELECT id, type, community_id FROM device"
_ONE = "SELECT type, community_id FROM device WHERE id = %s"


class DeviceDirectory:
    def __init__(self, connection: Callable[[], psycopg.Connection], *,
                 unknown_ttl_s: float = 30.0) -> None:
        self._connection = connection
        self._known: dict[str, DeviceInfo] = {}
        self._unknown: dict[str, float] = {}
        self._ttl = unknown_ttl_s

    def load(self) -> int:
        conn = self._connection()
        interned: dict[tuple[str, str], DeviceInfo] = {}
        known = {}
        with conn.cursor() as cur:
            for device_id, type_, community in cur.execute(_ALL):
                key = (type_, community)
                info = interned.get(key)
                if info is None:
                    info = interned[key] = DeviceInfo(type_, community)
                known[sys.intern(device_id)] = info
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
        row = self._connection().execute(_ONE, (device_id,)).fetchone()
        if row is None:
            self._unknown[device_id] = time.monotonic()
            return None
        info = self._known[device_id] = DeviceInfo(row[0], row[1])
        self._unknown.pop(device_id, None)
        return info
