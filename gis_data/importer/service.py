"""`twin import` as one use case: read, map, plan, merge with the twin, write.

The only module of the importer that talks to the database: it reads what
the twin already holds of the community (so kept devices and facilities are
attached to the new walkway graph too) and writes with
:func:`twin.store.loader.upsert_dataset`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import shapely

from gis_data.dataset import Dataset
from gis_data.importer.build import Existing, assemble, plan_import
from gis_data.importer.errors import CommunityError, SourceError
from gis_data.importer.mapping import map_layers, read_mapping
from gis_data.importer.readers import read_source
from gis_data.importer.report import ImportReport
from twin.store.loader import upsert_dataset
from twin.walkgraph import ATTACH_KIND

#: The steps :func:`import_path` reports progress on.
STEPS = ("reading", "mapping layers", "repairing and resolving heights", "reading the twin",
         "the community and its walkway graph", "writing", "done")


@dataclass(frozen=True, slots=True)
class ImportResult:
    community_id: str
    dataset: Dataset
    supplied: frozenset[str]
    report: ImportReport


def import_path(
    conn: psycopg.Connection,
    path: str | Path,
    *,
    community_id: str,
    layers: Sequence[str] | None = None,
    mapping: str | Path | None = None,
    replace: bool = False,
    name: str | None = None,
    city: str | None = None,
    step: Callable[[str], None] | None = None,
) -> ImportResult:
    """Import the GIS source at ``path`` into community ``community_id``.

    Parameters
    ----------
    layers
        Only these layers of the source.
    mapping
        A TOML mapping file (see :mod:`gis_data.importer.mapping`).
    replace
        Delete the community's buildings, entrances, facilities and devices
        (of the tables the source supplies) that the source no longer has.
        Without it, the import only adds and updates.
    name, city
        Given for a new community or an existing one (which they rename).
        A new community's name defaults to its id, its city to 'unknown'.
    step
        Called with the name of each step as it starts (for a progress bar).
    """
    say = step or (lambda _: None)
    if not community_id or not community_id.replace("-", "").replace("_", "").isalnum():
        raise CommunityError(f"community id {community_id!r} must be letters, digits, '-' and "
                             "'_' only (it prefixes every id of the community)")
    say(STEPS[0])
    source = read_source(path, layers=layers)
    say(STEPS[1])
    rules = read_mapping(mapping)
    mapped, left_out = map_layers(source, rules)
    say(STEPS[2])
    plan = plan_import(mapped, community_id=community_id, mapping=rules)
    for why in left_out:
        plan.report.note("(source)", str(path), "warning", why)
    if not any(len(f) for f in plan.frames.values()) and not len(plan.lines):
        raise SourceError(f"{path}: nothing to import: no buildings, paths, entrances, "
                          "facilities or devices were found"
                          + (f" ({left_out[0]})" if left_out else ""))
    say(STEPS[3])
    existing = _existing(conn, community_id, plan.frames, replace=replace)
    say(STEPS[4])
    dataset, supplied, graph = assemble(plan, existing=existing, name=name, city=city,
                                        replace=replace, merge_m=rules.merge_m)
    dataset = _without_unknown_units(conn, dataset, plan.report)
    say(STEPS[5])
    graph_tables = {"walk_node", "walk_edge"} & supplied
    replacing = set(supplied) - {"community"} if replace else graph_tables
    plan.report.written = upsert_dataset(conn, dataset, community_id=community_id,
                                         tables=supplied, replace=replacing)
    _assign_grids(conn, community_id)
    if graph is None and not graph_tables:
        plan.report.note("walkway", "(graph)", "warning",
                         "the source has no path lines: the walkway graph was left as it was")
    say(STEPS[6])
    return ImportResult(community_id, dataset, supplied, plan.report)


def _existing(conn: psycopg.Connection, c: str, frames: dict, *, replace: bool) -> Existing:
    row = conn.execute("SELECT name, city, local_srid, ST_AsBinary(boundary) FROM community "
                       "WHERE id = %s", (c,)).fetchone()
    if row is None:
        return Existing()
    name, city, srid, boundary = row
    imported = {t: set(f["id"]) for t, f in frames.items()}
    kept_buildings = _frame(conn.execute(
        "SELECT id, ST_AsBinary(footprint) FROM building WHERE community_id = %s", (c,)
    ).fetchall(), ["id", "geometry"])
    if "building" in imported:
        drop = kept_buildings["id"].isin(imported["building"])
        if replace:
            drop |= True
        kept_buildings = kept_buildings[~drop]
    final_buildings = set(kept_buildings["id"]) | imported.get("building", set())
    places = _frame(conn.execute(
        """
        SELECT e.id, 'entrance', e.building_id, 'footway', ST_AsBinary(e.geom), 'entrance'
          FROM entrance e JOIN building b ON b.id = e.building_id WHERE b.community_id = %(c)s
        UNION ALL
        SELECT id, 'facility', building_id, kind, ST_AsBinary(geom), 'facility'
          FROM facility WHERE community_id = %(c)s
        UNION ALL
        SELECT id, 'device', building_id, 'link', ST_AsBinary(geom), 'device'
          FROM device WHERE community_id = %(c)s
        """, {"c": c}).fetchall(), ["ref_id", "kind", "building_id", "link_kind", "geometry",
                                    "table"])
    places["link_kind"] = np.where(places["kind"] == "facility",
                                   [ATTACH_KIND.get(k, "link") for k in places["link_kind"]],
                                   places["link_kind"])
    table = places.pop("table").to_numpy()
    drop = np.zeros(len(places), dtype=bool)
    for t, ids in imported.items():
        if t in ("entrance", "facility", "device"):
            drop |= (table == t) & (replace | places["ref_id"].isin(ids).to_numpy())
    gone = ~places["building_id"].isin(final_buildings) & places["building_id"].notna()
    drop |= (table == "entrance") & gone.to_numpy()
    places.loc[gone, "building_id"] = None  # ON DELETE SET NULL will do the same
    return Existing(name=name, city=city, local_srid=srid,
                    boundary=shapely.from_wkb(boundary), places=places[~drop],
                    buildings=kept_buildings)


def _without_unknown_units(conn: psycopg.Connection, dataset: Dataset,
                           report: ImportReport) -> Dataset:
    """Devices of an export refer to flats, which are not exported: keep only known ones."""
    device = dataset.device
    refs = device["unit_id"].dropna()
    if refs.empty:
        return dataset
    known = {r[0] for r in conn.execute("SELECT id FROM unit WHERE id = ANY(%s)",
                                        (list(refs.unique()),))}
    unknown = device["unit_id"].notna() & ~device["unit_id"].isin(known)
    if unknown.any():
        report.note("device", f"{int(unknown.sum())} devices", "warning",
                    "their flat is not in the twin (flats are not exported): "
                    "imported without a flat")
        device = device.copy()
        device.loc[unknown, "unit_id"] = None
        return Dataset(**{**{n: f for n, f in dataset.tables()}, "device": device})
    return dataset


def _assign_grids(conn: psycopg.Connection, c: str) -> None:
    """Buildings without a grid go to the grid of the community their footprint lies in."""
    conn.execute(
        """
        UPDATE building b SET grid_id = g.id FROM grid g
         WHERE b.community_id = %(c)s AND b.grid_id IS NULL AND g.community_id = %(c)s
           AND ST_Contains(g.area, ST_PointOnSurface(b.footprint))
        """, {"c": c})
    conn.commit()


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=columns, dtype=object)
    if "geometry" in columns:
        frame["geometry"] = shapely.from_wkb(frame["geometry"].to_numpy()) if len(frame) \
            else np.array([], dtype=object)
    return frame
