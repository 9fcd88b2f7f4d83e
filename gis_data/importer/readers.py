"""Reading GIS sources into layers: one frame per layer, in the source's own CRS.

The one place that knows file formats. GeoJSON, GeoPackage, Shapefile and
whatever else GDAL reads go through pyogrio; OpenStreetMap extracts through
pyosmium (:mod:`gis_data.importer.osm`); CityJSON through
:mod:`gis_data.importer.cityjson`. A directory is read file by file.

Nothing here decides what a layer *is* (buildings, paths ...): readers that
know (OSM, CityJSON) say so in :attr:`SourceLayer.role`, the rest is
:mod:`gis_data.importer.mapping`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import pyogrio
import pyogrio.errors

from gis_data.importer.errors import MappingError, UnknownCRSError, UnreadableSourceError

#: File name endings read as OpenStreetMap data.
OSM_SUFFIXES = (".osm.pbf", ".pbf", ".osm", ".osc", ".osm.bz2", ".osm.gz")
#: File name endings that may hold CityJSON (checked by content).
JSON_SUFFIXES = (".json", ".cityjson", ".city.json", ".geojson")
#: Endings of the files a directory is read for.
DIRECTORY_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".cityjson",
                      *OSM_SUFFIXES)


@dataclass(frozen=True, slots=True)
class SourceLayer:
    """One layer of one source file.

    Attributes
    ----------
    name
        The layer's name in its file (a GeoPackage layer, a file stem, 'buildings' ...).
    frame
        Features with their attributes, in the source CRS (never None).
    path
        The file it came from, for messages.
    role
        What the reader knows the layer holds ('buildings', 'paths', 'entrances',
        or 'twin:<table>'), or None when the mapping has to decide.
    """

    name: str
    frame: gpd.GeoDataFrame
    path: Path
    role: str | None = None


def read_source(path: str | Path, *, layers: Sequence[str] | None = None) -> list[SourceLayer]:
    """Read every layer of ``path`` (a file or a directory of files).

    Parameters
    ----------
    path
        A GIS file, an OSM extract, a CityJSON file, or a directory holding such files.
    layers
        Only these layer names (for a directory: layer names or file stems).

    Raises
    ------
    UnreadableSourceError
        If the path does not exist or no reader understands it.
    UnknownCRSError
        If a layer does not say its coordinate reference system.
    MappingError
        If a named layer is not in the source.
    """
    path = Path(path)
    if not path.exists():
        raise UnreadableSourceError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.name.lower().endswith(DIRECTORY_SUFFIXES))
        if not files:
            raise UnreadableSourceError(f"{path}: the directory holds no GIS file "
                                        f"({', '.join(DIRECTORY_SUFFIXES)})")
        found = [layer for f in files for layer in _read_file(f, None)]
    else:
        found = _read_file(path, layers)
    if layers:
        names = {layer.name for layer in found}
        missing = [name for name in layers if name not in names]
        if missing:
            raise MappingError(f"{path}: no layer named {', '.join(missing)} "
                               f"(it has {', '.join(sorted(names)) or 'none'})")
        found = [layer for layer in found if layer.name in set(layers)]
    return found


def _read_file(path: Path, layers: Sequence[str] | None) -> list[SourceLayer]:
    lower = path.name.lower()
    if lower.endswith(OSM_SUFFIXES):
        from gis_data.importer.osm import read_osm

        return read_osm(path)
    if lower.endswith(JSON_SUFFIXES) and _is_cityjson(path):
        from gis_data.importer.cityjson import read_cityjson

        return read_cityjson(path)
    return _read_ogr(path, layers)


def _read_ogr(path: Path, wanted: Sequence[str] | None) -> list[SourceLayer]:
    try:
        listed = pyogrio.list_layers(path)
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError) as e:
        why = _first_line(e).split(";")[0].replace(f"'{path}' ", "").rstrip(".")
        raise UnreadableSourceError(f"{path}: not a file GDAL can read ({why})") from e
    out = []
    for name, geometry_type in listed:
        name = str(name)
        if wanted and name not in wanted:
            continue
        if geometry_type is None:
            continue  # an attribute table: nothing to place on a map
        try:
            frame = pyogrio.read_dataframe(path, layer=name)
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError,
                pyogrio.errors.FieldError, pyogrio.errors.GeometryError) as e:
            raise UnreadableSourceError(f"{path}: layer {name} cannot be read "
                                        f"({_first_line(e)})") from e
        if frame.crs is None:
            raise UnknownCRSError(
                f"{path}: layer {name} does not say its coordinate reference system; "
                "add one (for a Shapefile, its .prj file) or convert the file to GeoPackage "
                "with the CRS set")
        layer_name = path.stem if path.suffix.lower() in (".geojson", ".json", ".shp",
                                                          ".fgb") else name
        out.append(SourceLayer(layer_name, frame, path))
    return out


def _is_cityjson(path: Path) -> bool:
    """Whether the file is a CityJSON document (looks at its first kilobytes only)."""
    with path.open("rb") as f:
        head = f.read(4096)
    if b'"CityJSON"' in head:
        return True
    if b'"type"' in head:
        return False
    # "type" may come after a large member; read the whole thing once to be sure.
    try:
        return json.loads(path.read_bytes()).get("type") == "CityJSON"
    except (ValueError, AttributeError):
        return False


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
