"""Layers of the 3D twin: extruded buildings, the walkway network and devices.

Each builder takes a frame in EPSG:4326 and returns a ``pydeck.Layer`` whose
data is plain records (coordinates as lists), so the layer's JSON is small
and needs no geopandas in the browser.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pydeck as pdk
import shapely

from layers import style
from twin.device_types import DEVICE_TYPES


def building_layer(buildings: gpd.GeoDataFrame, *, layer_id: str = "buildings") -> pdk.Layer:
    """Footprints extruded to their height; pickable for tooltips and drill-down."""
    records = [
        {"id": i, "name": n, "floors": int(f), "height": float(h), "polygon": ring}
        for i, n, f, h, ring in zip(
            buildings["id"], buildings["name"], buildings["floors"], buildings["height_m"],
            _exterior_rings(buildings.geometry.to_numpy()), strict=True,
        )
    ]
    return pdk.Layer(
        "PolygonLayer",
        data=records,
        id=layer_id,
        get_polygon="polygon",
        extruded=True,
        wireframe=True,
        get_elevation="height",
        get_fill_color=style.BUILDING,
        get_line_color=[40, 50, 60, 255],
        pickable=True,
        auto_highlight=True,
    )


def walkway_layer(edges: gpd.GeoDataFrame, *, layer_id: str = "walkways") -> pdk.Layer:
    """The walkway network, coloured by kind (road, footway, ramp, ...)."""
    coords = [np.asarray(g.coords)[:, :2].round(7).tolist() for g in edges.geometry]
    records = [
        {"id": i, "kind": k, "path": c, "color": style.WALKWAY.get(k, [150, 150, 150, 255])}
        for i, k, c in zip(edges["id"], edges["kind"], coords, strict=True)
    ]
    return pdk.Layer(
        "PathLayer", data=records, id=layer_id, get_path="path", get_color="color",
        width_min_pixels=2, get_width=2, pickable=False,
    )


def device_layer(devices: gpd.GeoDataFrame, *, layer_id: str = "devices") -> pdk.Layer:
    """Devices as points coloured by their type's domain, lifted to their floor."""
    xy = shapely.get_coordinates(devices.geometry.to_numpy())
    floors = devices["floor"].astype("Float64").fillna(0).to_numpy(dtype=float)
    elevation = np.clip(floors, 0, None) * 3.0
    records = [
        {"id": i, "type": t, "position": [round(x, 7), round(y, 7), float(z)],
         "color": style.DEVICE_DOMAIN[DEVICE_TYPES[t].domain]}
        for i, t, x, y, z in zip(devices["id"], devices["type"], xy[:, 0], xy[:, 1], elevation,
                                 strict=True)
    ]
    return pdk.Layer(
        "ScatterplotLayer", data=records, id=layer_id, get_position="position",
        get_fill_color="color", get_radius=1.5, radius_min_pixels=2, pickable=True,
    )


def view_of(frame: gpd.GeoDataFrame, *, pitch: float = 50, bearing: float = -20) -> pdk.ViewState:
    """A tilted view centred on the frame, zoomed to fit it roughly."""
    minx, miny, maxx, maxy = frame.total_bounds
    span = max(maxx - minx, maxy - miny, 1e-4)
    zoom = float(np.clip(np.log2(360.0 / span) - 1.2, 3, 19))
    return pdk.ViewState(longitude=float((minx + maxx) / 2), latitude=float((miny + maxy) / 2),
                         zoom=zoom, pitch=pitch, bearing=bearing)


def _exterior_rings(polygons: np.ndarray) -> list[list[list[float]]]:
    rings = shapely.get_exterior_ring(polygons)
    return [np.asarray(r.coords)[:, :2].round(7).tolist() for r in rings]
