"""Bulk-loading a generated or imported community into the twin with COPY.

Frames are turned into CSV column by column (vectorised: geometry to hex
EWKB with shapely, lists to array literals) and streamed through one COPY
per table, all in one transaction, so a failed load leaves nothing behind.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Protocol

import numpy as np
import orjson
import pandas as pd
import psycopg
import shapely
from psycopg import sql

from twin.device_types import DEVICE_TYPES

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


def _json_text(value: object) -> str:
    return orjson.dumps(list(value) if value is not None else []).decode()


def _array_literal(value: object) -> str:
    items = list(value) if value is not None else []
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in items) + "}"
