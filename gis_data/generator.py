"""Generate a realistic sample community, or a whole district of them for benchmarks.

A community is planned once in local metres (:mod:`gis_data.layout`,
:mod:`gis_data.walkway`, :mod:`gis_data.devices`, :mod:`gis_data.population`)
and then stamped: every table of the plan is repeated for each community,
ids get the community's prefix and coordinates its offset in the UTM zone,
then everything is projected to EPSG:4326 in one vectorised pass. People and
flat devices are drawn for all communities at once, so a district of 5,000
buildings and 1.3 million residents costs a few numpy calls, not loops.

The same seed always gives the same dataset (and the same files).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyproj
import shapely

from gis_data.dataset import COORD_DECIMALS, Dataset, conform
from gis_data.devices import draw_unit_devices, plan_devices
from gis_data.layout import Layout, plan_layout
from gis_data.names import person_names, phone_numbers
from gis_data.population import (
    VACANT_SHARE,
    draw_occupancy,
    draw_residents,
    plan_staff,
    plan_units,
)
from gis_data.walkway import build_walkway
from twin.device_types import BADGE_TYPE
from twin.walkgraph import WalkGraph, walk_frames

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

#: Optics Valley (光谷), Wuhan: where the sample community stands.
DEFAULT_CENTER: tuple[float, float] = (114.4105, 30.4925)
CITY = "武汉市"
#: Share of occupied flats with a smart-home hub, and of flats with their own meters.
HUB_RATE = 0.10
METER_RATE = 0.06
#: Centre-to-centre spacing of the communities of a district (metres east, north).
DISTRICT_SPACING = (600.0, 500.0)
#: The moment staff positions were last reported: fixed, so output never depends on "now".
POSITIONS_AT = pd.Timestamp("2025-06-02T02:00:00Z")

_PLACES = ("光谷", "南湖", "关山", "珞瑜", "花山", "汤逊", "紫菘", "豹澥", "佛祖岭", "流芳",
           "左岭", "龙泉")
_KINDS = ("花园", "家园", "雅苑", "华庭", "新城", "名居", "春晓", "景园")


def generate_community(*, seed: int = 7, community_id: str = "wh-guanggu",
                       name: str = "光谷花园社区",
                       center: tuple[float, float] = DEFAULT_CENTER,
                       progress: Progress | None = None) -> Dataset:
    """Generate one high-rise residential community (小区) around ``center``.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives the same dataset.
    community_id
        Prefix of every id ('wh-guanggu-b01', 'wh-guanggu-r000123' ...).
    name
        Display name of the community.
    center
        Longitude, latitude of the site's centre; metric work is done in its UTM zone.
    progress
        A running ``rich.progress.Progress`` to show the steps on, or None.

    Returns
    -------
    Dataset
        About 34 buildings, 3,000 flats, 7,500 residents and 2,000 devices.
    """
    if not community_id:
        raise ValueError("community_id must not be empty")
    rng = np.random.default_rng(seed)
    steps = _Steps(progress, f"community {community_id}")
    plan = _plan(rng)
    steps.done("planned the site")
    srid = _utm_srid(*center)
    origin = np.array(pyproj.Transformer.from_crs(4326, srid, always_xy=True).transform(*center))
    sites = _Sites(ids=np.array([community_id]), names=np.array([name]),
                   origin=origin[None, :], srid=srid)
    return _assemble(plan, sites, rng, hub_rate=HUB_RATE, meter_rate=METER_RATE, steps=steps)


def generate_district(*, buildings: int, devices: int, seed: int = 7,
                      progress: Progress | None = None) -> Dataset:
    """Generate a district of communities for benchmarks, close to the given counts.

    Tiles ``ceil(buildings / buildings per community)`` communities in a grid
    over Wuhan ('wh-c001', 'wh-c002' ...), each with its own walkway network,
    then scales the devices inside flats (smart-home hubs, per-flat meters) so
    that the device total comes close to ``devices``. The count cannot go below
    the devices fixed to the sites (about 1,400 per community) nor above about
    two per flat more.

    Parameters
    ----------
    buildings
        Buildings wanted (rounded up to whole communities).
    devices
        Devices wanted.
    seed
        Seed of ``numpy.random.default_rng``.
    progress
        A running ``rich.progress.Progress`` to show the steps on, or None.
    """
    if buildings < 1:
        raise ValueError(f"buildings must be at least 1, got {buildings}")
    if devices < 0:
        raise ValueError(f"devices must not be negative, got {devices}")
    rng = np.random.default_rng(seed)
    steps = _Steps(progress, f"district of {buildings} buildings")
    plan = _plan(rng)
    steps.done("planned the site")
    count = math.ceil(buildings / len(plan.layout.buildings))
    srid = _utm_srid(*DEFAULT_CENTER)
    centre = np.array(pyproj.Transformer.from_crs(4326, srid, always_xy=True)
                      .transform(*DEFAULT_CENTER))
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    k = np.arange(count)
    cell = np.column_stack([k % columns - (columns - 1) / 2, k // columns - (rows - 1) / 2])
    width = max(3, len(str(count)))
    sites = _Sites(
        ids=np.array([f"wh-c{j + 1:0{width}d}" for j in k]),
        names=np.array([_district_name(j) for j in range(count)]),
        origin=centre + cell * np.array(DISTRICT_SPACING),
        srid=srid,
    )
    fixed = count * len(plan.devices)
    flats = count * len(plan.units)
    occupied = flats * (1 - VACANT_SHARE)
    wanted = max(devices - fixed, 0)
    hub_rate = min(HUB_RATE, wanted / occupied) if occupied else 0.0
    meter_rate = min(max((wanted - hub_rate * occupied) / (2 * flats), 0.0), 1.0) if flats else 0.0
    return _assemble(plan, sites, rng, hub_rate=hub_rate, meter_rate=meter_rate, steps=steps)


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything of one community in local metres, ids as suffixes."""

    layout: Layout
    walkway: WalkGraph
    units: pd.DataFrame
    devices: pd.DataFrame
    staff: pd.DataFrame


@dataclass(frozen=True, slots=True)
class _Sites:
    """The communities to stamp the plan onto: ids, names, UTM centres."""

    ids: np.ndarray
    names: np.ndarray
    origin: np.ndarray
    srid: int

    def __len__(self) -> int:
        return len(self.ids)


class _Steps:
    """Advance a rich progress task, if there is one."""

    TOTAL = 11  # the done() calls of one generation

    def __init__(self, progress: Progress | None, description: str) -> None:
        self._description = description
        self._task: tuple[Progress, TaskID] | None = None if progress is None else (
            progress, progress.add_task(description, total=self.TOTAL))

    def done(self, what: str) -> None:
        if self._task is not None:
            progress, task = self._task
            progress.update(task, advance=1, description=f"{self._description}: {what}")


def _plan(rng: np.random.Generator) -> _Plan:
    layout = plan_layout(rng)
    return _Plan(
        layout=layout, walkway=build_walkway(layout), units=plan_units(layout.buildings),
        devices=plan_devices(layout, rng), staff=plan_staff(layout.grids["id"].to_numpy()),
    )


def _assemble(plan: _Plan, sites: _Sites, rng: np.random.Generator, *, hub_rate: float,
              meter_rate: float, steps: _Steps) -> Dataset:
    stamp = _Stamp(sites)
    layout = plan.layout
    community = conform("community", pd.DataFrame({
        "id": sites.ids, "name": sites.names, "city": CITY, "local_srid": sites.srid,
        "geometry": stamp.geometry(np.array([layout.boundary])),
    }))
    workers = plan.staff[plan.staff["role"] == "grid_worker"]
    worker_of = dict(zip(workers["grid_id"], workers["id"]))
    g = layout.grids
    grid = conform("grid", pd.DataFrame({
        "id": stamp.ids(g["id"]), "community_id": stamp.community(len(g)),
        "name": stamp.tile(g["name"]), "grid_worker_id": stamp.ids(g["id"].map(worker_of)),
        "geometry": stamp.geometry(g["geometry"]),
    }))
    steps.done("grids")
    b = layout.buildings
    building = conform("building", pd.DataFrame({
        "id": stamp.ids(b["id"]), "community_id": stamp.community(len(b)),
        "grid_id": stamp.ids(b["grid_id"]), "name": stamp.tile(b["name"]),
        "usage": stamp.tile(b["usage"]), "floors": stamp.tile(b["floors"]),
        "units_per_floor": stamp.tile(b["units_per_floor"]),
        "height_m": stamp.tile(b["height_m"]), "height_source": stamp.tile(b["height_source"]),
        "geometry": stamp.geometry(b["geometry"]),
    }))
    e = layout.entrances
    entrance = conform("entrance", pd.DataFrame({
        "id": stamp.ids(e["id"]), "building_id": stamp.ids(e["building_id"]),
        "name": stamp.tile(e["name"]), "geometry": stamp.points(e["x"], e["y"]),
    }))
    steps.done("buildings")
    u = plan.units
    flats = pd.DataFrame({
        "id": stamp.ids(u["id"]), "building_id": stamp.ids(u["building_id"]),
        "floor": stamp.tile(u["floor"]), "number": stamp.tile(u["number"]),
        "building_name": stamp.tile(u["building_name"]),
        "x": stamp.tile(u["x"]), "y": stamp.tile(u["y"]),
    })
    flat_community = stamp.community_index(len(u))
    occupancy = draw_occupancy(rng, len(flats))
    unit = conform("unit", flats.assign(occupancy=occupancy))
    steps.done("flats")
    resident = conform("resident", draw_residents(
        rng, unit_ids=flats["id"].to_numpy(), occupancy=occupancy, community=flat_community,
        prefixes=sites.ids,
    ))
    steps.done("residents")
    f = layout.facilities
    facility = conform("facility", pd.DataFrame({
        "id": stamp.ids(f["id"]), "community_id": stamp.community(len(f)),
        "kind": stamp.tile(f["kind"]), "name": stamp.tile(f["name"]),
        "building_id": stamp.ids(f["building_id"]), "floor": stamp.tile(f["floor"]),
        "geometry": stamp.points(f["x"], f["y"]), "area": stamp.geometry(f["area"]),
    }))
    steps.done("facilities")
    devices = _devices(plan, stamp, rng, flats, flat_community, occupied=occupancy != "vacant",
                       hub_rate=hub_rate, meter_rate=meter_rate)
    worn = devices["wearer"].notna().to_numpy()
    badge_of = dict(zip(devices["wearer"].to_numpy()[worn], devices["id"].to_numpy()[worn]))
    device = conform("device", devices)
    steps.done("devices")
    staff = conform("staff", _staff(plan, stamp, rng, badge_of))
    steps.done("staff")
    n, w = walk_frames(plan.walkway)
    walk_node = conform("walk_node", pd.DataFrame({
        "id": stamp.ids(n["id"]), "community_id": stamp.community(len(n)),
        "kind": stamp.tile(n["kind"]), "ref_id": stamp.ids(n["ref_id"]),
        "geometry": stamp.geometry(n["geometry"]),
    }))
    steps.done("walkway nodes")
    lines = stamp.geometry(w["geometry"])
    walk_edge = conform("walk_edge", pd.DataFrame({
        "id": stamp.ids(w["id"]), "community_id": stamp.community(len(w)),
        "source": stamp.ids(w["source"]), "target": stamp.ids(w["target"]),
        "kind": stamp.tile(w["kind"]), "length_m": stamp.metric_length(lines),
        "geometry": lines,
    }))
    steps.done("walkway edges")
    dataset = Dataset(
        community=community, grid=grid, building=building, entrance=entrance, unit=unit,
        resident=resident, facility=facility, device=device, staff=staff,
        walk_node=walk_node, walk_edge=walk_edge,
    )
    steps.done("done")
    return dataset


def _devices(plan: _Plan, stamp: _Stamp, rng: np.random.Generator, flats: pd.DataFrame,
             flat_community: np.ndarray, *, occupied: np.ndarray, hub_rate: float,
             meter_rate: float) -> pd.DataFrame:
    """Fixed devices of every community, then its flat devices, numbered per community."""
    d = plan.devices
    fixed = pd.DataFrame({
        "type": stamp.tile(d["type"]), "name": stamp.tile(d["name"]),
        "building_id": stamp.ids(d["building_id"]),
        "floor": stamp.tile(d["floor"].to_numpy(dtype=float, na_value=np.nan)),
        "unit_id": None, "facility_id": stamp.ids(d["facility_id"]),
        "x": stamp.tile(d["x"]), "y": stamp.tile(d["y"]),
        "c": stamp.community_index(len(d)),
    })
    inside = draw_unit_devices(rng, flats, occupied=occupied, hub_rate=hub_rate,
                               meter_rate=meter_rate)
    inside["c"] = flat_community[inside.pop("flat").to_numpy()]
    # Staff badges last, so that adding them left every other device's id as it was.
    wearers = plan.staff[plan.staff["badge"]]
    post = _post_facility(plan.layout, wearers["post_kind"])
    f = plan.layout.facilities.set_index("id")
    badges = pd.DataFrame({
        "type": BADGE_TYPE, "name": stamp.tile("工牌" + wearers["id"].str.removeprefix("-")),
        "building_id": None, "floor": np.nan, "unit_id": None, "facility_id": None,
        "x": stamp.tile(f.loc[post, "x"].to_numpy(dtype=float)),
        "y": stamp.tile(f.loc[post, "y"].to_numpy(dtype=float)),
        "c": stamp.community_index(len(wearers)), "wearer": stamp.ids(wearers["id"]),
    })
    both = pd.concat([fixed.assign(wearer=None), inside.assign(wearer=None), badges],
                     ignore_index=True)
    both = both.iloc[np.argsort(both["c"].to_numpy(), kind="stable")].reset_index(drop=True)
    c = both["c"].to_numpy()
    seq = np.arange(len(c)) - np.searchsorted(c, c) + 1
    width = max(5, len(str(int(seq.max(initial=0)))))
    ids = np.strings.add(np.strings.add(stamp.sites.ids[c].astype(str), "-d"),
                         np.strings.zfill(seq.astype(str), width))
    return pd.DataFrame({
        "id": ids, "community_id": stamp.sites.ids[c], "type": both["type"].to_numpy(),
        "name": both["name"].to_numpy(), "building_id": both["building_id"].to_numpy(),
        "floor": pd.array(both["floor"].to_numpy(dtype=float), dtype="Int64"),
        "unit_id": both["unit_id"].to_numpy(), "facility_id": both["facility_id"].to_numpy(),
        "credentials_id": np.strings.add("cred-", ids),
        "geometry": stamp.points(both["x"].to_numpy(), both["y"].to_numpy(), community=c),
        "wearer": both["wearer"].to_numpy(),
    })


def _post_facility(layout: Layout, kinds: pd.Series) -> np.ndarray:
    """The plan id of the first facility of each kind: a staff member's post."""
    f = layout.facilities
    first = f.drop_duplicates("kind").set_index("kind")["id"]
    return first.loc[kinds.to_numpy()].to_numpy()


def _staff(plan: _Plan, stamp: _Stamp, rng: np.random.Generator,
           badge_of: dict[str, str]) -> pd.DataFrame:
    """The roster of every community, with names, phones, on-duty positions on roads, their
    posts and badges (``badge_of``: staff id -> badge device id).

    The night cover is drawn after the rest of the roster, so that adding it left the
    others' names, phones and positions as the seed made them.
    """
    s = plan.staff
    cover = s["night_cover"].to_numpy(dtype=bool)
    parts = [_people(plan, stamp, rng, s[~cover]), _people(plan, stamp, rng, s[cover])]
    people = pd.concat([p for p in parts if len(p)], ignore_index=True)
    people["badge_id"] = [badge_of.get(i) for i in people["id"]]
    return people


def _people(plan: _Plan, stamp: _Stamp, rng: np.random.Generator,
            s: pd.DataFrame) -> pd.DataFrame:
    """Staff rows of ``s`` (plan rows) for every community, drawn from ``rng``."""
    n = len(s) * len(stamp.sites)
    gender = np.where(rng.random(n) < 0.5, "F", "M")
    on_duty = stamp.tile(s["shift"]) != "night"
    walkway = plan.walkway
    roads = walkway.edge_lines[walkway.edge_kind == "road"]
    spot = shapely.line_interpolate_point(roads[rng.integers(0, len(roads), n)], rng.random(n),
                                          normalized=True)
    xy = shapely.get_coordinates(spot)
    where = stamp.points(xy[:, 0], xy[:, 1], community=stamp.community_index(len(s)))
    seconds = rng.integers(0, 30 * 60, n)
    at = POSITIONS_AT - pd.to_timedelta(seconds, unit="s")
    return pd.DataFrame({
        "id": stamp.ids(s["id"]), "community_id": stamp.community(len(s)),
        "name": person_names(rng, gender), "phone": phone_numbers(rng, n),
        "role": stamp.tile(s["role"]), "skills": stamp.tile(s["skills"]),
        "grid_id": stamp.ids(s["grid_id"]), "shift": stamp.tile(s["shift"]),
        "geometry": np.where(on_duty, where, np.array(None)),  # None when off duty
        "position_at": pd.Series(at).where(on_duty),
        "post_id": stamp.ids(pd.Series(_post_facility(plan.layout, s["post_kind"]))),
    })


class _Stamp:
    """Repeat plan columns for every site: prefix ids, offset and project coordinates."""

    def __init__(self, sites: _Sites) -> None:
        self.sites = sites
        self._to_lonlat = pyproj.Transformer.from_crs(sites.srid, 4326, always_xy=True)
        self._to_metric = pyproj.Transformer.from_crs(4326, sites.srid, always_xy=True)

    def community_index(self, n: int) -> np.ndarray:
        return np.repeat(np.arange(len(self.sites)), n)

    def community(self, n: int) -> np.ndarray:
        return np.repeat(self.sites.ids, n)

    def tile(self, values: pd.Series | np.ndarray) -> np.ndarray:
        values = values.to_numpy() if isinstance(values, pd.Series) else values
        return np.tile(values, len(self.sites))

    def ids(self, suffixes: pd.Series) -> np.ndarray:
        """Community id + suffix; missing suffixes stay None."""
        raw = suffixes.to_numpy().astype(object)
        missing = np.tile(pd.isna(raw), len(self.sites))
        text = np.strings.add(self.community(len(raw)).astype(str),
                              self.tile(np.where(pd.isna(raw), "", raw).astype(str)))
        if not missing.any():
            return text
        out = text.astype(object)
        out[missing] = None
        return out

    def points(self, x: object, y: object, *, community: np.ndarray | None = None) -> np.ndarray:
        """Points from plan coordinates (tiled over sites, or of the given ``community``)."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        if community is None:
            community = self.community_index(len(x))
            x, y = self.tile(x), self.tile(y)
        lon, lat = self._lonlat(x + self.sites.origin[community, 0],
                                y + self.sites.origin[community, 1])
        return shapely.points(lon, lat)

    def geometry(self, geoms: pd.Series | np.ndarray) -> np.ndarray:
        tiled = self.tile(np.asarray(geoms, dtype=object))
        count = shapely.get_num_coordinates(tiled)
        offset = np.repeat(self.sites.origin[self.community_index(len(geoms))], count, axis=0)

        def place(xy: np.ndarray) -> np.ndarray:
            return np.column_stack(self._lonlat(xy[:, 0] + offset[:, 0], xy[:, 1] + offset[:, 1]))

        return shapely.transform(tiled, place)

    def metric_length(self, lines: np.ndarray) -> np.ndarray:
        """Length in metres of the final (rounded) lines, measured in the local UTM zone."""
        metric = shapely.transform(lines, lambda xy: np.column_stack(
            self._to_metric.transform(xy[:, 0], xy[:, 1])))
        return np.round(shapely.length(metric), 2)

    def _lonlat(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lon, lat = self._to_lonlat.transform(x, y)
        return np.round(lon, COORD_DECIMALS), np.round(lat, COORD_DECIMALS)


def _utm_srid(lon: float, lat: float) -> int:
    zone = int((lon + 180) // 6) + 1
    return (32600 if lat >= 0 else 32700) + zone


def _district_name(k: int) -> str:
    place = _PLACES[k % len(_PLACES)]
    kind = _KINDS[(k // len(_PLACES)) % len(_KINDS)]
    phase = k // (len(_PLACES) * len(_KINDS))
    return f"{place}{kind}社区" + (f"{phase + 1}期" if phase else "")
