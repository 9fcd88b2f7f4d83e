"""One generated community (or district) as frames, and their files on disk.

A :class:`Dataset` holds one frame per table of ``0002_twin_model.sql``, with
the table's column names, so the loader can copy columns by name. The column
kinds below are the single description of those frames: the generator and
:func:`read_dataset` both pass every frame through :func:`conform`, which is
what makes ``read_dataset(d.write(dir))`` equal ``d``.

Conventions of the frames
-------------------------
- Geometry is in EPSG:4326, coordinates rounded to 7 decimals (about 1 cm),
  in a column named ``geometry``; the facility ``area`` is a second geometry
  column (a GeoSeries, missing as None).
- Optional references (``building_id``, ``unit_id`` ...) are object columns
  holding ``None`` where not applicable; required text is pandas ``str``.
- Optional integers (``floor`` of facility and device) are nullable ``Int64``.
- ``care_flags``, ``skills`` and ``family_contacts`` hold Python lists; rows
  with the same value may share one list object, so treat them as read-only.
- Rows are sorted by ``id``.
- ``facility['area']`` and ``device['type']`` shadow GeoDataFrame attributes
  (``.area``, ``.type``): read them by item, never as attributes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely

Kind = Literal["text", "opt_text", "int", "opt_int", "float", "list", "time", "geometry", "area"]

#: Geometry CRS of every frame.
CRS = "EPSG:4326"
#: Decimals kept in every coordinate, in memory and on disk.
COORD_DECIMALS = 7

#: Columns of every table, in load order, with their kind (see module docstring).
COLUMNS: dict[str, dict[str, Kind]] = {
    "community": {
        "id": "text", "name": "text", "city": "text", "local_srid": "int",
        "geometry": "geometry",
    },
    "grid": {
        "id": "text", "community_id": "text", "name": "text", "grid_worker_id": "opt_text",
        "geometry": "geometry",
    },
    "building": {
        "id": "text", "community_id": "text", "grid_id": "opt_text", "name": "text",
        "usage": "text", "floors": "int", "units_per_floor": "int", "height_m": "float",
        "height_source": "text", "geometry": "geometry",
    },
    "entrance": {"id": "text", "building_id": "text", "name": "text", "geometry": "geometry"},
    "unit": {
        "id": "text", "building_id": "text", "floor": "int", "number": "text",
        "occupancy": "text",
    },
    "resident": {
        "id": "text", "unit_id": "text", "name": "text", "phone": "text", "gender": "text",
        "age_band": "text", "care_flags": "list", "family_contacts": "list",
    },
    "facility": {
        "id": "text", "community_id": "text", "kind": "text", "name": "text",
        "building_id": "opt_text", "floor": "opt_int", "geometry": "geometry", "area": "area",
    },
    "device": {
        "id": "text", "community_id": "text", "type": "text", "name": "text",
        "building_id": "opt_text", "floor": "opt_int", "unit_id": "opt_text",
        "facility_id": "opt_text", "credentials_id": "text", "geometry": "geometry",
    },
    "staff": {
        "id": "text", "community_id": "text", "name": "text", "phone": "text", "role": "text",
        "skills": "list", "grid_id": "opt_text", "shift": "text", "geometry": "geometry",
        "position_at": "time", "post_id": "opt_text", "badge_id": "opt_text",
    },
    "walk_node": {
        "id": "text", "community_id": "text", "kind": "text", "ref_id": "opt_text",
        "geometry": "geometry",
    },
    "walk_edge": {
        "id": "text", "community_id": "text", "source": "text", "target": "text",
        "kind": "text", "length_m": "float", "geometry": "geometry",
    },
}

#: Tables written as CSV (no geometry); the others are GeoJSON.
CSV_TABLES: frozenset[str] = frozenset({"unit", "resident"})

_TIME_DTYPE = "datetime64[us, UTC]"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, eq=False, slots=True)
class Dataset:
    """The static twin of one or more communities, one frame per table (field order = load order).

    ``grid.grid_worker_id`` points at staff loaded later; the database defers
    that constraint, so loading in this order inside one transaction works.
    """

    community: gpd.GeoDataFrame
    grid: gpd.GeoDataFrame
    building: gpd.GeoDataFrame
    entrance: gpd.GeoDataFrame
    unit: pd.DataFrame
    resident: pd.DataFrame
    facility: gpd.GeoDataFrame
    device: gpd.GeoDataFrame
    staff: gpd.GeoDataFrame
    walk_node: gpd.GeoDataFrame
    walk_edge: gpd.GeoDataFrame

    def tables(self) -> list[tuple[str, pd.DataFrame]]:
        """Return ``(table name, frame)`` pairs in load order."""
        return [(f.name, getattr(self, f.name)) for f in fields(self)]

    def summary(self) -> dict[str, int]:
        """Return the row count of every table, in load order."""
        return {name: len(frame) for name, frame in self.tables()}

    def write(self, directory: str | Path) -> Path:
        """Write one file per table into ``directory`` (created if needed) and return it.

        Geo tables become ``<table>.geojson`` with 7-decimal coordinates, ``unit``
        and ``resident`` become CSV; lists are JSON text, the facility area WKT,
        times ISO 8601 in UTC. The same dataset always gives the same bytes.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name, frame in self.tables():
            path = directory / _file_name(name)
            path.unlink(missing_ok=True)
            flat = _encode(name, frame)
            if name in CSV_TABLES:
                flat.to_csv(path, index=False, lineterminator="\n", encoding="utf-8")
            else:
                # Coordinates are already rounded to COORD_DECIMALS, so GDAL's default
                # precision prints exactly those decimals; asking it for 7 would let its
                # "smart" rounding turn 114.4000002 into 114.4 and break the round trip.
                pyogrio.write_dataframe(flat, path, driver="GeoJSON",
                                        layer_options={"AUTODETECT_JSON_STRINGS": "NO"})
        return directory


def read_dataset(directory: str | Path) -> Dataset:
    """Read a dataset written by :meth:`Dataset.write`.

    Raises
    ------
    ValueError
        If a table file or one of its columns is missing, naming the file.
    """
    directory = Path(directory)
    frames: dict[str, pd.DataFrame] = {}
    for name, kinds in COLUMNS.items():
        path = directory / _file_name(name)
        if not path.is_file():
            raise ValueError(f"{path}: table file is missing")
        if name in CSV_TABLES:
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            raw = pyogrio.read_dataframe(path)
        missing = [c for c in kinds if c not in raw.columns]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
        frames[name] = conform(name, _decode(name, raw))
    return Dataset(**frames)


def conform(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Give ``frame`` exactly the columns, dtypes, CRS and row order of ``table``.

    The one place that decides what a table's frame looks like, used by the
    generator and by :func:`read_dataset` alike.
    """
    if table not in COLUMNS:
        raise ValueError(f"unknown table {table!r}; expected one of {', '.join(COLUMNS)}")
    kinds = COLUMNS[table]
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        raise ValueError(f"table {table!r}: missing column(s) {', '.join(missing)}")
    data = {col: _cast(frame[col], kind) for col, kind in kinds.items()}
    if "geometry" in kinds:
        out: pd.DataFrame = gpd.GeoDataFrame(data, geometry="geometry", crs=CRS)
    else:
        out = pd.DataFrame(data)
    ids = out["id"]
    if not ids.is_unique:
        duplicate = ids[ids.duplicated()].iloc[0]
        raise ValueError(f"table {table!r}: duplicate ids such as {duplicate!r}")
    if not ids.is_monotonic_increasing:
        out = out.iloc[np.argsort(ids.to_numpy(), kind="stable")].reset_index(drop=True)
    return out


def _file_name(table: str) -> str:
    return f"{table}.csv" if table in CSV_TABLES else f"{table}.geojson"


def _cast(series: pd.Series, kind: Kind) -> object:
    values = series.to_numpy()
    if kind == "text":
        return pd.array(values, dtype="str")
    if kind == "opt_text":
        objects = values.astype(object)
        return pd.Series(np.where(pd.isna(objects), None, objects), dtype=object)
    if kind == "int":
        return values.astype(np.int64)
    if kind == "opt_int":
        return pd.array(series, dtype="Int64")
    if kind == "float":
        return values.astype(np.float64)
    if kind == "list":
        return pd.Series(values.astype(object), dtype=object)
    if kind == "time":
        return pd.to_datetime(series, utc=True).astype(_TIME_DTYPE).array
    if kind in ("geometry", "area"):
        rounded = shapely.transform(values, lambda xy: np.round(xy, COORD_DECIMALS))
        return gpd.array.from_shapely(rounded, crs=CRS)
    raise AssertionError(kind)


def _encode(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Turn list, time and area columns into text for writing."""
    out = frame.copy()
    for col, kind in COLUMNS[table].items():
        if kind == "list":
            out[col] = [json.dumps(v, ensure_ascii=False) for v in frame[col]]
        elif kind == "time":
            text = frame[col].dt.strftime(_TIME_FORMAT).astype(object)
            out[col] = np.where(frame[col].isna(), None, text)
        elif kind == "area":
            wkt = shapely.to_wkt(np.asarray(frame[col]), rounding_precision=COORD_DECIMALS)
            out[col] = pd.Series(wkt, index=frame.index, dtype=object)
    return out


def _decode(table: str, raw: pd.DataFrame) -> pd.DataFrame:
    """Reverse :func:`_encode` on a frame read from disk."""
    out = raw.copy()
    for col, kind in COLUMNS[table].items():
        if kind == "list":
            out[col] = pd.Series([json.loads(v) for v in raw[col]], index=raw.index, dtype=object)
        elif kind == "area":
            text = raw[col].to_numpy().astype(object)
            out[col] = pd.Series(
                shapely.from_wkt(np.where(pd.isna(text), None, text)), index=raw.index,
                dtype=object,
            )
        elif kind == "int" and raw[col].dtype != np.int64:
            out[col] = pd.to_numeric(raw[col]).astype(np.int64)
        elif kind == "float":
            out[col] = pd.to_numeric(raw[col])
    return out
