"""What rendering a stored text needs: its templates by key, and the names its ids stand for.

The texts themselves are rendered by `twin.texts.render` for each viewer; this
module only reads. Names are read at render time, so a renamed building reads
right in an old alarm, and a resident's name is never kept in an alarm, order
or notification.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import psycopg

from twin.calendars import DEFAULT_TIMEZONE
from twin.system_texts import SYSTEM_TEXTS, nested
from twin.texts import Names, Wording, ids_in

#: kind -> (table, the column the name is in)
_NAME_SQL: dict[str, str] = {
    "resident": "SELECT id, name FROM resident WHERE id = ANY(%s)",
    "building": "SELECT id, name FROM building WHERE id = ANY(%s)",
    "facility": "SELECT id, name FROM facility WHERE id = ANY(%s)",
    "device": "SELECT id, name FROM device WHERE id = ANY(%s)",
    "unit": "SELECT id, number FROM unit WHERE id = ANY(%s)",
}


def templates(conn: psycopg.Connection, keys: Iterable[str | None]) -> dict[str, dict[str, str]]:
    """{key: {lang: template}} for the keys that have texts: the rules' (stored by
    `twin rules load`) and the system's own (`twin.system_texts`)."""
    wanted = sorted({k for k in keys if k})
    found = {k: SYSTEM_TEXTS[k] for k in wanted if k in SYSTEM_TEXTS}
    rest = [k for k in wanted if k not in found]
    if rest:
        found.update(conn.execute("SELECT key, texts FROM rule_text WHERE key = ANY(%s)",
                                  (rest,)).fetchall())
    return found


def names(conn: psycopg.Connection, params: Iterable[Mapping[str, Any]]) -> Names:
    """The names of every id the parameters mention, in as many queries as kinds of id."""
    found: dict[str, dict[str, str]] = {}
    for kind, wanted in ids_in(params).items():
        found[kind] = dict(conn.execute(_NAME_SQL[kind], (sorted(wanted),)).fetchall()) \
            if wanted else {}
    return Names(**found)


def wording(conn: psycopg.Connection, texts: Iterable[tuple[str | None, Mapping[str, Any]]]
            ) -> Wording:
    """Templates and names for some stored texts, (text_key, text_params) each."""
    texts = [(k, p) for k, p in texts if k]
    texts += [inner for _, p in texts for inner in nested(p)]
    return Wording(templates=templates(conn, (k for k, _ in texts)),
                   names=names(conn, (p for _, p in texts)))


def community_timezone(conn: psycopg.Connection, community_id: str) -> str:
    """The community's IANA time zone (every time on a page is shown in it)."""
    row = conn.execute("SELECT timezone FROM community WHERE id = %s", (community_id,)
                       ).fetchone()
    return str(row[0]) if row else DEFAULT_TIMEZONE
