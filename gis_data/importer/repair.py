"""Checking and repairing source geometry, saying what was done to which feature.

Footprints
    The schema holds one polygon per building. A missing or empty geometry
    is skipped. An invalid one is repaired with ``make_valid`` when that is
    safe: the result is still polygonal and one polygon of it carries at
    least :data:`MAIN_PART_SHARE` of the area (so a spike or a self-touching
    ring is fixed, while a bow-tie that falls apart into two equal halves is
    skipped). A valid multipolygon of one part is simply unwrapped; of more
    parts, the same main-part rule applies.
Lines
    Missing, empty and zero-length lines are skipped; multilines are split
    into their parts (they keep the feature's id, with ``.1``, ``.2`` ...).
Points
    Missing and empty points are skipped; a multipoint keeps its first point.

Every function returns the kept features and a status per input feature:
``None`` when kept as it was, else ``'repaired: ...'`` or ``'skipped: ...'``.
Z coordinates are dropped everywhere (heights are attributes in the twin).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

#: A repaired or multi-part footprint is kept when one polygon holds this share of its area.
MAIN_PART_SHARE = 0.9


def repair_polygons(geoms: np.ndarray, problem: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Footprints: one valid polygon per input, or None, and a status per input.

    Parameters
    ----------
    geoms
        Source geometries (any type; None for missing).
    problem
        What the reader already knows went wrong (None where nothing), used as
        the reason of a missing geometry.
    """
    geoms = shapely.force_2d(np.asarray(geoms, dtype=object))
    n = len(geoms)
    status = np.full(n, None, dtype=object)
    missing = shapely.is_missing(geoms)
    status[missing] = _why_missing(problem, n)[missing]
    empty = ~missing & shapely.is_empty(geoms)
    status[empty] = "skipped: empty geometry"
    present = ~missing & ~empty
    type_id = shapely.get_type_id(geoms)
    polygonal = np.isin(type_id, (3, 6))
    status[present & ~polygonal] = [f"skipped: a {g.geom_type} is not a footprint"
                                    for g in geoms[present & ~polygonal]]
    work = present & polygonal
    invalid = work & ~shapely.is_valid(geoms)
    fixed = geoms.copy()
    reasons = np.full(n, None, dtype=object)
    if invalid.any():
        reasons[invalid] = shapely.is_valid_reason(geoms[invalid])
        fixed[invalid] = shapely.make_valid(geoms[invalid])
    main, share, parts = _main_polygon(fixed, work)
    whole = work & (parts == 1)
    kept = work & ((parts == 1) | (share >= MAIN_PART_SHARE))
    out = np.full(n, None, dtype=object)
    out[kept] = main[kept]
    status[invalid & kept & whole] = [f"repaired: {r}" for r in reasons[invalid & kept & whole]]
    status[invalid & kept & ~whole] = [
        f"repaired: {r}; kept the main part ({s:.0%} of the area)"
        for r, s in zip(reasons[invalid & kept & ~whole], share[invalid & kept & ~whole])]
    status[~invalid & kept & ~whole] = [
        f"repaired: {p} separate parts; kept the main one ({s:.0%} of the area)"
        for p, s in zip(parts[~invalid & kept & ~whole], share[~invalid & kept & ~whole])]
    dropped = work & ~kept
    status[dropped] = [
        (f"skipped: {r}, and make_valid splits it into {p} parts of which the largest is only "
         f"{s:.0%}" if r else f"skipped: {p} separate parts, the largest only {s:.0%}")
        if p else f"skipped: {r}, and make_valid leaves no area"
        for r, p, s in zip(reasons[dropped], parts[dropped], share[dropped])]
    return out, status


def explode_lines(geoms: np.ndarray, ids: np.ndarray, problem: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lines: (kept lines, their feature index, their ids, status per input feature)."""
    geoms = shapely.force_2d(np.asarray(geoms, dtype=object))
    n = len(geoms)
    status = np.full(n, None, dtype=object)
    missing = shapely.is_missing(geoms)
    status[missing] = _why_missing(problem, n)[missing]
    empty = ~missing & shapely.is_empty(geoms)
    status[empty] = "skipped: empty geometry"
    linear = np.isin(shapely.get_type_id(geoms), (1, 2, 5))
    status[~missing & ~empty & ~linear] = "skipped: not a line"
    use = ~missing & ~empty & linear
    parts, index = shapely.get_parts(geoms[use], return_index=True)
    owner = np.flatnonzero(use)[index]
    long_enough = shapely.length(parts) > 0
    flat = np.zeros(n, dtype=bool)
    flat[owner[~long_enough]] = True
    has_length = np.zeros(n, dtype=bool)
    has_length[owner[long_enough]] = True
    status[use & flat & ~has_length] = "skipped: zero length"
    parts, owner = parts[long_enough], owner[long_enough]
    count = np.bincount(owner, minlength=n)
    seq = np.arange(len(owner)) - np.searchsorted(owner, owner)
    base = np.asarray(ids, dtype=object)[owner].astype(str)
    part_ids = np.where(count[owner] > 1, np.char.add(np.char.add(base, "."),
                                                      (seq + 1).astype(str)), base)
    rings = shapely.get_type_id(parts) == 2
    parts[rings] = [shapely.LineString(r.coords) for r in parts[rings]]  # few, if any
    return parts, owner, part_ids.astype(object), status


def clean_points(geoms: np.ndarray, problem: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Points: one point per input, or None, and a status per input."""
    geoms = shapely.force_2d(np.asarray(geoms, dtype=object))
    n = len(geoms)
    status = np.full(n, None, dtype=object)
    missing = shapely.is_missing(geoms)
    status[missing] = _why_missing(problem, n)[missing]
    empty = ~missing & shapely.is_empty(geoms)
    status[empty] = "skipped: empty geometry"
    type_id = shapely.get_type_id(geoms)
    status[~missing & ~empty & ~np.isin(type_id, (0, 4))] = "skipped: not a point"
    ok = status == None
    out = np.full(n, None, dtype=object)
    out[ok] = shapely.get_geometry(geoms[ok], 0)
    several = ok & (shapely.get_num_geometries(geoms) > 1)
    status[several] = "repaired: a multipoint; kept its first point"
    return out, status


def _main_polygon(geoms: np.ndarray, work: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The largest polygon of each geometry, its share of the polygonal area, and part count."""
    n = len(geoms)
    main = np.full(n, None, dtype=object)
    share = np.zeros(n)
    parts_count = np.zeros(n, dtype=int)
    if not work.any():
        return main, share, parts_count
    parts, index = shapely.get_parts(_flatten(geoms[work]), return_index=True)
    is_polygon = shapely.get_type_id(parts) == 3
    parts, index = parts[is_polygon], index[is_polygon]
    area = shapely.area(parts)
    parts, index, area = parts[area > 0], index[area > 0], area[area > 0]
    owner = np.flatnonzero(work)[index]
    frame = pd.DataFrame({"owner": owner, "area": area, "k": np.arange(len(owner))})
    if frame.empty:
        return main, share, parts_count
    total = frame.groupby("owner")["area"].sum()
    largest = frame.loc[frame.groupby("owner")["area"].idxmax()]
    main[largest["owner"].to_numpy()] = parts[largest["k"].to_numpy()]
    share[largest["owner"].to_numpy()] = (largest["area"].to_numpy()
                                          / total.loc[largest["owner"]].to_numpy())
    counts = frame.groupby("owner").size()
    parts_count[counts.index.to_numpy()] = counts.to_numpy()
    return main, share, parts_count


def _flatten(geoms: np.ndarray) -> np.ndarray:
    """Geometry collections (from make_valid) as their polygonal parts only."""
    collection = shapely.get_type_id(geoms) == 7
    if not collection.any():
        return geoms
    out = geoms.copy()
    for k in np.flatnonzero(collection):  # few: only broken features
        polygons = [p for p in shapely.get_parts(out[k]) if shapely.get_type_id(p) in (3, 6)]
        out[k] = shapely.union_all(polygons) if polygons else shapely.Polygon()
    return out


def _why_missing(problem: np.ndarray | None, n: int) -> np.ndarray:
    if problem is None:
        return np.full(n, "skipped: no geometry", dtype=object)
    problem = np.asarray(problem, dtype=object)
    return np.array(["skipped: " + p if isinstance(p, str) else "skipped: no geometry"
                     for p in problem], dtype=object)
