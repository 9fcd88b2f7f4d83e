"""GIS import: every supported format, the walkway graph, bad input, re-import and --replace.

Sources are small files the tests make (an OSM extract written with
pyosmium, GeoJSON/GeoPackage/Shapefile written with pyogrio), two small
CityJSON files in tests/data, and a real neighbourhood nobody here drew:
Bubeneč in Prague, shipped inside momepy's wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import momepy
import networkx as nx
import numpy as np
import pandas as pd
import psycopg
import pyogrio
import pytest
import shapely
from osmium import SimpleWriter
from osmium.osm.mutable import Node, Way

from gis_data.importer.build import FACILITY_KINDS
from gis_data.importer.errors import MappingError, UnknownCRSError, UnreadableSourceError
from gis_data.importer.heights import resolve_heights
from gis_data.importer.repair import repair_polygons
from gis_data.importer.service import import_path
from gis_data.importer.walkgraph import node_walkways
from twin.store.graph import walk_routing_graph
from twin.store.loader import sync_device_types

DATA = Path(__file__).parent / "data"
BUBENEC = Path(momepy.__file__).parent / "datasets" / "bubenec.gpkg"
TWIN = str(Path(sys.executable).parent / "twin")


def _rows(conn: psycopg.Connection, query: str, *args) -> list[tuple]:
    return conn.execute(query, args).fetchall()


def _snapshot(conn: psycopg.Connection, c: str) -> dict[str, list[tuple]]:
    """Every imported table of community c, as text (geometry as WKT)."""
    return {
        "building": _rows(conn, "SELECT id, name, usage, floors, units_per_floor, height_m, "
                                "height_source, grid_id, ST_AsText(footprint) FROM building "
                                "WHERE community_id = %s ORDER BY id", c),
        "entrance": _rows(conn, "SELECT e.id, e.building_id, e.name, ST_AsText(e.geom) "
                                "FROM entrance e JOIN building b ON b.id = e.building_id "
                                "WHERE b.community_id = %s ORDER BY e.id", c),
        "walk_node": _rows(conn, "SELECT id, kind, ref_id, ST_AsText(geom) FROM walk_node "
                                 "WHERE community_id = %s ORDER BY id", c),
        "walk_edge": _rows(conn, "SELECT id, source, target, kind, length_m, ST_AsText(geom) "
                                 "FROM walk_edge WHERE community_id = %s ORDER BY id", c),
        "community": _rows(conn, "SELECT id, name, city, local_srid, ST_AsText(boundary) "
                                 "FROM community WHERE id = %s", c),
    }


# --- the real neighbourhood ------------------------------------------------------------------

def test_bubenec_imports_with_default_heights_and_a_connected_graph(conn) -> None:
    source = gpd.read_file(BUBENEC, layer="buildings")
    result = import_path(conn, BUBENEC, community_id="bubenec", layers=["buildings", "streets"],
                         city="Praha")
    counts = result.report.written
    assert counts["building"]["inserted"] == len(source) == 144
    # no heights in the file: every building says it fell back to the documented default
    heights = _rows(conn, "SELECT DISTINCT height_m, floors, height_source FROM building "
                          "WHERE community_id = 'bubenec'")
    assert heights == [(9.0, 3, "default")]
    assert sum(n.kind == "default" for n in result.report.notes) == 144
    # reprojected from EPSG:3857 into EPSG:4326, in Prague, with a UTM 33N local CRS
    (srid, x, y), = _rows(conn, "SELECT local_srid, ST_X(ST_Centroid(boundary)), "
                                "ST_Y(ST_Centroid(boundary)) FROM community")
    assert srid == 32633 and 14.39 < x < 14.41 and 50.09 < y < 50.11
    # the same footprints: total area in the local CRS within 0.1% of the source's
    (area,) = conn.execute("SELECT sum(ST_Area(ST_Transform(footprint, 32633))) FROM building"
                           ).fetchone()
    assert area == pytest.approx(source.to_crs(32633).area.sum(), rel=1e-3)
    # one door per building (none in the file), on its footprint, and one connected graph
    graph = walk_routing_graph(conn, "bubenec")
    assert (graph.component == 0).all()  # connected
    doors = set(graph.node_ref[graph.node_kind == "entrance"])
    assert len(doors) == 144
    (off,) = conn.execute("SELECT count(*) FROM entrance e JOIN building b ON b.id = "
                          "e.building_id WHERE NOT ST_DWithin(e.geom::geography, "
                          "b.footprint::geography, 0.05)").fetchone()
    assert off == 0
    # the street network's length survives noding (within 1%); links come on top
    (road_m,) = conn.execute("SELECT sum(length_m) FROM walk_edge WHERE kind = 'road'"
                             ).fetchone()
    streets = gpd.read_file(BUBENEC, layer="streets").to_crs(32633)
    assert road_m == pytest.approx(shapely.union_all(streets.geometry).length, rel=0.01)


def test_reimporting_the_same_file_changes_nothing(conn) -> None:
    import_path(conn, BUBENEC, community_id="bubenec", layers=["buildings", "streets"])
    before = _snapshot(conn, "bubenec")
    again = import_path(conn, BUBENEC, community_id="bubenec", layers=["buildings", "streets"])
    assert _snapshot(conn, "bubenec") == before
    for table, n in again.report.written.items():
        assert n["inserted"] == n["updated"] == n["deleted"] == 0, table


def test_replace_keeps_devices_and_history_where_ids_still_match(conn, tmp_path) -> None:
    import_path(conn, BUBENEC, community_id="bubenec", layers=["buildings", "streets"])
    kept, gone = "bubenec-b-1", "bubenec-b-2"
    sync_device_types(conn)
    for device, building in (("bubenec-d-1", kept), ("bubenec-d-2", gone)):
        conn.execute(
            "INSERT INTO device (id, community_id, type, name, building_id, credentials_id, geom) "
            "SELECT %s, 'bubenec', 'smoke_detector', 'smoke', id, %s, "
            "ST_PointOnSurface(footprint) FROM building WHERE id = %s",
            (device, "cred-" + device, building))
        conn.execute("INSERT INTO device_state (device_id, online) VALUES (%s, true)", (device,))
        conn.execute("INSERT INTO reading (time, device_id, metric, value) "
                     "VALUES (now(), %s, 'smoke_density', 0.01)", (device,))
    conn.commit()
    # the planner's new file: building uID 2 was demolished, uID 1 got a height
    buildings = gpd.read_file(BUBENEC, layer="buildings")
    buildings = buildings[buildings["uID"] != 2].assign(height=np.where(
        buildings["uID"][buildings["uID"] != 2] == 1, 21.5, np.nan))
    streets = gpd.read_file(BUBENEC, layer="streets")
    path = tmp_path / "bubenec-2.gpkg"
    pyogrio.write_dataframe(buildings, path, layer="buildings")
    pyogrio.write_dataframe(streets, path, layer="streets")

    result = import_path(conn, path, community_id="bubenec", replace=True)
    assert result.report.written["building"] == {"inserted": 0, "updated": 1,
                                                 "unchanged": 142, "deleted": 1}
    assert _rows(conn, "SELECT height_m, height_source, floors FROM building WHERE id = %s",
                 kept) == [(21.5, "attribute", 7)]
    assert _rows(conn, "SELECT count(*) FROM building WHERE id = %s", gone) == [(0,)]
    # both devices and all their history are still there; the one whose building went
    # lost only its building
    assert _rows(conn, "SELECT id, building_id FROM device ORDER BY id") == [
        ("bubenec-d-1", kept), ("bubenec-d-2", None)]
    assert _rows(conn, "SELECT count(*) FROM device_state") == [(2,)]
    assert _rows(conn, "SELECT count(*) FROM reading") == [(2,)]
    # the new graph reaches both devices, and no node stands for the demolished building
    graph = walk_routing_graph(conn, "bubenec")
    assert (graph.component == 0).all()  # connected
    refs = set(graph.node_ref)
    assert {"bubenec-d-1", "bubenec-d-2"} <= refs and f"{gone}-door" not in refs


# --- OpenStreetMap ---------------------------------------------------------------------------

def _osm_extract(path: Path) -> Path:
    """A block in Prague: three buildings (height, levels, nothing), an entrance, paths."""
    lon0, lat0 = 14.40, 50.10
    dx, dy = 0.00014, 0.00009  # about 10 m each way
    nodes = {}

    def node(i: int, x: float, y: float, **tags: str) -> int:
        nodes[i] = Node(id=i, location=(lon0 + x * dx, lat0 + y * dy), tags=tags, version=1)
        return i

    ways = []
    for k, tags in enumerate(({"building": "apartments", "height": "24.5", "name": "A"},
                              {"building": "yes", "building:levels": "5"},
                              {"building": "yes", "height": "tall"})):
        x = 3 * k
        ring = [node(10 * k + 1, x, 1), node(10 * k + 2, x + 2, 1), node(10 * k + 3, x + 2, 3),
                node(10 * k + 4, x, 3)]
        ways.append(Way(id=100 + k, nodes=[*ring, ring[0]], tags=tags, version=1))
    node(5, 1, 1, entrance="main")  # on building A's south wall
    ways[0] = Way(id=100, nodes=[1, 5, 2, 3, 4, 1], tags=ways[0].tags, version=1)
    road = [node(50, -1, 0), node(51, 9, 0)]
    ways.append(Way(id=200, nodes=road, tags={"highway": "residential"}, version=1))
    ways.append(Way(id=201, nodes=[node(52, 4, 0), node(53, 4, -2)],
                    tags={"highway": "steps"}, version=1))
    ways.append(Way(id=202, nodes=[node(54, 0, -5), node(55, 5, -5)],
                    tags={"highway": "primary"}, version=1))  # not walkable: left out
    ways.append(Way(id=203, nodes=[50, 999], tags={"highway": "footway"}, version=1))
    writer = SimpleWriter(str(path))
    try:
        for n in sorted(nodes):
            writer.add_node(nodes[n])
        for w in ways:
            writer.add_way(w)
    finally:
        writer.close()
    return path


def test_osm_extract(conn, tmp_path) -> None:
    path = _osm_extract(tmp_path / "block.osm.pbf")
    result = import_path(conn, path, community_id="osm")
    assert _rows(conn, "SELECT id, height_m, floors, height_source, usage, name FROM building "
                       "ORDER BY id") == [
        ("osm-b-w100", 24.5, 8, "attribute", "apartments", "A"),
        ("osm-b-w101", 15.0, 5, "levels", "residential", "building w101"),
        ("osm-b-w102", 9.0, 3, "default", "residential", "building w102"),
    ]
    notes = {(n.feature, n.kind): n.why for n in result.report.notes}
    assert "height 'tall' is not usable" in notes[("w102", "default")]
    # the way whose node is missing from the extract is named, not dropped silently
    assert notes[("w203", "skipped")] == "some of its nodes are not in the extract"
    # the tagged entrance belongs to building A; the others got doors on their footprints
    assert _rows(conn, "SELECT id, building_id FROM entrance ORDER BY id") == [
        ("osm-b-w101-door", "osm-b-w101"), ("osm-b-w102-door", "osm-b-w102"),
        ("osm-en-n5", "osm-b-w100")]
    kinds = dict(_rows(conn, "SELECT kind, count(*) FROM walk_edge GROUP BY kind"))
    assert kinds["road"] >= 1 and kinds["steps"] == 1 and kinds["footway"] == 3
    assert (walk_routing_graph(conn, "osm").component == 0).all()  # connected


# --- CityJSON --------------------------------------------------------------------------------

def test_cityjson_lod1_heights_from_the_model_and_attributes(conn) -> None:
    result = import_path(conn, DATA / "lod1.city.json", community_id="delft")
    rows = _rows(conn, "SELECT id, height_m, floors, height_source, "
                       "round(ST_Area(ST_Transform(footprint, 28992))::numeric) "
                       "FROM building ORDER BY id")
    assert rows == [("delft-b-NL.IMBAG.Pand.1", 12.0, 4, "model", 200),
                    ("delft-b-NL.IMBAG.Pand.2", 25.0, 8, "attribute", 200)]
    assert [(n.feature, n.kind) for n in result.report.notes
            if n.kind == "skipped"] == [("NL.IMBAG.Pand.3", "skipped")]
    # EPSG:7415 (Amersfoort / RD New + NAP) ends up in Delft, in UTM 31N
    (srid, x, y), = _rows(conn, "SELECT local_srid, ST_X(ST_Centroid(boundary)), "
                                "ST_Y(ST_Centroid(boundary)) FROM community")
    assert srid == 32631 and 4.3 < x < 4.4 and 51.9 < y < 52.1


def test_cityjson_lod2_ground_surface_and_building_parts(conn) -> None:
    import_path(conn, DATA / "lod2.city.json", community_id="delft")
    rows = _rows(conn, "SELECT id, name, height_m, height_source, "
                       "round(ST_Area(ST_Transform(footprint, 28992))::numeric) "
                       "FROM building ORDER BY id")
    # the house: LOD2 (ridge at 9 m) wins over its LOD1 block (7.5 m), footprint from the
    # GroundSurface; the hall: its two parts, 5 m and 8 m, make one building
    assert rows == [("delft-b-hall", "Hall", 8.0, "model", 200),
                    ("delft-b-house", "building house", 9.0, "model", 96)]


# --- GeoJSON, GeoPackage, Shapefile ----------------------------------------------------------

def _estate(crs: int = 32633) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Four buildings and two paths near Prague in the given CRS, with mixed height data."""
    x0, y0 = 458_000, 5_550_000
    buildings = gpd.GeoDataFrame({
        "bid": [11, 12, 13, 14],
        "name": ["一号楼", "二号楼", None, "四号楼"],
        "height": [33.0, None, None, -1.0],
        "floors": [11, 6, None, None],
    }, geometry=[shapely.box(x0 + 30 * k, y0 + 10, x0 + 30 * k + 20, y0 + 25) for k in range(4)],
        crs=32633)
    paths = gpd.GeoDataFrame({"highway": ["service", "footway"]}, geometry=[
        shapely.LineString([(x0 - 10, y0), (x0 + 120, y0)]),
        shapely.LineString([(x0 + 55, y0), (x0 + 55, y0 - 40)])], crs=32633)
    return buildings.to_crs(crs), paths.to_crs(crs)


@pytest.mark.parametrize("driver,suffix,crs", [
    ("GeoJSON", ".geojson", 4326), ("GPKG", ".gpkg", 3857), ("ESRI Shapefile", ".shp", 5514)])
def test_gis_formats_in_any_crs(conn, tmp_path, driver, suffix, crs) -> None:
    buildings, paths = _estate(crs)
    pyogrio.write_dataframe(buildings, tmp_path / f"buildings{suffix}", driver=driver)
    pyogrio.write_dataframe(paths, tmp_path / f"paths{suffix}", driver=driver)
    mapping = tmp_path / "mapping.toml"
    mapping.write_text('[layers.buildings]\nid = "bid"\n[defaults]\nfloor_height_m = 2.9\n')
    result = import_path(conn, tmp_path, community_id="estate", mapping=mapping)
    assert _rows(conn, "SELECT id, name, height_m, floors, height_source FROM building "
                       "ORDER BY id") == [
        ("estate-b-11", "一号楼", 33.0, 11, "attribute"),
        ("estate-b-12", "二号楼", 17.4, 6, "levels"),
        ("estate-b-13", "building 13", 8.7, 3, "default"),
        ("estate-b-14", "四号楼", 8.7, 3, "default"),
    ]
    assert "height -1.0 is not usable" in next(
        n.why for n in result.report.notes if n.feature == "14")
    # footprints land where they were, whatever the file's CRS
    (area,) = conn.execute("SELECT sum(ST_Area(ST_Transform(footprint, 32633))) FROM building"
                           ).fetchone()
    assert area == pytest.approx(4 * 300, rel=1e-3)
    kinds = dict(_rows(conn, "SELECT kind, count(*) FROM walk_edge GROUP BY kind"))
    assert kinds["road"] >= 2 and kinds["footway"] >= 4
    assert (walk_routing_graph(conn, "estate").component == 0).all()  # connected


# --- bad input -------------------------------------------------------------------------------

def test_bad_geometries_are_repaired_or_skipped_and_named(conn, tmp_path) -> None:
    buildings, paths = _estate()
    x, y = 458_000, 5_550_100
    broken = gpd.GeoDataFrame({
        "bid": [21, 22, 23, 24],
        "height": ["12 m", "7", "9", "6"],
    }, geometry=[
        shapely.Polygon([(x, y), (x + 20, y), (x + 20, y + 10), (x + 10, y + 10),
                         (x + 10, y + 30), (x + 10, y + 10), (x, y + 10)]),   # spike: repaired
        shapely.Polygon([(x + 40, y), (x + 60, y + 20), (x + 60, y), (x + 40, y + 20)]),  # bow tie
        shapely.Polygon(),                                                     # empty
        None,                                                                  # missing
    ], crs=32633)
    both = pd.concat([buildings, broken], ignore_index=True)
    pyogrio.write_dataframe(both, tmp_path / "buildings.gpkg", layer="buildings")
    pyogrio.write_dataframe(paths, tmp_path / "buildings.gpkg", layer="paths")
    mapping = tmp_path / "m.toml"
    mapping.write_text('[layers.buildings]\nid = "bid"\n')
    result = import_path(conn, tmp_path / "buildings.gpkg", community_id="estate",
                         mapping=mapping)
    why = {(n.feature, n.kind): n.why for n in result.report.notes}
    assert why[("21", "repaired")].startswith("Self-intersection")
    assert "largest is only 50%" in why[("22", "skipped")]
    assert why[("23", "skipped")] == "empty geometry"
    assert why[("24", "skipped")] == "no geometry"
    layer = next(c for c in result.report.layers if c.layer == "buildings")
    assert (layer.read, layer.imported, layer.repaired, layer.skipped) == (8, 5, 1, 3)
    # nothing else was lost: the four good buildings and the repaired one are all there
    ids = [r[0] for r in _rows(conn, "SELECT id FROM building ORDER BY id")]
    assert ids == ["estate-b-11", "estate-b-12", "estate-b-13", "estate-b-14", "estate-b-21"]
    (valid,) = conn.execute("SELECT bool_and(ST_IsValid(footprint)) FROM building").fetchone()
    assert valid


def test_file_without_a_crs_is_refused_in_one_sentence(conn, tmp_path) -> None:
    buildings, _ = _estate()
    pyogrio.write_dataframe(buildings, tmp_path / "nocrs.shp")
    (tmp_path / "nocrs.prj").unlink()
    with pytest.raises(UnknownCRSError, match="does not say its coordinate reference system"):
        import_path(conn, tmp_path / "nocrs.shp", community_id="x")
    assert _rows(conn, "SELECT count(*) FROM community") == [(0,)]


def test_unreadable_and_missing_files_are_named(conn, tmp_path) -> None:
    junk = tmp_path / "junk.gpkg"
    junk.write_bytes(b"this is not a geopackage")
    with pytest.raises(UnreadableSourceError, match="junk.gpkg: not a file GDAL can read"):
        import_path(conn, junk, community_id="x")
    with pytest.raises(UnreadableSourceError, match="no such file"):
        import_path(conn, tmp_path / "nothing.gpkg", community_id="x")
    (tmp_path / "bad.osm.pbf").write_bytes(b"garbage")
    with pytest.raises(UnreadableSourceError, match="not an OpenStreetMap file"):
        import_path(conn, tmp_path / "bad.osm.pbf", community_id="x")
    (tmp_path / "nocrs.city.json").write_text('{"type": "CityJSON", "version": "2.0", '
                                              '"CityObjects": {}, "vertices": []}')
    with pytest.raises(UnknownCRSError, match="no referenceSystem"):
        import_path(conn, tmp_path / "nocrs.city.json", community_id="x")
    with pytest.raises(MappingError, match="no layer named houses"):
        import_path(conn, BUBENEC, community_id="x", layers=["houses"])


def test_the_cli_prints_one_sentence_and_a_summary(db_url, tmp_path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TWIN_")},
           "TWIN_DATABASE_URL": db_url, "COLUMNS": "200"}
    bad = subprocess.run([TWIN, "import", str(tmp_path / "missing.gpkg"), "--community", "x"],
                         check=False, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing.gpkg'}: no such file or directory"]
    good = subprocess.run([TWIN, "import", str(BUBENEC), "--community", "bubenec",
                           "--layer", "buildings", "--layer", "streets"],
                          check=False, env=env, capture_output=True, text=True, timeout=300)
    assert good.returncode == 0, good.stderr
    assert "imported" in good.stdout and "default height" in good.stdout
    assert "1 component (connected)" in good.stdout


# --- pure parts ------------------------------------------------------------------------------

def test_walk_graph_splits_merges_and_reports_what_stays_apart() -> None:
    L = shapely.LineString
    lines = np.array([
        L([(0, 0), (100, 0)]),             # a road
        L([(50, -50), (50, 50)]),          # crossing it: split both at (50, 0)
        L([(100.4, 0.3), (100.5, 40)]),    # starts 0.5 m from the road's end: merged
        L([(0, 0), (100, 0)]),             # the road again: one edge only
        L([(20, 0.6), (20, 30)]),          # stops 0.6 m short of the road: joined
        L([(200, 0), (210, 0), (210, 10), (200, 10), (200, 0)]),  # a ring on its own
    ], dtype=object)
    kinds = np.array(["road", "footway", "footway", "road", "steps", "footway"], dtype=object)
    places = pd.DataFrame({
        "ref_id": ["e1", "d1", "f1"], "kind": ["entrance", "device", "facility"],
        "building_id": ["b1", "b1", None], "link_kind": ["footway", "link", "link"],
        "geometry": shapely.points([(30, 10), (31, 15), (205, 12)])})
    walkways = node_walkways(lines, kinds, places, crs=32633, merge_m=1.0)
    graph = walkways.graph
    g = nx.Graph()
    g.add_edges_from(zip(graph.edge_u, graph.edge_v))
    xy = graph.xy
    at = {tuple(p): k for k, p in enumerate(np.round(xy, 3))}
    assert (50.0, 0.0) in at and g.degree(at[(50.0, 0.0)]) == 4        # the crossing
    assert g.degree(at[(100.0, 0.0)]) == 2                              # the merged end
    assert walkways.report.gaps_closed == 2 and walkways.report.nodes_merged >= 1
    assert (graph.edge_kind == "road").sum() == 4                       # 0-20-30-50-100
    # e1 hangs on the road at (30, 0); d1 inside b1 hangs on e1; f1 on the ring
    node = {r: k for k, r in enumerate(graph.node_ref) if r is not None}
    assert g.has_edge(node["d1"], node["e1"]) and g.has_edge(node["e1"], at[(30.0, 0.0)])
    assert walkways.report.components == 2
    (apart,) = walkways.report.disconnected
    assert apart.places == ["f1"] and apart.length_m == pytest.approx(42.0, abs=0.1)
    # every edge runs from its source node to its target node
    ends = shapely.get_coordinates(shapely.get_point(graph.edge_lines, 0))
    assert np.allclose(ends, xy[graph.edge_u])


def test_heights_follow_the_documented_order() -> None:
    h = resolve_heights(5, height=pd.Series(["30", "tall", None, "40 ft", None]),
                        levels=pd.Series([None, "4", "6", None, "many"]))
    assert list(h.source) == ["attribute", "levels", "levels", "attribute", "default"]
    assert list(h.height_m) == [30.0, 12.0, 18.0, 12.19, 9.0]
    assert list(h.floors) == [10, 4, 6, 4, 3]
    assert h.note[1] == "height 'tall' is not usable; used 4 levels x 3 m"
    assert h.note[4] == "no height, levels 'many' not usable; used the default 9 m (3 floors)"


def test_multipolygons_keep_a_main_part_or_are_skipped() -> None:
    main = shapely.MultiPolygon([shapely.box(0, 0, 10, 10), shapely.box(20, 20, 20.5, 20.5)])
    halves = shapely.MultiPolygon([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10)])
    out, status = repair_polygons(np.array([main, halves], dtype=object))
    assert out[0].equals(shapely.box(0, 0, 10, 10))
    assert status[0].startswith("repaired: 2 separate parts")
    assert out[1] is None and status[1].startswith("skipped: 2 separate parts")


def test_facility_kinds_are_the_schemas(conn) -> None:
    (check,) = conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'facility'::regclass AND conname LIKE '%kind%'").fetchone()
    assert sorted(FACILITY_KINDS) == sorted(check.split("'")[1::2])
