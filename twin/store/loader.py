"""Bulk-loading a generated or imported community into the twin with COPY.

Frames are turned into CSV column by column (vectorised: geometry to hex
EWKB with shapely, lists to array literals) and streamed through one COPY
per table, all in one transaction, so a failed load leaves nothing behind.

:func:`load_dataset` replaces whole communities (the generator's data);
:func:`upsert_dataset` merges an import into one, keeping what it does not
name (devices, flats, history) and, on request, deleting what it no longer has.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Iterable
from typing import Protocol

import numpy as np
import orjson
import pandas as pd
import psycopg
import shapely
from psycopg import sql

from twin.device_types import DEVICE_TYPES
from twin.errors import TwinError

#: Columns that hold text[] arrays and jsonb documents in the schema.
_ARRAY_COLUMNS = {"care_flags", "skills"}
_JSON_COLUMNS = {"family_contacts"}
#: The frame's geometry column is stored under this name per table.
_GEOMETRY_COLUMN = {
    "community": "boundary",
    "grid": "area",
    "building": "footprint",
    "staff": "position",
}
_CHUNK = 8 << 20


class TwinDataset(Protocol):
    def tables(self) -> list[tuple[str, pd.DataFrame]]: ...


def load_dataset(
    conn: psycopg.Connection,
    dataset: TwinDataset,
    *,
    on_table: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Replace the dataset's communities in the twin; returns rows loaded per table.

    Communities already present are deleted first (their rows cascade), so
    loading the same data twice gives the same twin.
    """
    tables = dataset.tables()
    community_ids = list(dict(tables)["community"]["id"])
    counts: dict[str, int] = {}
    with conn.transaction():
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        conn.execute("DELETE FROM community WHERE id = ANY(%s)", (community_ids,))
        sync_device_types(conn)
        for name, frame in tables:
            _copy_frame(conn, name, frame)
            counts[name] = len(frame)
            if on_table is not None:
                on_table(name, len(frame))
    for name in counts:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
    conn.commit()
    return counts


def sync_device_types(conn: psycopg.Connection) -> None:
    """Write the registry in twin.device_types to its table (the registry wins)."""
    rows = [
        (t.code, t.domain, t.name, list(t.capabilities),
         orjson.dumps({k: m.as_json() for k, m in t.metrics.items()}).decode(),
         list(t.events), list(t.commands))
        for t in DEVICE_TYPES.values()
    ]
    with conn.cursor() as cur:
        cur.executemany(
            """
            INSERT INTO device_type (code, domain, name, capabilities, metrics, events, commands)
            VALUES (%s, %s, %s, %s, %s::jsonb, %s, %s)
            ON CONFLICT (code) DO UPDATE SET
                domain = EXCLUDED.domain, name = EXCLUDED.name,
                capabilities = EXCLUDED.capabilities, metrics = EXCLUDED.metrics,
                events = EXCLUDED.events, commands = EXCLUDED.commands
            """,
            rows,
        )


def _copy_frame(conn: psycopg.Connection, table: str, frame: pd.DataFrame) -> None:
    if frame.empty:
        return
    columns, text = copy_csv(table, frame)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(text), _CHUNK):
            copy.write(text[start:start + _CHUNK])


def copy_csv(table: str, frame: pd.DataFrame) -> tuple[list[str], str]:
    """The frame as CSV text for COPY, and the table columns it fills, in order."""
    geometry_name = getattr(frame, "_geometry_column_name", None)
    out: dict[str, object] = {}
    for column in frame.columns:
        values = frame[column]
        if column == geometry_name:
            out[_GEOMETRY_COLUMN.get(table, "geom")] = _ewkb(values.to_numpy())
        elif str(values.dtype) == "geometry" or _holds_geometry(values):
            out[column] = _ewkb(values.to_numpy())
        elif column in _ARRAY_COLUMNS:
            out[column] = values.map(_array_literal).to_numpy()
        elif column in _JSON_COLUMNS:
            out[column] = values.map(_json_text).to_numpy()
        elif pd.api.types.is_integer_dtype(values.dtype) and values.hasnans:
            # Nullable integers would become floats ('3.0') in a numpy array.
            out[column] = values.astype(object).where(values.notna(), None).to_numpy()
        else:
            out[column] = values.to_numpy()
    buffer = io.StringIO()
    pd.DataFrame(out).to_csv(buffer, header=False, index=False)
    return list(out), buffer.getvalue()


def _ewkb(geometries: np.ndarray) -> np.ndarray:
    array = shapely.set_srid(np.asarray(geometries, dtype=object), 4326)
    return shapely.to_wkb(array, hex=True, include_srid=True)


def _holds_geometry(values: pd.Series) -> bool:
    sample = values.dropna()
    return not sample.empty and isinstance(sample.iloc[0], shapely.Geometry)


def _json_text(value: Iterable[object] | None) -> str:
    return orjson.dumps(list(value) if value is not None else []).decode()


def _array_literal(value: Iterable[object] | None) -> str:
    items = list(value) if value is not None else []
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in items) + "}"


# --- merging an import into a community ---------------------------------------------------

#: Columns an upsert leaves as they are on rows that already exist (the import cannot know them).
_KEEP_ON_UPDATE = {"grid": {"grid_worker_id"}}


def upsert_dataset(
    conn: psycopg.Connection,
    dataset: TwinDataset,
    *,
    community_id: str,
    tables: Collection[str],
    replace: Collection[str] = (),
    on_table: Callable[[str, int], None] | None = None,
) -> dict[str, dict[str, int]]:
    """Merge rows of one community into the twin, keeping everything they do not name.

    Unlike :func:`load_dataset`, nothing is deleted first: each row of the
    ``tables`` given is inserted, or updates the row with its id (a row that
    is already equal is left alone), so importing the same data twice
    changes nothing, and rows that point at updated rows (devices, units,
    readings, alarms) keep pointing at them. For the tables in ``replace``,
    the community's rows whose ids the dataset does not hold are then
    deleted (with what cascades from them). All in one transaction.

    Returns, per table, the rows 'inserted', 'updated', 'unchanged' and 'deleted'.

    Raises
    ------
    TwinError
        If an id of the dataset belongs to another community.
    """
    frames = dict(dataset.tables())
    counts: dict[str, dict[str, int]] = {}
    with conn.transaction():
        conn.execute("SET CONSTRAINTS ALL DEFERRED")
        if "device" in tables:
            sync_device_types(conn)
        for name, frame in frames.items():
            if name not in tables:
                continue
            counts[name] = _upsert_frame(conn, name, frame, community_id,
                                         replace=name in replace)
            if on_table is not None:
                on_table(name, len(frame))
    for name in counts:
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
    conn.commit()
    return counts


#: How to find a table's rows of one community (entrances belong to it through their building).
_OF_COMMUNITY = {
    "community": sql.SQL("t.id = %(c)s"),
    "entrance": sql.SQL("t.building_id IN (SELECT id FROM building WHERE community_id = %(c)s)"),
}


def _upsert_frame(conn: psycopg.Connection, table: str, frame: pd.DataFrame, community_id: str,
                  *, replace: bool) -> dict[str, int]:
    staging = sql.Identifier(f"_import_{table}")
    target = sql.Identifier(table)
    conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP")
                 .format(staging, target))
    columns: list[str] = []
    if not frame.empty:
        columns, text = copy_csv(table, frame)
        with conn.cursor() as cur, cur.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                staging, sql.SQL(", ").join(map(sql.Identifier, columns)))
        ) as copy:
            for start in range(0, len(text), _CHUNK):
                copy.write(text[start:start + _CHUNK])
    of_community = _OF_COMMUNITY.get(table, sql.SQL("t.community_id = %(c)s"))
    params = {"c": community_id}
    foreign = conn.execute(
        sql.SQL("SELECT s.id FROM {} s JOIN {} t ON t.id = s.id WHERE NOT ({}) LIMIT 3")
        .format(staging, target, of_community), params).fetchall()
    if foreign:
        raise TwinError(f"{table} id(s) {', '.join(r[0] for r in foreign)} already belong to "
                        f"another community than {community_id}: import under that community, "
                        "or give the source other ids")
    inserted = updated = 0
    if columns:
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        changing = [c for c in columns if c != "id" and c not in _KEEP_ON_UPDATE.get(table, ())]
        assign = sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in changing)
        old = sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(c)) for c in changing)
        new = sql.SQL(", ").join(sql.SQL("EXCLUDED.{}").format(sql.Identifier(c))
                                 for c in changing)
        rows = conn.execute(sql.SQL(
            "INSERT INTO {target} AS t ({names}) SELECT {names} FROM {staging} "
            "ON CONFLICT (id) DO UPDATE SET {assign} WHERE ({old}) IS DISTINCT FROM ({new}) "
            "RETURNING (xmax = 0)"
        ).format(target=target, names=names, staging=staging, assign=assign, old=old, new=new)
        ).fetchall()
        inserted = sum(1 for (fresh,) in rows if fresh)
        updated = len(rows) - inserted
    deleted = 0
    if replace:
        deleted = conn.execute(
            sql.SQL("DELETE FROM {} t WHERE {} AND NOT EXISTS "
                    "(SELECT 1 FROM {} s WHERE s.id = t.id)").format(target, of_community,
                                                                     staging),
            params).rowcount
    conn.execute(sql.SQL("DROP TABLE {}").format(staging))
    return {"inserted": inserted, "updated": updated,
            "unchanged": len(frame) - inserted - updated, "deleted": deleted}
