"""The site plan of one community (小区), in local metric coordinates.

The plan is drawn once around the origin (x east, y north, metres, a UTM
zone once placed) and later stamped onto real coordinates, so a district of
hundreds of communities costs one plan. It follows the typical Chinese
high-rise layout: a walled site of 450 m x 350 m with a ring road inside the
wall, rows of slab buildings facing south along east-west roads, a north-south
spine from the main south gate, low-rise 洋房 and the clubhouse at the front,
the tallest towers at the back, a central garden in the middle.

Ids in the plan are suffixes ('-b01', '-b01-e1', '-f003', '-g2'); the
generator prefixes them with the community id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

import numpy as np
import pandas as pd
import shapely
from shapely.geometry import Polygon, box

#: Half extents of the walled site (metres).
HALF_WIDTH, HALF_HEIGHT = 225.0, 175.0
#: The wall's corners are cut by this much.
CHAMFER = 15.0
#: Centre lines of the ring road, inside the wall.
RING_X, RING_Y = 213.0, 163.0
#: Road south of each building row; row 0 fronts the south ring road.
ROW_ROADS = (-163.0, -110.0, -57.0, -4.0, 49.0, 102.0)
#: Centre x of the building slots of a row (three each side of the spine at x = 0).
SLOTS = (-177.0, -106.0, -35.0, 35.0, 106.0, 177.0)
#: From a road's centre line to the south face of the buildings behind it.
SETBACK = 10.0
#: Households per community the plan aims at (towers drop to 3 per floor to get there).
TARGET_HOUSEHOLDS = 3000
#: Storey height and roof allowance used for building heights.
STOREY_M, ROOF_M = 3.0, 1.5

#: Floors of the towers per row, with their probabilities (taller at the back).
_TOWER_FLOORS: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] = {
    1: ((18, 26), (0.6, 0.4)),
    2: ((18, 26, 33), (0.3, 0.4, 0.3)),
    3: ((26, 33), (0.5, 0.5)),
    4: ((26, 33), (0.3, 0.7)),
    5: ((26, 33), (0.3, 0.7)),
}
#: Slots left free for the central garden.
_GARDEN_SLOTS = frozenset({(3, 2), (3, 3)})
#: Non-residential buildings at the front, next to the main gate: (row, slot) -> spec.
class _FrontBuilding(TypedDict):
    name: str
    usage: str
    width: float
    depth: float
    floors: int
    height_m: float
    entrances: int


_FRONT_BUILDINGS: dict[tuple[int, int], _FrontBuilding] = {
    (0, 2): {"name": "会所", "usage": "clubhouse", "width": 40.0, "depth": 18.0, "floors": 2,
             "height_m": 9.0, "entrances": 2},
    (0, 3): {"name": "商业楼", "usage": "commercial", "width": 44.0, "depth": 16.0, "floors": 2,
             "height_m": 9.6, "entrances": 3},
}
_GRID_X = (-HALF_WIDTH, -71.0, 71.0, HALF_WIDTH)
_GRID_Y = (-HALF_HEIGHT, -15.0, HALF_HEIGHT)
_NUMERALS = "一二三四五六七八九十"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where everything of one community stands, in metres around the origin.

    Frames carry id suffixes and metric coordinates; ``roads`` are the straight
    road centre lines as rows of ``x0, y0, x1, y1``.
    """

    boundary: Polygon
    grids: pd.DataFrame
    buildings: pd.DataFrame
    entrances: pd.DataFrame
    facilities: pd.DataFrame
    roads: np.ndarray


def plan_layout(rng: np.random.Generator) -> Layout:
    """Draw the site plan; ``rng`` decides heights, widths, entrances and households per floor."""
    boundary = _boundary()
    grids = _grids(boundary)
    buildings = _buildings(rng, grids)
    entrances = _entrances(rng, buildings)
    facilities = _facilities(rng, buildings, entrances)
    return Layout(
        boundary=boundary, grids=grids, buildings=buildings, entrances=entrances,
        facilities=facilities, roads=_roads(),
    )


def inward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Unit vectors pointing from the nearest wall into the site (for gate devices)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    east_west = np.abs(x) / HALF_WIDTH > np.abs(y) / HALF_HEIGHT
    return np.column_stack([np.where(east_west, -np.sign(x), 0.0),
                            np.where(east_west, 0.0, -np.sign(y))])


def _boundary() -> Polygon:
    w, h, c = HALF_WIDTH, HALF_HEIGHT, CHAMFER
    return shapely.orient_polygons(Polygon([
        (-w + c, -h), (w - c, -h), (w, -h + c), (w, h - c),
        (w - c, h), (-w + c, h), (-w, h - c), (-w, -h + c),
    ]))


def _roads() -> np.ndarray:
    x, y = RING_X, RING_Y
    ring = [(-x, -y, x, -y), (x, -y, x, y), (x, y, -x, y), (-x, y, -x, -y)]
    rows = [(-x, r, x, r) for r in ROW_ROADS[1:]]
    spine = [(0.0, -y, 0.0, y)]
    return np.array(ring + rows + spine, dtype=float)


def _grids(boundary: Polygon) -> pd.DataFrame:
    cells = [
        box(_GRID_X[i], _GRID_Y[j], _GRID_X[i + 1], _GRID_Y[j + 1])
        for j in range(len(_GRID_Y) - 1) for i in range(len(_GRID_X) - 1)
    ]
    areas = shapely.orient_polygons(shapely.intersection(np.array(cells), boundary))
    n = len(cells)
    return pd.DataFrame({
        "id": [f"-g{k + 1}" for k in range(n)],
        "name": [f"第{_NUMERALS[k]}网格" for k in range(n)],
        "geometry": areas,
    })


def _buildings(rng: np.random.Generator, grids: pd.DataFrame) -> pd.DataFrame:
    rows, slots, usage, floors, upf, names = [], [], [], [], [], []
    specs: list[_FrontBuilding | None] = []
    for row in range(len(ROW_ROADS)):
        for slot in range(len(SLOTS)):
            if (row, slot) in _GARDEN_SLOTS:
                continue
            rows.append(row)
            slots.append(slot)
            spec = _FRONT_BUILDINGS.get((row, slot))
            specs.append(spec)
            if spec is not None:
                usage.append(spec["usage"])
                floors.append(spec["floors"])
                upf.append(0)
            elif row == 0:  # 洋房: six floors, two or three households per floor
                usage.append("residential")
                floors.append(6)
                upf.append(int(rng.choice([2, 3])))
            else:
                choices, p = _TOWER_FLOORS[row]
                usage.append("residential")
                floors.append(int(rng.choice(choices, p=p)))
                upf.append(4)
    floors_a, upf_a = np.array(floors), np.array(upf)
    _calibrate_households(rng, floors_a, upf_a)
    residential = np.array(usage) == "residential"
    n = len(rows)
    # Width follows households per floor; depth 15-18 m as for Chinese slab towers.
    width = np.round(np.where(upf_a >= 4, rng.uniform(41, 45, n),
                              np.where(upf_a == 3, rng.uniform(37, 41, n), rng.uniform(35, 38, n)))
                     * 2) / 2
    depth = np.round(np.where(floors_a > 6, rng.uniform(16, 18, n), rng.uniform(15, 16, n)) * 2) / 2
    height = floors_a * STOREY_M + ROOF_M
    entrances = np.zeros(n, dtype=int)
    res_names = iter(f"{k}栋" for k in range(1, n + 1))
    for i, spec in enumerate(specs):
        if spec is None:
            names.append(next(res_names))
            continue
        names.append(spec["name"])
        width[i], depth[i], height[i] = spec["width"], spec["depth"], spec["height_m"]
        entrances[i] = spec["entrances"]
    cx = np.array(SLOTS)[slots]
    y0 = np.array(ROW_ROADS)[rows] + SETBACK
    x0, x1, y1 = cx - width / 2, cx + width / 2, y0 + depth
    footprints = shapely.orient_polygons(shapely.box(x0, y0, x1, y1))
    frame = pd.DataFrame({
        "id": [f"-b{k + 1:02d}" for k in range(n)],
        "grid_id": _grid_of(grids, cx, (y0 + y1) / 2),
        "name": names,
        "usage": usage,
        "floors": floors_a,
        "units_per_floor": upf_a,
        "height_m": np.round(height, 1),
        "height_source": "attribute",
        "geometry": footprints,
        "row": rows, "x0": x0, "y0": y0, "x1": x1, "y1": y1,
        "entrances": entrances,
        "elevators": np.where(residential, np.where(floors_a >= 26, 2, 1), 0),
    })
    return frame


def _calibrate_households(rng: np.random.Generator, floors: np.ndarray, upf: np.ndarray) -> None:
    """Drop random towers from four to three households per floor until near the target."""
    total = int((floors * upf).sum())
    for i in rng.permutation(np.flatnonzero(upf == 4)):
        if total <= TARGET_HOUSEHOLDS + 50:
            break
        upf[i] = 3
        total -= int(floors[i])


def _grid_of(grids: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    points = shapely.points(x, y)
    inside = shapely.contains(grids["geometry"].to_numpy()[:, None], points[None, :])
    if not inside.any(axis=0).all():
        raise AssertionError("a building centre lies outside every grid")
    return grids["id"].to_numpy()[inside.argmax(axis=0)]


def _entrances(rng: np.random.Generator, buildings: pd.DataFrame) -> pd.DataFrame:
    width = (buildings["x1"] - buildings["x0"]).to_numpy()
    drawn = np.where(width >= 43, rng.choice([2, 3], len(width)),
                     np.where(width >= 39, rng.choice([1, 2], len(width)), 1))
    count = np.where(buildings["entrances"].to_numpy() > 0, buildings["entrances"], drawn)
    owner = np.repeat(np.arange(len(buildings)), count)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    x0 = buildings["x0"].to_numpy()[owner]
    x = x0 + width[owner] * (k + 0.5) / count[owner]
    y = buildings["y0"].to_numpy()[owner]
    residential = (buildings["usage"] == "residential").to_numpy()[owner]
    bid = buildings["id"].to_numpy()[owner]
    return pd.DataFrame({
        "id": [f"{b}-e{j + 1}" for b, j in zip(bid, k)],
        "building_id": bid,
        "name": [f"{j + 1}单元" if r else f"{j + 1}号门" for j, r in zip(k, residential)],
        "x": np.round(x, 2),
        "y": y,
    })


def _facilities(rng: np.random.Generator, buildings: pd.DataFrame,
                entrances: pd.DataFrame) -> pd.DataFrame:
    rows: list[dict] = []

    def add(kind: str, name: str, x: float, y: float, *, area: Polygon | None = None,
            building_id: str | None = None, floor: int | None = None, count: int = 0) -> None:
        rows.append({"kind": kind, "name": name, "x": x, "y": y, "area": area,
                     "building_id": building_id, "floor": floor, "count": count})

    # Gates: main south gate (vehicle + pedestrian), then east, north, west; 1 m inside the wall.
    add("gate", "南门(主入口)", 0.0, -HALF_HEIGHT + 1, count=4)
    add("gate", "东门", HALF_WIDTH - 1, ROW_ROADS[3], count=2)
    add("gate", "北门", 0.0, HALF_HEIGHT - 1, count=3)
    add("gate", "西门", -HALF_WIDTH + 1, ROW_ROADS[4], count=2)
    add("security_room", "南门岗亭", -12.0, -HALF_HEIGHT + 6)
    club = buildings[buildings["usage"] == "clubhouse"].iloc[0]
    add("property_office", "物业服务中心", float((club.x0 + club.x1) / 2), float(club.y0 + 9),
        building_id=club.id, floor=1)
    sheds = [box(-209.5, -79, -203.5, -61), box(203.5, 27, 209.5, 45), box(-130, 138, -112, 144)]
    for k, shed in enumerate(sheds, start=1):
        c = shed.centroid
        add("ev_shed", f"{k}号充电棚", c.x, c.y, area=shed, count=int(rng.integers(20, 41)))
    for k, row in enumerate(range(1, len(ROW_ROADS)), start=1):
        xs = (-70.5, 141.5) if row % 2 else (-141.5, 70.5)
        for j, x in enumerate(xs):
            add("trash_station", f"{2 * k - 1 + j}号垃圾站", x, ROW_ROADS[row] + 4, count=4)
    add("pump_room", "1号泵房", -150.0, -70.0, floor=-1)
    add("pump_room", "2号泵房", 150.0, 88.0, floor=-1)
    add("garage", "1号地库", -70.5, -70.0, area=box(-195, -104, -15, -64), floor=-1)
    add("garage", "2号地库", 165.0, 92.0, area=box(15, 55, 195, 95), floor=-1)
    add("garage_ramp", "1号地库东坡道", -8.0, -78.0)
    add("garage_ramp", "1号地库北坡道", -100.0, -62.0)
    add("garage_ramp", "2号地库西坡道", 8.0, 86.0)
    add("garage_ramp", "2号地库南坡道", 141.5, 53.0)
    for _, b in buildings[buildings["elevators"] > 0].iterrows():
        own = entrances[entrances["building_id"] == b.id]
        for k in range(int(b.elevators)):
            door = own.iloc[k % len(own)]
            # Two lifts behind a single entrance stand side by side.
            offset = 0.0 if b.elevators <= len(own) else (k - (b.elevators - 1) / 2) * 5.0
            add("elevator", f"{b['name']}{k + 1}号电梯", float(door.x + offset), float(b.y0 + 5),
                building_id=b.id)
    greens = {
        "中心花园西": box(-60, 6, -6, 44), "中心花园东": box(6, 6, 60, 44),
        "北侧绿地": box(-60, 136, 150, 156),
        "西南绿地": box(-200, -131, -15, -116), "东南绿地": box(15, -131, 200, -116),
    }
    for name, area in greens.items():
        c = area.centroid
        add("green_area", name, c.x, c.y, area=area)
    add("playground", "儿童乐园", 40.0, 34.0)
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", [f"-f{k + 1:03d}" for k in range(len(frame))])
    frame["area"] = shapely.orient_polygons(frame["area"].to_numpy())
    frame["floor"] = pd.array(frame["floor"], dtype="Int64")
    return frame
