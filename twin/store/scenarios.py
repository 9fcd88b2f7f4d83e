"""Saving what-if scenarios, and reading what the analyses need from the live twin.

Scenarios live in their own table; these functions only ever read the live
tables, so running a what-if cannot change the twin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb
from pydantic import ValidationError
from shapely.geometry import Point

from twin.dispatch import StaffMember
from twin.errors import TwinError
from twin.store.graph import dispatch_staff
from twin.whatif.coverage import CoverageComparison, Entrances, compare, coverage
from twin.whatif.scenario import BASELINE, Scenario


@dataclass(frozen=True, slots=True)
class SavedScenario:
    scenario: Scenario
    community_id: str
    created_by: str
    created_at: datetime
    updated_at: datetime


def save_scenario(conn: psycopg.Connection, community_id: str, scenario: Scenario, *,
                  actor: str) -> SavedScenario:
    """Create or replace the community's scenario of this name."""
    if scenario.name == BASELINE.name:
        raise TwinError("'baseline' is the twin as it is; give the scenario another name")
    _community(conn, community_id)
    row = conn.execute(
        """INSERT INTO scenario (community_id, name, overlay, created_by)
           VALUES (%s, %s, %s, %s)
           ON CONFLICT (community_id, name) DO UPDATE
               SET overlay = excluded.overlay, updated_at = now()
           RETURNING created_by, created_at, updated_at""",
        (community_id, scenario.name, Jsonb(scenario.model_dump(mode="json")), actor),
    ).fetchone()
    assert row is not None  # an upsert with RETURNING returns its row
    return SavedScenario(scenario, community_id, *row)


def load_scenario(conn: psycopg.Connection, community_id: str, name: str) -> Scenario:
    """A saved scenario, or the baseline for the name 'baseline'."""
    if name == BASELINE.name:
        return BASELINE
    row = conn.execute("SELECT overlay FROM scenario WHERE community_id = %s AND name = %s",
                       (community_id, name)).fetchone()
    if row is None:
        raise TwinError(f"community {community_id!r} has no scenario {name!r}")
    try:
        return Scenario.model_validate(row[0])
    except ValidationError as e:
        raise TwinError(f"scenario {name!r} no longer validates: {e.errors()[0]['msg']}") from e


def list_scenarios(conn: psycopg.Connection, community_id: str) -> list[SavedScenario]:
    rows = conn.execute(
        """SELECT overlay, created_by, created_at, updated_at FROM scenario
           WHERE community_id = %s ORDER BY name""", (community_id,)).fetchall()
    return [SavedScenario(Scenario.model_validate(o), community_id, by, at, up)
            for o, by, at, up in rows]


def delete_scenario(conn: psycopg.Connection, community_id: str, name: str) -> None:
    deleted = conn.execute("DELETE FROM scenario WHERE community_id = %s AND name = %s",
                           (community_id, name)).rowcount
    if not deleted:
        raise TwinError(f"community {community_id!r} has no scenario {name!r}")


def entrances(conn: psycopg.Connection, community_id: str) -> Entrances:
    """Every building's doors, which coverage and impact measure to."""
    rows = conn.execute(
        """SELECT e.id, e.building_id, ST_X(e.geom), ST_Y(e.geom)
           FROM entrance e JOIN building b ON b.id = e.building_id
           WHERE b.community_id = %s ORDER BY e.id""", (community_id,)).fetchall()
    if not rows:
        raise TwinError(f"community {community_id!r} has no building entrances")
    return Entrances(ids=tuple(r[0] for r in rows), building_ids=tuple(r[1] for r in rows),
                     points=tuple(Point(r[2], r[3]) for r in rows))


#: Where a staff member without a known position is assumed to wait: their base.
BASE_BY_ROLE: dict[str, str] = {"security": "security_room"}
DEFAULT_BASE = "property_office"


def staff_at_posts(conn: psycopg.Connection, community_id: str) -> list[StaffMember]:
    """The staff for planning: at their last known position, or at their base when off shift.

    Staff who are off duty have no position; coverage of their shift still
    needs a starting point, so they start from their base (the security room
    for guards, the property office for everyone else).
    """
    bases = {kind: Point(x, y) for kind, x, y in conn.execute(
        """SELECT DISTINCT ON (kind) kind, ST_X(geom), ST_Y(geom) FROM facility
           WHERE community_id = %s AND kind IN ('security_room', 'property_office')
           ORDER BY kind, id""", (community_id,)).fetchall()}
    out = []
    for member in dispatch_staff(conn, community_id):
        if member.position is None:
            base = bases.get(BASE_BY_ROLE.get(member.role, DEFAULT_BASE)) or bases.get(DEFAULT_BASE)
            if base is not None:
                member = replace(member, position=base)
        out.append(member)
    return out


def gates(conn: psycopg.Connection, community_id: str) -> dict[str, Point]:
    rows = conn.execute(
        """SELECT id, ST_X(geom), ST_Y(geom) FROM facility
           WHERE community_id = %s AND kind = 'gate' ORDER BY id""", (community_id,)).fetchall()
    return {gid: Point(x, y) for gid, x, y in rows}


def households(conn: psycopg.Connection, building_ids: list[str]) -> dict[str, tuple[int, int, int]]:
    """Per building: occupied units, residents and devices, to say who an impact touches."""
    rows = conn.execute(
        """SELECT b.id,
                  (SELECT count(*) FROM unit u WHERE u.building_id = b.id AND u.occupancy <> 'vacant'),
                  (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
                    WHERE u.building_id = b.id),
                  (SELECT count(*) FROM device d WHERE d.building_id = b.id)
           FROM building b WHERE b.id = ANY(%s)""", (building_ids,)).fetchall()
    return {b: (int(u), int(r), int(d)) for b, u, r, d in rows}


def _community(conn: psycopg.Connection, community_id: str) -> None:
    if conn.execute("SELECT 1 FROM community WHERE id = %s", (community_id,)).fetchone() is None:
        raise TwinError(f"there is no community {community_id!r}")


def compare_coverage(conn: psycopg.Connection, community_id: str, scenario: Scenario, *,
                     role: str, shifts: Sequence[str], sla_s: float
                     ) -> dict[str, CoverageComparison]:
    """Coverage of one role per shift, as the twin is and in the scenario: what the
    `twin whatif coverage` command and the Planner page both show. The twin is read and
    the networks built once for all the shifts."""
    from twin.store.graph import walk_routing_graph
    from twin.walkgraph import snap
    from twin.whatif.scenario import scenario_network

    graph = walk_routing_graph(conn, community_id)
    staff = staff_at_posts(conn, community_id)
    doors = entrances(conn, community_id)
    spots = snap(graph, list(doors.points))
    try:
        nets = (scenario_network(graph, BASELINE), scenario_network(graph, scenario))
    except ValueError as e:
        raise TwinError(str(e)) from e
    out = {}
    for shift in shifts:
        before, after = (coverage(graph, staff, doors, which, role=role, shift=shift,
                                  network=net, doors=spots)
                         for which, net in zip((BASELINE, scenario), nets))
        out[shift] = compare(before, after, sla_s=sla_s)
    return out


def building_names(conn: psycopg.Connection, community_id: str) -> dict[str, str]:
    rows = conn.execute("SELECT id, name FROM building WHERE community_id = %s",
                        (community_id,)).fetchall()
    return dict(rows)
