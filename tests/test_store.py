"""The store against real PostGIS/TimescaleDB: loading the sample and the named queries."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import psycopg
import pytest
import shapely

from twin.device_types import DEVICE_TYPES
from twin.errors import TwinError
from twin.store import queries
from twin.store.graph import walk_routing_graph
from twin.store.loader import load_dataset


def _frames(dataset) -> dict[str, pd.DataFrame]:
    return dict(dataset.tables())


def test_sample_loads_every_row(sample_conn: psycopg.Connection, sample) -> None:
    for table, frame in sample.tables():
        count = sample_conn.execute(
            psycopg.sql.SQL("SELECT count(*) FROM {}").format(psycopg.sql.Identifier(table))
        ).fetchone()[0]
        assert count == len(frame), table


def test_loaded_geometry_matches_the_source(sample_conn: psycopg.Connection, sample) -> None:
    buildings = _frames(sample)["building"].set_index("id")
    rows = sample_conn.execute(
        "SELECT id, ST_AsBinary(footprint), height_m, ST_SRID(footprint) FROM building"
    ).fetchall()
    for building_id, wkb, height, srid in rows:
        assert srid == 4326
        source = buildings.loc[building_id]
        assert shapely.equals_exact(shapely.from_wkb(wkb), source.geometry, tolerance=1e-9)
        assert height == pytest.approx(source["height_m"], rel=1e-6)


def test_device_types_in_the_database_are_the_registry(sample_conn: psycopg.Connection) -> None:
    rows = dict(sample_conn.execute("SELECT code, domain FROM device_type").fetchall())
    assert rows == {code: t.domain for code, t in DEVICE_TYPES.items()}


def test_loading_twice_gives_the_same_twin(conn: psycopg.Connection, sample) -> None:
    first = load_dataset(conn, sample)
    second = load_dataset(conn, sample)
    assert first == second
    assert conn.execute("SELECT count(*) FROM building").fetchone()[0] == first["building"]


def test_a_broken_load_leaves_the_twin_as_it_was(conn: psycopg.Connection, sample) -> None:
    load_dataset(conn, sample)
    before = conn.execute("SELECT count(*) FROM device").fetchone()[0]

    class Broken:
        def tables(self):
            out = []
            for name, frame in sample.tables():
                if name == "device":
                    frame = frame.copy()
                    frame.loc[frame.index[0], "type"] = "flux_capacitor"
                out.append((name, frame))
            return out

    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        load_dataset(conn, Broken())
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM device").fetchone()[0] == before


def test_everything_in_a_building(sample_conn: psycopg.Connection, sample) -> None:
    f = _frames(sample)
    units, residents, devices = f["unit"], f["resident"], f["device"]
    for building_id in f["building"]["id"].iloc[[0, 7, -1]]:
        contents = queries.building_contents(sample_conn, building_id)
        mine = units[units["building_id"] == building_id]
        people = residents[residents["unit_id"].isin(mine["id"])]
        assert contents.building.id == building_id
        assert contents.units == len(mine)
        assert contents.occupied_units == int((mine["occupancy"] != "vacant").sum())
        assert contents.residents == len(people)
        assert contents.care_residents == int(people["care_flags"].map(len).gt(0).sum())
        expected = devices[devices["building_id"] == building_id]["type"].value_counts()
        assert contents.devices_by_type == expected.sort_index().to_dict()


def test_unknown_building_is_named(sample_conn: psycopg.Connection) -> None:
    with pytest.raises(TwinError, match="no building 'nope'"):
        queries.building_contents(sample_conn, "nope")


@pytest.mark.parametrize("device_type", [None, "ai_camera"])
def test_devices_within_a_radius(sample_conn: psycopg.Connection, sample, device_type) -> None:
    f = _frames(sample)
    gate = f["facility"][f["facility"]["kind"] == "gate"].iloc[0].geometry
    radius = 200.0
    found = queries.devices_within(sample_conn, gate.x, gate.y, radius, device_type=device_type)

    # The same question answered in the local UTM zone with geopandas.
    devices = f["device"]
    if device_type is not None:
        devices = devices[devices["type"] == device_type]
    local = devices.to_crs(32650)
    origin = gpd.GeoSeries([gate], crs=4326).to_crs(32650).iloc[0]
    distance = local.distance(origin)
    surely_in = set(devices["id"][distance < radius - 1])
    surely_out = set(devices["id"][distance > radius + 1])
    ids = [n.device.id for n in found]
    assert surely_in and surely_in <= set(ids)
    assert not (surely_out & set(ids))
    assert [n.distance_m for n in found] == sorted(n.distance_m for n in found)
    if device_type:
        assert {n.device.type for n in found} == {device_type}


def test_latest_state_of_every_device_in_a_grid(conn: psycopg.Connection, sample) -> None:
    load_dataset(conn, sample)
    f = _frames(sample)
    grid = f["grid"].iloc[0]
    inside = f["device"][f["device"].intersects(grid.geometry)]
    reported = inside["id"].iloc[:3].tolist()
    conn.execute(
        """
        INSERT INTO device_state (device_id, online, status_at, last_seen, metrics)
        SELECT id, true, now(), now(), '{"fill": {"t": "2026-11-24T07:00:00Z", "v": 80}}'
        FROM unnest(%s::text[]) AS id
        """,
        (reported,),
    )
    states = queries.latest_state_in_grid(conn, grid["id"])
    assert {s.device.id for s in states} == set(inside["id"])
    by_id = {s.device.id: s for s in states}
    assert all(by_id[d].online and by_id[d].metrics["fill"]["v"] == 80 for d in reported)
    silent = set(inside["id"]) - set(reported)
    assert all(by_id[d].online is None and by_id[d].last_seen is None for d in silent)
    one = queries.device_state(conn, reported[0])
    assert one.online and one.device.id == reported[0]


def test_care_residents_in_a_unit(sample_conn: psycopg.Connection, sample) -> None:
    residents = _frames(sample)["resident"]
    flagged = residents[residents["care_flags"].map(len) > 0]
    unit_id = flagged["unit_id"].iloc[0]
    expected = residents[(residents["unit_id"] == unit_id) & (residents["care_flags"].map(len) > 0)]
    found = queries.care_residents(sample_conn, unit_id=unit_id)
    assert [r.id for r in found] == sorted(expected["id"])
    assert all(r.needs_care for r in found)
    alone = queries.care_residents(
        sample_conn, building_id=flagged.iloc[0]["unit_id"].rsplit("-u", 1)[0],
        flag="elderly_alone",
    )
    assert all("elderly_alone" in r.care_flags for r in alone)
    with_contacts = [r for r in alone if r.family_contacts]
    assert all(c.phone for r in with_contacts for c in r.family_contacts)


def test_walk_graph_reaches_every_entrance_and_facility(sample_conn: psycopg.Connection,
                                                        sample) -> None:
    community_id = _frames(sample)["community"]["id"].iloc[0]
    graph = walk_routing_graph(sample_conn, community_id)
    assert (graph.component == 0).all()  # one connected network
    refs = set(graph.node_ref[graph.node_ref != None])
    f = _frames(sample)
    assert set(f["entrance"]["id"]) <= refs
    gates = f["facility"][f["facility"]["kind"].isin(["gate", "garage_ramp", "ev_shed"])]
    assert set(gates["id"]) <= refs
    assert (graph.edge_length >= 0).all()


def test_community_summary_counts(sample_conn: psycopg.Connection, sample) -> None:
    f = _frames(sample)
    summary = queries.community_summary(sample_conn, f["community"]["id"].iloc[0])
    assert summary["buildings"] == len(f["building"])
    assert summary["residents"] == len(f["resident"])
    assert summary["devices"] == len(f["device"])
    assert summary["device_types"] == len(DEVICE_TYPES)
