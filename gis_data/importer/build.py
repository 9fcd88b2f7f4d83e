"""From mapped source layers to the twin's rows: ids, heights, repaired geometry.

Pure: no database. :func:`plan_import` turns every mapped layer into rows
of the twin's tables (EPSG:4326, final ids) and collects path lines for the
walkway graph; :func:`assemble` then adds the community row and the graph,
once the caller knows what the twin already holds.

Ids are stable, made from the source's own ids so a re-import finds the
same rows: ``<community>-b-<source id>`` for buildings, ``-en-`` for
entrances, ``-f-`` for facilities, ``-d-`` for devices (OSM source ids are
``w123``, ``r45``, ``n67``). When a file has two building layers, the layer
name goes into the id too. Rows of a ``twin export`` keep their ids (with
the community prefix swapped when imported under another name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from gis_data.dataset import COLUMNS, CRS, Dataset, conform
from gis_data.importer.heights import HeightRules, resolve_heights
from gis_data.importer.mapping import MappedLayer, Mapping
from gis_data.importer.osm import WALKABLE
from gis_data.importer.repair import clean_points, explode_lines, repair_polygons
from gis_data.importer.report import ImportReport
from gis_data.importer.walkgraph import Walkways, node_walkways
from twin.device_types import DEVICE_TYPES
from twin.walkgraph import ATTACH_KIND, walk_frames

#: Facility kinds the schema allows (the CHECK of facility.kind; a test keeps them equal).
FACILITY_KINDS = ("gate", "ev_shed", "trash_station", "pump_room", "garage", "garage_ramp",
                  "elevator", "green_area", "security_room", "property_office", "playground")
#: Walkway edge kinds a path line may have.
EDGE_KINDS = ("road", "footway", "ramp", "steps")
#: An entrance without a building column belongs to the nearest footprint this close (m).
ENTRANCE_SNAP_M = 5.0
#: The community boundary is the hull of what was imported, this much wider (m).
BOUNDARY_MARGIN_M = 10.0
#: Usage given to buildings whose source says nothing more precise than "a building".
DEFAULT_USAGE = "residential"
_VAGUE_USAGE = {"yes", "true", "1", "building", ""}
#: City of a new community when --city is not given.
UNKNOWN_CITY = "unknown"

#: Tables an import can write, in load order.
IMPORT_TABLES = ("community", "grid", "building", "entrance", "facility", "device",
                 "walk_node", "walk_edge")


@dataclass(slots=True)
class ImportPlan:
    """Rows of the twin from the source, before the community and the graph are added."""

    community_id: str
    frames: dict[str, gpd.GeoDataFrame] = field(default_factory=dict)
    #: Path lines in EPSG:4326 with their walk_edge 'kind'.
    lines: gpd.GeoDataFrame = field(default_factory=lambda: gpd.GeoDataFrame(
        {"kind": pd.Series([], dtype=object)}, geometry=gpd.GeoSeries([], crs=CRS), crs=CRS))
    report: ImportReport = field(default_factory=ImportReport)

    @property
    def has_graph(self) -> bool:
        return "walk_edge" in self.frames


def plan_import(layers: list[MappedLayer], *, community_id: str,
                mapping: Mapping | None = None) -> ImportPlan:
    """Turn mapped layers into twin rows (see the module docstring for ids)."""
    mapping = mapping if mapping is not None else Mapping()
    plan = ImportPlan(community_id)
    twin = [layer for layer in layers if layer.role.startswith("twin:")]
    if twin:
        _twin_rows(plan, twin)
    by_role = {role: [layer for layer in layers if layer.role == role]
               for role in ("buildings", "entrances", "facilities", "devices", "paths")}
    several = len(by_role["buildings"]) > 1
    buildings = [_buildings(plan, layer, mapping.rules, with_layer=several)
                 for layer in by_role["buildings"]]
    _append(plan, "building", buildings)
    _append(plan, "entrance", [_entrances(plan, layer, several)
                               for layer in by_role["entrances"]])
    _append(plan, "facility", [_points(plan, layer, "facility") for layer in by_role["facilities"]])
    _append(plan, "device", [_points(plan, layer, "device") for layer in by_role["devices"]])
    lines = [_paths(plan, layer) for layer in by_role["paths"]]
    if lines:
        plan.lines = gpd.GeoDataFrame(pd.concat(lines, ignore_index=True), crs=CRS)
    return plan


def local_srid(geometries: gpd.GeoSeries) -> int:
    """EPSG code of the UTM zone (WGS 84) holding the centre of the bounds of ``geometries``."""
    xmin, ymin, xmax, ymax = shapely.total_bounds(geometries.to_numpy())
    lon, lat = (xmin + xmax) / 2, (ymin + ymax) / 2
    zone = int((lon + 180) // 6) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@dataclass(frozen=True, slots=True)
class Existing:
    """What the twin already holds of the community, as far as the import needs it."""

    name: str | None = None
    city: str | None = None
    local_srid: int | None = None
    boundary: shapely.Geometry | None = None
    #: Places already in the twin (entrance, facility, device rows not in the import):
    #: ref_id, kind, building_id, link_kind, geometry (EPSG:4326).
    places: pd.DataFrame | None = None
    #: Footprints already in the twin: id, geometry (EPSG:4326).
    buildings: pd.DataFrame | None = None


def assemble(plan: ImportPlan, *, existing: Existing, name: str | None, city: str | None,
             replace: bool, merge_m: float = 1.0) -> tuple[Dataset, frozenset[str], Walkways | None]:
    """The community row, the walkway graph, and the dataset to write.

    Returns the dataset, the tables it supplies (the others are empty and
    must not be touched), and the graph built (None when the source gave no
    path lines, or gave the graph itself).
    """
    c = plan.community_id
    frames = dict(plan.frames)
    everything = pd.concat([f.geometry for f in frames.values() if len(f)]
                           + [plan.lines.geometry], ignore_index=True)
    if everything.empty and existing.boundary is None:
        raise ValueError("nothing to import")
    twin_community = frames.pop("community", None)
    srid = (existing.local_srid or (int(twin_community["local_srid"].iloc[0])
                                    if twin_community is not None else None)
            or local_srid(gpd.GeoSeries(everything, crs=CRS)))
    to_metric = pyproj.Transformer.from_crs(4326, srid, always_xy=True)
    to_lonlat = pyproj.Transformer.from_crs(srid, 4326, always_xy=True)

    graph = None
    if plan.lines is not None and len(plan.lines) and not plan.has_graph:
        graph = _graph(plan, frames, existing, to_metric, srid, merge_m)
        doors = graph.doors
        if len(doors):
            frames["entrance"] = pd.concat([frames.get("entrance", _empty("entrance")),
                                            pd.DataFrame({
                "id": doors["ref_id"], "building_id": doors["building_id"],
                "name": "door nearest the walkway",
                "geometry": _project(doors["geometry"].to_numpy(), to_lonlat)})],
                ignore_index=True)
        frames["walk_node"], frames["walk_edge"] = _graph_rows(c, graph, to_lonlat)
        plan.report.graph = graph.report

    if twin_community is not None:
        boundary = twin_community.geometry.iloc[0]
        name = name or str(twin_community["name"].iloc[0])
        city = city or str(twin_community["city"].iloc[0])
    else:
        boundary = _hull([f.geometry.to_numpy() for t, f in frames.items()
                          if t in ("building", "entrance", "facility", "device") and len(f)]
                         or [plan.lines.geometry.to_numpy()], to_metric, to_lonlat)
    if existing.boundary is not None and not replace:
        # grow the community to cover what was added; the same source leaves it as it was
        if not shapely.buffer(existing.boundary, 1e-6).covers(boundary):
            boundary = shapely.convex_hull(shapely.union(boundary, existing.boundary))
        else:
            boundary = existing.boundary
    frames["community"] = pd.DataFrame({
        "id": [c], "name": [name or existing.name or c], "city": [city or existing.city or UNKNOWN_CITY],
        "local_srid": [srid], "geometry": [boundary]})

    supplied = frozenset(t for t in frames)
    tables = {}
    for table in COLUMNS:
        frame = frames.get(table)
        tables[table] = conform(table, frame if frame is not None else _empty(table))
    return Dataset(**tables), supplied, graph


# --- layers -------------------------------------------------------------------------------

def _buildings(plan: ImportPlan, layer: MappedLayer, rules: HeightRules, *,
               with_layer: bool) -> pd.DataFrame:
    frame = layer.layer.frame
    count = plan.report.layer(layer.name, "buildings", len(frame))
    src = _source_ids(plan, layer)
    prefix = f"{plan.community_id}-b-" + (f"{layer.name}-" if with_layer else "")
    geoms, status = repair_polygons(frame.geometry.to_numpy(), _col(frame, "_problem"))
    status = _duplicates(src, status)
    plan.report.add_statuses(count, src, status)
    heights = resolve_heights(
        len(frame), height=_col(frame, layer.columns["height"]),
        model=_col(frame, layer.columns["model"]),
        levels=_col(frame, layer.columns["levels"]), rules=rules)
    keep = geoms != None
    keep &= np.array([s is None or s.startswith("repaired") for s in status])
    for feature, note in zip(src[keep], heights.note[keep]):
        if note is not None:
            plan.report.note(layer.name, feature, "default", note)
    count.defaulted = int(sum(n is not None for n in heights.note[keep]))
    count.imported = int(keep.sum())
    usage = _col(frame, layer.columns["usage"])
    usage = (np.full(len(frame), DEFAULT_USAGE, dtype=object) if usage is None else
             np.where(usage.fillna("").astype(str).str.strip().str.lower().isin(_VAGUE_USAGE),
                      DEFAULT_USAGE, usage.astype(str)))
    names = _col(frame, layer.columns["name"])
    names = (np.char.add("building ", src.astype(str)) if names is None else
             np.where(names.isna() | (names.astype(str).str.strip() == ""),
                      np.char.add("building ", src.astype(str)), names.astype(str)))
    out = pd.DataFrame({
        "id": np.char.add(prefix, src.astype(str)).astype(object), "community_id": plan.community_id,
        "grid_id": None, "name": names, "usage": usage, "floors": heights.floors,
        "units_per_floor": rules.units_per_floor, "height_m": heights.height_m,
        "height_source": heights.source,
        "geometry": _to_4326(geoms, frame.crs), "_source": src})
    return out[keep].reset_index(drop=True)


def _entrances(plan: ImportPlan, layer: MappedLayer, several_building_layers: bool
               ) -> pd.DataFrame:
    frame = layer.layer.frame
    count = plan.report.layer(layer.name, "entrances", len(frame))
    src = _source_ids(plan, layer)
    points, status = clean_points(frame.geometry.to_numpy(), _col(frame, "_problem"))
    status = _duplicates(src, status)
    points = _to_4326(points, frame.crs)
    building = _building_of(plan, layer, points, status)
    status = np.where((status == None) & (building == None),
                      f"skipped: no building within {ENTRANCE_SNAP_M:g} m and no building column",
                      status)
    plan.report.add_statuses(count, src, status)
    keep = np.array([s is None or s.startswith("repaired") for s in status])
    count.imported = int(keep.sum())
    names = _col(frame, layer.columns["name"])
    ref = _col(frame, "ref")
    label = np.char.add("entrance ", src.astype(str)).astype(object)
    if ref is not None:
        label = np.where(ref.notna(), "entrance " + ref.astype(str), label)
    if names is not None:
        label = np.where(names.notna(), names.astype(str), label)
    out = pd.DataFrame({"id": np.char.add(f"{plan.community_id}-en-", src.astype(str)),
                        "building_id": building, "name": label, "geometry": points})
    return out[keep].reset_index(drop=True)


def _points(plan: ImportPlan, layer: MappedLayer, table: str) -> pd.DataFrame:
    """Facilities or devices from a point layer whose kind column says what they are."""
    frame = layer.layer.frame
    count = plan.report.layer(layer.name, layer.role, len(frame))
    src = _source_ids(plan, layer)
    points, status = clean_points(frame.geometry.to_numpy(), _col(frame, "_problem"))
    status = _duplicates(src, status)
    points = _to_4326(points, frame.crs)
    kind = _col(frame, layer.columns["kind"])
    kind = (np.full(len(frame), layer.kind_value, dtype=object) if layer.kind_value else
            kind.astype(object).to_numpy() if kind is not None else np.full(len(frame), None))
    allowed = FACILITY_KINDS if table == "facility" else tuple(DEVICE_TYPES)
    bad = ~np.isin(kind.astype(str), allowed)
    what = "facility kind" if table == "facility" else "device type"
    status = np.where((status == None) & bad,
                      [f"skipped: {what} {k!r} is not one of the twin's" for k in kind], status)
    building = _building_of(plan, layer, points, status, required=False)
    plan.report.add_statuses(count, src, status)
    keep = np.array([s is None or s.startswith("repaired") for s in status])
    count.imported = int(keep.sum())
    names = _col(frame, layer.columns["name"])
    names = (np.char.add(f"{table} ", src.astype(str)).astype(object) if names is None
             else names.fillna("").astype(str).to_numpy())
    letter = "f" if table == "facility" else "d"
    ids = np.char.add(f"{plan.community_id}-{letter}-", src.astype(str)).astype(object)
    out = pd.DataFrame({"id": ids, "community_id": plan.community_id, "name": names,
                        "building_id": building, "floor": pd.array([None] * len(frame),
                                                                   dtype="Int64"),
                        "geometry": points})
    if table == "facility":
        out["kind"], out["area"] = kind, None
    else:
        out["type"], out["unit_id"], out["facility_id"] = kind, None, None
        out["credentials_id"] = np.char.add("cred-", ids.astype(str))
    return out[keep].reset_index(drop=True)


def _paths(plan: ImportPlan, layer: MappedLayer) -> pd.DataFrame:
    frame = layer.layer.frame
    count = plan.report.layer(layer.name, "paths", len(frame))
    src = _source_ids(plan, layer)
    lines, owner, _, status = explode_lines(frame.geometry.to_numpy(), src,
                                            _col(frame, "_problem"))
    plan.report.add_statuses(count, src, status)
    count.imported = len(np.unique(owner))
    kinds = _path_kinds(layer)
    return pd.DataFrame({"kind": kinds[owner], "geometry": _to_4326(lines, frame.crs)})


def _path_kinds(layer: MappedLayer) -> np.ndarray:
    frame = layer.layer.frame
    if layer.kind_value:
        return np.full(len(frame), layer.kind_value, dtype=object)
    fallback = "road" if any(w in layer.name.lower() for w in ("road", "street", "highway")) \
        else "footway"
    column = _col(frame, layer.columns["kind"])
    if column is None:
        return np.full(len(frame), fallback, dtype=object)
    values = column.astype(str).to_numpy()
    mapped = np.array([WALKABLE.get(v, v if v in EDGE_KINDS else fallback) for v in values],
                      dtype=object)
    return mapped


def _twin_rows(plan: ImportPlan, layers: list[MappedLayer]) -> None:
    """Rows of a twin export, as they are (ids moved to this community if it has another)."""
    frames = {layer.role.removeprefix("twin:"): layer for layer in layers}
    old = None
    if "community" in frames:
        old = str(frames["community"].layer.frame["id"].iloc[0])
    else:
        for layer in layers:
            if "community_id" in layer.layer.frame.columns and len(layer.layer.frame):
                old = str(layer.layer.frame["community_id"].iloc[0])
                break
    new = plan.community_id
    for table, layer in frames.items():
        frame = layer.layer.frame.to_crs(CRS)
        count = plan.report.layer(layer.name, f"twin {table}", len(frame))
        out = pd.DataFrame({c: frame[c] for c in COLUMNS[table]
                            if c in frame.columns and c not in ("geometry", "area")})
        out["geometry"] = frame.geometry.to_numpy()
        if table == "facility":
            area = frame["area"] if "area" in frame.columns else pd.Series([None] * len(frame))
            text = area.astype(object).where(area.notna(), None).to_numpy()
            out["area"] = [shapely.from_wkt(t) if isinstance(t, str) and t else None
                           for t in text]
        if table == "grid":
            out["grid_worker_id"] = None  # staff are not exported
        if old is not None and old != new:
            _rename(out, old, new)
        if "community_id" in out.columns:
            out["community_id"] = new
        plan.frames[table] = out
        count.imported = len(out)


def _rename(frame: pd.DataFrame, old: str, new: str) -> None:
    for column in ("id", "grid_id", "building_id", "facility_id", "unit_id", "ref_id",
                   "source", "target"):
        if column in frame.columns:
            values = frame[column].astype(object)
            frame[column] = values.where(values.isna(), values.astype(str).str.replace(
                f"^{re.escape(old)}", new, regex=True))
    if "credentials_id" in frame.columns:
        frame["credentials_id"] = frame["credentials_id"].astype(str).str.replace(
            f"^cred-{re.escape(old)}", f"cred-{new}", regex=True)


# --- the graph ----------------------------------------------------------------------------

def _graph(plan: ImportPlan, frames: dict, existing: Existing, to_metric: pyproj.Transformer,
           srid: int, merge_m: float) -> Walkways:
    lines = _project(plan.lines.geometry.to_numpy(), to_metric)
    places = _places(frames, existing)
    buildings = pd.concat([frames["building"][["id", "geometry"]] if "building" in frames
                           else pd.DataFrame({"id": [], "geometry": []}),
                           existing.buildings if existing.buildings is not None
                           else pd.DataFrame({"id": [], "geometry": []})], ignore_index=True)
    with_door = set(places.loc[places["kind"] == "entrance", "building_id"].dropna())
    doorless = buildings[~buildings["id"].isin(with_door)]
    doorless = pd.DataFrame({"ref_id": (doorless["id"] + "-door").to_numpy(),
                             "building_id": doorless["id"].to_numpy(),
                             "geometry": _project(doorless["geometry"].to_numpy(), to_metric)})
    metric_places = places.assign(geometry=_project(places["geometry"].to_numpy(), to_metric))
    graph = node_walkways(lines, plan.lines["kind"].to_numpy(), metric_places, crs=srid,
                          doorless=doorless, merge_m=merge_m, prefix=f"{plan.community_id}-")
    for component in graph.report.disconnected:
        plan.report.note("walkway", f"{component.nodes} nodes", "warning",
                         f"not connected to the main network ({component.length_m:g} m of path"
                         + (f"; holds {', '.join(component.places[:5])}"
                            + (" ..." if len(component.places) > 5 else "")
                            if component.places else "") + ")")
    for ref, metres in graph.report.long_links:
        plan.report.note("walkway", ref, "warning",
                         f"{metres:g} m from the nearest path; joined to it anyway")
    return graph


def _places(frames: dict, existing: Existing) -> pd.DataFrame:
    parts = []
    if "entrance" in frames and len(frames["entrance"]):
        e = frames["entrance"]
        parts.append(pd.DataFrame({"ref_id": e["id"], "kind": "entrance",
                                   "building_id": e["building_id"], "link_kind": "footway",
                                   "geometry": e["geometry"]}))
    if "facility" in frames and len(frames["facility"]):
        f = frames["facility"]
        parts.append(pd.DataFrame({
            "ref_id": f["id"], "kind": "facility", "building_id": f["building_id"],
            "link_kind": [ATTACH_KIND.get(k, "link") for k in f["kind"]],
            "geometry": f["geometry"]}))
    if "device" in frames and len(frames["device"]):
        d = frames["device"]
        parts.append(pd.DataFrame({"ref_id": d["id"], "kind": "device",
                                   "building_id": d["building_id"], "link_kind": "link",
                                   "geometry": d["geometry"]}))
    if existing.places is not None and len(existing.places):
        have = set().union(*(set(p["ref_id"]) for p in parts)) if parts else set()
        parts.append(existing.places[~existing.places["ref_id"].isin(have)])
    if not parts:
        return pd.DataFrame({"ref_id": pd.Series([], dtype=object),
                             "kind": pd.Series([], dtype=object),
                             "building_id": pd.Series([], dtype=object),
                             "link_kind": pd.Series([], dtype=object),
                             "geometry": np.array([], dtype=object)})
    out = pd.concat(parts, ignore_index=True)
    out["building_id"] = out["building_id"].astype(object).where(out["building_id"].notna(), None)
    return out


def _graph_rows(c: str, walkways: Walkways, to_lonlat: pyproj.Transformer
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The graph's walk_node and walk_edge rows of community ``c``, in EPSG:4326."""
    nodes, edges = walk_frames(walkways.graph)
    nodes = nodes.assign(community_id=c,
                         geometry=_project(nodes["geometry"].to_numpy(), to_lonlat))
    edges = edges.assign(community_id=c,
                         geometry=_project(edges["geometry"].to_numpy(), to_lonlat))
    return nodes, edges


# --- helpers ------------------------------------------------------------------------------

def _source_ids(plan: ImportPlan, layer: MappedLayer) -> np.ndarray:
    frame = layer.layer.frame
    column = layer.columns["id"]
    rows = np.arange(1, len(frame) + 1).astype(str).astype(object)
    if column is None:
        if len(frame) and layer.role != "paths":  # path ids do not reach the twin
            plan.report.note(layer.name, "(layer)", "warning",
                             "no id column: ids are row numbers, which change if the file is "
                             "edited (name one with --mapping)")
        return rows
    values = frame[column]
    text = values.astype(object).where(values.notna(), None)
    as_int = pd.to_numeric(values, errors="coerce")
    integral = as_int.notna() & (as_int == np.floor(as_int.fillna(0)))
    text = np.where(integral, as_int.fillna(0).astype(np.int64).astype(str), text)
    text = np.where(pd.isna(text), rows, text).astype(str)
    return np.char.replace(text.astype(str), " ", "_").astype(object)


def _duplicates(src: np.ndarray, status: np.ndarray) -> np.ndarray:
    dup = pd.Series(src).duplicated().to_numpy()
    return np.where(dup & (status == None), "skipped: duplicate id", status)


def _building_of(plan: ImportPlan, layer: MappedLayer, points: np.ndarray, status: np.ndarray,
                 *, required: bool = True) -> np.ndarray:
    """Building id of each point: from the building column, else the nearest footprint."""
    frame = layer.layer.frame
    out = np.full(len(points), None, dtype=object)
    buildings = plan.frames.get("building")
    if buildings is None or not len(buildings):
        return out
    column = _col(frame, layer.columns["building"])
    if column is not None and column.notna().any():
        by_source = dict(zip(buildings["_source"], buildings["id"])) \
            if "_source" in buildings.columns else {}
        return np.array([by_source.get(str(v)) if pd.notna(v) else None for v in column],
                        dtype=object)
    if not required:
        inside = shapely.STRtree(buildings["geometry"].to_numpy())
        ok = np.flatnonzero(~shapely.is_missing(points))
        p, b = inside.query(points[ok], predicate="within")
        out[ok[p]] = buildings["id"].to_numpy()[b]
        return out
    srid = local_srid(gpd.GeoSeries(buildings["geometry"], crs=CRS))
    to_metric = pyproj.Transformer.from_crs(4326, srid, always_xy=True)
    footprints = _project(buildings["geometry"].to_numpy(), to_metric)
    ok = np.flatnonzero(~shapely.is_missing(points))
    tree = shapely.STRtree(footprints)
    p, b = tree.query_nearest(_project(points[ok], to_metric), max_distance=ENTRANCE_SNAP_M,
                              all_matches=False)
    out[ok[p]] = buildings["id"].to_numpy()[b]
    return out


def _append(plan: ImportPlan, table: str, frames: list[pd.DataFrame]) -> None:
    frames = [f for f in frames if f is not None]
    if not frames:
        return
    current = plan.frames.get(table)
    joined = pd.concat(([current] if current is not None else []) + frames, ignore_index=True)
    dup = joined["id"].duplicated()
    for feature in joined.loc[dup, "id"]:
        plan.report.note(table, feature, "skipped", "its id is already taken by an earlier row")
    plan.frames[table] = joined[~dup].reset_index(drop=True)


def _col(frame: pd.DataFrame, column: str | None) -> pd.Series | None:
    if column is None or column not in frame.columns:
        return None
    return frame[column].reset_index(drop=True)


def _to_4326(geoms: np.ndarray, crs) -> np.ndarray:
    series = gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=crs)
    return series.to_crs(CRS).to_numpy()


def _project(geoms: np.ndarray, transformer: pyproj.Transformer) -> np.ndarray:
    geoms = np.asarray(geoms, dtype=object)
    if len(geoms) == 0:
        return geoms
    return shapely.transform(geoms, lambda xy: np.column_stack(
        transformer.transform(xy[:, 0], xy[:, 1])))


def _hull(parts: list[np.ndarray], to_metric, to_lonlat) -> shapely.Geometry:
    geoms = _project(np.concatenate(parts), to_metric)
    points = shapely.multipoints(shapely.get_coordinates(geoms))
    hull = shapely.buffer(shapely.convex_hull(points), BOUNDARY_MARGIN_M, quad_segs=2)
    return _project(np.array([hull], dtype=object), to_lonlat)[0]


def _empty(table: str) -> pd.DataFrame:
    data: dict[str, object] = {c: pd.Series([], dtype=object) for c in COLUMNS[table]}
    return pd.DataFrame(data)
