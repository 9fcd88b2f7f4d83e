"""The map specs the pages hand to TwinDeck, built from the twin's own geometry.

No tiles: the base map is the community's boundary, green areas, grid
outlines and walkways, with the buildings extruded on top. An online tile
basemap is drawn underneath only when the settings name one.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pydeck as pdk

from dashboard.i18n import t
from layers import style
from layers.twin_layers import (
    alarm_building_layer,
    area_layer,
    ground_layer,
    live_path_layer,
    live_point_layer,
    state_device_layer,
    view_of,
    walkway_layer,
)
from twin.store.reads.base_map import MapFrames


def base_layers(frames: MapFrames) -> list[dict[str, Any]]:
    """The static layers as JSON specs: built once, cached, sent once per page load."""
    layers: list[pdk.Layer] = [
        ground_layer(frames.boundary),
        area_layer(frames.green, layer_id="green", color=style.GREEN_AREA),
        area_layer(frames.grids, layer_id="grids", line_color=style.GRID_LINE),
        walkway_layer(frames.walkways),
        alarm_building_layer(frames.buildings),
    ]
    if frames.devices is not None:
        layers.append(state_device_layer(frames.devices))
    return [_spec(layer) for layer in layers]


def live_layers() -> list[dict[str, Any]]:
    """The live layers, empty: their data arrives as TwinDeck.layerData."""
    return [_spec(layer) for layer in (
        live_path_layer("routes"),
        live_point_layer("attention", radius=2.5, min_pixels=4),
        live_point_layer("incidents", radius=6, min_pixels=10, stroked=False, pickable=False),
        live_point_layer("staff", radius=2.5, min_pixels=6),
    )]


def view_state(frames: MapFrames, *, pitch: float = 52, bearing: float = -18) -> dict[str, Any]:
    view = view_of(frames.boundary if len(frames.boundary) else frames.buildings,
                   pitch=pitch, bearing=bearing)
    return {"longitude": view.longitude, "latitude": view.latitude, "zoom": view.zoom + 1.45,
            "pitch": view.pitch, "bearing": view.bearing, "maxPitch": 70}


def tooltips(lang: str) -> dict[str, str]:
    return {
        "buildings": f"<b>{{name}}</b><br/>{{floors}} {t('map.floors', lang)} · {{grid}}",
        "devices": f"{t('map.device', lang)} <b>{{id}}</b><br/>{{type}}",
        "attention": "<b>{id}</b><br/>{type} · {tone}<br/>{building} {floor}",
        "staff": f"{t('map.staff', lang)} <b>{{name}}</b><br/>{{role}}",
        "routes": "<b>{code}</b><br/>{title}<br/>{state}",
    }


def order_map_layers(frames: MapFrames) -> list[dict[str, Any]]:
    """The work-order detail's small map: the base without devices, plus the order's route."""
    layers = [spec for spec in base_layers(frames) if spec["id"] != "devices"]
    return layers + [_spec(live_path_layer("route")),
                     _spec(live_point_layer("target", radius=4, min_pixels=8))]


def planner_map_layers(frames: MapFrames) -> list[dict[str, Any]]:
    """The Planner's map: the base without devices, walkways clickable (to close them), and
    the scenario's closed walkways drawn over them from ``layerData``."""
    layers = [spec for spec in base_layers(frames) if spec["id"] != "devices"]
    for spec in layers:
        if spec["id"] == "walkways":
            spec["pickable"] = True
    return layers + [_spec(live_path_layer("closed"))]


def encoded(value: Any) -> orjson.Fragment:
    """`value` as JSON already: Dash (plotly's to_json) passes a Fragment through untouched
    instead of walking every record and coordinate, which at district scale is most of the
    first load's server time."""
    return orjson.Fragment(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY))


def _spec(layer: pdk.Layer) -> dict[str, Any]:
    """The layer as pydeck's JSON, with its records encoded once: pydeck's own serialiser
    walks every record and takes about a second for a district's buildings."""
    records = layer.data
    layer.data = []
    try:
        spec = json.loads(layer.to_json())
    finally:
        layer.data = records
    spec["data"] = encoded(records) if records else []
    return spec
