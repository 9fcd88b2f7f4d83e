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
    coords = [np.asarray(g.coords)[:, :2].round(6).tolist() for g in edges.geometry]
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
    """Rings as [lon, lat] lists, rounded to 6 decimals (about 0.1 m): a tenth of the JSON
    of full doubles, and finer than any footprint is surveyed."""
    rings = shapely.get_exterior_ring(polygons)
    return [np.asarray(r.coords)[:, :2].round(6).tolist() for r in rings]


# --- the control room's layers -----------------------------------------------------------
#
# The large screen draws a static base once (ground, green areas, walkways,
# buildings, devices) and a few live layers whose data the page patches key by
# key (see dashboard/live.py): devices that need attention, staff, routes of
# active work orders and camera incidents. The builders of live layers take
# no frame: their data arrives as `layerData` records built by the *_records
# functions below, which are pure too.

def ground_layer(boundary: gpd.GeoDataFrame, *, layer_id: str = "ground") -> pdk.Layer:
    """The community's own area as a dark ground with a bright outline: the offline base map."""
    records = [{"id": i, "polygon": ring} for i, ring in
               zip(boundary["id"], _exterior_rings(boundary.geometry.to_numpy()), strict=True)]
    return pdk.Layer(
        "PolygonLayer", data=records, id=layer_id, get_polygon="polygon", filled=True,
        stroked=True, get_fill_color=style.GROUND, get_line_color=style.BOUNDARY_LINE,
        line_width_min_pixels=2, pickable=False,
    )


def area_layer(areas: gpd.GeoDataFrame, *, layer_id: str = "green", color: list[int] | None = None,
               line_color: list[int] | None = None) -> pdk.Layer:
    """Flat areas (green spaces, grids) drawn on the ground."""
    records = [{"id": i, "polygon": ring} for i, ring in
               zip(areas["id"], _exterior_rings(areas.geometry.to_numpy()), strict=True)]
    return pdk.Layer(
        "PolygonLayer", data=records, id=layer_id, get_polygon="polygon",
        filled=color is not None, stroked=line_color is not None,
        get_fill_color=color or [0, 0, 0, 0], get_line_color=line_color or [0, 0, 0, 0],
        line_width_min_pixels=1, pickable=False,
    )


def alarm_building_layer(buildings: gpd.GeoDataFrame, *, layer_id: str = "buildings") -> pdk.Layer:
    """Buildings extruded, in the calm colour; the page overrides each one's colour by its
    worst active alarm (``featureColors``), so a change recolours one building, not the map."""
    layer = building_layer(buildings, layer_id=layer_id)
    layer.get_fill_color = style.BUILDING_CALM
    layer.get_line_color = [24, 40, 60, 255]
    layer.wireframe = False
    for record, grid in zip(layer.data, buildings["grid_id"], strict=True):
        record["grid"] = grid
    return layer


def state_device_layer(devices: gpd.GeoDataFrame, *, layer_id: str = "devices") -> pdk.Layer:
    """Every device as a small point, online colour by default; the page overrides the
    colour of devices that are offline or alarming (``featureColors``)."""
    layer = device_layer(devices, layer_id=layer_id)
    for record in layer.data:
        record["color"] = style.DEVICE_STATE["online"]
    layer.get_radius = 1.2
    layer.radius_min_pixels = 1.5
    return layer


def live_point_layer(layer_id: str, *, radius: float, min_pixels: float, stroked: bool = True,
                     pickable: bool = True) -> pdk.Layer:
    """A point layer whose data the page fills from ``layerData`` (records with position, color)."""
    return pdk.Layer(
        "ScatterplotLayer", data=[], id=layer_id, get_position="position",
        get_fill_color="color", get_line_color=[255, 255, 255, 220], stroked=stroked,
        line_width_min_pixels=1, get_radius=radius, radius_min_pixels=min_pixels,
        pickable=pickable, billboard=True,
    )


def live_path_layer(layer_id: str = "routes") -> pdk.Layer:
    """Routes of active work orders, from ``layerData`` (records with path, color)."""
    return pdk.Layer(
        "PathLayer", data=[], id=layer_id, get_path="path", get_color="color", get_width=2.5,
        width_min_pixels=3, cap_rounded=True, joint_rounded=True, pickable=True,
    )


def severity_colors(building_severity: dict[str, str]) -> dict[str, list[int]]:
    """{building: worst severity} -> {building: colour}: the buildings layer's overrides."""
    return {b: style.SEVERITY[s] for b, s in building_severity.items()}


def device_records(rows: list[dict]) -> dict[str, dict]:
    """Devices that need attention, keyed by id. ``tone`` is the worst open alarm's severity
    or "offline"; the page colours by it (LIVE_COLORS), so records carry no colour."""
    return {
        r["id"]: {
            "id": r["id"], "type": r["type"], "tone": (r.get("severity") or "critical")
            if r["state"] == "alarm" else "offline",
            "building": r.get("building") or "", "floor": "" if r.get("floor") is None else r["floor"],
            "position": [round(r["lon"], 6), round(r["lat"], 6),
                         max(0.0, float(r.get("floor") or 0)) * 3.0],
        }
        for r in rows
    }


def staff_records(rows: list[dict]) -> dict[str, dict]:
    """Staff with a known position, keyed by id; coloured by role on the page."""
    return {
        r["id"]: {"id": r["id"], "name": r["name"], "role": r["role"],
                  "position": [round(r["lon"], 6), round(r["lat"], 6)]}
        for r in rows
    }


def route_records(rows: list[dict]) -> dict[str, dict]:
    """Routes of active work orders, keyed by order id; coloured by priority on the page."""
    return {
        str(r["id"]): {"id": r["id"], "code": r["code"], "title": r["title"], "state": r["state"],
                       "priority": r["priority"],
                       "path": [[round(x, 6), round(y, 6)] for x, y in r["path"]]}
        for r in rows
    }


#: How the live layers are coloured: by a field of their records (TwinDeck's colorBy).
LIVE_COLORS: dict[str, dict] = {
    "attention": {"field": "tone", "colors": {**style.SEVERITY,
                                              "offline": style.DEVICE_STATE["offline"]}},
    "staff": {"field": "role", "colors": style.STAFF, "default": [255, 255, 255, 255]},
    "routes": {"field": "priority", "colors": style.PRIORITY, "accessor": "getColor"},
    "incidents": {"field": "kind", "colors": {}, "default": style.INCIDENT},
}


def incident_records(rows: list[dict]) -> dict[str, dict]:
    """Camera incidents (open alarms on cameras), keyed by alarm id: the pulsing layer."""
    return {
        str(r["id"]): {"id": r["id"], "title": r["title"],
                       "position": [round(r["lon"], 6), round(r["lat"], 6), 2.0]}
        for r in rows
    }
