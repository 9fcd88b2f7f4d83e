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
