"""Reading an OpenStreetMap extract (.osm.pbf, .osm) with pyosmium.

Three layers come out, in EPSG:4326 (OSM's own coordinates):

- ``buildings``: closed ways and multipolygon relations tagged ``building=*``
  (ids ``w<way id>`` / ``r<relation id>``), with their ``name``, ``height``,
  ``building:levels`` and ``building`` tags;
- ``entrances``: nodes tagged ``entrance=*`` (ids ``n<node id>``);
- ``paths``: ways whose ``highway`` tag is one of :data:`WALKABLE`, with the
  walkway kind it maps to.

A way whose nodes are missing from the extract (a cut at its border) cannot
be given a geometry: it comes out with no geometry and the reason in
``_problem``, so the import lists it instead of dropping it silently.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import geopandas as gpd
import osmium
import shapely

from gis_data.importer.errors import UnreadableSourceError
from gis_data.importer.readers import SourceLayer

#: highway=* values that make the walkable network, and the walk_edge kind of each.
WALKABLE: dict[str, str] = {
    "footway": "footway", "path": "footway", "pedestrian": "footway", "cycleway": "footway",
    "living_street": "road", "residential": "road", "service": "road",
    "unclassified": "road", "track": "road", "steps": "steps",
}
#: Tags kept as columns of each layer.
BUILDING_TAGS = ("name", "height", "building:levels", "building", "addr:housenumber")
ENTRANCE_TAGS = ("name", "ref", "entrance")
PATH_TAGS = ("name", "highway")


def read_osm(path: Path) -> list[SourceLayer]:
    """Read buildings, entrances and walkable ways of an OSM extract."""
    rows: dict[str, list[dict[str, Any]]] = {"buildings": [], "entrances": [], "paths": []}
    wkb = osmium.geom.WKBFactory()
    try:
        processor = (osmium.FileProcessor(str(path)).with_locations().with_areas()
                     .with_filter(osmium.filter.KeyFilter("building", "highway", "entrance")))
        for obj in processor:
            tags = obj.tags
            if isinstance(obj, osmium.osm.Area):
                if "building" in tags:
                    source = f"{'w' if obj.from_way() else 'r'}{obj.orig_id()}"
                    rows["buildings"].append(_row(source, tags, BUILDING_TAGS,
                                                  partial(wkb.create_multipolygon, obj)))
            elif isinstance(obj, osmium.osm.Way):
                if tags.get("highway") in WALKABLE:
                    row = _row(f"w{obj.id}", tags, PATH_TAGS, partial(wkb.create_linestring, obj))
                    row["kind"] = WALKABLE[tags["highway"]]
                    rows["paths"].append(row)
                elif "building" in tags and not obj.is_closed():
                    rows["buildings"].append({
                        "id": f"w{obj.id}", **_tags(tags, BUILDING_TAGS), "geometry": None,
                        "_problem": "building way is not closed"})
            elif isinstance(obj, osmium.osm.Node) and "entrance" in tags:
                rows["entrances"].append(
                    _row(f"n{obj.id}", tags, ENTRANCE_TAGS, partial(wkb.create_point, obj)))
    except RuntimeError as e:
        raise UnreadableSourceError(f"{path}: not an OpenStreetMap file pyosmium can read "
                                    f"({str(e).strip() or type(e).__name__})") from e
    columns = {"buildings": BUILDING_TAGS, "entrances": ENTRANCE_TAGS,
               "paths": (*PATH_TAGS, "kind")}
    return [SourceLayer(name, _frame(found, columns[name]), path, role=name)
            for name, found in rows.items()]


def _row(source: str, tags: osmium.osm.TagList, keep: tuple[str, ...],
         make: Callable[[], str]) -> dict[str, Any]:
    """One feature's row; `make` writes its geometry (hex WKB), which may fail."""
    row: dict[str, Any] = {"id": source, **_tags(tags, keep), "geometry": None, "_problem": None}
    try:
        row["geometry"] = make()
    except osmium.InvalidLocationError:
        row["_problem"] = "some of its nodes are not in the extract"
    except RuntimeError as e:  # libosmium's geometry errors (too few points, broken rings)
        row["_problem"] = f"no geometry: {str(e).strip()}"
    return row


def _tags(tags: osmium.osm.TagList, keep: tuple[str, ...]) -> dict[str, str | None]:
    return {key: tags.get(key) for key in keep}


def _frame(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> gpd.GeoDataFrame:
    names = ["id", *columns, "_problem"]
    data = {name: [row.get(name) for row in rows] for name in names}
    geometry = shapely.from_wkb([row["geometry"] for row in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geometry, crs="EPSG:4326"),
                            crs="EPSG:4326")
