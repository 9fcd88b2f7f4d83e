"""Residents, whole. Whoever shows them to a person checks the person's scope first, masks
them for roles that do not need them and writes the audit log in the read's transaction;
nothing here masks or checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from twin.store.reads.scope import Scope, ids

AGE_BANDS = ("0-6", "7-17", "18-59", "60-79", "80+")


@dataclass(frozen=True, slots=True)
class ResidentRow:
    id: str
    unit: str
    floor: int
    name: str
    phone: str
    gender: str
    age_band: str
    care_flags: tuple[str, ...]
    #: [{"name", "relation", "phone"}, ...]
    contacts: tuple[dict[str, Any], ...]


def residents_of(conn: psycopg.Connection, building_id: str, *, unit_id: str | None = None
                 ) -> list[ResidentRow]:
    """The residents of a building, or of one unit in it, floor by floor."""
    rows = conn.execute(
        """SELECT r.id, u.number, u.floor, r.name, r.phone, r.gender, r.age_band,
                  r.care_flags, r.family_contacts
           FROM resident r JOIN unit u ON u.id = r.unit_id
           WHERE u.building_id = %s AND (%s::text IS NULL OR u.id = %s)
           ORDER BY u.floor, u.number, r.id""",
        (building_id, unit_id, unit_id),
    ).fetchall()
    return [ResidentRow(id=rid, unit=number, floor=floor, name=name, phone=phone, gender=gender,
                        age_band=age, care_flags=tuple(flags), contacts=tuple(contacts or ()))
            for rid, number, floor, name, phone, gender, age, flags, contacts in rows]


def age_structure(conn: psycopg.Connection, community_id: Scope) -> dict[str, int]:
    """Residents counted by age band (a planner's aggregate)."""
    rows = conn.execute(
        """SELECT r.age_band, count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
           JOIN building b ON b.id = u.building_id WHERE b.community_id = ANY(%s)
           GROUP BY 1 ORDER BY array_position(%s::text[], r.age_band)""",
        (ids(community_id), list(AGE_BANDS))).fetchall()
    return {band: int(n) for band, n in rows}


def first_with_care_flag(conn: psycopg.Connection, grid_id: str, flag: str
                         ) -> tuple[str, str, str] | None:
    """(resident, unit, building) of the first resident of a grid with a care flag: whom
    a demo's no-activity alarm is about."""
    row = conn.execute(
        """SELECT r.id, u.id, u.building_id FROM resident r JOIN unit u ON u.id = r.unit_id
           JOIN building b ON b.id = u.building_id
           WHERE %s = ANY(r.care_flags) AND b.grid_id = %s
           ORDER BY r.id LIMIT 1""", (flag, grid_id)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def household_resident(conn: psycopg.Connection, grid_id: str) -> tuple[str, str] | None:
    """(resident, phone) of the first adult of a grid without special care: whom a demo's
    resident login is."""
    row = conn.execute(
        """SELECT r.id, r.phone FROM resident r JOIN unit u ON u.id = r.unit_id
           JOIN building b ON b.id = u.building_id
           WHERE b.grid_id = %s AND r.care_flags = '{}' AND r.age_band = '18-59'
           ORDER BY r.id LIMIT 1""", (grid_id,)).fetchone()
    return None if row is None else (row[0], row[1])


@dataclass(frozen=True, slots=True)
class ResidentHome:
    """Where a resident lives: what a resident's or family member's login is bound to."""

    resident_id: str
    unit_id: str
    building_id: str
    community_id: str
    grid_id: str | None
    phone: str
    care_flags: tuple[str, ...]


def resident_home(conn: psycopg.Connection, resident_id: str) -> ResidentHome | None:
    row = conn.execute(
        """SELECT r.id, u.id, b.id, b.community_id, b.grid_id, r.phone, r.care_flags
           FROM resident r JOIN unit u ON u.id = r.unit_id JOIN building b ON b.id = u.building_id
           WHERE r.id = %s""", (resident_id,)).fetchone()
    if row is None:
        return None
    rid, unit_id, building_id, community_id, grid_id, phone, flags = row
    return ResidentHome(rid, unit_id, building_id, community_id, grid_id, phone, tuple(flags))
