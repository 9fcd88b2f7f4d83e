"""`twin export`: one community out of the twin, in standard formats that import back.

What is written, one layer per table, with the table's own columns (so
``twin import`` recognises the layers and restores the rows as they were):
``community``, ``grid`` (without its grid worker: staff are not exported),
``building`` (with ``height_m``, ``floors`` and ``height_source``),
``entrance``, ``facility`` (its ``area`` as WKT text), ``device`` (plus its
latest state: ``online``, ``last_seen``, ``metrics`` as JSON text) and the
walkway network, ``walk_node`` and ``walk_edge``. Flats, residents and staff
(personal data) are not exported.

Formats
-------
``gpkg``
    One GeoPackage, one layer per table.
``geojson``
    A directory with one ``<table>.geojson`` per table (RFC 7946, EPSG:4326).
``cityjson``
    One CityJSON 2.0 file in the community's UTM zone: buildings as LOD1
    solids, the rest as ``GenericCityObject`` / ``Road`` objects carrying the
    row as attributes (see :func:`gis_data.importer.cityjson.write_cityjson`).
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import shapely
from psycopg import sql

from gis_data.dataset import COLUMNS, COORD_DECIMALS, CRS, conform
from gis_data.importer.cityjson import write_cityjson
from gis_data.importer.errors import CommunityError

FORMATS = ("geojson", "gpkg", "cityjson")
#: Tables exported, in load order.
TABLES = ("community", "grid", "building", "entrance", "facility", "device", "walk_node",
          "walk_edge")
_GEOMETRY = {"community": "boundary", "grid": "area", "building": "footprint"}


def export_community(conn: psycopg.Connection, community_id: str, fmt: str,
                     path: str | Path) -> dict[str, int]:
    """Write community ``community_id`` to ``path`` as ``fmt``; returns rows per layer.

    Raises
    ------
    CommunityError
        If the community is not in the twin, or the format is unknown.
    """
    if fmt not in FORMATS:
        raise CommunityError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    frames = read_community(conn, community_id)
    write_export(frames, fmt, Path(path))
    return {table: len(frame) for table, frame in frames.items()}


def read_community(conn: psycopg.Connection, community_id: str) -> dict[str, gpd.GeoDataFrame]:
    """The exported tables of one community, as frames shaped like a Dataset's."""
    if conn.execute("SELECT 1 FROM community WHERE id = %s", (community_id,)).fetchone() is None:
        known = [r[0] for r in conn.execute("SELECT id FROM community ORDER BY id")]
        raise CommunityError(f"no community {community_id!r} in the twin"
                             + (f" (it has {', '.join(known)})" if known else " (it is empty)"))
    frames = {}
    for table in TABLES:
        frames[table] = _read_table(conn, table, community_id)
    frames["device"] = _with_state(conn, frames["device"])
    return frames


def write_export(frames: dict[str, gpd.GeoDataFrame], fmt: str, path: Path) -> Path:
    """Write frames read by :func:`read_community` as ``fmt`` at ``path``."""
    flat = {table: _flat(table, frame) for table, frame in frames.items()}
    if fmt == "cityjson":
        srid = int(frames["community"]["local_srid"].iloc[0])
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_cityjson(path, flat, srid=srid)
    if fmt == "gpkg":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        for table, frame in flat.items():
            pyogrio.write_dataframe(frame, path, layer=table, driver="GPKG")
        return path
    path.mkdir(parents=True, exist_ok=True)
    for table, frame in flat.items():
        target = path / f"{table}.geojson"
        target.unlink(missing_ok=True)
        pyogrio.write_dataframe(frame, target, driver="GeoJSON",
                                layer_options={"AUTODETECT_JSON_STRINGS": "NO"})
    return path


def _read_table(conn: psycopg.Connection, table: str, community_id: str) -> gpd.GeoDataFrame:
    columns = [c for c in COLUMNS[table] if c not in ("geometry", "area")]
    select: list[sql.Composable] = [sql.SQL("t.{}").format(sql.Identifier(c)) for c in columns]
    select.append(sql.SQL("ST_AsBinary(t.{})").format(
        sql.Identifier(_GEOMETRY.get(table, "geom"))))
    if table == "facility":
        select.append(sql.SQL("ST_AsBinary(t.area)"))
    if table == "community":
        where = sql.SQL("t.id = %(c)s")
    elif table == "entrance":
        where = sql.SQL("t.building_id IN (SELECT id FROM building WHERE community_id = %(c)s)")
    else:
        where = sql.SQL("t.community_id = %(c)s")
    rows = conn.execute(sql.SQL("SELECT {} FROM {} t WHERE {} ORDER BY t.id").format(
        sql.SQL(", ").join(select), sql.Identifier(table), where), {"c": community_id}).fetchall()
    names = columns + ["geometry"] + (["area"] if table == "facility" else [])
    frame = pd.DataFrame(rows, columns=names, dtype=object)
    for column in ("geometry", "area"):
        if column in frame.columns:
            frame[column] = (shapely.from_wkb(frame[column].to_numpy()) if len(frame)
                             else np.array([], dtype=object))
    if table == "grid":
        frame["grid_worker_id"] = None  # staff are not exported
    return conform(table, frame)


def _with_state(conn: psycopg.Connection, device: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rows = conn.execute(
        "SELECT device_id, online, to_char(last_seen AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), metrics::text FROM device_state "
        "WHERE device_id = ANY(%s)", (list(device["id"]),)).fetchall()
    state = pd.DataFrame(rows, columns=["id", "online", "last_seen", "metrics"], dtype=object)
    out = device.merge(state, on="id", how="left")
    return gpd.GeoDataFrame(out, geometry="geometry", crs=CRS)


def _flat(table: str, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns every format can hold: the facility area as WKT, nothing all-null untyped."""
    out = frame.copy()
    if table == "facility":
        wkt = shapely.to_wkt(np.asarray(frame["area"], dtype=object),
                             rounding_precision=COORD_DECIMALS)
        out["area"] = pd.Series(wkt, index=frame.index, dtype=object)
    for column in out.columns:
        if column != "geometry" and out[column].dtype == object:
            out[column] = out[column].astype("string")
    return out
