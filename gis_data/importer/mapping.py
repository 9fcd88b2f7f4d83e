"""What each source layer is, and which of its columns say what.

A layer's role is, first that applies: what the mapping file says; what
the reader knows (OSM and CityJSON layers); a twin table's name with that
table's columns (a ``twin export``); else its geometry: polygons are
buildings, lines are paths. Point layers need a role from the mapping file,
since points can be entrances, facilities or devices.

Columns are found by the first name present in :data:`CANDIDATES`, unless
the mapping file names them. A mapping file is TOML::

    [defaults]                 # all optional; see HeightRules
    floor_height_m = 3.0
    default_levels = 3
    units_per_floor = 2
    merge_m = 1.0              # walkway node merge tolerance, metres

    [layers.streets]           # a layer name (a file stem for GeoJSON/Shapefile)
    role = "paths"             # buildings, paths, entrances, facilities, devices, ignore
    kind_value = "road"        # a kind for every feature of the layer

    [layers.houses]
    role = "buildings"
    id = "uID"                 # and any of: name, height, levels, usage
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from gis_data.dataset import COLUMNS
from gis_data.importer.errors import MappingError
from gis_data.importer.heights import HeightRules
from gis_data.importer.readers import SourceLayer

ROLES = ("buildings", "paths", "entrances", "facilities", "devices", "ignore")
#: Twin tables a `twin export` writes and the import reads back as they are.
TWIN_TABLES = ("community", "grid", "building", "entrance", "facility", "device",
               "walk_node", "walk_edge")
#: Column names tried, in order, for each thing a layer may say.
CANDIDATES: dict[str, tuple[str, ...]] = {
    "id": ("id", "osm_id", "uID", "uid", "fid", "gml_id", "ID", "OBJECTID", "objectid"),
    "name": ("name", "NAME", "Name", "名称", "addr:housenumber"),
    "height": ("height", "height_m", "building:height", "HEIGHT", "measuredHeight", "Height"),
    "model": ("model_height_m",),
    "levels": ("building:levels", "levels", "floors", "storeys", "stories",
               "storeysAboveGround", "num_floors", "FLOORS", "层数"),
    "usage": ("usage", "building", "use", "function"),
    "kind": ("kind", "highway", "type"),
    "building": ("building_id", "building", "bldg"),
}
_KEYS = (*CANDIDATES, "kind_value", "role")


@dataclass(frozen=True, slots=True)
class MappedLayer:
    """A source layer with its role and the columns that hold each thing it says."""

    layer: SourceLayer
    role: str
    columns: dict[str, str | None]
    kind_value: str | None = None

    @property
    def name(self) -> str:
        return self.layer.name


@dataclass(frozen=True, slots=True)
class Mapping:
    """A parsed mapping file (or the empty one)."""

    layers: dict[str, dict[str, str]] = field(default_factory=dict)
    rules: HeightRules = field(default_factory=HeightRules)
    merge_m: float = 1.0


def read_mapping(path: str | Path | None) -> Mapping:
    """Parse a mapping file; None gives the defaults.

    Raises
    ------
    MappingError
        If the file cannot be read or names an unknown role, key or default.
    """
    if path is None:
        return Mapping()
    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise MappingError(f"{path}: not a readable TOML mapping file ({e})") from e
    defaults = dict(doc.get("defaults") or {})
    merge_m = float(defaults.pop("merge_m", 1.0))
    known = set(HeightRules.__dataclass_fields__)
    unknown = set(defaults) - known
    if unknown:
        raise MappingError(f"{path}: unknown default(s) {', '.join(sorted(unknown))} "
                           f"(known: merge_m, {', '.join(sorted(known))})")
    layers = {}
    for name, spec in (doc.get("layers") or {}).items():
        if not isinstance(spec, dict):
            raise MappingError(f"{path}: [layers.{name}] must be a table")
        bad = set(spec) - set(_KEYS)
        if bad:
            raise MappingError(f"{path}: layer {name}: unknown key(s) {', '.join(sorted(bad))} "
                               f"(known: {', '.join(_KEYS)})")
        if "role" in spec and spec["role"] not in ROLES:
            raise MappingError(f"{path}: layer {name}: role {spec['role']!r} is not one of "
                               f"{', '.join(ROLES)}")
        layers[str(name)] = {k: str(v) for k, v in spec.items()}
    return Mapping(layers=layers, rules=HeightRules(**defaults), merge_m=merge_m)


def map_layers(layers: list[SourceLayer], mapping: Mapping) -> tuple[list[MappedLayer], list[str]]:
    """Give every layer a role and its columns; returns them and notes on layers left out."""
    out: list[MappedLayer] = []
    left_out: list[str] = []
    for layer in layers:
        spec = mapping.layers.get(layer.name, {})
        role = spec.get("role") or layer.role or _twin_role(layer) or _by_geometry(layer)
        if role is None:
            left_out.append(f"layer {layer.name} ({_geometry_kind(layer)}) has no role: give it "
                            "one in a mapping file (--mapping)")
            continue
        if role == "ignore":
            continue
        columns: dict[str, str | None] = {}
        for key, names in CANDIDATES.items():
            if key in spec:
                if spec[key] not in layer.frame.columns:
                    raise MappingError(f"layer {layer.name} has no column {spec[key]!r} "
                                       f"(for {key}); it has {', '.join(map(str, layer.frame.columns))}")
                columns[key] = spec[key]
            else:
                columns[key] = next((c for c in names if c in layer.frame.columns), None)
        out.append(MappedLayer(layer, role, columns, spec.get("kind_value")))
    return out, left_out


def _twin_role(layer: SourceLayer) -> str | None:
    if layer.name in TWIN_TABLES:
        required = set(COLUMNS[layer.name]) - {"geometry", "area"}
        if required <= set(layer.frame.columns):
            return f"twin:{layer.name}"
    return None


def _by_geometry(layer: SourceLayer) -> str | None:
    kind = _geometry_kind(layer)
    return {"polygons": "buildings", "lines": "paths"}.get(kind)


def _geometry_kind(layer: SourceLayer) -> str:
    types = set(layer.frame.geometry.dropna().geom_type)
    if types and types <= {"Polygon", "MultiPolygon"}:
        return "polygons"
    if types and types <= {"LineString", "MultiLineString", "LinearRing"}:
        return "lines"
    if types and types <= {"Point", "MultiPoint"}:
        return "points"
    return "mixed geometry" if types else "no geometry"
