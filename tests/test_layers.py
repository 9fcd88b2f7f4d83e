"""pydeck layers built from the sample community, checked without a browser."""

from __future__ import annotations

import json

import pytest

from layers.twin_layers import building_layer, device_layer, view_of, walkway_layer
from twin.device_types import DEVICE_TYPES


@pytest.fixture(scope="module")
def frames(sample):
    return dict(sample.tables())


def test_buildings_are_extruded_to_their_height(frames) -> None:
    buildings = frames["building"]
    layer = building_layer(buildings)
    spec = json.loads(layer.to_json())
    assert spec["@@type"] == "PolygonLayer" and spec["extruded"] is True
    assert len(layer.data) == len(buildings)
    first = layer.data[0]
    assert first["height"] == pytest.approx(float(buildings["height_m"].iloc[0]))
    assert first["polygon"][0] == first["polygon"][-1]  # closed ring, lon/lat pairs
    lon, lat = first["polygon"][0]
    assert 114 < lon < 115 and 30 < lat < 31


def test_walkways_and_devices_layers(frames) -> None:
    paths = walkway_layer(frames["walk_edge"])
    assert len(paths.data) == len(frames["walk_edge"])
    assert all(len(p["path"]) >= 2 for p in paths.data)
    devices = device_layer(frames["device"])
    assert len(devices.data) == len(frames["device"])
    assert {d["type"] for d in devices.data} == set(DEVICE_TYPES)
    assert all(d["position"][2] >= 0 for d in devices.data)


def test_view_is_centred_on_the_community(frames) -> None:
    view = view_of(frames["building"])
    minx, miny, maxx, maxy = frames["building"].total_bounds
    assert minx < view.longitude < maxx and miny < view.latitude < maxy
    assert 14 <= view.zoom <= 18


# --- the control room's layers ---------------------------------------------------------

def test_base_map_layers_come_from_the_twins_own_geometry(frames) -> None:
    from layers import style
    from layers.twin_layers import alarm_building_layer, area_layer, ground_layer

    ground = json.loads(ground_layer(frames["community"]).to_json())
    assert ground["@@type"] == "PolygonLayer" and ground["getFillColor"] == style.GROUND
    assert len(ground["data"]) == 1 and len(ground["data"][0]["polygon"]) > 3
    import geopandas as gpd

    facilities = frames["facility"]
    green = facilities[(facilities["kind"] == "green_area") & facilities["area"].notna()]
    areas = gpd.GeoDataFrame({"id": green["id"]}, geometry=gpd.GeoSeries(green["area"]), crs=4326)
    assert len(green) and len(area_layer(areas, color=style.GREEN_AREA).data) == len(green)
    buildings = alarm_building_layer(frames["building"])
    assert buildings.get_fill_color == style.BUILDING_CALM
    assert {r["grid"] for r in buildings.data} == set(frames["building"]["grid_id"])


def test_live_records_are_keyed_compact_and_coloured_by_a_field() -> None:
    from layers import style
    from layers.twin_layers import (
        LIVE_COLORS,
        device_records,
        route_records,
        severity_colors,
        staff_records,
    )

    assert severity_colors({"b1": "critical", "b2": "info"}) == {
        "b1": style.SEVERITY["critical"], "b2": style.SEVERITY["info"]}
    devices = device_records([
        {"id": "d1", "type": "smoke_detector", "state": "alarm", "severity": "major",
         "building": "b1", "floor": 12, "lon": 114.123456789, "lat": 30.5},
        {"id": "d2", "type": "water_meter", "state": "offline", "severity": None,
         "building": None, "floor": None, "lon": 114.1, "lat": 30.4},
    ])
    assert devices["d1"]["tone"] == "major" and devices["d2"]["tone"] == "offline"
    assert devices["d1"]["position"] == [114.123457, 30.5, 36.0]
    assert devices["d2"]["position"][2] == 0.0 and devices["d2"]["building"] == ""
    assert set(LIVE_COLORS["attention"]["colors"]) >= {"critical", "major", "offline"}
    staff = staff_records([{"id": "s1", "name": "李", "role": "security", "lon": 1.0, "lat": 2.0}])
    assert staff == {"s1": {"id": "s1", "name": "李", "role": "security", "position": [1.0, 2.0]}}
    assert LIVE_COLORS["staff"]["colors"]["security"] == style.STAFF["security"]
    routes = route_records([{"id": 7, "code": "WO-1-7", "title": "t", "state": "assigned",
                             "priority": "urgent", "path": [(1.0, 2.0), (1.5, 2.5)]}])
    assert routes["7"]["path"] == [[1.0, 2.0], [1.5, 2.5]]
    assert LIVE_COLORS["routes"]["accessor"] == "getColor"


def test_live_layers_start_empty_and_are_filled_by_layer_data() -> None:
    from dashboard import maps

    specs = {s["id"]: s for s in maps.live_layers()}
    assert set(specs) == {"routes", "attention", "incidents", "staff"}
    assert all(s["data"] == [] for s in specs.values())
    assert specs["routes"]["@@type"] == "PathLayer"
