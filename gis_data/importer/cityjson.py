"""Reading and writing CityJSON (1.0, 1.1 and 2.0): buildings as 3D models.

Reading
-------
Every ``Building`` becomes one footprint with a height:

- the footprint is the union of its ``GroundSurface`` surfaces when the model
  labels them (LOD2), else the union of every surface projected onto the
  ground (LOD1 blocks, unlabelled LOD2): walls project to nothing, so what
  is left is the outline, holes included;
- the height is the model's own: highest vertex minus lowest vertex of the
  building's finest level of detail (``height_source = 'model'``); a numeric
  ``measuredHeight`` attribute wins over it (``'attribute'``);
- ``BuildingPart`` objects are folded into their parent building.

Objects of other types are read when the twin wrote them (an attribute
``twin_table`` names the table), so a ``twin export --format cityjson``
imports back; others are left out and counted.

The ``referenceSystem`` of the metadata gives the CRS (its horizontal part,
for compound ones such as EPSG:7415). A file without one is refused.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely

from gis_data.importer.errors import UnknownCRSError, UnreadableSourceError
from gis_data.importer.readers import SourceLayer

#: Surfaces projected onto the ground smaller than this (m², in the file's units) are walls.
_FLAT_AREA = 1e-6
_EPSG = re.compile(r"EPSG(?:/\d+/|::?)(\d+)", re.IGNORECASE)
#: CityJSON version written by :func:`write_cityjson`.
VERSION = "2.0"


def read_cityjson(path: Path) -> list[SourceLayer]:
    """Read the buildings (and any twin tables) of a CityJSON file."""
    try:
        doc = json.loads(path.read_bytes())
    except ValueError as e:
        raise UnreadableSourceError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("type") != "CityJSON":
        raise UnreadableSourceError(f"{path}: not a CityJSON document")
    crs = _crs(doc, path)
    vertices = _vertices(doc, path)
    objects: dict[str, dict] = doc.get("CityObjects") or {}

    buildings: list[dict] = []
    parts: dict[str, list[dict]] = defaultdict(list)
    twin: dict[str, list[dict]] = defaultdict(list)
    for key, obj in objects.items():
        attributes = dict(obj.get("attributes") or {})
        table = attributes.pop("twin_table", None)
        kind = obj.get("type", "")
        if kind == "Building":
            buildings.append({"key": key, "attributes": attributes, "table": table,
                              "geometry": obj.get("geometry") or [],
                              "children": obj.get("children") or []})
        elif kind == "BuildingPart":
            for parent in obj.get("parents") or []:
                parts[parent].append(obj)
        elif table is not None:
            twin[table].append({"id": key, **attributes,
                                "geometry": _plain_geometry(obj.get("geometry") or [], vertices)})

    layers = []
    if buildings:
        layers.append(_buildings_layer(buildings, parts, vertices, crs, path))
    for table, rows in twin.items():
        frame = gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=crs)
        layers.append(SourceLayer(table, frame, path, role=f"twin:{table}"))
    return layers


def write_cityjson(path: Path, frames: dict[str, gpd.GeoDataFrame], *, srid: int,
                   height_column: str = "height_m") -> Path:
    """Write twin frames as CityJSON in the metric CRS ``srid``.

    Buildings become LOD1 solids (ground at 0, roof at their height) carrying
    their columns as attributes and ``measuredHeight``; every other frame's
    rows become ``GenericCityObject`` objects (``Road`` for walk edges) with a
    point, line or surface geometry and a ``twin_table`` attribute, so the
    file imports back to the same rows.
    """
    out = _Writer()
    for table, frame in frames.items():
        metric = frame.to_crs(epsg=srid)
        attributes = _attributes(frame.drop(columns=[frame.geometry.name]))
        geoms = metric.geometry.to_numpy()
        for row, geom in zip(attributes, geoms):
            key = row.pop("id")
            row["twin_table"] = table
            if table == "building":
                row["measuredHeight"] = row[height_column]
                geometry = out.solid(geom, float(row[height_column]))
                kind = "Building"
            else:
                geometry = out.plain(geom)
                kind = "Road" if table == "walk_edge" else "GenericCityObject"
            out.objects[key] = {"type": kind, "attributes": row, "geometry": [geometry]}
    doc = out.document(srid)
    path.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return path


# --- reading ------------------------------------------------------------------------------

def _crs(doc: dict, path: Path) -> pyproj.CRS:
    reference = (doc.get("metadata") or {}).get("referenceSystem")
    match = _EPSG.search(str(reference or ""))
    if not match:
        raise UnknownCRSError(
            f"{path}: the CityJSON metadata gives no referenceSystem, so its coordinates "
            "cannot be placed on the map; add one such as "
            "\"https://www.opengis.net/def/crs/EPSG/0/7415\"")
    crs = pyproj.CRS.from_epsg(int(match.group(1)))
    if crs.is_compound:
        crs = crs.sub_crs_list[0]
    return crs


def _vertices(doc: dict, path: Path) -> np.ndarray:
    vertices = np.asarray(doc.get("vertices") or [], dtype=float).reshape(-1, 3)
    transform = doc.get("transform")
    if transform:
        try:
            vertices = (vertices * np.asarray(transform["scale"], dtype=float)
                        + np.asarray(transform["translate"], dtype=float))
        except (KeyError, ValueError) as e:
            raise UnreadableSourceError(f"{path}: its transform is not a scale and a "
                                        "translate of three numbers each") from e
    return vertices


def _buildings_layer(buildings: list[dict], parts: dict[str, list[dict]], vertices: np.ndarray,
                     crs: pyproj.CRS, path: Path) -> SourceLayer:
    # Rings of every building as flat arrays, then all polygons in one shapely call.
    ring_vertices: list[list[int]] = []
    ring_owner: list[int] = []       # building index
    ring_surface: list[int] = []     # surface number (exterior ring + holes share one)
    ring_ground: list[bool] = []
    zmin = np.full(len(buildings), np.inf)
    zmax = np.full(len(buildings), -np.inf)
    surface = 0
    for b, building in enumerate(buildings):
        geometries = building["geometry"] + [g for part in parts.get(building["key"], [])
                                             for g in part.get("geometry") or []]
        for geometry in _finest(geometries):
            for rings, ground in _surfaces(geometry):
                if not rings or len(rings[0]) < 3:
                    continue
                rings = [ring for ring in rings if len(ring) >= 3]
                for ring in rings:
                    ring_vertices.append(ring)
                    ring_owner.append(b)
                    ring_surface.append(surface)
                    ring_ground.append(ground)
                surface += 1
    owner = np.asarray(ring_owner, dtype=int)
    footprints = np.full(len(buildings), None, dtype=object)
    problems = np.full(len(buildings), None, dtype=object)
    if ring_vertices:
        lengths = np.array([len(r) for r in ring_vertices])
        index = np.concatenate(ring_vertices).astype(int)
        xyz = vertices[index]
        ring_of_vertex = np.repeat(np.arange(len(ring_vertices)), lengths)
        np.minimum.at(zmin, owner[ring_of_vertex], xyz[:, 2])
        np.maximum.at(zmax, owner[ring_of_vertex], xyz[:, 2])
        closed = np.concatenate([xyz[:, :2], xyz[np.cumsum(lengths) - lengths, :2]])
        order = np.argsort(np.concatenate([ring_of_vertex, np.arange(len(lengths))]),
                           kind="stable")
        ring_index = np.concatenate([ring_of_vertex, np.arange(len(lengths))])[order]
        rings = shapely.linearrings(closed[order], indices=ring_index)
        flat = _polygons(rings, np.asarray(ring_surface))
        ground = np.asarray(ring_ground)[np.unique(ring_surface, return_index=True)[1]]
        surface_owner = owner[np.unique(ring_surface, return_index=True)[1]]
        keep = shapely.area(flat) > _FLAT_AREA
        has_ground = np.zeros(len(buildings), dtype=bool)
        has_ground[surface_owner[ground & keep]] = True
        use = keep & (ground | ~has_ground[surface_owner])
        for b in np.unique(surface_owner[use]):
            footprints[b] = shapely.union_all(flat[use & (surface_owner == b)])
    attributes = [building["attributes"] for building in buildings]
    frame = pd.DataFrame(attributes) if any(attributes) else pd.DataFrame(index=range(len(buildings)))
    frame.insert(0, "id", [building["key"] for building in buildings])
    height = np.where(np.isfinite(zmax - zmin), zmax - zmin, np.nan)
    frame["model_height_m"] = np.round(height, 3)
    problems[footprints == None] = "no surface with an area in its 3D geometry"
    frame["_problem"] = problems
    tables = {building["table"] for building in buildings}
    role = "twin:building" if tables == {"building"} else "buildings"
    frame = gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(footprints, crs=crs), crs=crs)
    return SourceLayer("building" if role == "twin:building" else "buildings", frame, path,
                       role=role)


def _polygons(rings: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """One polygon per surface (its first ring the shell, the rest holes), made valid."""
    _, index = np.unique(surface, return_inverse=True)
    return shapely.make_valid(shapely.polygons(rings, indices=index))


def _finest(geometries: list[dict]) -> list[dict]:
    """The geometries of the highest level of detail present (LOD2 over LOD1 ...)."""
    usable = [g for g in geometries if g.get("type") != "GeometryInstance"]
    if not usable:
        return []
    best = max(str(g.get("lod", "0")) for g in usable)
    return [g for g in usable if str(g.get("lod", "0")) == best]


def _surfaces(geometry: dict):
    """(rings, is ground) of every surface of a geometry, whatever its nesting."""
    kind = geometry.get("type")
    boundaries = geometry.get("boundaries") or []
    values = (geometry.get("semantics") or {}).get("values")
    types = [s.get("type") for s in (geometry.get("semantics") or {}).get("surfaces") or []]
    if kind in ("MultiSurface", "CompositeSurface"):
        shells, labels = [boundaries], [values]
    elif kind == "Solid":
        shells, labels = boundaries, values or [None] * len(boundaries)
    elif kind in ("MultiSolid", "CompositeSolid"):
        shells = [shell for solid in boundaries for shell in solid]
        labels = [v for solid in (values or [[None] * len(s) for s in boundaries]) for v in solid]
    else:
        return
    for shell, label in zip(shells, labels):
        for k, rings in enumerate(shell):
            tag = label[k] if isinstance(label, list) and k < len(label) else None
            yield rings, tag is not None and types[tag] == "GroundSurface"


def _plain_geometry(geometries: list[dict], vertices: np.ndarray):
    """A point, line or polygon from the first geometry of a non-building object."""
    if not geometries:
        return None
    g = geometries[0]
    kind, boundaries = g.get("type"), g.get("boundaries") or []
    if kind == "MultiPoint":
        xy = vertices[np.asarray(boundaries, dtype=int), :2]
        return shapely.points(xy[0]) if len(xy) == 1 else shapely.multipoints(xy)
    if kind == "MultiLineString":
        lines = [shapely.linestrings(vertices[np.asarray(b, dtype=int), :2]) for b in boundaries]
        return lines[0] if len(lines) == 1 else shapely.multilinestrings(lines)
    if kind in ("MultiSurface", "CompositeSurface"):
        polygons = [shapely.Polygon(vertices[np.asarray(s[0], dtype=int), :2],
                                    [vertices[np.asarray(h, dtype=int), :2] for h in s[1:]])
                    for s in boundaries]
        return polygons[0] if len(polygons) == 1 else shapely.multipolygons(polygons)
    return None


# --- writing ------------------------------------------------------------------------------

class _Writer:
    """Collects vertices (in millimetres) and city objects."""

    SCALE = 0.001

    def __init__(self) -> None:
        self.objects: dict[str, dict] = {}
        self._chunks: list[np.ndarray] = []
        self._count = 0

    def _add(self, xyz: np.ndarray) -> list[int]:
        start = self._count
        self._chunks.append(xyz)
        self._count += len(xyz)
        return list(range(start, self._count))

    def _ring(self, coords: np.ndarray, z: float, *, reverse: bool = False) -> list[int]:
        xy = coords[:-1][::-1] if reverse else coords[:-1]
        return self._add(np.column_stack([xy, np.full(len(xy), z)]))

    def solid(self, polygon: shapely.Polygon, height: float) -> dict:
        polygon = shapely.geometry.polygon.orient(polygon, 1.0)
        rings = [np.asarray(polygon.exterior.coords)] + [np.asarray(r.coords)
                                                         for r in polygon.interiors]
        bottom = [self._ring(r, 0.0, reverse=True) for r in rings]
        top = [self._ring(r, height) for r in rings]
        surfaces = [bottom, top]
        values = [0, 1]
        for b, t in zip(bottom, top):
            # bottom rings run reversed: b[::-1] follows the ring's own direction
            forward_b, forward_t = b[::-1], t
            n = len(forward_t)
            for k in range(n):
                j = (k + 1) % n
                surfaces.append([[forward_b[k], forward_b[j], forward_t[j], forward_t[k]]])
                values.append(2)
        return {"type": "Solid", "lod": "1", "boundaries": [surfaces],
                "semantics": {"surfaces": [{"type": "GroundSurface"}, {"type": "RoofSurface"},
                                           {"type": "WallSurface"}],
                              "values": [values]}}

    def plain(self, geom) -> dict:
        kind = shapely.get_type_id(geom)
        if kind == 0:  # Point
            return {"type": "MultiPoint", "lod": "1",
                    "boundaries": self._add(np.append(shapely.get_coordinates(geom)[0], 0.0)
                                            [None, :])}
        if kind in (1, 5):  # LineString, MultiLineString
            return {"type": "MultiLineString", "lod": "0",
                    "boundaries": [self._add(np.column_stack([c, np.zeros(len(c))]))
                                   for c in (shapely.get_coordinates(p)
                                             for p in shapely.get_parts(geom))]}
        surfaces = []
        for polygon in shapely.get_parts(geom):
            polygon = shapely.geometry.polygon.orient(polygon, 1.0)
            surfaces.append([self._ring(np.asarray(polygon.exterior.coords), 0.0)]
                            + [self._ring(np.asarray(r.coords), 0.0) for r in polygon.interiors])
        return {"type": "MultiSurface", "lod": "0", "boundaries": surfaces}

    def document(self, srid: int) -> dict:
        xyz = np.vstack(self._chunks) if self._chunks else np.zeros((0, 3))
        translate = xyz.min(axis=0) if len(xyz) else np.zeros(3)
        ints = np.round((xyz - translate) / self.SCALE).astype(np.int64)
        return {
            "type": "CityJSON", "version": VERSION,
            "transform": {"scale": [self.SCALE] * 3, "translate": translate.tolist()},
            "metadata": {"referenceSystem": f"https://www.opengis.net/def/crs/EPSG/0/{srid}"},
            "CityObjects": self.objects,
            "vertices": ints.tolist(),
        }


def _attributes(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: missing values as null, numpy scalars as Python ones."""
    out = frame.astype(object).where(frame.notna(), None)
    return json.loads(out.to_json(orient="records", force_ascii=False, double_precision=15))
