"""Doors, visitor passes and broadcasts in the store: named queries, no policy.

Commands made here go out through the rules service's transactional outbox (a
``device_command`` row and a ``rule_outbox`` row in the caller's transaction; the
rules service publishes what is committed and ingest records the device's ack), the
same way as the commands the rules make themselves.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from twin.doors import DOOR_TYPES, Door, NewPass, pass_verdict

#: A door's grid: its building's, or (a gate) the grid whose area holds it.
_DOOR = """
    SELECT d.id, d.name, d.type, d.community_id, d.building_id,
           coalesce(b.grid_id, (SELECT g.id FROM grid g
                                WHERE g.community_id = d.community_id
                                  AND ST_Contains(g.area, d.geom) ORDER BY g.id LIMIT 1))
    FROM device d LEFT JOIN building b ON b.id = d.building_id
"""


def door(conn: psycopg.Connection, device_id: str) -> Door | None:
    """Any device by id, as a door (the caller checks that its type opens)."""
    row = conn.execute(_DOOR + " WHERE d.id = %s", (device_id,)).fetchone()
    return None if row is None else Door(*row)


def doors_of(conn: psycopg.Connection, community_id: str, building_id: str) -> list[Door]:
    """A resident's doors: their building's entrances, then the community's gates."""
    rows = conn.execute(
        _DOOR + """ WHERE d.community_id = %s AND d.type = ANY(%s)
                      AND (d.type = 'access_gate' OR d.building_id = %s)
                    ORDER BY d.type, d.name, d.id""",
        (community_id, list(DOOR_TYPES), building_id)).fetchall()
    return [Door(*r) for r in rows]


def building_doors(conn: psycopg.Connection, building_id: str) -> list[Door]:
    rows = conn.execute(_DOOR + " WHERE d.building_id = %s AND d.type = ANY(%s) "
                        "ORDER BY d.name, d.id", (building_id, list(DOOR_TYPES))).fetchall()
    return [Door(*r) for r in rows]


# --- commands -------------------------------------------------------------------------------

def queue_commands(conn: psycopg.Connection, device_ids: list[str], command: str,
                   args: dict[str, Any], *, issued_by: str, at: datetime,
                   prefix: str = "u") -> list[str]:
    """One command per device, recorded and queued for the rules service to publish, in
    the caller's transaction; their ids, in the order of ``device_ids``."""
    if not device_ids:
        return []
    ids = [f"{prefix}-{secrets.token_hex(8)}" for _ in device_ids]
    conn.execute(
        """WITH c AS (
               INSERT INTO device_command (id, device_id, command, args, issued_by, sent_at)
               SELECT u.id, u.device_id, %s, %s, %s, %s
               FROM unnest(%s::text[], %s::text[]) AS u(id, device_id)
               RETURNING id)
           INSERT INTO rule_outbox (command_id, created_at) SELECT id, %s FROM c""",
        (command, Jsonb(args), issued_by, at, ids, device_ids, at))
    return ids


def command_status(conn: psycopg.Connection, command_id: str) -> dict[str, Any] | None:
    """A command as the twin knows it: sent, published, acknowledged (ok, detail)."""
    row = conn.execute(
        """SELECT c.id, c.device_id, c.command, c.issued_by, c.sent_at, o.published_at,
                  c.acked_at, c.ok, c.detail
           FROM device_command c LEFT JOIN rule_outbox o ON o.command_id = c.id
           WHERE c.id = %s""", (command_id,)).fetchone()
    if row is None:
        return None
    keys = ("id", "device_id", "command", "issued_by", "sent_at", "published_at", "acked_at",
            "ok", "detail")
    return dict(zip(keys, row))


# --- visitor passes -------------------------------------------------------------------------

def insert_pass(conn: psycopg.Connection, issued: NewPass, *, community_id: str,
                resident_id: str, at: datetime) -> None:
    conn.execute(
        """INSERT INTO visitor_pass (id, community_id, resident_id, token_sha256, issued_at,
                                     valid_from, valid_until)
           VALUES (%s, %s, %s, %s, %s, %s, %s)""",
        (issued.id, community_id, resident_id, issued.token_sha256, at, issued.valid_from,
         issued.valid_until))


def lock_passes_of(conn: psycopg.Connection, resident_id: str) -> None:
    """Hold the resident's pass allowance until the transaction ends (an advisory lock on
    the id's hash: no row to lock before the first pass)."""
    conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('visitor_pass:' || %s, 0))",
                 (resident_id,))


def passes_issued_since(conn: psycopg.Connection, resident_id: str, since: datetime) -> int:
    row = conn.execute("SELECT count(*) FROM visitor_pass WHERE resident_id = %s "
                       "AND issued_at >= %s", (resident_id, since)).fetchone()
    return int(row[0]) if row else 0


def passes_of(conn: psycopg.Connection, resident_id: str, *, limit: int = 10
              ) -> list[dict[str, Any]]:
    """A resident's latest passes (never their tokens: the twin does not have them)."""
    rows = conn.execute(
        """SELECT p.id, p.issued_at, p.valid_from, p.valid_until, p.used_at, d.name
           FROM visitor_pass p LEFT JOIN device d ON d.id = p.used_device
           WHERE p.resident_id = %s ORDER BY p.issued_at DESC, p.id LIMIT %s""",
        (resident_id, limit)).fetchall()
    keys = ("id", "issued_at", "valid_from", "valid_until", "used_at", "used_gate")
    return [dict(zip(keys, r)) for r in rows]


def check_pass(conn: psycopg.Connection, token_sha256: bytes, *, device_id: str,
               community_id: str, scan_id: str, at: datetime) -> tuple[str | None, str | None]:
    """(pass id or None, None if the gate may open else why not) for a pass shown at a gate.

    A good pass is consumed by the same statement that finds it (one conditional UPDATE:
    two gates cannot both take it); the scan that took it, seen again (a redelivery),
    gets the same answer. In the caller's transaction.
    """
    taken = conn.execute(
        """UPDATE visitor_pass SET used_at = coalesce(used_at, %(at)s),
                  used_device = coalesce(used_device, %(device)s),
                  used_scan = coalesce(used_scan, %(scan)s)
           WHERE token_sha256 = %(hash)s AND community_id = %(community)s
             AND (used_scan IS NULL AND valid_from <= %(at)s AND valid_until > %(at)s
                  OR used_scan = %(scan)s AND used_device = %(device)s)
           RETURNING id""",
        {"at": at, "device": device_id, "scan": scan_id, "hash": token_sha256,
         "community": community_id}).fetchone()
    if taken is not None:
        return str(taken[0]), None
    row = conn.execute(
        """SELECT id, valid_from, valid_until, used_at IS NOT NULL, community_id
           FROM visitor_pass WHERE token_sha256 = %s""", (token_sha256,)).fetchone()
    if row is None:
        return None, "unknown"
    pass_id, valid_from, valid_until, used, community = row
    return str(pass_id), pass_verdict(valid_from=valid_from, valid_until=valid_until,
                                      used=used, same_community=community == community_id,
                                      at=at) or "used"


# --- cloud broadcast ------------------------------------------------------------------------

def speakers_in(conn: psycopg.Connection, community_id: str, *, area_geojson: str | None = None,
                building_id: str | None = None, grid_id: str | None = None,
                device_ids: list[str] | None = None) -> list[str]:
    """The community's speakers inside an area (a GeoJSON polygon in WGS 84, a building's
    footprint or a grid's area: ST_Contains), or those of ``device_ids`` that are its
    speakers; sorted. Exactly one of the four is given."""
    rows = conn.execute(
        """WITH area AS (
               SELECT ST_SetSRID(ST_GeomFromGeoJSON(%(geojson)s), 4326) AS geom
                WHERE %(geojson)s::text IS NOT NULL
               UNION ALL SELECT footprint FROM building
                WHERE id = %(building)s AND community_id = %(community)s
               UNION ALL SELECT area FROM grid
                WHERE id = %(grid)s AND community_id = %(community)s)
           SELECT d.id FROM device d
           WHERE d.community_id = %(community)s AND d.type = 'speaker'
             AND (d.id = ANY(%(ids)s)
                  OR EXISTS (SELECT 1 FROM area a WHERE ST_Contains(a.geom, d.geom)))
           ORDER BY d.id""",
        {"geojson": area_geojson, "building": building_id, "grid": grid_id,
         "community": community_id, "ids": device_ids or []}).fetchall()
    return [r[0] for r in rows]


def broadcast_acks(conn: psycopg.Connection, broadcast_id: str) -> list[dict[str, Any]]:
    """The commands of one broadcast, speaker by speaker, with their acks."""
    rows = conn.execute(
        """SELECT c.device_id, d.name, c.sent_at, c.acked_at, c.ok, c.detail, c.issued_by,
                  d.community_id
           FROM device_command c JOIN device d ON d.id = c.device_id
           WHERE c.command = 'broadcast' AND c.args ? 'broadcast'
             AND c.args ->> 'broadcast' = %s ORDER BY c.device_id""",
        (broadcast_id,)).fetchall()
    keys = ("device_id", "name", "sent_at", "acked_at", "ok", "detail", "issued_by",
            "community_id")
    return [dict(zip(keys, r)) for r in rows]


# --- access history -------------------------------------------------------------------------

def access_history(conn: psycopg.Connection, *, device_id: str | None = None,
                   subject_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The latest passages (and refusals) at a door or of a resident, newest first, with
    the resident's id (the caller masks or names)."""
    if (device_id is None) == (subject_id is None):
        raise ValueError("access_history needs a door or a resident")
    where = "e.device_id = %s" if device_id is not None else "e.subject_id = %s"
    rows = conn.execute(
        """SELECT e.time, e.device_id, d.name, e.kind, e.method, e.direction, e.subject_id,
                  e.attrs ->> 'by', e.attrs ->> 'result'
           FROM event e JOIN device d ON d.id = e.device_id
           WHERE e.kind IN ('access', 'access_denied') AND """ + where + """
           ORDER BY e.time DESC LIMIT %s""",
        (device_id if device_id is not None else subject_id, limit)).fetchall()
    keys = ("time", "device_id", "door", "kind", "method", "direction", "subject_id", "by",
            "result")
    return [dict(zip(keys, r)) for r in rows]


def resident_names(conn: psycopg.Connection, resident_ids: list[str]
                   ) -> dict[str, tuple[str, str, str | None]]:
    """resident id -> (name, unit number, grid): who passed, for the roles that see names."""
    rows = conn.execute(
        """SELECT r.id, r.name, u.number, b.grid_id FROM resident r
           JOIN unit u ON u.id = r.unit_id JOIN building b ON b.id = u.building_id
           WHERE r.id = ANY(%s)""", (resident_ids,)).fetchall()
    return {rid: (name, number, grid) for rid, name, number, grid in rows}


def answer_scan(conn: psycopg.Connection, *, device_id: str, community_id: str, scan_id: str,
                token: object, at: datetime, now: datetime) -> tuple[str, str | None]:
    """Check a pass shown at a gate and queue the gate's answer (``open`` naming the pass,
    or ``deny`` with the reason), in the caller's transaction: (command id, reason or None).

    The command's id comes from the scan, so a redelivered scan queues nothing new.
    """
    from twin.doors import token_hash

    pass_id, reason = (None, "unknown") if not isinstance(token, str) or not token \
        else check_pass(conn, token_hash(token), device_id=device_id,
                        community_id=community_id, scan_id=scan_id, at=at)
    command_id = "pass-" + token_hash(f"{device_id}/{scan_id}").hex()[:20]
    args: dict[str, Any] = {"pass": pass_id} if pass_id else {}
    if reason is not None:
        args["reason"] = reason
    made = conn.execute(
        """INSERT INTO device_command (id, device_id, command, args, issued_by, sent_at)
           VALUES (%s, %s, %s, %s, 'pass-check', %s) ON CONFLICT (id) DO NOTHING
           RETURNING id""",
        (command_id, device_id, "deny" if reason else "open", Jsonb(args), now)).fetchone()
    if made is not None:
        conn.execute("INSERT INTO rule_outbox (command_id, created_at) VALUES (%s, %s)",
                     (command_id, now))
    return command_id, reason


def broadcast_targets(conn: psycopg.Connection, community_id: str
                      ) -> dict[str, list[tuple[str, str]]]:
    """What a broadcast may go to in a community: its grids, buildings and speakers as
    (id, name), by name."""
    rows = conn.execute(
        """SELECT 'grid', id, name FROM grid WHERE community_id = %(c)s
           UNION ALL SELECT 'building', id, name FROM building WHERE community_id = %(c)s
           UNION ALL SELECT 'speaker', id, name FROM device
                     WHERE community_id = %(c)s AND type = 'speaker'
           ORDER BY 1, 3, 2""", {"c": community_id}).fetchall()
    out: dict[str, list[tuple[str, str]]] = {"grid": [], "building": [], "speaker": []}
    for kind, id_, name in rows:
        out[kind].append((id_, name))
    return out
