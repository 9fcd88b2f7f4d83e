"""Which communities a view covers: one, several, or every one in the twin (a district)."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from twin.errors import TwinError
from twin.store.queries import communities

#: One community's id, or several (a district): every scoped read takes either.
Scope = str | Sequence[str]


class Everywhere(list):
    """Every community in the twin (a district's view). Queries with named parameters
    drop their community filter for it, so a district view never scans to match them all."""


def communities_of(conn: psycopg.Connection, wanted: str | None = None) -> list[str]:
    """The communities a view shows: the one named, or every one loaded (a district)."""
    ids = [row[0] for row in communities(conn)]
    if not ids:
        raise TwinError("the twin is empty: run `twin load` first")
    if wanted is not None:
        if wanted not in ids:
            raise TwinError(f"there is no community {wanted!r} in the twin")
        return [wanted]
    return Everywhere(ids)


def one_community(conn: psycopg.Connection, wanted: str | None = None) -> str:
    """The one community a command works on: the one named, or the only one loaded; with
    several loaded and none named, the error lists them and asks for --community."""
    known = [row[0] for row in communities(conn)]
    if wanted is not None:
        if wanted not in known:
            raise TwinError(f"there is no community {wanted!r} in the twin"
                            + (f" (there are: {', '.join(known[:10])})" if known else ""))
        return wanted
    if not known:
        raise TwinError("the twin is empty: run `twin load` first")
    if len(known) > 1:
        raise TwinError(f"{len(known)} communities are loaded ({', '.join(known[:10])}"
                        f"{' ...' if len(known) > 10 else ''}): choose one with --community")
    return known[0]


def ids(scope: Scope) -> list[str]:
    """The scope as a list for `community_id = ANY(%s)`."""
    return [scope] if isinstance(scope, str) else list(scope)


def named(scope: Scope) -> list[str] | None:
    """The scope as a named `%(c)s` parameter: None means "no filter" (every community)."""
    return None if isinstance(scope, Everywhere) else ids(scope)
