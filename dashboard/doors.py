"""Service functions for doors, visitor passes, cloud broadcasts and access history.

Each checks the role and the scope itself (`twin.access`, `twin.doors`), whichever page
or forged request calls it, writes a refusal to the audit log where it happens
(`dashboard.scoped.audited`), and records who acted by id (`twin.doors.actor_ref`),
never by name. Commands are queued in the twin (`twin.store.doors.queue_commands`) and
published by the rules service's outbox; the caller polls for the device's ack.

Call these outside a ``conn.transaction()`` block, as `dashboard.scoped`'s.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
import segno
import shapely
from shapely.geometry import shape

from dashboard import audit
from dashboard.scoped import audited, brief
from twin import access
from twin import doors as policy
from twin.access import AccessDenied, User
from twin.doors import Door, Home
from twin.errors import TwinError
from twin.privacy import mask_name
from twin.store import doors as store
from twin.store.reads.residents import resident_home

# --- doors ----------------------------------------------------------------------------------

def my_doors(conn: psycopg.Connection, user: User) -> list[Door]:
    """A resident's doors: the community's gates and their own building's entrances."""
    home = _own_home(conn, user, "door.open", "list their doors")
    return store.doors_of(conn, home.community_id, home.building_id)


def open_door(conn: psycopg.Connection, user: User, device_id: object, *, at: datetime
              ) -> str:
    """Send ``open`` to a door on the user's behalf; the command's id (poll `door_command`).

    An operator may open any door of their community, a resident their building's
    entrances and the gates; anything else is refused and audited. The simulated (or
    real) device acknowledges, opens, and reports an ``access`` event with method
    ``remote`` naming the actor by id.
    """
    device = _text(device_id, "a door")
    found = store.door(conn, device)
    if found is None:
        raise TwinError(f"there is no door {brief(device)}")
    with audited(conn, user, "door.open", subject_kind="device", subject_id=device):
        home = _home(conn, user) if user.role == "resident" else None
        policy.require_door(user, found, home)
    by = policy.actor_ref(user)
    args: dict[str, Any] = {"by": by}
    if user.role == "resident":
        args["subject"] = user.resident_id
    with conn.transaction():
        (command_id,) = store.queue_commands(conn, [found.id], "open", args, issued_by=by,
                                             at=at, prefix="door")
        audit.record(conn, user, "door.open", subject_kind="device", subject_id=found.id,
                     detail={"command": command_id})
    return command_id


def door_command(conn: psycopg.Connection, user: User, command_id: object
                 ) -> dict[str, Any]:
    """A door command the user sent, with the device's ack when it has come (a poll)."""
    command_id = _text(command_id, "a command")
    row = store.command_status(conn, command_id)
    with audited(conn, user, "door.status", subject_kind="command", subject_id=command_id):
        if row is None or row["issued_by"] != policy.actor_ref(user):
            raise AccessDenied(f"command {brief(command_id)} is not "
                               f"{policy.actor_ref(user)}'s")
    assert row is not None
    return row


# --- visitor passes -------------------------------------------------------------------------

def issue_pass(conn: psycopg.Connection, user: User, resident_id: object, hours: object, *,
               at: datetime) -> dict[str, Any]:
    """A visitor pass for the resident's own household, good at the community's gates once
    from ``at`` for ``hours``: its id, validity, token (shown once, in the QR code) and
    the QR code as an SVG data URI. The twin keeps only the token's hash."""
    with audited(conn, user, "pass.issue", subject_kind="resident",
                 subject_id=resident_id):
        access.require(user, "pass.issue", what="issue a visitor pass")
        access.require_own_resident(user, resident_id if isinstance(resident_id, str)
                                    else None, what=f"resident {brief(resident_id)}")
    home = _home(conn, user)
    issued = policy.new_pass(at, hours)
    with conn.transaction():
        # counted and written under the resident's lock: parallel requests queue here, so
        # the day's allowance holds however many arrive at once
        store.lock_passes_of(conn, home.resident_id)
        full = store.passes_issued_since(conn, home.resident_id, at - timedelta(days=1)) \
            >= policy.PASSES_PER_DAY
        if not full:
            store.insert_pass(conn, issued, community_id=home.community_id,
                              resident_id=home.resident_id, at=at)
            audit.record(conn, user, "pass.issue", subject_kind="visitor_pass",
                         subject_id=issued.id, detail={"until": issued.valid_until.isoformat()})
    if full:
        error = TwinError(f"at most {policy.PASSES_PER_DAY} visitor passes a day; "
                          "try again later")
        audit.refused(conn, user, error, subject_kind="resident", subject_id=home.resident_id,
                      asked="pass.issue")
        conn.commit()
        raise error
    return {"id": issued.id, "token": issued.token, "valid_from": issued.valid_from,
            "valid_until": issued.valid_until, "qr": qr_svg(issued.token)}


def my_passes(conn: psycopg.Connection, user: User) -> list[dict[str, Any]]:
    """The resident's latest passes: validity and use, never a token."""
    home = _own_home(conn, user, "pass.issue", "see their visitor passes")
    return store.passes_of(conn, home.resident_id)


def qr_svg(token: str) -> str:
    """The pass's QR code: the opaque token alone, as an SVG data URI."""
    return str(segno.make(token, error="m").svg_data_uri(scale=6, border=2))


# --- cloud broadcast ------------------------------------------------------------------------

def broadcast(conn: psycopg.Connection, user: User, text: object, *, community_id: str,
              at: datetime, area: object = None, building_id: object = None,
              grid_id: object = None, speakers: object = None) -> dict[str, Any]:
    """Say ``text`` on every speaker of the community inside an area (a GeoJSON polygon
    drawn on the map, a building, a grid) or on the speakers picked: one ``broadcast``
    command each. Returns the broadcast's id and its speakers (poll `broadcast_status`)."""
    with audited(conn, user, "broadcast.send", subject_kind="community",
                 subject_id=community_id):
        access.require(user, "broadcast.send", what="send a cloud broadcast")
        access.require_community(user, community_id, what=f"community {community_id}")
    words = policy.broadcast_text(text)
    given = [v for v in (area, building_id, grid_id, speakers) if v not in (None, "", [])]
    if len(given) != 1:
        raise TwinError("a broadcast goes to one area, building or grid, or to picked speakers")
    geojson = _polygon(area) if area not in (None, "") else None
    picked = None
    if speakers not in (None, "", []):
        if not isinstance(speakers, list) or not all(isinstance(s, str) for s in speakers):
            raise TwinError("speakers are a list of device ids")
        picked = speakers
    found = store.speakers_in(
        conn, community_id, area_geojson=geojson,
        building_id=_text(building_id, "a building") if building_id else None,
        grid_id=_text(grid_id, "a grid") if grid_id else None, device_ids=picked)
    if not found:
        raise TwinError("there is no speaker there")
    broadcast_id = f"bc-{secrets.token_hex(6)}"
    by = policy.actor_ref(user)
    with conn.transaction():
        store.queue_commands(conn, found, "broadcast", {"text": words, "broadcast": broadcast_id},
                             issued_by=by, at=at, prefix="bc")
        audit.record(conn, user, "broadcast.send", subject_kind="broadcast",
                     subject_id=broadcast_id, detail={"speakers": len(found)})
    return {"id": broadcast_id, "speakers": found}


def broadcast_targets(conn: psycopg.Connection, user: User, community_id: str
                      ) -> dict[str, list[tuple[str, str]]]:
    """The grids, buildings and speakers an operator may broadcast to (the panel's lists)."""
    with audited(conn, user, "broadcast.send", subject_kind="community",
                 subject_id=community_id):
        access.require(user, "broadcast.send", what="send a cloud broadcast")
        access.require_community(user, community_id, what=f"community {community_id}")
    return store.broadcast_targets(conn, community_id)


def broadcast_status(conn: psycopg.Connection, user: User, broadcast_id: object
                     ) -> list[dict[str, Any]]:
    """The speakers of a broadcast and their acks (n of m acknowledged)."""
    broadcast_id = _text(broadcast_id, "a broadcast")
    with audited(conn, user, "broadcast.send", subject_kind="broadcast",
                 subject_id=broadcast_id):
        access.require(user, "broadcast.send", what="follow a cloud broadcast")
    rows = store.broadcast_acks(conn, broadcast_id)
    with audited(conn, user, "broadcast.send", subject_kind="broadcast",
                 subject_id=broadcast_id):
        if rows:
            access.require_community(user, rows[0]["community_id"],
                                     what=f"broadcast {broadcast_id}")
    return rows


# --- access history -------------------------------------------------------------------------

def door_history(conn: psycopg.Connection, user: User, device_id: object, *, limit: int = 30
                 ) -> dict[str, Any]:
    """A door's latest passages: an operator's community's doors, a grid worker's grid's,
    an admin's all. Who passed is named for the roles that see residents whole (and then
    audited), masked for the others."""
    device = _text(device_id, "a door")
    found = store.door(conn, device)
    if found is None or found.type not in policy.DOOR_TYPES:
        raise TwinError(f"there is no door {brief(device)}")
    with audited(conn, user, "access.history", subject_kind="device", subject_id=device):
        access.require(user, "access.history", what=f"see the access history of {device}")
        access.require_community(user, found.community_id, what=f"door {device}")
        if user.role == "grid_worker" and found.grid_id != user.grid_id:
            raise AccessDenied(f"door {device} is not in {user.name}'s grid")
    rows = store.access_history(conn, device_id=device, limit=limit)
    return _named(conn, user, rows, subject_kind="device", subject_id=device)


def resident_history(conn: psycopg.Connection, user: User, resident_id: object, *,
                     limit: int = 30) -> dict[str, Any]:
    """A resident's latest passages: their own for a resident, their grid's residents' for a
    grid worker, anyone's for an admin (audited); nobody else's."""
    resident = _text(resident_id, "a resident")
    with audited(conn, user, "access.history", subject_kind="resident", subject_id=resident):
        if user.role == "resident":
            access.require_own_resident(user, resident, what=f"resident {resident}")
        elif user.role in ("admin", "grid_worker"):
            home = resident_home(conn, resident)
            if home is None:
                raise TwinError(f"there is no resident {brief(resident)}")
            access.require_community(user, home.community_id, what=f"resident {resident}")
            if user.role == "grid_worker" and home.grid_id != user.grid_id:
                raise AccessDenied(f"resident {resident} is not in {user.name}'s grid")
        else:
            raise AccessDenied(f"{policy.actor_ref(user)} ({user.role}) may not see a resident's "
                               f"access history")
    rows = store.access_history(conn, subject_id=resident, limit=limit)
    if user.role == "resident":
        return {"masked": False, "rows": rows}
    return _named(conn, user, rows, subject_kind="resident", subject_id=resident)


# --- internals ------------------------------------------------------------------------------

def _named(conn: psycopg.Connection, user: User, rows: list[dict[str, Any]], *,
           subject_kind: str, subject_id: str) -> dict[str, Any]:
    """Rows with ``who``: the resident's name and unit for the roles that see them whole
    in their grid (the view audited), masked for the others; staff and actors by id."""
    ids = sorted({r["subject_id"] for r in rows if r["subject_id"]})
    names = store.resident_names(conn, ids) if ids else {}
    shown_whole: list[str] = []
    for r in rows:
        who = names.get(r["subject_id"] or "")
        if who is None:
            r["who"] = r["subject_id"] or ""
            continue
        name, unit, grid = who
        if access.sees_residents_whole_in(user, grid):
            r["who"] = f"{name} ({unit})"
            shown_whole.append(r["subject_id"])
        else:
            r["who"] = mask_name(name)
    if shown_whole:
        with conn.transaction():
            audit.record(conn, user, "view_residents_unmasked", subject_kind=subject_kind,
                         subject_id=subject_id,
                         detail={"residents": sorted(set(shown_whole)),
                                 "view": "access_history"})
    return {"masked": not shown_whole and bool(names), "rows": rows}


def _home(conn: psycopg.Connection, user: User) -> Home:
    if user.resident_id is None:
        raise AccessDenied(f"{policy.actor_ref(user)} ({user.role}) does not act for a resident")
    found = resident_home(conn, user.resident_id)
    if found is None:
        raise TwinError(f"resident {user.resident_id} is no longer in the twin")
    return Home(found.resident_id, found.building_id, found.community_id)


def _own_home(conn: psycopg.Connection, user: User, permission: str, what: str) -> Home:
    with audited(conn, user, permission, subject_kind="resident",
                 subject_id=user.resident_id or ""):
        access.require(user, permission, what=what)
        access.require_own_resident(user, user.resident_id, what="this household")
        return _home(conn, user)


def _polygon(area: object) -> str:
    """A polygon drawn on the map (GeoJSON geometry, dict or text), checked and as text."""
    try:
        geometry = shape(orjson.loads(area) if isinstance(area, str | bytes) else area)
    except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError, KeyError,
            shapely.errors.GEOSException) as e:
        raise TwinError(f"not an area drawn on the map: {e}") from None
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid \
            or geometry.is_empty:
        raise TwinError("an area is a simple polygon drawn on the map")
    return shapely.to_geojson(geometry)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise TwinError(f"not {what}: {brief(value)}")
    return value
