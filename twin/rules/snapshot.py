"""The twin as the rule engine sees it: one community's places, people and devices in memory.

Built once per community by an adapter query (`twin.rules.store.load_snapshot`)
and rebuilt on reload, so that enrichment (which building, which residents,
which speakers within 50 m) never waits for the database while a reading is
evaluated. Distances are metres on a local equirectangular projection round
the community, good to well under a metre across a district.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from shapely.geometry import Point, Polygon
from shapely.prepared import prep

from twin.model import DeviceInfo

_EARTH_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class FacilityInfo:
    id: str
    kind: str
    name: str
    lon: float
    lat: float
    building_id: str | None = None
    area: Polygon | None = None


@dataclass(frozen=True, slots=True)
class BuildingInfo:
    id: str
    community_id: str
    name: str
    grid_id: str | None
    #: Where people go to it: its first entrance, else its centroid.
    lon: float
    lat: float


@dataclass(frozen=True, slots=True)
class UnitInfo:
    id: str
    building_id: str
    floor: int
    number: str


@dataclass(frozen=True, slots=True)
class ResidentInfo:
    id: str
    unit_id: str
    name: str
    age_band: str
    care_flags: tuple[str, ...] = ()
    #: ({"name", "relation", "phone"}, ...)
    family_contacts: tuple[dict[str, str], ...] = ()
    #: Per-resident hours for special care, by direction ("out", "in"); overrides defaults.
    care_hours: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GridInfo:
    id: str
    name: str
    worker_id: str | None


@dataclass(slots=True)
class Snapshot:
    """One community (or several) as dictionaries, plus the latest state the engine has seen."""

    devices: dict[str, DeviceInfo] = field(default_factory=dict)
    facilities: dict[str, FacilityInfo] = field(default_factory=dict)
    buildings: dict[str, BuildingInfo] = field(default_factory=dict)
    units: dict[str, UnitInfo] = field(default_factory=dict)
    residents: dict[str, ResidentInfo] = field(default_factory=dict)
    grids: dict[str, GridInfo] = field(default_factory=dict)
    #: staff id -> (name, role)
    staff: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: device id -> metric -> latest value (seeded from device_state, kept current by the engine)
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: device id -> last time heard from it
    last_seen: dict[str, datetime] = field(default_factory=dict)
    #: resident id -> direction ("in"/"out") -> time of the last access event seen
    last_access: dict[str, dict[str, datetime]] = field(default_factory=dict)
    #: Since when the twin has watched the gates (its oldest access event kept), so that an
    #: absence counts from the twin's known history, not from when the rules started.
    history_since: datetime | None = None
    _by_type: dict[str, list[str]] = field(default_factory=dict)
    _xy: dict[str, np.ndarray] = field(default_factory=dict)
    _origin: tuple[float, float] = (0.0, 0.0)
    _areas: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index()

    def index(self) -> None:
        """Build the lookups by type and the metric coordinates (after filling the dicts)."""
        by_type: dict[str, list[str]] = {}
        for d in self.devices.values():
            by_type.setdefault(d.type, []).append(d.id)
        self._by_type = by_type
        if self.devices:
            lons = [d.lon for d in self.devices.values()]
            lats = [d.lat for d in self.devices.values()]
            self._origin = (sum(lons) / len(lons), sum(lats) / len(lats))
        self._xy = {t: np.array([self.xy(self.devices[i].lon, self.devices[i].lat) for i in ids])
                    for t, ids in by_type.items()}
        self._areas = {f.id: prep(f.area) for f in self.facilities.values() if f.area is not None}

    # --- lookups -------------------------------------------------------------------------
    def of_type(self, device_type: str) -> list[str]:
        return self._by_type.get(device_type, [])

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        """Metres east and north of the community's centre."""
        lon0, lat0 = self._origin
        return (math.radians(lon - lon0) * _EARTH_M * math.cos(math.radians(lat0)),
                math.radians(lat - lat0) * _EARTH_M)

    def distance_m(self, a: tuple[float, float], b: tuple[float, float]) -> float:
        ax, ay = self.xy(*a)
        bx, by = self.xy(*b)
        return math.hypot(ax - bx, ay - by)

    def nearby(self, lon: float, lat: float, device_type: str, radius_m: float
               ) -> list[tuple[str, float]]:
        """Devices of a type within a radius of a point, nearest first: [(id, metres)]."""
        ids = self._by_type.get(device_type)
        if not ids:
            return []
        x, y = self.xy(lon, lat)
        d = np.hypot(self._xy[device_type][:, 0] - x, self._xy[device_type][:, 1] - y)
        hit = np.flatnonzero(d <= radius_m)
        order = hit[np.argsort(d[hit], kind="stable")]
        return [(ids[i], float(d[i])) for i in order]

    def in_facility(self, facility_id: str, lon: float, lat: float, margin_m: float) -> bool:
        """Inside the facility's area, or within margin_m of its point when it has none."""
        prepared = self._areas.get(facility_id)
        if prepared is not None:
            return bool(prepared.contains(Point(lon, lat)))
        f = self.facilities.get(facility_id)
        return f is not None and self.distance_m((f.lon, f.lat), (lon, lat)) <= margin_m

    def grid_of(self, device: DeviceInfo) -> str | None:
        if device.grid_id is not None:
            return device.grid_id
        b = self.buildings.get(device.building_id) if device.building_id else None
        return b.grid_id if b else None

    def care_residents(self, *, unit_id: str | None = None, building_id: str | None = None,
                       floor: int | None = None) -> list[ResidentInfo]:
        """Residents with care flags in a unit, or in a building (on one floor of it)."""
        out = []
        for r in self.residents.values():
            if not r.care_flags:
                continue
            if unit_id is not None and r.unit_id != unit_id:
                continue
            if building_id is not None:
                u = self.units.get(r.unit_id)
                if u is None or u.building_id != building_id or (
                        floor is not None and u.floor != floor):
                    continue
            out.append(r)
        return out

    def community_of_resident(self, resident_id: str) -> str:
        _, building = self.resident_place(resident_id)
        return building.community_id if building else ""

    def resident_place(self, resident_id: str) -> tuple[UnitInfo | None, BuildingInfo | None]:
        r = self.residents.get(resident_id)
        unit = self.units.get(r.unit_id) if r else None
        building = self.buildings.get(unit.building_id) if unit else None
        return unit, building
