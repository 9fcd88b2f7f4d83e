"""The simulated community: its devices as arrays, the shared state, and what a domain is.

A :class:`World` holds what every domain module needs and nothing domain
specific: the device table as numpy arrays (one row per device), the one
random generator and the one :class:`~ingest.simulator.clock.Clock`, the
report schedule, the devices that fell silent, the events waiting to go out,
and the active incidents. Each domain module (access, cameras, ...) is a
:class:`Domain` over the world that plays some device types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ingest.simulator.clock import Clock
from twin.device_types import DEVICE_TYPES
from twin.walkgraph import WalkGraph

if TYPE_CHECKING:
    from ingest.simulator.incidents import Active, Incidents

#: An event a device sends: (time, device row, kind, fields); kind "status" is a status.
Event = tuple[float, int, str, dict[str, Any]]
#: Readings of one device at one time: (time, device row, metric -> value).
Reading = tuple[float, int, dict[str, Any]]

#: Seconds between two telemetry reports of a device, by type (heartbeats of real products).
REPORT_INTERVAL_S: dict[str, float] = {
    "access_gate": 600, "access_door": 600, "ai_camera": 600, "smoke_detector": 3600,
    "co_sensor": 60, "exhaust_fan": 300, "speaker": 1800, "water_leak_sensor": 1800,
    "trash_bin_sensor": 600, "soil_sensor": 900, "irrigation_valve": 300,
    "air_quality_sensor": 300, "ev_charger": 300, "water_meter": 900, "power_meter": 900,
    "smart_home_hub": 900, "elevator_monitor": 60, "iot_gateway": 300, "pump_monitor": 60,
    "staff_badge": 900,
}
CODES: tuple[str, ...] = tuple(DEVICE_TYPES)


@dataclass(frozen=True, slots=True)
class Community:
    """The frames of one community a simulation needs, with the twin's column names.

    devices: id, community_id, type, building_id, floor, unit_id, facility_id;
    residents: id, unit_id, building_id, care_flags, age_band;
    facilities: id, kind, name, building_id; buildings: id, name.
    Optional, for staff on patrol: staff (id, shift, badge_id, post_lon, post_lat) and
    the walkway graph. Missing references are None (or NA).
    """

    devices: pd.DataFrame
    residents: pd.DataFrame
    facilities: pd.DataFrame
    buildings: pd.DataFrame
    staff: pd.DataFrame | None = None
    walkway: WalkGraph | None = None

    def __post_init__(self) -> None:
        _require(self.devices, "devices", ("id", "community_id", "type", "building_id", "floor",
                                           "unit_id", "facility_id"))
        _require(self.residents, "residents", ("id", "unit_id", "building_id", "care_flags",
                                               "age_band"))
        _require(self.facilities, "facilities", ("id", "kind", "name", "building_id"))
        _require(self.buildings, "buildings", ("id", "name"))
        if self.staff is not None:
            _require(self.staff, "staff", ("id", "shift", "badge_id", "post_lon", "post_lat"))
        communities = self.devices["community_id"].unique()
        if len(communities) != 1:
            raise ValueError(f"the devices must belong to one community, not {len(communities)}"
                             f" ({', '.join(map(str, communities[:5]))})")
        unknown = set(self.devices["type"]) - set(DEVICE_TYPES)
        if unknown:
            raise ValueError(f"device types missing from the registry: {sorted(unknown)}")

    @property
    def id(self) -> str:
        return str(self.devices["community_id"].iloc[0])


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a device answers a command: the ``ok`` and ``detail`` of its ack."""

    ok: bool
    detail: str


class World:
    """The devices of one community and the state every domain shares.

    Building it draws the report phases from ``rng`` (the first draws of a
    simulation, so that the stream depends only on the seed).
    """

    def __init__(self, community: Community, *, clock: Clock, rng: np.random.Generator,
                 incidents: Incidents) -> None:
        self.community = community
        self.clock = clock
        self.rng = rng
        self.incidents = incidents
        self.cid = community.id
        #: Stamps event and session ids, so that runs from different starts do not clash.
        self.tag = str(int(clock.now))
        d = community.devices.reset_index(drop=True)
        self.ids = d["id"].to_numpy(dtype=object)
        self.index = {device: i for i, device in enumerate(self.ids)}
        self.type = d["type"].to_numpy(dtype=object)
        self.building = optional(d["building_id"])
        self.facility = optional(d["facility_id"])
        self.unit = optional(d["unit_id"])
        self.floor = pd.to_numeric(d["floor"], errors="coerce").to_numpy(dtype=float,
                                                                          na_value=np.nan)
        n = len(d)
        self.n = n
        self.rows = {code: np.flatnonzero(self.type == code) for code in DEVICE_TYPES}
        self.code = np.array([CODES.index(c) for c in self.type], dtype=int)
        self.interval = np.array([REPORT_INTERVAL_S[c] for c in self.type], dtype=float)
        self.phase = rng.uniform(0, self.interval)
        #: Devices that have gone offline: they send nothing more.
        self.silent = np.zeros(n, dtype=bool)
        #: Devices that report their readings in the next tick, off schedule.
        self.report_now = np.zeros(n, dtype=bool)
        #: Events that happened between ticks (an incident's start, a command), sent next tick.
        self.outbox: list[Event] = []
        #: Readings a device sends out of its schedule (a hub reporting its new mode).
        self.extra_readings: list[Reading] = []
        f = community.facilities
        self.facility_kind = dict(zip(f["id"], f["kind"]))
        self.facility_building = dict(zip(f["id"], optional(f["building_id"])))

    def at(self, facility: object, code: str) -> np.ndarray:
        """Rows of the devices of type ``code`` at ``facility``."""
        rows = self.rows[code]
        return rows[self.facility[rows] == facility]


class Domain:
    """A domain of the device registry, played: its devices' state, readings and events.

    A subclass names the device ``types`` it plays and implements
    :meth:`read` for them; the other hooks do nothing unless overridden. The
    simulation calls them once per tick, with the world's clock on that tick.
    """

    types: tuple[str, ...] = ()

    def __init__(self, world: World) -> None:
        self.world = world

    def update(self) -> list[Event]:
        """Advance state that evolves over the tick (fill levels, sessions); its events."""
        return []

    def live(self) -> list[Event]:
        """The daily life of the tick: events people and things cause."""
        return []

    def incident_events(self) -> list[Event]:
        """Events the active incidents cause in the tick."""
        return []

    def begin(self, active: Active) -> None:
        """What happens the moment an incident starts."""

    def read(self, code: str, rows: np.ndarray, t: np.ndarray) -> dict[str, Any]:
        """Readings of devices ``rows`` (of type ``code``) at times ``t``: metric -> values."""
        raise NotImplementedError(f"{type(self).__name__} does not read {code}")

    def obey(self, i: int, command: str, args: dict[str, Any]) -> Outcome:
        """Carry out ``command`` on device row ``i`` at the clock's time; the ack to send."""
        return unknown_command(self.world.type[i], command)


def unknown_command(code: str, command: str) -> Outcome:
    known = DEVICE_TYPES[code].commands
    return Outcome(False, f"unknown command {command!r} for a {code}; it obeys: "
                          f"{', '.join(known) if known else 'no commands'}")


def in_range(code: str, metric: str, values: object) -> list[Any]:
    """Values as plain Python, numbers clipped to the registry's physical range."""
    spec = DEVICE_TYPES[code].metrics[metric]
    if spec.is_text:
        return [str(v) for v in values]  # type: ignore[attr-defined]
    lo = -np.inf if spec.min is None else spec.min
    hi = np.inf if spec.max is None else spec.max
    return np.clip(np.asarray(values, dtype=float), lo, hi).tolist()


def optional(column: pd.Series) -> np.ndarray:
    """Object array with None for missing values."""
    values = column.astype(object).to_numpy()
    return np.asarray(np.where(pd.isna(values), None, values))


def listing(names: Iterable[str], limit: int = 12) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" ... ({len(names)} in all)" if len(names) > limit else "")


def _require(frame: pd.DataFrame, name: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {name} frame lacks the column(s) {', '.join(missing)}")
