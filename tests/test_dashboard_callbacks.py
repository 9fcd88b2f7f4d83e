"""The pages' callbacks and services against the real database (no browser).

Each test builds the app on a fresh copy of the sample community with the demo's
logins, alarms and orders, and calls what the callbacks call inside a request
of a given user.
"""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, datetime, time, timedelta, timezone

import pytest
import shapely
from dash import Patch, no_update
from PIL import Image

from dashboard import auth, scoped
from dashboard.demo import DEMO_PASSWORD
from dashboard.pages import building, large_screen, planner, work_orders, worker
from tests.control_room import as_user
from twin.alarms import AlarmSpec
from twin.store.connection import connect
from twin.store.operations import get_work_order, raise_alarm
from twin.store.reads.grids import grid_aggregates


def test_every_page_needs_a_login_and_callbacks_answer_401(room) -> None:
    app, users, _, url = room
    client = app.server.test_client()
    assert client.get("/").status_code == 302 and "/login" in client.get("/").location
    assert client.post("/_dash-update-component", json={}).status_code == 401
    bad = client.post("/login", data={"username": "operator", "password": "nope nope",
                                      "csrf_token": _form_token(client)})
    assert bad.status_code == 401 and "用户名或密码错误".encode() in bad.data
    ok = client.post("/login", data={"username": users.worker, "password": DEMO_PASSWORD,
                                     "csrf_token": _form_token(client)})
    assert ok.status_code == 302 and ok.location.endswith("/worker")
    assert client.get("/worker").status_code == 200
    client.post("/logout", data={"csrf_token": _form_token(client)})
    assert client.get("/worker").status_code == 302
    with connect(url) as conn:
        actions = [r[0] for r in conn.execute("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["login_failed", "login", "logout"]


def test_login_never_redirects_off_site(room) -> None:
    app, users, _, _ = room
    client = app.server.test_client()
    resp = client.post("/login?next=//evil.example/x",
                       data={"username": users.operator, "password": DEMO_PASSWORD,
                             "csrf_token": _form_token(client)})
    assert resp.location == "/"


def _form_token(client) -> str:
    """The session's CSRF token, as the login form carries it."""
    import re

    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_large_screen_shows_the_database_and_a_new_alarm_arrives_as_a_small_patch(room) -> None:
    app, users, ids, url = room
    with as_user(app, users.operator):
        page = large_screen.layout()
        token = _find(page, large_screen.TOKEN).data
        deck = _find(page, large_screen.MAP)
        smoke_building = _alarm_building(url, ids["smoke"])
        assert deck.featureColors["buildings"][smoke_building] == [235, 64, 72, 245]
        assert _find(page, large_screen.KPI["critical"]).children == "1"
        layer_ids = [layer["id"] for layer in deck.layers]
        assert {"ground", "buildings", "walkways", "devices", "attention", "incidents"} <= set(layer_ids)

        quiet = large_screen.live_update(token)
        assert quiet[0] is no_update and quiet[1] is no_update  # nothing changed, nothing sent

        with connect(url) as conn:
            target = conn.execute("SELECT id FROM building WHERE id <> %s ORDER BY id LIMIT 1",
                                  (smoke_building,)).fetchone()[0]
            device = conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM device "
                                  "WHERE building_id = %s LIMIT 1", (target,)).fetchone()
            raise_alarm(conn, AlarmSpec(
                community_id="wh-guanggu", type="water_leak", domain="safety", severity="critical",
                source_kind="device", source_id=device[0], title="水浸 Leak",
                at=datetime.now(UTC), building_id=target, device_id=device[0],
                location=shapely.Point(device[1], device[2])))
            conn.commit()
        colours, layers, *kpis, feed, _board, _stamp = large_screen.live_update(token)
        assert isinstance(colours, Patch)
        assert colours.to_plotly_json()["operations"] == [
            {"operation": "Assign", "location": ["buildings", target],
             "params": {"value": [235, 64, 72, 245]}}]
        assert [op["location"] for op in layers.to_plotly_json()["operations"]] == [
            ["attention", device[0]]]
        assert kpis[1] == "2"  # critical alarms
        assert "水浸 Leak" in json.dumps(feed, default=lambda c: c.to_plotly_json(), ensure_ascii=False)
        assert len(json.dumps([colours, layers], default=lambda c: c.to_plotly_json())) < 1000


def test_callbacks_refuse_roles_that_may_not_open_their_page(room) -> None:
    app, users, _, _ = room
    with as_user(app, users.worker):
        with pytest.raises(auth.AccessDenied):
            work_orders.list_orders(None, None, None, None)
        with pytest.raises(auth.AccessDenied):
            large_screen.chart_figures()
    with as_user(app, users.planner):
        from dash.exceptions import PreventUpdate

        with pytest.raises(PreventUpdate):
            large_screen.live_update("any")


def test_clicks_lead_to_the_drill_down_or_the_order() -> None:
    assert large_screen.clicked_target({"layer": "buildings", "object": {"id": "b1"}}) == "/building/b1"
    assert large_screen.clicked_target({"layer": "attention",
                                        "object": {"id": "d", "building": "b2"}}) == "/building/b2"
    assert large_screen.clicked_target({"layer": "routes", "object": {"id": 7}}) == "/work-orders?id=7"
    assert large_screen.clicked_target({"layer": "ground", "object": {"id": "x"}}) is None
    assert large_screen.clicked_target(None) is None


def test_building_drill_down_masks_residents_for_operators_and_audits_admins(room) -> None:
    app, users, _, url = room
    with as_user(app, users.operator):
        page = building.layout(building_id="wh-guanggu-b01")
        rows = _find(page, "residents-table")
        text = json.dumps(rows.to_plotly_json(), default=lambda c: c.to_plotly_json(),
                          ensure_ascii=False)
        assert "****" in text and "周佳" not in text and "周*" in text
        assert _find(page, "floors") is not None
    with as_user(app, users.admin):
        text = json.dumps(building.layout(building_id="wh-guanggu-b01").to_plotly_json(),
                          default=lambda c: c.to_plotly_json(), ensure_ascii=False)
        assert "周佳" in text
    with connect(url) as conn:
        seen = conn.execute("SELECT user_name, subject_id, detail FROM audit_log "
                            "WHERE action = 'view_residents_unmasked'").fetchall()
    assert [(u, s) for u, s, _ in seen] == [("admin", "wh-guanggu-b01")]
    assert "wh-guanggu-r000001" in seen[0][2]["residents"]


def test_a_grid_worker_cannot_open_another_grids_building_or_households(room) -> None:
    app, users, _, _ = room
    with as_user(app, users.worker) as me:  # grid g1
        assert me.grid_id == "wh-guanggu-g1"
        page = building.layout(building_id="wh-guanggu-b03")  # grid g2
        assert _find(page, "denied") is not None
        assert building.layout(building_id="wh-guanggu-b01") is not None
        with connect(app.server.config["TWIN"].pool.conninfo) as conn:
            with pytest.raises(auth.AccessDenied):
                scoped.residents(conn, me, building_id="wh-guanggu-b03")
            hits = scoped.lookup(conn, me, "101")
            other_unit = conn.execute(
                "SELECT u.id FROM unit u JOIN building b ON b.id = u.building_id "
                "WHERE b.grid_id <> %s ORDER BY u.id LIMIT 1", (me.grid_id,)).fetchone()[0]
        assert hits and {h["grid"] for h in hits} == {"wh-guanggu-g1"}
        assert "不在您的网格内" in json.dumps(worker.household_view(other_unit).to_plotly_json(),
                                          default=lambda c: c.to_plotly_json(), ensure_ascii=False)
    with connect(app.server.config["TWIN"].pool.conninfo) as conn:
        refusals = conn.execute("SELECT subject_kind, subject_id FROM audit_log "
                                "WHERE action = 'denied' AND user_name = %s ORDER BY id",
                                (users.worker,)).fetchall()
    # the page, the service called directly (no page in between) and the phone's household
    assert refusals == [("building", "wh-guanggu-b03"), ("building", "wh-guanggu-b03"),
                        ("unit", other_unit)]


def test_a_work_order_goes_from_created_to_closed_through_the_pages(room) -> None:
    app, users, ids, url = room
    order_id = ids["order_bin"]  # created, for cleaning; hand it to the grid worker of g1
    with as_user(app, users.operator):
        assert work_orders.perform(order_id, "assign").startswith("选择")  # nobody picked
        assert work_orders.perform(order_id, "assign",
                                   staff_id="wh-guanggu-s01").startswith("✓")
    png = io.BytesIO()
    Image.new("RGB", (4, 3), (40, 200, 40)).save(png, format="PNG")  # a real one: it is checked
    photo = "data:image/png;base64," + base64.b64encode(png.getvalue()).decode()
    with as_user(app, users.worker):
        cards = json.dumps(worker.task_cards(), default=lambda c: c.to_plotly_json(),
                           ensure_ascii=False)
        assert f"task-{order_id}" in cards
        assert work_orders.perform(order_id, "close").startswith("✗")  # not an operator
        for action in ("accept", "arrive"):
            assert work_orders.perform(order_id, action).startswith("✓")
        assert work_orders.perform(order_id, "resolve", note="清理完毕",
                                   photo=worker.decode_photo(photo)).startswith("✓")
    with as_user(app, users.operator):
        assert work_orders.perform(order_id, "close").startswith("✓")
        _body, _layer_data, view = work_orders.detail_view(order_id)
        assert view["longitude"] > 114
    with connect(url) as conn:
        order = get_work_order(conn, order_id)
        assert order.state == "closed"
        assert [e.action for e in order.history] == [
            "created", "assign", "accept", "arrive", "resolve", "close"]
        assert order.history[4].note == "清理完毕" and order.history[2].actor == users.worker
        (n,) = conn.execute("SELECT count(*) FROM work_order_photo WHERE work_order_id = %s",
                            (order_id,)).fetchone()
        assert n == 1


def test_the_dispatcher_assigns_from_the_order_page(room) -> None:
    app, users, ids, url = room
    with as_user(app, users.operator):
        message = work_orders.perform(ids["order_bin"], "dispatch")
    with connect(url) as conn:
        order = get_work_order(conn, ids["order_bin"])
    if message.startswith("✓"):
        assert order.state == "assigned" and order.route is not None
    else:  # nobody of the role on shift now: the dispatcher says why
        assert order.state == "created" and len(message) > 3


def test_worker_photos_must_be_images() -> None:
    assert worker.decode_photo(None) is None
    with pytest.raises(Exception, match="JPEG、PNG 或 WebP"):
        worker.decode_photo("data:text/plain;base64,aGk=")


def test_history_is_time_bucketed_over_any_range(room) -> None:
    app, users, _, url = room
    now = datetime.now(UTC)
    with connect(url) as conn:
        device = conn.execute("SELECT id FROM device WHERE type = 'co_sensor' AND building_id "
                              "IS NOT NULL LIMIT 1").fetchone()
        device_id = device[0] if device else conn.execute(
            "SELECT d.id FROM device d WHERE d.building_id IS NOT NULL LIMIT 1").fetchone()[0]
        rows = [(now - timedelta(minutes=m), device_id, "co", float(m % 7)) for m in range(600)]
        with conn.cursor().copy("COPY reading (time, device_id, metric, value) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        conn.commit()
    with as_user(app, users.admin) as me:
        with connect(url) as conn:
            hour = scoped.device_history(conn, me, device_id, "co", "1h", now=now)
            day = scoped.device_history(conn, me, device_id, "co", "24h", now=now)
            month = scoped.device_history(conn, me, device_id, "co", "30d", now=now)
        assert 59 <= len(hour) <= 61 and 40 <= len(day) <= 42 and 3 <= len(month) <= 4
        assert all(lo <= mean <= hi for _, mean, lo, hi in day)
        fig = building.history_figure(device_id, "co", "6h")
        assert len(fig.data) == 3 and len(fig.data[2].x) >= 70


def test_planner_sees_aggregates_and_no_people(room) -> None:
    app, users, _, _ = room
    with as_user(app, users.planner) as me:
        page = planner.layout()
        text = json.dumps(page.to_plotly_json(), default=_plain, ensure_ascii=False)
        assert _find(page, "wi-map") is not None and _find(page, "wi-run") is not None
        assert "周佳" not in text and "周*" not in text
        assert _find(large_screen.layout(), "denied") is not None
        with connect(app.server.config["TWIN"].pool.conninfo) as conn:
            with pytest.raises(auth.AccessDenied):
                scoped.lookup(conn, me, "1栋")
            grids = grid_aggregates(conn, "wh-guanggu", now=datetime.now(UTC))
        assert len(grids) == 6 and sum(g["buildings"] for g in grids) == 34


def _alarm_building(url: str, alarm_id: int) -> str:
    with connect(url) as conn:
        return conn.execute("SELECT building_id FROM alarm WHERE id = %s", (alarm_id,)).fetchone()[0]


def _find(component, wanted_id):
    """The component with id `wanted_id` in a layout tree, or None."""
    if getattr(component, "id", None) == wanted_id:
        return component
    children = getattr(component, "children", None)
    if children is None:
        return None
    for child in children if isinstance(children, (list, tuple)) else [children]:
        if hasattr(child, "to_plotly_json"):
            found = _find(child, wanted_id)
            if found is not None:
                return found
    return None


def test_the_planner_runs_a_scenario_and_compares_it_with_the_twin(room) -> None:
    """What the Run button shows: the same comparison as `twin whatif coverage`, per building."""
    from dashboard.whatif import OVER, run_coverage
    from twin.store.scenarios import compare_coverage
    from twin.whatif.scenario import Scenario

    app, users, _, url = room
    away = Scenario(name="two-guards-away", staff_removed=("wh-guanggu-s07", "wh-guanggu-s08"))
    with as_user(app, users.planner):
        shown = run_coverage(away, role="security", shift="day", sla_s=180)
        import pandas as pd

        from dashboard.whatif import _geojson

        exported = json.loads(_geojson(pd.DataFrame(shown["export"]["rows"])))
    assert len(exported["features"]) == 34
    assert exported["features"][0]["geometry"]["type"] == "Polygon"
    with connect(url) as conn:
        expected = compare_coverage(conn, "wh-guanggu", away, role="security", shifts=["day"],
                                    sla_s=180)["day"]
    text = json.dumps(shown["table"].to_plotly_json(), default=_plain, ensure_ascii=False)
    assert str(expected.summary()["over_target_scenario"]) in text
    over = {b for b, color in shown["colors"].items() if color == OVER}
    assert over == set(expected.scenario.over(180))
    assert len(shown["export"]["rows"]) == 34
    assert {"building_id", "baseline_s", "scenario_s", "name"} <= set(shown["export"]["rows"][0])


def _plain(value):
    """json.dumps' fallback for a layout: components, and pre-encoded map data (orjson)."""
    import orjson

    if isinstance(value, orjson.Fragment):
        return orjson.loads(orjson.dumps(value))
    return value.to_plotly_json()


def test_an_operator_acknowledges_an_alarm_from_the_feed(room) -> None:
    app, users, _, url = room
    with connect(url) as conn:
        device, building = conn.execute(
            "SELECT id, building_id FROM device WHERE type = 'smoke_detector' LIMIT 1").fetchone()
        raised = raise_alarm(conn, AlarmSpec(
            community_id="wh-guanggu", type="smoke", domain="safety", severity="critical",
            source_kind="device", source_id=device, title="Smoke alarm", building_id=building,
            device_id=device, at=datetime.now(UTC)))
    alarm_id = raised.alarm.id
    with as_user(app, users.operator):
        rows = large_screen._feed([{**_feed_row(alarm_id), "state": "active"}], "en")
        assert _find(rows[0], {"type": large_screen.ACK, "id": alarm_id}) is not None
        first = large_screen.acknowledge(alarm_id)
        assert first in ("已确认: Smoke alarm", "Acknowledged: Smoke alarm")  # the user's language
        again = large_screen.acknowledge(alarm_id)
        assert "is acknowledged; it cannot be acknowledged" in again
        quiet = large_screen._feed([{**_feed_row(alarm_id), "state": "acknowledged"}], "en")
        assert _find(quiet[0], {"type": large_screen.ACK, "id": alarm_id}) is None
    with connect(url) as conn:
        assert conn.execute("SELECT state, acknowledged_by FROM alarm WHERE id = %s",
                            (alarm_id,)).fetchone() == ("acknowledged", users.operator)
    with as_user(app, users.planner), pytest.raises(auth.AccessDenied):
        large_screen.acknowledge(alarm_id)


def _feed_row(alarm_id: int) -> dict:
    return {"id": alarm_id, "severity": "critical", "building_id": None, "title": "Smoke alarm",
            "count": 1, "building": "", "domain": "safety", "last_at": None}


def test_the_phone_page_stores_my_position_and_refuses_anyone_elses(room) -> None:
    """The position write takes a staff id from the browser: only the session's own counts,
    whoever calls the service (as an attacker would, without the page)."""
    from twin.dispatch import on_shift

    app, users, _ids, url = room
    with connect(url) as conn:
        me = auth.get_user(conn, users.worker).staff_id
        other = auth.get_user(conn, users.worker2).staff_id
        # on duty now, whatever the hour the suite runs at
        shift = "day" if on_shift("day", datetime.now(UTC)) else "night"
        conn.execute("UPDATE staff SET shift = %s WHERE id = %s", (shift, me))
        conn.commit()
        before = conn.execute("SELECT ST_AsText(position), position_at FROM staff WHERE id = %s",
                              (other,)).fetchone()
        (lon, lat) = conn.execute(
            "SELECT ST_X(geom), ST_Y(geom) FROM walk_node ORDER BY id LIMIT 1").fetchone()
    fix = {"lon": lon, "lat": lat, "accuracy_m": 12.0, "why": "accept"}
    with as_user(app, users.worker):
        assert worker.report_position(other, fix).startswith("✗")
        assert worker.report_position(None, fix).startswith("✗")
        assert worker.report_position(me, fix).startswith("✓")
        # and the way to each of my tasks now starts where I am
        cards, layer_data = worker.task_cards()
        text = json.dumps(cards, default=lambda c: c.to_plotly_json(), ensure_ascii=False)
        assert layer_data["target"]["me"]["position"][:2] == [lon, lat]
        assert layer_data["route"] and "步行" in text
        first = next(iter(layer_data["route"].values()))["path"][0]
        assert first == pytest.approx([lon, lat], abs=2e-4)  # from my fix (a metre's leg aside)
    with as_user(app, users.operator):  # not a staff member, and not a phone page user
        assert worker.report_position(me, fix).startswith("✗")
    with connect(url) as conn:
        stored = conn.execute("SELECT staff_id, source, accuracy_m, device_id FROM staff_position "
                              "WHERE source = 'phone'").fetchall()
        after = conn.execute("SELECT ST_AsText(position), position_at FROM staff WHERE id = %s",
                             (other,)).fetchone()
        refusals = conn.execute("SELECT user_name, subject_kind, subject_id FROM audit_log "
                                "WHERE action = 'denied' ORDER BY id").fetchall()
    assert stored == [(me, "phone", 12.0, None)]
    assert after == before
    assert refusals == [(users.worker, "staff", other), (users.worker, "staff", "None"),
                        (users.operator, "staff", me)]


def test_the_phone_sends_nothing_off_duty(room) -> None:
    _app, users, _ids, url = room
    with connect(url) as conn:
        me = auth.get_user(conn, users.worker).staff_id
        user = auth.get_user(conn, users.worker)
        day, night = datetime(2026, 11, 25, 3, tzinfo=UTC), datetime(2026, 11, 25, 15, tzinfo=UTC)
        # 11:00 and 23:00 in Wuhan: the day-shift grid worker is on, then off
        assert scoped.record_my_position(conn, user, me, lon=114.41, lat=30.49, accuracy_m=5.0,
                                         at=day) is True
        assert scoped.record_my_position(conn, user, me, lon=114.42, lat=30.49, accuracy_m=5.0,
                                         at=night) is False
        with pytest.raises(Exception, match="too little"):
            scoped.record_my_position(conn, user, me, lon=114.41, lat=30.49, accuracy_m=5000.0,
                                      at=day)
        rows = conn.execute("SELECT time FROM staff_position WHERE staff_id = %s",
                            (me,)).fetchall()
    assert rows == [(day,)]


# --- words per viewer ----------------------------------------------------------------------

def _care_alarm(url: str) -> tuple[str, str, str, int]:
    """A library rule fires for real: special-care-not-out for a resident living alone,
    written through the rules' store. Returns (resident id, name, their grid, alarm id)."""
    from twin.rules.compile import library_dir, load_directory
    from twin.rules.engine import Engine
    from twin.rules.store import Dispatcher, Outcome, execute, load_snapshot, store_rules

    t0 = datetime(2026, 11, 24, 2, 0, tzinfo=UTC)  # a Tuesday, 10:00 in Wuhan
    library = load_directory(library_dir())
    with connect(url) as conn:
        store_rules(conn, library, at=t0)
        snap = load_snapshot(conn, "wh-guanggu")
        engine = Engine([r for r in library if r.id == "special-care-not-out"], snap, started=t0)
        at = t0 + timedelta(hours=45, minutes=5)
        outcome = Outcome()
        for firing in engine.tick(at):
            execute(conn, firing, now=at, dispatcher=Dispatcher(), outcome=outcome)
        conn.commit()
        # every resident living alone fired; the newest alarm tops the feed
        alarm_id = max(outcome.alarms)
        (resident,) = conn.execute("SELECT resident_id FROM alarm WHERE id = %s",
                                   (alarm_id,)).fetchone()
    person = snap.residents[resident]
    _, building_ = snap.resident_place(person.id)
    assert building_ is not None
    return person.id, person.name, building_.grid_id, alarm_id


def test_a_library_alarm_keeps_a_key_and_ids_and_each_viewer_reads_it_in_their_words(room
                                                                                  ) -> None:
    from twin.privacy import mask_name

    app, users, _, url = room
    resident, name, _, alarm_id = _care_alarm(url)
    with connect(url) as conn:
        title, key, params, detail = conn.execute(
            "SELECT title, text_key, text_params, detail FROM alarm WHERE id = %s",
            (alarm_id,)).fetchone()
        order_title, order_params = conn.execute(
            "SELECT title, text_params FROM work_order WHERE alarm_id = %s", (alarm_id,)
        ).fetchone()
        messages = conn.execute("SELECT channel, message, text_key FROM notification "
                                "WHERE alarm_id = %s", (alarm_id,)).fetchall()
        auth.set_language(conn, users.admin, "en")
        conn.commit()
    # stored: the key and the resident's id, the name nowhere
    assert key == "special-care-not-out/alarm" and params["resident"] == resident
    assert params["hours"] == "36"
    stored = json.dumps([title, params, detail, order_title, order_params,
                         [m[1] for m in messages]], ensure_ascii=False)
    assert name not in stored
    assert title == f"{mask_name(name)}（{params['age_band']}）已 36 小时未出门"
    assert {m[2] for m in messages} == {"special-care-not-out/tell"}

    # the operator (zh-CN): Chinese, masked, on the feed, the board and the order page
    with as_user(app, users.operator):
        page = _dump(large_screen.layout())
        assert f"{mask_name(name)}（" in page and "已 36 小时未出门" in page
        assert name not in page
        rows = work_orders.list_orders(None, None, None, None)
        visit = next(r for r in rows if r["kind"] == "welfare_check")
        assert visit["title"].startswith(f"上门探访：{mask_name(name)}，")
        assert name not in json.dumps(rows, ensure_ascii=False)
        detail_page = _dump(work_orders.detail_view(visit["id"])[0])
        assert "上门探访" in detail_page and name not in detail_page
    # the admin, who reads English: whole, and audited
    with as_user(app, users.admin):
        page = _dump(large_screen.layout())
        assert f"{name} (" in page and "not seen going out for 36 h" in page
    with connect(url) as conn:
        audited = conn.execute("SELECT detail FROM audit_log WHERE user_name = %s AND action = "
                               "'view_residents_unmasked'", (users.admin,)).fetchall()
    assert any(resident in d[0]["residents"] for d in audited)


def test_live_ticks_and_the_phone_render_for_their_reader(room) -> None:
    from twin.privacy import mask_name

    app, users, _, url = room
    with as_user(app, users.operator):
        token = _find(large_screen.layout(), large_screen.TOKEN).data
    _, name, grid, alarm_id = _care_alarm(url)
    with as_user(app, users.operator):
        *_, feed, board, _stamp = large_screen.live_update(token)
        sent = _dump([feed, board])
        assert "未出门" in sent and mask_name(name) in sent and name not in sent
    # the visit on the phones: whole for the grid worker of the resident's grid, masked for
    # a grid worker of another grid it was handed to
    from twin.store.operations import Assignee, act_on_work_order
    from twin.work_orders import SYSTEM

    with connect(url) as conn:
        (order_id,) = conn.execute("SELECT id FROM work_order WHERE alarm_id = %s",
                                   (alarm_id,)).fetchone()
        grids = dict(conn.execute("SELECT id, grid_worker_id FROM grid").fetchall())
        other = next(g for g in sorted(grids) if g != grid)
        for login, g in (("phone-own", grid), ("phone-other", other)):
            auth.add_user(conn, login, DEMO_PASSWORD, "grid_worker", grid_id=g)
        conn.commit()
    for login, g, shown in (("phone-own", grid, name), ("phone-other", other, mask_name(name))):
        with connect(url) as conn:
            act_on_work_order(conn, order_id, "assign", actor=SYSTEM, at=datetime.now(UTC),
                              assignee=Assignee(grids[g]))
            conn.commit()
        with as_user(app, login) as user, connect(url) as conn:
            tasks = {t["id"]: t for t in scoped.my_tasks(conn, user)}
            conn.commit()
        assert tasks[order_id]["title"].startswith(f"上门探访：{shown}，"), login


def test_every_time_on_the_building_page_is_on_the_communitys_clock(room) -> None:
    app, users, _, url = room
    now = datetime.now(UTC)
    seen = datetime(2026, 11, 29, 3, 4, 5, tzinfo=UTC)  # 11:04:05 in Wuhan
    with connect(url) as conn:
        assert conn.execute("SELECT timezone FROM community").fetchone()[0] == "Asia/Shanghai"
        from twin.device_types import DEVICE_TYPES

        building_id, device_id, metric = next(
            (b, d, m) for b, d, kind in conn.execute(
                "SELECT building_id, id, type FROM device WHERE building_id IS NOT NULL "
                "ORDER BY id")
            for m, spec in DEVICE_TYPES[kind].metrics.items() if not spec.is_text)
        conn.execute("INSERT INTO device_state (device_id, online, last_seen) "
                     "VALUES (%s, true, %s)", (device_id, seen))
        with conn.cursor().copy("COPY reading (time, device_id, metric, value) FROM STDIN") as copy:
            for m in range(120):
                copy.write_row((now - timedelta(minutes=m), device_id, metric, 5.0))
        conn.commit()
    plus8 = timezone(timedelta(hours=8))
    with as_user(app, users.operator):
        text = _dump(building.layout(building_id=building_id))
        # the device table: the last message at Wuhan's time, not UTC's
        assert "11:04:05" in text and "03:04:05" not in text
        # the history chart's axis
        fig = building.history_figure(device_id, metric, "6h")
        xs = [x for trace in fig.data for x in (trace.x or ())]
        assert xs and all(x.utcoffset() == timedelta(hours=8) for x in xs)
        # the large screen's "updated" stamp
        stamp = large_screen.live_update(None)[-1].split()[-1]
        now = datetime.now(plus8)
        shown = datetime.combine(now.date(), time.fromisoformat(stamp), plus8)
        assert abs((now - shown).total_seconds()) % 86400 < 120


def _dump(component) -> str:
    """A layout as the JSON the browser gets (pre-encoded layers included)."""
    import orjson

    return orjson.dumps(component, default=_plotly).decode()


def _plotly(c):
    return c.to_plotly_json() if hasattr(c, "to_plotly_json") else str(c)


def test_the_demos_alarms_are_in_the_readers_language(room) -> None:
    app, users, _, url = room
    with as_user(app, users.operator):
        feed = _dump(_find(large_screen.layout(), large_screen.FEED))
    assert "层烟感报警" in feed and "Smoke alarm" not in feed
    with connect(url) as conn:
        auth.set_language(conn, users.operator, "en")
        conn.commit()
    with as_user(app, users.operator):
        feed = _dump(_find(large_screen.layout(), large_screen.FEED))
    assert "Smoke alarm in " in feed and "烟感报警" not in feed
