"""twin export: the sample community out in each format, and back in as the same twin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pyogrio
import pytest

from gis_data.exporter import export_community
from gis_data.importer.errors import CommunityError
from gis_data.importer.service import import_path
from twin.store.connection import connect

TWIN = str(Path(sys.executable).parent / "twin")
C = "wh-guanggu"

#: What "the same twin" means: every exported table, compared as text (geometry as WKT).
QUERIES = {
    "community": "SELECT id, name, city, local_srid, ST_AsText(boundary) FROM community "
                 "WHERE id = %(c)s",
    "grid": "SELECT id, name, ST_AsText(area) FROM grid WHERE community_id = %(c)s ORDER BY id",
    "building": "SELECT id, grid_id, name, usage, floors, units_per_floor, height_m, "
                "height_source, ST_AsText(footprint) FROM building WHERE community_id = %(c)s "
                "ORDER BY id",
    "entrance": "SELECT e.id, e.building_id, e.name, ST_AsText(e.geom) FROM entrance e "
                "JOIN building b ON b.id = e.building_id WHERE b.community_id = %(c)s "
                "ORDER BY e.id",
    "facility": "SELECT id, kind, name, building_id, floor, ST_AsText(geom), ST_AsText(area) "
                "FROM facility WHERE community_id = %(c)s ORDER BY id",
    "device": "SELECT id, type, name, building_id, floor, facility_id, credentials_id, "
              "ST_AsText(geom) FROM device WHERE community_id = %(c)s ORDER BY id",
    "walk_node": "SELECT id, kind, ref_id, ST_AsText(geom) FROM walk_node "
                 "WHERE community_id = %(c)s ORDER BY id",
    "walk_edge": "SELECT id, source, target, kind, length_m, ST_AsText(geom) FROM walk_edge "
                 "WHERE community_id = %(c)s ORDER BY id",
}


def _twin(conn: psycopg.Connection, c: str = C, *, normalize: bool = False
          ) -> dict[str, list[tuple]]:
    """The exported tables of c; with ``normalize``, footprints in a canonical vertex order."""
    queries = dict(QUERIES)
    if normalize:
        queries["building"] = queries["building"].replace("ST_AsText(footprint)",
                                                          "ST_AsText(ST_Normalize(footprint))")
    return {table: conn.execute(query, {"c": c}).fetchall() for table, query in queries.items()}


@pytest.fixture
def sample_twin(twin_db_url: str):
    with connect(twin_db_url) as conn:
        yield conn


@pytest.mark.parametrize("fmt,name", [("gpkg", "wh.gpkg"), ("geojson", "wh-geojson"),
                                      ("cityjson", "wh.city.json")])
def test_export_reimports_to_the_same_twin(sample_twin, conn, tmp_path, fmt, name) -> None:
    path = tmp_path / name
    written = export_community(sample_twin, C, fmt, path)
    expected = _twin(sample_twin)
    assert {t: written[t] for t in QUERIES} == {t: len(rows) for t, rows in expected.items()}

    result = import_path(conn, path, community_id=C)
    if fmt == "cityjson":
        # a CityJSON solid has a set winding: the footprint's vertices come back exactly,
        # starting elsewhere and running the other way round
        assert _twin(conn, normalize=True) == _twin(sample_twin, normalize=True)
    else:
        assert _twin(conn) == expected
    # devices lose only their flat (flats are personal data and are not exported), and say so
    assert any("flats are not exported" in n.why for n in result.report.notes)


def test_reimporting_an_export_with_replace_keeps_devices_state_and_flats(sample_twin,
                                                                          tmp_path) -> None:
    conn = sample_twin
    conn.execute("INSERT INTO device_state (device_id, online, metrics) SELECT id, true, "
                  "'{\"battery\": {\"t\": \"2026-01-01T00:00:00Z\", \"v\": 80}}' FROM device")
    conn.execute("INSERT INTO reading (time, device_id, metric, value) "
                 "SELECT now(), id, 'battery', 80 FROM device")
    conn.commit()
    before = _twin(conn)
    kept = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("unit", "resident", "staff", "device_state", "reading")}
    path = tmp_path / "wh.gpkg"
    export_community(conn, C, "gpkg", path)

    result = import_path(conn, path, community_id=C, replace=True)
    assert _twin(conn) == before
    assert {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in kept} == kept
    for table, n in result.report.written.items():
        assert n["inserted"] == n["deleted"] == 0, table
    # device rows were left alone: the flats they are in are in the twin here
    assert result.report.written["device"]["updated"] == 0


def test_export_carries_heights_and_latest_device_state(sample_twin, tmp_path) -> None:
    conn = sample_twin
    device = conn.execute("SELECT id FROM device ORDER BY id LIMIT 1").fetchone()[0]
    conn.execute("INSERT INTO device_state (device_id, online, last_seen, metrics) VALUES "
                 "(%s, true, '2026-03-01T08:00:00Z', '{\"temperature\": {\"t\": "
                 "\"2026-03-01T08:00:00Z\", \"v\": 21.5}}')", (device,))
    conn.commit()
    path = tmp_path / "wh.gpkg"
    export_community(conn, C, "gpkg", path)
    assert set(pyogrio.list_layers(path)[:, 0]) == {
        "community", "grid", "building", "entrance", "facility", "device", "walk_node",
        "walk_edge"}
    devices = pyogrio.read_dataframe(path, layer="device").set_index("id")
    row = devices.loc[device]
    assert bool(row["online"]) and row["last_seen"] == "2026-03-01T08:00:00Z"
    assert json.loads(row["metrics"])["temperature"]["v"] == 21.5
    buildings = pyogrio.read_dataframe(path, layer="building")
    assert buildings["height_m"].gt(0).all() and set(buildings["height_source"]) == {"attribute"}
    assert str(buildings.crs) == "EPSG:4326"

    city = tmp_path / "wh.city.json"
    export_community(conn, C, "cityjson", city)
    doc = json.loads(city.read_text())
    assert doc["metadata"]["referenceSystem"].endswith("/32650")
    solids = [o for o in doc["CityObjects"].values() if o["type"] == "Building"]
    assert len(solids) == len(buildings)
    assert all(o["geometry"][0]["type"] == "Solid" and o["geometry"][0]["lod"] == "1"
               for o in solids)


def test_exporting_an_unknown_community_is_one_sentence(sample_twin, tmp_path) -> None:
    with pytest.raises(CommunityError, match="no community 'nowhere' in the twin"):
        export_community(sample_twin, "nowhere", "gpkg", tmp_path / "x.gpkg")
    with pytest.raises(CommunityError, match="unknown export format 'kml'"):
        export_community(sample_twin, C, "kml", tmp_path / "x.kml")


def test_the_cli_exports(twin_db_url, tmp_path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TWIN_")},
           "TWIN_DATABASE_URL": twin_db_url, "COLUMNS": "200"}
    out = subprocess.run([TWIN, "export", str(tmp_path / "wh"), "--community", C, "--format",
                          "geojson"], env=env, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "walk_edge" in out.stdout
    assert sorted(p.name for p in (tmp_path / "wh").iterdir())[:2] == [
        "building.geojson", "community.geojson"]
