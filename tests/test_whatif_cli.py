"""`twin whatif` end to end on the sample twin: scenarios saved, compared, and the twin untouched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pytest
import yaml

from twin.store.connection import connect
from twin.store.scenarios import load_scenario, save_scenario
from twin.whatif.scenario import Scenario

TWIN = str(Path(sys.executable).parent / "twin")
_LIVE = """SELECT md5(string_agg(t, '|' ORDER BY t)) FROM (
             SELECT id || kind || length_m AS t FROM walk_edge
             UNION ALL SELECT id || role || shift || coalesce(ST_AsText(position), '') FROM staff) s"""


def _twin(url: str, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env |= {"TWIN_DATABASE_URL": url, "COLUMNS": "200"}
    result = subprocess.run([TWIN, "whatif", *args], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert (result.returncode == 0) == ok, result.stderr or result.stdout
    return result


def test_scenarios_are_saved_and_never_touch_the_twin(twin_db_url: str) -> None:
    with connect(twin_db_url) as conn:
        community = conn.execute("SELECT id FROM community").fetchone()[0]
        before = conn.execute(_LIVE).fetchone()[0]
        save_scenario(conn, community, Scenario(name="leave", staff_removed=("wh-guanggu-s07",)),
                      actor="test")
        again = save_scenario(conn, community, Scenario(
            name="leave", staff_removed=("wh-guanggu-s07", "wh-guanggu-s08")), actor="test")
        conn.commit()
        assert load_scenario(conn, community, "leave").staff_removed == (
            "wh-guanggu-s07", "wh-guanggu-s08")
        assert again.created_by == "test"
        assert conn.execute(_LIVE).fetchone()[0] == before
        assert load_scenario(conn, community, "baseline").is_baseline


def test_coverage_and_impact_from_the_command_line(twin_db_url: str, tmp_path: Path) -> None:
    with connect(twin_db_url) as conn:
        before = conn.execute(_LIVE).fetchone()[0]
        # the only walkway from one gate into the community: its attachment edge
        gate, edge = conn.execute(
            """SELECT f.id, e.id FROM facility f
               JOIN walk_node n ON n.ref_id = f.id
               JOIN walk_edge e ON n.id IN (e.source, e.target)
               WHERE f.kind = 'gate' ORDER BY f.id LIMIT 1""").fetchone()
        lon, lat = conn.execute("SELECT ST_X(geom), ST_Y(geom) FROM facility WHERE id = %s",
                                (gate,)).fetchone()
    assert edge in _twin(twin_db_url, "edges", str(lon), str(lat), "--radius", "5").stdout

    works = tmp_path / "works.yaml"
    works.write_text(yaml.safe_dump({
        "name": "guards-away",
        "description": "two day guards on leave next week",
        "staff_removed": ["wh-guanggu-s07", "wh-guanggu-s08"],
        "closed_edges": [edge],
    }))
    _twin(twin_db_url, "save", str(works))
    listed = _twin(twin_db_url, "list").stdout
    assert "guards-away" in listed and "2 staff away" in listed and "1 closed edges" in listed

    out = tmp_path / "coverage.geojson"
    csv = tmp_path / "coverage.csv"
    cov = _twin(twin_db_url, "coverage", "guards-away", "--role", "security", "--shift", "day",
                "--sla-min", "2", "--geojson", str(out), "--csv", str(csv)).stdout
    assert "4 on duty in the baseline, 2 in 'guards-away'" in cov
    frame = gpd.read_file(out)
    assert len(frame) == 34 and {"baseline_s", "scenario_s", "change_s"} <= set(frame.columns)
    assert (frame["scenario_s"] >= frame["baseline_s"] - 1e-6).all()  # fewer guards never help
    assert csv.read_text().startswith("building_id,")

    impact = _twin(twin_db_url, "impact", "guards-away", "--close-gate", gate).stdout
    assert "cut off: 0 buildings" in impact  # the other gates are still open

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "staff_added": [{"id": "n", "role": "guard",
                                                                 "position": [114, 30]}]}))
    refused = _twin(twin_db_url, "save", str(bad), ok=False)
    assert "staff_added.0.role" in refused.stderr and "unknown role 'guard'" in refused.stderr
    missing = _twin(twin_db_url, "coverage", "nope", ok=False)
    assert "has no scenario 'nope'" in missing.stderr

    with connect(twin_db_url) as conn:
        assert conn.execute(_LIVE).fetchone()[0] == before


@pytest.mark.parametrize("closed", [("zz-no-such-edge",)])
def test_an_unknown_edge_is_one_sentence(twin_db_url: str, tmp_path: Path, closed) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({"name": "typo", "closed_edges": list(closed)}))
    _twin(twin_db_url, "save", str(path))
    refused = _twin(twin_db_url, "coverage", "typo", ok=False)
    assert "no walkway edge 'zz-no-such-edge'" in refused.stderr


def test_staff_off_shift_start_from_their_base(sample_conn) -> None:
    from twin.store.scenarios import staff_at_posts

    community = sample_conn.execute("SELECT id FROM community").fetchone()[0]
    staff = staff_at_posts(sample_conn, community)
    room = sample_conn.execute(
        "SELECT ST_X(geom), ST_Y(geom) FROM facility WHERE kind = 'security_room'").fetchone()
    night = [m for m in staff if m.role == "security" and m.shift == "night"]
    assert night and all(m.position is not None for m in staff)
    assert all((m.position.x, m.position.y) == pytest.approx(room) for m in night)


def test_charging_and_replay_from_the_command_line(twin_db_url: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    import orjson

    day = datetime(2026, 11, 16, 2, 0, tzinfo=UTC)  # 10:00 in Wuhan
    with connect(twin_db_url) as conn:
        shed, piles = conn.execute(
            """SELECT facility_id, count(*) FROM device WHERE type = 'ev_charger'
               GROUP BY facility_id ORDER BY facility_id LIMIT 1""").fetchone()
        chargers = [r[0] for r in conn.execute(
            "SELECT id FROM device WHERE facility_id = %s AND type = 'ev_charger' ORDER BY id",
            (shed,))]
        # every pile is taken from ten to eleven, and one more session follows at eleven:
        # what happened fitted the piles; one pile fewer would have made someone wait
        for k in range(piles + 1):
            device = chargers[k % piles]
            start = day + timedelta(minutes=k) + (timedelta(hours=1) if k == piles else timedelta())
            for kind, t in (("charge_start", start), ("charge_stop", start + timedelta(hours=1))):
                conn.execute(
                    "INSERT INTO event (time, device_id, event_id, kind, value, attrs) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (t, device, f"s{k}-{kind}", kind, 5.0 if kind == "charge_stop" else None,
                     orjson.dumps({"session": f"s{k}"}).decode()))
        sensor = conn.execute(
            """SELECT d.id FROM device d JOIN facility f ON f.id = d.facility_id
               WHERE d.type = 'co_sensor' AND f.kind = 'garage' ORDER BY d.id LIMIT 1""").fetchone()[0]
        # two CO episodes: 62 ppm (over 50) and 40 ppm (over 35 only)
        for minutes, ppm in ((0, 10), (5, 62), (10, 10), (20, 40), (25, 10)):
            conn.execute("INSERT INTO reading (time, device_id, metric, value) VALUES (%s, %s, 'co', %s)",
                         (day + timedelta(minutes=minutes), sensor, ppm))
        conn.commit()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env["TWIN_DATABASE_URL"] = twin_db_url
    subprocess.run([TWIN, "rules", "load"], env=env, check=True, capture_output=True)

    scenario = tmp_path / "plan.yaml"
    scenario.write_text(yaml.safe_dump({
        "name": "fewer-piles-lower-co", "piles_added": {shed: -1},
        "rule_params": {"garage-co": {"high.above": 35}}}))
    _twin(twin_db_url, "save", str(scenario))
    period = ["--from", "2026-11-16", "--to", "2026-11-17"]
    charging = _twin(twin_db_url, "charging", "fewer-piles-lower-co", *period,
                     "--csv", str(tmp_path / "c.csv")).stdout
    assert f"{piles + 1}" in charging
    import pandas as pd

    rows = pd.read_csv(tmp_path / "c.csv")
    mine = rows[(rows["shed_id"] == shed) & (rows["day"] == "all")].iloc[0]
    assert mine["base_waited"] == 0 and mine["scen_waited"] >= 1
    assert mine["scen_piles"] == piles - 1

    replay = _twin(twin_db_url, "replay", "fewer-piles-lower-co", *period,
                   "--csv", str(tmp_path / "r.csv")).stdout
    assert "co > 50 → co > 35" in replay
    total = pd.read_csv(tmp_path / "r.csv").set_index("day").loc["all"]
    assert (total["baseline_alarms"], total["scenario_alarms"]) == (1, 2)
