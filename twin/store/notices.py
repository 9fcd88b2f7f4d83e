"""The community's notices and activities as kept (migration 0025): published to a
community, a building or a grid; read by the residents they reach, each once.

A notice reaches a resident whose unit's building is the notice's building, lies in its
grid, or belongs to its community; the same condition counts how many it reaches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from twin.store.connection import one_row

#: The residents a notice reaches, as a condition on ``n`` (the notice) and ``b`` (a building).
_REACHES = """(n.scope_kind = 'community' AND b.community_id = n.scope_id
               OR n.scope_kind = 'building' AND b.id = n.scope_id
               OR n.scope_kind = 'grid' AND b.grid_id = n.scope_id)"""


def scope_community(conn: psycopg.Connection, scope_kind: str, scope_id: str) -> str | None:
    """The community a notice's target belongs to; None if there is no such target."""
    sql = {"community": "SELECT id FROM community WHERE id = %s",
           "building": "SELECT community_id FROM building WHERE id = %s",
           "grid": "SELECT community_id FROM grid WHERE id = %s"}[scope_kind]
    row = conn.execute(sql, (scope_id,)).fetchone()
    return None if row is None else str(row[0])


def insert_notice(conn: psycopg.Connection, *, community_id: str, kind: str, scope_kind: str,
                  scope_id: str, title: dict[str, str], body: dict[str, str],
                  starts_at: datetime | None, ends_at: datetime | None, at: datetime,
                  by: str) -> int:
    (nid,) = one_row(conn.execute(
        """INSERT INTO notice (community_id, kind, scope_kind, scope_id, title, body,
                               starts_at, ends_at, published_at, published_by)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (community_id, kind, scope_kind, scope_id, Jsonb(title), Jsonb(body), starts_at,
         ends_at, at, by)), "publishing a notice")
    return int(nid)


@dataclass(frozen=True, slots=True)
class NoticeRow:
    id: int
    kind: str
    scope_kind: str
    scope_id: str
    title: dict[str, str]
    body: dict[str, str]
    starts_at: datetime | None
    ends_at: datetime | None
    published_at: datetime
    published_by: str
    read: bool = False
    reached: int = 0
    read_count: int = 0


def notices_for(conn: psycopg.Connection, resident_id: str, *, limit: int = 50
                ) -> list[NoticeRow]:
    """The notices that reach the resident, newest first, with whether they read each."""
    rows = conn.execute(
        f"""SELECT n.id, n.kind, n.scope_kind, n.scope_id, n.title, n.body, n.starts_at,
                   n.ends_at, n.published_at, n.published_by, nr.read_at IS NOT NULL
            FROM resident r JOIN unit u ON u.id = r.unit_id
            JOIN building b ON b.id = u.building_id
            JOIN notice n ON {_REACHES}
            LEFT JOIN notice_read nr ON nr.notice_id = n.id AND nr.resident_id = r.id
            WHERE r.id = %s
            ORDER BY n.published_at DESC, n.id DESC LIMIT %s""",
        (resident_id, limit)).fetchall()
    return [NoticeRow(*r) for r in rows]


def mark_read(conn: psycopg.Connection, notice_id: int, resident_id: str, at: datetime
              ) -> bool:
    """Record that the resident read the notice, once, if it reaches them; False if it
    does not reach them (or there is no such notice)."""
    reaches = conn.execute(
        f"""SELECT 1 FROM notice n, resident r JOIN unit u ON u.id = r.unit_id
            JOIN building b ON b.id = u.building_id
            WHERE n.id = %s AND r.id = %s AND {_REACHES}""",
        (notice_id, resident_id)).fetchone()
    if reaches is None:
        return False
    conn.execute("""INSERT INTO notice_read (notice_id, resident_id, read_at) VALUES (%s, %s, %s)
                    ON CONFLICT DO NOTHING""", (notice_id, resident_id, at))
    return True


def published(conn: psycopg.Connection, community_ids: list[str], *, limit: int = 50
              ) -> list[NoticeRow]:
    """The communities' notices, newest first, each with how many residents it reaches
    and how many read it (one query, counted in the database)."""
    rows = conn.execute(
        f"""SELECT n.id, n.kind, n.scope_kind, n.scope_id, n.title, n.body, n.starts_at,
                   n.ends_at, n.published_at, n.published_by, false,
                   (SELECT count(*) FROM resident r JOIN unit u ON u.id = r.unit_id
                    JOIN building b ON b.id = u.building_id WHERE {_REACHES}),
                   (SELECT count(*) FROM notice_read nr WHERE nr.notice_id = n.id)
            FROM notice n WHERE n.community_id = ANY(%s)
            ORDER BY n.published_at DESC, n.id DESC LIMIT %s""",
        (community_ids, limit)).fetchall()
    return [NoticeRow(*r) for r in rows]
