"""The large screen at district scale: server time and bytes of the first load and of one update.

    .venv/bin/python -m bench.dashboard --buildings 5000 --devices 500000

Generates and loads a district, gives every device a latest state (1 % offline),
opens a few hundred alarms and some work orders with routes, then measures, as
the admin user inside a request of the real app:

- first load: the page's layout (base map, live layers, KPIs, feed, board) as
  Dash serialises it, with the caches the app warms at start-up (the median of
  --repeat), and once with them emptied; plus the charts' first answer;
- one update: after a new critical alarm, 50 devices going offline, 10 staff
  moving and one order being assigned, the live tick's answer as Dash sends it;
  and a tick with nothing new.

Same-run baselines: the JSON of all devices as one point layer (what a screen
that draws every device would send), and the whole map re-sent on an update.
Server times have no same-run baseline yet; the result says so.
Writes bench/results/dashboard.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import flask
import plotly
import shapely

from bench.common import bench_database, ratio, start_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buildings", type=int, default=5000)
    parser.add_argument("--devices", type=int, default=500_000)
    parser.add_argument("--alarms", type=int, default=300)
    parser.add_argument("--orders", type=int, default=60)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None,
                        help="default: bench/results/dashboard.json")
    args = parser.parse_args()
    run = start_run("dashboard", buildings=args.buildings, devices=args.devices,
                    alarms=args.alarms, orders=args.orders, repeat=args.repeat)
    with bench_database() as url:
        print(f"loading a district of {args.buildings} buildings, {args.devices} devices ...")
        counts = _load(url, args.buildings, args.devices)
        _live_state(url, alarms=args.alarms, orders=args.orders)
        result = {"district": counts, **measure(url, repeat=args.repeat)}
    _print(result)
    figures = {k: v for k, v in result.items() if k != "baseline"}
    base = result["baseline"]
    run.write(figures, baselines=base, ratios={
        "first_load_over_all_devices_layer": ratio(result["first_load"]["bytes"],
                                                   base["all_devices_layer_bytes"], 4),
        "update_over_whole_map_resent": ratio(result["update"]["bytes"],
                                              base["whole_map_resent_bytes"], 4),
    }, out=args.out, notes=[
        "Ratios are of bytes. Server times are absolute: no same-run baseline yet."])


def measure(url: str, *, repeat: int) -> dict:
    from dashboard.app import create_app
    from dashboard.auth import add_user, get_user
    from dashboard.pages import large_screen
    from twin.store.connection import connect

    with connect(url) as conn:
        add_user(conn, "bench", "bench-password", "admin")
        conn.commit()
        user = get_user(conn, "bench")
    startup, app = _timed(lambda: create_app(url, secret_key="bench"))  # warms the caches
    c = app.server.config["TWIN"]
    out: dict = {}
    with app.server.test_request_context("/"):
        flask.g.user = user
        # server time = the page's layout built and serialised as Dash sends it. "cold" is
        # with the caches emptied: only a request racing the start-up warm-up sees it.
        c._cache.clear()
        cold, (layout, _) = _timed(lambda: _laid_out(large_screen.layout))
        first = _size(layout)
        warm_times = []
        for _ in range(repeat):
            t, (layout, _) = _timed(lambda: _laid_out(large_screen.layout))
            warm_times.append(t)
        token = _find(layout, large_screen.TOKEN).data
        chart_t, charts = _timed(large_screen.chart_figures)
        deck = _find(layout, large_screen.MAP)
        out["first_load"] = {
            "app_startup_ms": round(startup * 1000, 1),
            "server_ms_cold": round(cold * 1000, 1),
            "server_ms_warm_median": round(statistics.median(warm_times) * 1000, 1),
            "bytes": first["raw"], "bytes_gzip": first["gzip"],
            "base_layers_bytes": _size(deck.layers)["raw"],
            "live_layers_bytes": _size(deck.layerData)["raw"],
            "live_records": {k: len(v) for k, v in c.live.get(token).layers.items()},
            "buildings_coloured": len(deck.featureColors["buildings"]),
            "charts_server_ms": round(chart_t * 1000, 1), "charts_bytes": _size(charts)["raw"],
        }
        quiet_times, quiet_bytes = [], 0
        for _ in range(repeat):
            t, quiet_bytes = _timed(lambda: _response_size(large_screen.live_update(token)))
            quiet_times.append(t)
        out["quiet_tick"] = {"server_ms_median": round(statistics.median(quiet_times) * 1000, 1),
                             "bytes": quiet_bytes}
        changes = _change_something(url)
        t, update_bytes = _timed(lambda: _response_size(large_screen.live_update(token)))
        out["update"] = {"server_ms": round(t * 1000, 1), "bytes": update_bytes,
                         "changes": changes}
        # baselines, same run
        with c.pool.connection() as conn:
            rows = conn.execute("SELECT id, type, ST_X(geom), ST_Y(geom), floor FROM device"
                                ).fetchall()
        every_device = [{"id": i, "type": t, "position": [round(x, 7), round(y, 7),
                                                          float(f or 0) * 3.0],
                         "color": [80, 200, 150, 220]} for i, t, x, y, f in rows]
        out["baseline"] = {
            "all_devices_layer_bytes": len(json.dumps(every_device, separators=(",", ":"))),
            "whole_map_resent_bytes": _size(deck.layers)["raw"] + _size(deck.layerData)["raw"],
        }
    out["static_assets"] = _assets(app)
    c.pool.close()
    return out


# --- the district and its live state ------------------------------------------------------

def _load(url: str, buildings: int, devices: int) -> dict:
    from gis_data.generator import generate_district
    from twin.store.connection import connect
    from twin.store.loader import load_dataset

    dataset = generate_district(buildings=buildings, devices=devices)
    with connect(url) as conn:
        began = time.perf_counter()
        counts = load_dataset(conn, dataset)
        print(f"loaded in {time.perf_counter() - began:.1f} s")
        return {k: counts[k] for k in ("building", "device", "unit", "resident") if k in counts}


def _live_state(url: str, *, alarms: int, orders: int) -> None:
    from twin.alarms import AlarmSpec
    from twin.store.connection import connect
    from twin.store.operations import Assignee, act_on_work_order, open_work_order, raise_alarm
    from twin.work_orders import SYSTEM, Actor, WorkOrderSpec

    now = datetime.now(UTC)
    rng = random.Random(5)
    with connect(url) as conn:
        conn.execute(
            """INSERT INTO device_state (device_id, online, status_at, last_seen, metrics)
               SELECT id, (hashtext(id) %% 100) <> 0, %s, %s, '{}'::jsonb FROM device
               ON CONFLICT (device_id) DO NOTHING""", (now, now))
        picked = conn.execute(
            """SELECT d.id, d.community_id, d.building_id, ST_X(d.geom), ST_Y(d.geom), b.grid_id
               FROM device d JOIN building b ON b.id = d.building_id
               ORDER BY hashtext(d.id) LIMIT %s""", (alarms + orders,)).fetchall()
        severities = ["critical"] * 2 + ["major"] * 5 + ["minor"] * 8 + ["info"] * 5
        for dev, community, building, x, y, _ in picked[:alarms]:
            raise_alarm(conn, AlarmSpec(
                community_id=community, type="bench", domain="safety",
                severity=rng.choice(severities), source_kind="device", source_id=dev,
                title=f"bench alarm {dev}", at=now - timedelta(minutes=rng.randint(1, 600)),
                building_id=building, device_id=dev, location=shapely.Point(x, y)))
        operator = Actor("bench", "operator")
        for dev, community, building, x, y, grid in picked[alarms:]:
            order = open_work_order(conn, WorkOrderSpec(
                community_id=community, kind="bench", title=f"bench order {dev}",
                domain="safety", role="grid_worker", location=shapely.Point(x, y), at=now,
                grid_id=grid, building_id=building, device_id=dev), actor=SYSTEM)
            staff = conn.execute("SELECT id, ST_X(position), ST_Y(position) FROM staff "
                                 "WHERE community_id = %s AND position IS NOT NULL LIMIT 1",
                                 (community,)).fetchone()
            line = shapely.LineString([(staff[1], staff[2]), (staff[1], y), (x, y)])
            act_on_work_order(conn, order.id, "assign", actor=operator, at=now,
                              assignee=Assignee(staff[0], line, 300.0, 250.0))
        conn.commit()
    # statistics and visibility maps for the new rows, as autovacuum would soon do
    with connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE device_state, alarm, work_order, staff")


def _change_something(url: str) -> dict:
    """One tick's worth of news: a new critical alarm, 50 devices offline, 10 staff moving,
    one order assigned."""
    from twin.alarms import AlarmSpec
    from twin.store.connection import connect
    from twin.store.operations import raise_alarm

    now = datetime.now(UTC)
    with connect(url) as conn:
        dev, community, building, x, y = conn.execute(
            """SELECT d.id, d.community_id, d.building_id, ST_X(d.geom), ST_Y(d.geom)
               FROM device d JOIN building b ON b.id = d.building_id
               WHERE NOT EXISTS (SELECT 1 FROM alarm a WHERE a.building_id = b.id)
               ORDER BY d.id LIMIT 1""").fetchone()
        raise_alarm(conn, AlarmSpec(
            community_id=community, type="bench_new", domain="safety", severity="critical",
            source_kind="device", source_id=dev, title="new", at=now, building_id=building,
            device_id=dev, location=shapely.Point(x, y)))
        conn.execute("""UPDATE device_state SET online = false, status_at = %s WHERE device_id IN (
                          SELECT device_id FROM device_state WHERE online ORDER BY device_id
                          LIMIT 50)""", (now,))
        conn.execute("""UPDATE staff SET position = ST_Translate(position, 0.0001, 0),
                          position_at = %s WHERE id IN (SELECT id FROM staff ORDER BY id LIMIT 10)""",
                     (now,))
        conn.commit()
    return {"new_alarms": 1, "devices_offline": 50, "staff_moved": 10}


# --- measuring ----------------------------------------------------------------------------

def _timed(fn):
    began = time.perf_counter()
    value = fn()
    return time.perf_counter() - began, value


def _laid_out(layout_fn):
    layout = layout_fn()
    return layout, _json(layout)


def _json(value) -> bytes:
    """As Dash serialises a response (plotly's to_json: orjson, UTF-8)."""
    from dash._utils import to_json

    return to_json(value).encode()


def _size(value) -> dict:
    raw = _json(value)
    return {"raw": len(raw), "gzip": len(gzip.compress(raw, 6))}


def _response_size(answer: tuple) -> int:
    """The body Dash would send for the live tick: outputs left as no_update are omitted."""
    from dash import no_update

    from dashboard.pages import large_screen

    ids = ([(large_screen.MAP, "featureColors"), (large_screen.MAP, "layerData")]
           + [(v, "children") for v in large_screen.KPI.values()]
           + [(large_screen.FEED, "children"), (large_screen.BOARD, "children"),
              (large_screen.UPDATED, "children")])
    response: dict = {}
    for (cid, prop), value in zip(ids, answer, strict=True):
        if value is no_update:
            continue
        response.setdefault(cid, {})[prop] = value
    return len(_json({"multi": True, "response": response}))


def _assets(app) -> dict:
    """Bytes of the JavaScript the browser loads once (and then caches), raw and gzip."""
    import importlib.resources as res

    import dash

    files = {
        "twin_deck.min.js": Path(__file__).resolve().parent.parent / "dashboard/deck/twin_deck.min.js",
        "plotly.min.js": Path(plotly.__file__).parent / "package_data/plotly.min.js",
        "dash_renderer": Path(dash.__file__).parent / "dash-renderer/build/dash_renderer.min.js",
    }
    del res
    return {name: {"raw": p.stat().st_size, "gzip": len(gzip.compress(p.read_bytes(), 6))}
            for name, p in files.items() if p.exists()}


def _find(component, wanted_id):
    if getattr(component, "id", None) == wanted_id:
        return component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(child, "to_plotly_json"):
            found = _find(child, wanted_id)
            if found is not None:
                return found
    return None


def _print(result: dict) -> None:
    first, update, quiet, base = (result["first_load"], result["update"], result["quiet_tick"],
                                  result["baseline"])
    print(json.dumps(result["district"]))
    print(f"first load: {first['bytes'] / 1e6:.2f} MB ({first['bytes_gzip'] / 1e6:.2f} MB gzip), "
          f"server {first['server_ms_warm_median']} ms (caches emptied: "
          f"{first['server_ms_cold']} ms; app start-up {first['app_startup_ms']} ms)"
          f"; charts {first['charts_server_ms']} ms, {first['charts_bytes'] / 1e3:.1f} kB")
    print(f"update: {update['bytes'] / 1e3:.1f} kB in {update['server_ms']} ms; quiet tick "
          f"{quiet['bytes']} B in {quiet['server_ms_median']} ms")
    print(f"baseline: all devices as one layer {base['all_devices_layer_bytes'] / 1e6:.1f} MB; "
          f"whole map re-sent {base['whole_map_resent_bytes'] / 1e6:.2f} MB")
    print(f"static JS (once, cached): {json.dumps(result['static_assets'])}")


if __name__ == "__main__":
    main()
