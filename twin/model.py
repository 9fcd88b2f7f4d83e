"""The twin's domain types: what the queries hand to the rest of the system.

Plain frozen dataclasses with no I/O, so rules, dispatch and the dashboard
can be tested without a database. Geometry travels as shapely objects in
EPSG:4326.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shapely.geometry.base import BaseGeometry

#: Special-care flags a resident may carry (特殊关爱人群).
CARE_FLAGS: tuple[str, ...] = ("elderly_alone", "elderly", "child", "disabled", "chronic_illness")


@dataclass(frozen=True, slots=True)
class Building:
    id: str
    community_id: str
    grid_id: str | None
    name: str
    usage: str
    floors: int
    units_per_floor: int
    height_m: float
    footprint: BaseGeometry


@dataclass(frozen=True, slots=True)
class Unit:
    id: str
    building_id: str
    floor: int
    number: str
    occupancy: str


@dataclass(frozen=True, slots=True)
class FamilyContact:
    name: str
    relation: str
    phone: str


@dataclass(frozen=True, slots=True)
class Resident:
    id: str
    unit_id: str
    name: str
    phone: str
    gender: str
    age_band: str
    care_flags: tuple[str, ...] = ()
    family_contacts: tuple[FamilyContact, ...] = ()

    @property
    def needs_care(self) -> bool:
        return bool(self.care_flags)


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    type: str
    name: str
    location: BaseGeometry
    building_id: str | None = None
    floor: int | None = None
    unit_id: str | None = None
    facility_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the live loop knows of a device without asking the database.

    Ingest's directory fills only the identity (id, type, community): that is all
    decoding needs. The rule engine's snapshot fills the placement too (name,
    position, building, floor, unit, facility, grid), for enrichment.
    """

    id: str
    type: str
    community_id: str
    name: str = ""
    lon: float = math.nan
    lat: float = math.nan
    building_id: str | None = None
    floor: int | None = None
    unit_id: str | None = None
    facility_id: str | None = None
    grid_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceState:
    """The latest known state of one device: online flag and last value per metric."""

    device: Device
    online: bool | None
    last_seen: datetime | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NearbyDevice:
    device: Device
    distance_m: float


@dataclass(frozen=True, slots=True)
class BuildingContents:
    """Everything in one building, as a grid worker's drill-down starts from it."""

    building: Building
    entrances: int
    units: int
    occupied_units: int
    residents: int
    care_residents: int
    devices_by_type: dict[str, int]
    facilities_by_kind: dict[str, int]
