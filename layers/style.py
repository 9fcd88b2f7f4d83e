"""Colours of the control room's map, in one place."""

from __future__ import annotations

RGBA = list[int]

BUILDING: RGBA = [96, 125, 160, 220]
BUILDING_CARE: RGBA = [190, 150, 90, 230]
WALKWAY: dict[str, RGBA] = {
    "road": [140, 140, 150, 255],
    "footway": [170, 190, 170, 255],
    "ramp": [200, 160, 90, 255],
    "steps": [200, 200, 120, 255],
    "link": [120, 150, 120, 200],
}
DEVICE_DOMAIN: dict[str, RGBA] = {
    "safety": [230, 80, 70, 230],
    "environment": [90, 190, 110, 230],
    "service": [80, 150, 230, 230],
    "activity": [200, 120, 220, 230],
    "equipment": [240, 180, 60, 230],
}

# --- the control room (dark theme) ------------------------------------------------------

GROUND: RGBA = [14, 24, 38, 255]
BOUNDARY_LINE: RGBA = [64, 140, 210, 255]
GREEN_AREA: RGBA = [28, 74, 52, 200]
GRID_LINE: RGBA = [90, 120, 160, 140]
#: Buildings with no active alarm on the large screen.
BUILDING_CALM: RGBA = [52, 86, 122, 235]
#: Worst active alarm of a building, worst first (twin.alarms.SEVERITIES).
SEVERITY: dict[str, RGBA] = {
    "critical": [235, 64, 72, 245],
    "major": [247, 132, 28, 245],
    "minor": [246, 200, 74, 240],
    "info": [86, 160, 240, 240],
}
DEVICE_STATE: dict[str, RGBA] = {
    "online": [80, 200, 150, 220],
    "offline": [130, 136, 150, 230],
    "alarm": [235, 64, 72, 255],
}
STAFF: dict[str, RGBA] = {
    "grid_worker": [0, 220, 255, 255],
    "security": [255, 90, 200, 255],
    "cleaning": [150, 230, 90, 255],
    "engineer": [255, 200, 60, 255],
    "manager": [255, 255, 255, 255],
}
PRIORITY: dict[str, RGBA] = {
    "urgent": [255, 70, 90, 255],
    "high": [255, 150, 40, 255],
    "normal": [90, 200, 255, 255],
    "low": [150, 170, 190, 255],
}
INCIDENT: RGBA = [255, 40, 60, 200]
