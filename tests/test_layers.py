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
