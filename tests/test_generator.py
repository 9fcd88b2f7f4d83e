"""The sample-community and district generator (pure: no database, no broker)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal
from pandas.testing import assert_frame_equal
from rich.console import Console
from rich.progress import Progress

from gis_data import SAMPLE_DIR
from gis_data.dataset import COLUMNS, Dataset, read_dataset
from gis_data.generator import generate_community, generate_district
from gis_data.names import SURNAMES, person_names, phone_numbers
from twin.device_types import DEVICE_TYPES

LOCAL_SRID = 32650
FACILITY_KINDS = {"gate", "ev_shed", "trash_station", "pump_room", "garage", "garage_ramp",
                  "elevator", "green_area", "security_room", "property_office", "playground"}


@pytest.fixture(scope="module")
def community() -> Dataset:
    return generate_community()


@pytest.fixture(scope="module")
def district() -> Dataset:
    return generate_district(buildings=300, devices=20_000)


# --- shape and counts ------------------------------------------------------------------

def test_counts_are_those_of_a_real_high_rise_community(community: Dataset) -> None:
    b = community.building
    residential = b[b["usage"] == "residential"]
    assert 25 <= len(b) <= 35
    assert 25 <= len(residential) <= 35
    assert residential["floors"].between(6, 33).all()
    assert set(residential["floors"]) >= {6, 18, 26, 33}
    assert residential["units_per_floor"].between(2, 4).all()
    assert set(b["usage"]) - {"residential"}, "a clubhouse or commercial building"
    assert 2_500 <= len(community.unit) <= 3_500
    assert 7_000 <= len(community.resident) <= 9_000
    assert 1_700 <= len(community.device) <= 2_500
    households = (residential["floors"] * residential["units_per_floor"]).sum()
    assert households == len(community.unit)


def test_every_grid_has_exactly_one_grid_worker(community: Dataset) -> None:
    grid, staff = community.grid, community.staff
    # the night duty officer is a grid worker of every grid, so of none in particular
    workers = staff[(staff["role"] == "grid_worker") & staff["grid_id"].notna()]
    assert 5 <= len(grid) <= 10
    assert len(workers) == len(grid)
    assert sorted(workers["grid_id"]) == sorted(grid["id"])
    assert dict(zip(grid["id"], grid["grid_worker_id"])) == dict(zip(workers["grid_id"],
                                                                      workers["id"]))
    assert (workers["shift"] == "day").all()
    others = staff[staff["grid_id"].isna() | (staff["role"] != "grid_worker")]
    assert 15 <= len(others) <= 25
    assert (staff["role"] == "manager").sum() == 1
    assert set(staff.loc[staff["role"] == "security", "shift"]) == {"day", "night"}


def test_every_building_is_in_a_grid_and_grids_cover_the_site(community: Dataset) -> None:
    assert community.building["grid_id"].notna().all()
    grids = shapely.union_all(community.grid.geometry.to_numpy())
    boundary = community.community.geometry.iloc[0]
    assert abs(grids.area - boundary.area) / boundary.area < 1e-4


def test_facilities_of_a_community(community: Dataset) -> None:
    kinds = community.facility["kind"].value_counts()
    assert 3 <= kinds["gate"] <= 4
    assert 2 <= kinds["ev_shed"] <= 3
    assert 8 <= kinds["trash_station"] <= 12
    assert kinds["pump_room"] == 2
    assert kinds["garage"] == 2
    assert 2 <= kinds["garage_ramp"] <= 4
    assert set(kinds.index) == FACILITY_KINDS
    f = community.facility
    with_area = f["kind"].isin(["green_area", "garage", "ev_shed"])
    assert f.loc[with_area, "area"].notna().all()
    assert f.loc[~with_area, "area"].isna().all()
    lifts = f[f["kind"] == "elevator"]
    residential = community.building[community.building["usage"] == "residential"]
    per_tower = lifts["building_id"].value_counts().reindex(residential["id"], fill_value=0)
    assert per_tower.between(1, 2).all()


def test_every_device_type_is_present(community: Dataset) -> None:
    assert set(community.device["type"]) == set(DEVICE_TYPES)


# --- geometry --------------------------------------------------------------------------

def test_devices_are_points_inside_the_site_and_at_their_building(community: Dataset) -> None:
    device = community.device
    boundary = community.community.geometry.iloc[0]
    geoms = device.geometry.to_numpy()
    assert (shapely.get_type_id(geoms) == 0).all()
    assert shapely.within(geoms, boundary).all()
    in_building = device[device["building_id"].notna()]
    footprint = community.building.set_index("id").geometry
    metric_devices = in_building.to_crs(LOCAL_SRID).geometry.to_numpy()
    metric_footprints = gpd.GeoSeries(
        footprint.loc[in_building["building_id"]].to_numpy(), crs=4326
    ).to_crs(LOCAL_SRID).to_numpy()
    assert shapely.distance(metric_devices, metric_footprints).max() <= 5.0


def test_entrances_are_on_the_south_edge_of_their_footprint(community: Dataset) -> None:
    e = community.entrance.to_crs(LOCAL_SRID)
    b = community.building.to_crs(LOCAL_SRID).set_index("id")
    footprints = b.geometry.loc[e["building_id"]].to_numpy()
    assert shapely.distance(e.geometry.to_numpy(), shapely.boundary(footprints)).max() < 0.05
    south = shapely.bounds(footprints)[:, 1]
    assert np.abs(e.geometry.y.to_numpy() - south).max() < 0.05
    counts = e["building_id"].value_counts().reindex(b.index, fill_value=0)
    assert counts.between(1, 3).all()


def test_geometry_is_wgs84_rounded_to_seven_decimals(community: Dataset) -> None:
    for name, frame in community.tables():
        if isinstance(frame, gpd.GeoDataFrame):
            assert frame.crs.to_epsg() == 4326, name
            xy = shapely.get_coordinates(frame.geometry.to_numpy())
            assert np.array_equal(xy, np.round(xy, 7)), name
    xy = shapely.get_coordinates(community.community.geometry.to_numpy())
    assert ((xy[:, 0] > 114) & (xy[:, 0] < 115)).all()
    assert ((xy[:, 1] > 30) & (xy[:, 1] < 31)).all()
    site = community.community.to_crs(LOCAL_SRID).geometry.iloc[0]
    x0, y0, x1, y1 = site.bounds
    assert 400 < x1 - x0 < 500 and 300 < y1 - y0 < 400


# --- references and values -------------------------------------------------------------

_REFERENCES = [
    ("grid", "community_id", "community"), ("grid", "grid_worker_id", "staff"),
    ("building", "community_id", "community"), ("building", "grid_id", "grid"),
    ("entrance", "building_id", "building"), ("unit", "building_id", "building"),
    ("resident", "unit_id", "unit"), ("facility", "community_id", "community"),
    ("facility", "building_id", "building"), ("device", "community_id", "community"),
    ("device", "building_id", "building"), ("device", "unit_id", "unit"),
    ("device", "facility_id", "facility"), ("staff", "community_id", "community"),
    ("staff", "grid_id", "grid"), ("walk_node", "community_id", "community"),
    ("walk_edge", "community_id", "community"), ("walk_edge", "source", "walk_node"),
    ("walk_edge", "target", "walk_node"),
]


@pytest.mark.parametrize(("table", "column", "parent"), _REFERENCES)
def test_foreign_keys_resolve(community: Dataset, table: str, column: str, parent: str) -> None:
    values = getattr(community, table)[column].dropna()
    assert len(values) > 0
    assert values.isin(getattr(community, parent)["id"]).all()


def test_node_refs_name_entrances_and_facilities(community: Dataset) -> None:
    n = community.walk_node
    assert n.loc[n["kind"] == "entrance", "ref_id"].isin(community.entrance["id"]).all()
    assert n.loc[n["kind"] == "facility", "ref_id"].isin(community.facility["id"]).all()
    assert n.loc[n["kind"] == "junction", "ref_id"].isna().all()


def test_devices_carry_building_floor_unit_and_facility(community: Dataset) -> None:
    d = community.device
    inside_flat = d[d["unit_id"].notna()]
    units = community.unit.set_index("id")
    assert (inside_flat["building_id"].to_numpy()
            == units.loc[inside_flat["unit_id"], "building_id"].to_numpy()).all()
    assert (inside_flat["floor"].to_numpy(dtype=int)
            == units.loc[inside_flat["unit_id"], "floor"].to_numpy()).all()
    assert d.loc[d["building_id"].notna(), "floor"].notna().all()
    kind_of = community.facility.set_index("id")["kind"]

    def kinds(code: str) -> set[str]:
        return set(kind_of.loc[d.loc[(d["type"] == code), "facility_id"].dropna()])

    assert kinds("ev_charger") == {"ev_shed"}
    assert kinds("elevator_monitor") == {"elevator"}
    assert kinds("pump_monitor") == {"pump_room"}
    assert kinds("trash_bin_sensor") == {"trash_station"}
    assert kinds("co_sensor") == {"garage"}
    assert kinds("access_gate") == {"gate"}
    assert kinds("soil_sensor") == {"green_area"}
    assert (d["type"] == "ev_charger").sum() >= 20 * (kind_of == "ev_shed").sum()
    hubs = d[d["type"] == "smart_home_hub"]
    assert hubs["unit_id"].notna().all()
    assert 0.05 < len(hubs) / len(community.unit) < 0.15
    lifts = (kind_of == "elevator").sum()
    assert (d["type"] == "elevator_monitor").sum() == lifts
    assert d["floor"].dtype == "Int64" and community.facility["floor"].dtype == "Int64"


def test_a_gateway_in_every_building_and_two_for_the_site(community: Dataset) -> None:
    d = community.device
    gateways = d[d["type"] == "iot_gateway"]
    inside = gateways[gateways["building_id"].notna()]
    assert sorted(inside["building_id"]) == sorted(community.building["id"])
    assert (inside["floor"] == 1).all()
    site = gateways[gateways["building_id"].isna()]
    kind_of = community.facility.set_index("id")["kind"]
    assert sorted(kind_of.loc[site["facility_id"]]) == ["property_office", "security_room"]


def test_ids_are_unique_and_prefixed(community: Dataset, district: Dataset) -> None:
    for dataset in (community, district):
        everything = pd.concat([frame["id"] for _, frame in dataset.tables()])
        assert everything.is_unique
        prefixes = dataset.community["id"]
        for name, frame in dataset.tables():
            if name != "community":
                head = frame["id"].str.extract(r"^(wh-[a-z0-9]+)-", expand=False)
                assert head.isin(prefixes).all(), name
        assert dataset.device["credentials_id"].is_unique


def test_check_constraint_values(community: Dataset) -> None:
    r, s = community.resident, community.staff
    assert set(r["gender"]) == {"F", "M"}
    assert set(r["age_band"]) == {"0-6", "7-17", "18-59", "60-79", "80+"}
    assert set(community.unit["occupancy"]) == {"owner", "tenant", "vacant"}
    assert set(community.facility["kind"]) <= FACILITY_KINDS
    assert set(community.device["type"]) <= set(DEVICE_TYPES)
    assert set(s["role"]) == {"grid_worker", "security", "cleaning", "engineer", "manager",
                              "duty_officer"}
    assert set(s["shift"]) <= {"day", "night", "office"}
    assert set(community.walk_node["kind"]) <= {"junction", "entrance", "facility", "device"}
    assert set(community.walk_edge["kind"]) == {"road", "footway", "ramp", "steps", "link"}
    assert set(community.building["height_source"]) == {"attribute"}
    assert (community.building["height_m"] > 0).all()
    assert (community.walk_edge["length_m"] > 0).all()
    skills = {k for ks in s["skills"] for k in ks}
    assert skills <= {"electrical", "hvac", "plumbing", "elevator", "first_aid", "fire"}
    assert {"electrical", "hvac", "plumbing", "elevator"} <= skills
    on_duty = s["geometry"].notna()
    assert (on_duty == s["position_at"].notna()).all()
    assert on_duty.sum() >= len(s) // 2


def test_residents_are_plausible_and_plainly_fake(community: Dataset) -> None:
    r = community.resident
    assert r["phone"].str.fullmatch(r"100\d{8}").all()
    assert r["name"].str.len().between(2, 3).all()
    units = community.unit
    occupied = units.loc[units["occupancy"] != "vacant", "id"]
    assert set(r["unit_id"]) == set(occupied)
    assert 0.05 < (units["occupancy"] == "vacant").mean() < 0.11
    assert 2.5 < len(r) / len(occupied) < 2.9
    assert units.groupby("building_id")["number"].apply(lambda n: n.is_unique).all()
    assert units["number"].str.fullmatch(r"[1-9]\d?0[1-4]").all()


def test_special_care_residents_and_their_family_contacts(community: Dataset) -> None:
    r = community.resident
    flagged = r["care_flags"].map(len) > 0
    assert 0.025 < flagged.mean() < 0.05
    flags = {f for fs in r["care_flags"] for f in fs}
    assert flags == {"elderly_alone", "child", "disabled"}
    alone = r["care_flags"].map(lambda fs: "elderly_alone" in fs)
    assert r.loc[alone, "age_band"].isin(["60-79", "80+"]).all()
    assert (r.loc[alone, "unit_id"].map(r["unit_id"].value_counts()) == 1).all()
    contacts = r.loc[alone, "family_contacts"]
    assert contacts.map(len).between(1, 2).all()
    assert (r.loc[~alone, "family_contacts"].map(len) == 0).all()
    for person in (c for cs in contacts for c in cs):
        assert set(person) == {"name", "relation", "phone"}
        assert re.fullmatch(r"100\d{8}", person["phone"])
        assert person["phone"] not in set(r["phone"])


# --- the walkway network ---------------------------------------------------------------

def _graph(dataset: Dataset) -> nx.Graph:
    e = dataset.walk_edge
    return nx.from_pandas_edgelist(e, "source", "target", edge_attr="length_m")


def test_walkway_is_one_component_reaching_every_place(community: Dataset) -> None:
    g = _graph(community)
    nodes = community.walk_node
    assert nx.is_connected(g)
    assert set(g.nodes) == set(nodes["id"])
    refs = set(nodes["ref_id"].dropna())
    assert set(community.entrance["id"]) <= refs
    assert set(community.facility["id"]) <= refs
    kind_of = dict(zip(nodes["id"], nodes["kind"]))
    for entrance in nodes.loc[nodes["kind"] == "entrance", "id"]:
        assert any(kind_of[n] == "junction" for n in g.neighbors(entrance))


def test_walkway_is_planar_with_explicit_junctions(community: Dataset) -> None:
    e = community.walk_edge
    lines = e.geometry.to_numpy()
    left, right = shapely.STRtree(lines).query(lines, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    ends = np.column_stack([e["source"], e["target"]])
    shared = ((ends[left][:, :, None] == ends[right][:, None, :]).any(axis=(1, 2)))
    meeting = shapely.intersection(lines[left], lines[right])
    assert shared.all(), "edges cross without a junction"
    assert (shapely.get_type_id(meeting) == 0).all(), "edges overlap"


def test_edges_run_between_their_nodes_with_metric_lengths(community: Dataset) -> None:
    e = community.walk_edge
    at = community.walk_node.set_index("id").geometry
    lines = e.geometry.to_numpy()
    assert shapely.equals(shapely.get_point(lines, 0), at.loc[e["source"]].to_numpy()).all()
    assert shapely.equals(shapely.get_point(lines, -1), at.loc[e["target"]].to_numpy()).all()
    metric = e.to_crs(LOCAL_SRID).geometry.length.to_numpy()
    assert np.allclose(e["length_m"].to_numpy(), metric, rtol=0.01)
    assert (e["length_m"] >= 2.0).all()


# --- files and determinism -------------------------------------------------------------

def assert_same(a: Dataset, b: Dataset) -> None:
    for (name, left), (_, right) in zip(a.tables(), b.tables()):
        try:
            if isinstance(left, gpd.GeoDataFrame):
                assert_geodataframe_equal(left, right)
            else:
                assert_frame_equal(left, right)
        except AssertionError as e:
            raise AssertionError(f"table {name}: {e}") from e


def test_committed_sample_is_a_fresh_generation(community: Dataset) -> None:
    assert_same(read_dataset(SAMPLE_DIR), community)


def test_generation_is_deterministic(community: Dataset, tmp_path: Path) -> None:
    again = generate_community()
    assert_same(again, community)
    community.write(tmp_path / "a")
    again.write(tmp_path / "b")
    for name, _ in community.tables():
        file = next((tmp_path / "a").glob(f"{name}.*")).name
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_another_seed_gives_another_community(community: Dataset) -> None:
    other = generate_community(seed=8, community_id="wh-other", name="别的社区",
                               center=(114.30, 30.55))
    assert other.community["id"].iloc[0] == "wh-other"
    assert not other.resident["name"].equals(community.resident["name"])
    assert other.community.geometry.iloc[0].distance(community.community.geometry.iloc[0]) > 0.05


def test_write_read_round_trip(community: Dataset, tmp_path: Path) -> None:
    written = community.write(tmp_path / "out")
    assert sorted(p.name for p in written.iterdir()) == sorted(
        f"{name}.csv" if name in ("unit", "resident") else f"{name}.geojson" for name in COLUMNS
    )
    assert_same(read_dataset(written), community)
    assert read_dataset(written).summary() == community.summary()


def test_round_trip_keeps_coordinates_that_look_like_float_noise(community: Dataset,
                                                                  tmp_path: Path) -> None:
    """GDAL rounds 114.4000002 to 114.4 when asked for 7 decimals; the files must not."""
    device = community.device.copy()
    awkward = shapely.points([114.4000002, 114.4099998], [30.4900001, 30.4999999])
    device.loc[:1, "geometry"] = awkward
    changed = Dataset(**{**dict(community.tables()), "device": device})
    assert_same(read_dataset(changed.write(tmp_path / "out")), changed)


def test_read_names_the_missing_file_or_column(community: Dataset, tmp_path: Path) -> None:
    out = community.write(tmp_path / "out")
    (out / "walk_edge.geojson").unlink()
    with pytest.raises(ValueError, match=r"walk_edge\.geojson"):
        read_dataset(out)
    community.write(out)
    unit = pd.read_csv(out / "unit.csv", dtype=str)
    unit.drop(columns="occupancy").to_csv(out / "unit.csv", index=False)
    with pytest.raises(ValueError, match=r"unit\.csv.*occupancy"):
        read_dataset(out)


def test_progress_bar_runs_to_the_end() -> None:
    progress = Progress(console=Console(file=io.StringIO()))
    with progress:
        generate_community(seed=3, progress=progress)
    (task,) = progress.tasks
    assert task.finished


# --- the district ----------------------------------------------------------------------

def test_district_reaches_the_requested_scale(district: Dataset) -> None:
    assert abs(len(district.building) - 300) <= 30
    assert abs(len(district.device) - 20_000) <= 2_000
    assert len(district.community) == 9
    assert district.community["id"].is_unique and district.community["name"].is_unique
    assert set(district.device["type"]) == set(DEVICE_TYPES)
    boundaries = district.community.geometry.to_numpy()
    assert not shapely.intersects(boundaries[:, None], boundaries[None, :])[
        ~np.eye(len(boundaries), dtype=bool)].any()


def test_district_has_one_network_per_community(district: Dataset) -> None:
    g = _graph(district)
    community_of = dict(zip(district.walk_node["id"], district.walk_node["community_id"]))
    components = list(nx.connected_components(g))
    assert len(components) == len(district.community)
    assert all(len({community_of[n] for n in c}) == 1 for c in components)


def test_district_people_are_numbered_per_community(district: Dataset) -> None:
    r = district.resident
    first = r.groupby(r["unit_id"].str.extract(r"^(wh-c\d+)-", expand=False))["id"].min()
    assert first.str.endswith("-r000001").all()
    assert 2.5 < len(r) / (district.unit["occupancy"] != "vacant").sum() < 2.9


# --- names -----------------------------------------------------------------------------

def test_names_and_phones_are_synthetic() -> None:
    rng = np.random.default_rng(1)
    genders = np.where(rng.random(20_000) < 0.5, "F", "M")
    names = person_names(rng, genders)
    surnames = {s for s, _ in SURNAMES}
    assert all(n[0] in surnames and 2 <= len(n) <= 3 for n in names[:2_000])
    assert len(set(names)) > 5_000
    phones = phone_numbers(rng, 20_000)
    assert pd.Series(phones).str.fullmatch(r"100\d{8}").all()


def _asked_of_staff(node: object) -> list[tuple[str, str | None, str]]:
    """(role, skill, kind) of every work order in a rule file, wherever it is nested."""
    found: list[tuple[str, str | None, str]] = []
    if isinstance(node, dict):
        order = node.get("work_order")
        if isinstance(order, dict):
            found.append((order["role"], order.get("skill"), order["kind"]))
        for value in node.values():
            found += _asked_of_staff(value)
    elif isinstance(node, list):
        for value in node:
            found += _asked_of_staff(value)
    return found


def test_every_order_the_rules_open_reaches_someone_on_shift_at_3am(community: Dataset) -> None:
    """Directly (night security, the night engineer and the engineer on call), or, for a role
    nobody holds at night, through the escalation's first tier of the twin's own staff: the
    night duty officer."""
    import yaml

    from twin.dispatch import on_shift
    from twin.escalation import climb, config_for
    from twin.rules.compile import library_dir

    asked = {found for path in sorted(library_dir().rglob("*.yaml"))
             for found in _asked_of_staff(yaml.safe_load(path.read_text(encoding="utf-8")))}
    assert asked, "the rule library asks for no staff at all"
    at_3am = pd.Timestamp("2026-11-25T03:00:00+08:00").to_pydatetime()  # a Wednesday
    staff = community.staff
    night = staff[[on_shift(s, at_3am) for s in staff["shift"]]]

    def reached(role: str, skill: str | None) -> bool:
        who = night[night["role"] == role]
        return bool(len(who[[skill in s for s in who["skills"]]] if skill else who))

    config = config_for(str(community.community["id"].iloc[0]))
    for role, skill, kind in sorted(asked, key=str):
        if reached(role, skill) or reached(role, None):  # no one with the skill: the role goes
            continue
        up = climb(config, level=0, role=role, skill=skill, kind=kind, now=at_3am,
                   staffed=set(staff["role"]))
        assert up is not None and up.department is None, (role, skill, kind)
        assert reached(up.role, up.skill), f"{kind}: nobody on shift at 03:00 is {role}, " \
            f"nor {up.role} at the next tier"
    assert {"security", "engineer", "duty_officer"} <= set(night["role"])
    # whoever is on at night can be found: a badge to report fixes, a post to fall back to
    assert night["badge_id"].notna().all() and night["post_id"].notna().all()
    badges = community.device.set_index("id").loc[night["badge_id"], "type"]
    assert (badges == "staff_badge").all()
