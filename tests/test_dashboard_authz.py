"""Authorised below the page: every callback refuses, audits and names its real actor
whoever calls it, a forged request or a page.

Each test logs in as a role and posts straight to ``/_dash-update-component``, as an
attacker with a session but without the page would (issue 15), or calls the service a
callback calls; then it reads the database: nothing changed that should not have, the
history names the user, and the audit log has the refusal.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from dashboard import auth, scoped
from dashboard.demo import DEMO_PASSWORD
from dashboard.pages import building, large_screen, work_orders
from tests.control_room import as_user
from twin.access import AccessDenied
from twin.alarms import AlarmSpec
from twin.store.connection import connect
from twin.store.operations import Assignee, act_on_work_order, get_work_order, raise_alarm
from twin.work_orders import Actor

OPERATOR = Actor(name="operator", role="operator")




# --- posting a callback as the browser would -------------------------------------------------

def login(app, name: str):
    client = app.server.test_client()
    page = client.get("/login").get_data(as_text=True)  # the form's CSRF token
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = client.post("/login", data={"username": name, "password": DEMO_PASSWORD,
                                       "csrf_token": token})
    assert resp.status_code == 302, resp.data
    return client


def post(client, app, *, output: str, trigger: str, values: dict[str, Any]):
    """Post the callback whose outputs start with ``output`` ("id.prop") and whose inputs
    include ``trigger``; ``values`` holds every input's and state's value by "id.prop" (a
    pattern-matching one: a list of (id dict, value)). ``trigger`` may be a pattern's
    "id.prop" with its concrete id as JSON."""
    key, spec = _callback(app, output, trigger)

    def entry(dep: dict[str, str]) -> Any:
        name = f"{dep['id']}.{dep['property']}"
        if dep["id"].startswith("{"):
            return [{"id": i, "property": dep["property"], "value": v}
                    for i, v in values.get(name, [])]
        return {"id": dep["id"], "property": dep["property"], "value": values.get(name)}

    outputs = [{"id": o.component_id, "property": o.component_property.split("@")[0]}
               for o in (spec["output"] if isinstance(spec["output"], list) else [spec["output"]])]
    body = {
        "output": key,
        "outputs": outputs if isinstance(spec["output"], list) else outputs[0],
        "inputs": [entry(d) for d in spec["inputs"]],
        "state": [entry(d) for d in spec["state"]],
        "changedPropIds": [trigger],
    }
    return client.post("/_dash-update-component", json=body)


def pattern(id_: dict[str, Any], prop: str) -> str:
    """A pattern-matching component's "id.prop" as Dash writes it."""
    return json.dumps(id_, sort_keys=True, separators=(",", ":")) + "." + prop


def _callback(app, output: str, trigger: str) -> tuple[str, dict[str, Any]]:
    trigger_id = trigger.rsplit(".", 1)[0]
    for key, spec in app.callback_map.items():
        outs = spec["output"] if isinstance(spec["output"], list) else [spec["output"]]
        first = f"{outs[0].component_id}.{outs[0].component_property.split('@')[0]}"
        ids = {d["id"] for d in spec["inputs"]}
        if first == output and (trigger_id in ids or any(
                i.startswith("{") and _same_pattern(i, trigger_id) for i in ids)):
            return key, spec
    raise AssertionError(f"no callback {output} triggered by {trigger}")


def _same_pattern(wild: str, concrete: str) -> bool:
    if not concrete.startswith("{"):
        return False
    w, c = json.loads(wild), json.loads(concrete)
    return w.keys() == c.keys() and all(w[k] == c[k] for k in w if not isinstance(w[k], list))


def refusals(url: str, user: str) -> list[tuple[str, str, dict[str, Any]]]:
    with connect(url) as conn:
        return conn.execute("SELECT subject_kind, subject_id, detail FROM audit_log "
                            "WHERE action = 'denied' AND user_name = %s ORDER BY id",
                            (user,)).fetchall()


def _history(url: str, order_id: int) -> list[tuple[str, str]]:
    with connect(url) as conn:
        order = get_work_order(conn, order_id)
    return [(e.action, e.actor) for e in order.history]


def _staff(url: str, login_name: str) -> str:
    with connect(url) as conn:
        staff = auth.get_user(conn, login_name).staff_id
    assert staff is not None
    return staff


# --- 1. a grid worker cannot reassign work orders; the history names the real actor ---------

def test_a_grid_worker_posting_dispatch_moves_nobodys_order(room) -> None:
    """The defect as found: the work-order page's dispatch posted by a grid worker moved an
    order from another worker to himself, and the history said `system`."""
    app, users, ids, url = room
    order_id = ids["order_smoke"]  # in worker1's grid
    other = _staff(url, users.worker2)
    with connect(url) as conn:  # an operator gives it to the other grid's worker
        act_on_work_order(conn, order_id, "assign", actor=OPERATOR, at=datetime.now(UTC),
                          assignee=Assignee(other))
        conn.commit()
    before = _history(url, order_id)
    client = login(app, users.worker)
    action = {"type": work_orders.ACTION, "action": "dispatch"}
    resp = post(client, app, output="wo-message.children",
                trigger=pattern(action, "n_clicks"),
                values={f'{{"action":["ALL"],"type":"{work_orders.ACTION}"}}.n_clicks':
                        [(action, 1)], "wo-selected.data": order_id})
    assert resp.status_code in (200, 403)
    assert "✗" in resp.get_data(as_text=True) or resp.status_code == 403
    with connect(url) as conn:
        assert get_work_order(conn, order_id).assignee_id == other
    assert _history(url, order_id) == before  # not even a note
    ((kind, subject, detail),) = refusals(url, users.worker)
    assert (kind, subject) == ("work_order", str(order_id))
    assert detail["asked"] == "order.dispatch" and "may not dispatch" in detail["reason"]


def test_a_grid_worker_cannot_assign_close_or_cancel_nor_act_on_anothers_order(room) -> None:
    app, users, ids, url = room
    mine, theirs = ids["order_charger"], ids["order_smoke"]  # both held by worker1
    with connect(url) as conn:
        act_on_work_order(conn, theirs, "assign", actor=OPERATOR, at=datetime.now(UTC),
                          assignee=Assignee(_staff(url, users.worker2)))
        conn.commit()
    before = {o: _history(url, o) for o in (mine, theirs)}
    with as_user(app, users.worker):
        me = _staff(url, users.worker)
        for action in ("assign", "close", "cancel"):
            assert work_orders.perform(mine, action, staff_id=me).startswith("✗"), action
        for action in ("accept", "decline", "escalate", "resolve"):  # held by someone else
            assert work_orders.perform(theirs, action).startswith("✗"), action
    with as_user(app, users.worker2):  # the other grid's worker, on the first one's order
        assert work_orders.perform(mine, "resolve").startswith("✗")
    assert {o: _history(url, o) for o in (mine, theirs)} == before
    asked = [d["asked"] for _, _, d in refusals(url, users.worker)]
    assert asked == ["order.assign", "order.close", "order.cancel", "order.accept",
                     "order.decline", "order.escalate", "order.resolve"]
    assert [d["asked"] for _, _, d in refusals(url, users.worker2)] == ["order.resolve"]


def test_a_photo_goes_only_with_a_step_that_is_the_users(room) -> None:
    from twin.store.operations import Photo

    app, users, ids, url = room
    order_id = ids["order_charger"]  # accepted by worker1
    photo = Photo(content_type="image/png", data=b"\x89PNG\r\n\x1a\n not really")
    with as_user(app, users.worker2):
        assert work_orders.perform(order_id, "resolve", photo=photo).startswith("✗")
    with connect(url) as conn:
        (n,) = conn.execute("SELECT count(*) FROM work_order_photo").fetchone()
    assert n == 0
    assert [(k, s) for k, s, _ in refusals(url, users.worker2)] == [("work_order", str(order_id))]


def test_an_operators_steps_and_dispatch_are_written_in_their_name(room) -> None:
    app, users, ids, url = room
    with as_user(app, users.operator):
        message = work_orders.perform(ids["order_bin"], "dispatch")
        assert message[0] in "✓✗"
        assert work_orders.perform(ids["order_leak"], "close").startswith("✓")
    history = _history(url, ids["order_bin"])
    # assigned by the dispatcher, or a note saying why nobody could go: in the operator's name
    assert history[-1][0] in ("assign", "note") and history[-1][1] == users.operator
    assert _history(url, ids["order_leak"])[-1] == ("close", users.operator)
    assert refusals(url, users.operator) == []


def test_only_operators_acknowledge_alarms_and_a_forged_one_is_refused_and_audited(room
                                                                                   ) -> None:
    app, users, _, url = room
    with connect(url) as conn:
        device, building_id = conn.execute(
            "SELECT id, building_id FROM device WHERE type = 'smoke_detector' "
            "ORDER BY id DESC LIMIT 1").fetchone()
        alarm_id = raise_alarm(conn, AlarmSpec(
            community_id="wh-guanggu", type="smoke", domain="safety", severity="critical",
            source_kind="device", source_id=device, title="Smoke alarm",
            building_id=building_id, device_id=device, at=datetime.now(UTC))).alarm.id
        conn.commit()
    ack = {"type": large_screen.ACK, "id": alarm_id}
    for name in (users.worker, users.planner):
        resp = post(login(app, name), app, output="ls-ack-message.children",
                    trigger=pattern(ack, "n_clicks"),
                    values={f'{{"id":["ALL"],"type":"{large_screen.ACK}"}}.n_clicks':
                            [(ack, 1)]})
        assert resp.status_code == 403
        ((kind, subject, detail),) = refusals(url, name)
        assert (kind, subject, detail["asked"]) == ("alarm", str(alarm_id), "alarm.acknowledge")
    with connect(url) as conn:
        assert conn.execute("SELECT state FROM alarm WHERE id = %s",
                            (alarm_id,)).fetchone() == ("active",)


# --- 3. refusals below the page are audited: who, what they asked, of what, why -------------

def test_refused_device_history_chart_list_and_photo_requests_are_audited(room) -> None:
    app, users, ids, url = room
    with connect(url) as conn:
        other_building, device = conn.execute(
            "SELECT b.id, d.id FROM building b JOIN device d ON d.building_id = b.id "
            "WHERE b.grid_id <> %s ORDER BY b.id, d.id LIMIT 1",
            (auth.get_user(conn, users.worker).grid_id,)).fetchone()
        own_building = conn.execute("SELECT id FROM building WHERE grid_id = %s ORDER BY id "
                                    "LIMIT 1", (auth.get_user(conn, users.worker).grid_id,)
                                    ).fetchone()[0]
    client = login(app, users.worker)
    # a device of another grid's building, claimed to be in one of mine
    assert post(client, app, output="b-metric.options", trigger="b-device.value",
                values={"b-device.value": device, "b-id.data": own_building}
                ).status_code == 403
    # that device's history
    assert post(client, app, output="b-history.figure", trigger="b-device.value",
                values={"b-device.value": device, "b-metric.value": "co",
                        "b-range.value": "24h"}).status_code == 403
    # the other grid's devices, refreshed
    assert post(client, app, output="b-devices.children", trigger="b-refresh.n_intervals",
                values={"b-refresh.n_intervals": 1, "b-id.data": other_building}
                ).status_code == 403
    # the large screen's charts and the work-order list
    assert post(client, app, output="ls-events-chart.figure", trigger="ls-charts.n_intervals",
                values={"ls-charts.n_intervals": 1}).status_code == 403
    assert post(client, app, output="wo-list.children", trigger="wo-refresh.n_intervals",
                values={"wo-refresh.n_intervals": 1}).status_code == 403
    # a photo of an order of the other grid (worker2 asks for worker1's)
    other = login(app, users.worker2)
    assert other.get(f"/photo/{ids['order_leak']}/0").status_code == 403

    asked = [(k, s, d["asked"]) for k, s, d in refusals(url, users.worker)]
    assert asked == [("device", device, "device"), ("device", device, "history"),
                     ("building", other_building, "devices"),
                     ("page", "large_screen", "live.view"), ("page", "work_orders", "order.list")]
    ((kind, subject, detail),) = refusals(url, users.worker2)
    assert (kind, subject, detail["asked"]) == ("work_order", str(ids["order_leak"]), "photo")
    assert "grid" in detail["reason"]


def test_audited_refusals_name_ids_never_residents(room) -> None:
    """A refusal of a household keeps the unit's id and the reason; not the people in it."""
    from dashboard.pages import worker

    app, users, _, url = room
    with connect(url) as conn:
        unit, names = conn.execute(
            "SELECT u.id, array_agg(r.name) FROM unit u JOIN building b ON b.id = u.building_id "
            "JOIN resident r ON r.unit_id = u.id WHERE b.grid_id <> %s "
            "GROUP BY u.id ORDER BY u.id LIMIT 1",
            (auth.get_user(conn, users.worker).grid_id,)).fetchone()
    with as_user(app, users.worker):
        worker.household_view(unit)
    rows = refusals(url, users.worker)
    assert [(k, s) for k, s, _ in rows] == [("unit", unit)]
    text = json.dumps(rows, ensure_ascii=False, default=str)
    assert not any(name in text for name in names)


# --- 4. every what-if callback checks the role ---------------------------------------------

def test_a_grid_worker_cannot_download_footprints_or_touch_the_what_if_tools(room) -> None:
    """The defect as found: the export callback, posted by a grid worker, sent another
    grid's building footprint."""
    app, users, _, url = room
    client = login(app, users.worker)
    last = {"scenario": "x", "rows": [{"building_id": "wh-guanggu-b03", "baseline_s": 1.0,
                                       "scenario_s": 2.0}]}
    resp = post(client, app, output="wi-download.data", trigger="wi-export-geojson.n_clicks",
                values={"wi-export-geojson.n_clicks": 1, "wi-last.data": last})
    assert resp.status_code == 403 and "coordinates" not in resp.get_data(as_text=True)
    for output, trigger, values in (
        ("wi-closed.data", "wi-scenario.value", {"wi-scenario.value": "anything"}),
        ("wi-closed.data", "wi-map.clickInfo",
         {"wi-map.clickInfo": {"layer": "walkways", "object": {"id": "e1"}},
          "wi-closed.data": []}),
        ("wi-map.layerData", "wi-closed.data", {"wi-closed.data": []}),
    ):
        assert post(client, app, output=output, trigger=trigger, values=values
                    ).status_code == 403, output
    # save and run answer with the page's message, and are audited too
    saved = post(client, app, output="wi-message.children", trigger="wi-save.n_clicks",
                 values={"wi-save.n_clicks": 1, "wi-name.value": "mine"})
    assert saved.status_code == 200 and "无权访问" in saved.get_data(as_text=True)
    asked = {d["asked"] for _, _, d in refusals(url, users.worker)}
    assert asked == {"whatif.use"} and len(refusals(url, users.worker)) == 5
    with connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM scenario").fetchone() == (0,)


def test_the_planner_still_loads_edits_and_exports(room) -> None:
    app, users, _, url = room
    client = login(app, users.planner)
    saved = post(client, app, output="wi-message.children", trigger="wi-save.n_clicks",
                 values={"wi-save.n_clicks": 1, "wi-name.value": "works",
                         "wi-closed.data": [], "wi-away.value": ["wh-guanggu-s07"]})
    assert saved.status_code == 200 and "works" in saved.get_data(as_text=True)
    loaded = post(client, app, output="wi-closed.data", trigger="wi-scenario.value",
                  values={"wi-scenario.value": "works"})
    assert loaded.status_code == 200 and "wh-guanggu-s07" in loaded.get_data(as_text=True)
    exported = post(client, app, output="wi-download.data", trigger="wi-export-csv.n_clicks",
                    values={"wi-export-csv.n_clicks": 1, "wi-last.data": {
                        "scenario": "works", "rows": [{"building_id": "wh-guanggu-b03"}]}})
    assert exported.status_code == 200 and "wh-guanggu-b03" in exported.get_data(as_text=True)
    assert refusals(url, users.planner) == []


# --- 5. malformed input is a 4xx or a message, never a 500, and changes nothing ------------

def test_malformed_callback_input_is_a_4xx_or_a_message(room) -> None:
    app, users, ids, url = room
    orders = [order for name, order in ids.items() if name.startswith("order_")]
    before = {order: _history(url, order) for order in orders}
    client = login(app, users.operator)
    # wo-selected="abc": the detail says so
    detail = post(client, app, output="wo-detail.children", trigger="wo-selected.data",
                  values={"wo-selected.data": "abc"})
    assert detail.status_code == 200 and "not a work order" in detail.get_data(as_text=True)
    # ... and an action on it
    action = {"type": work_orders.ACTION, "action": "close"}
    acted = post(client, app, output="wo-message.children", trigger=pattern(action, "n_clicks"),
                 values={f'{{"action":["ALL"],"type":"{work_orders.ACTION}"}}.n_clicks':
                         [(action, 1)], "wo-selected.data": "abc"})
    assert acted.status_code == 200 and "not a work order" in acted.get_data(as_text=True)
    # an unknown staff id to assign to
    assign = {"type": work_orders.ACTION, "action": "assign"}
    unknown = post(client, app, output="wo-message.children",
                   trigger=pattern(assign, "n_clicks"),
                   values={f'{{"action":["ALL"],"type":"{work_orders.ACTION}"}}.n_clicks':
                           [(assign, 1)], "wo-selected.data": ids["order_bin"],
                           "wo-staff.value": "nobody-at-all"})
    assert unknown.status_code == 200
    assert "no staff member 'nobody-at-all'" in unknown.get_data(as_text=True)
    # an alarm that is not a number
    ack = {"type": large_screen.ACK, "id": "abc"}
    acked = post(client, app, output="ls-ack-message.children", trigger=pattern(ack, "n_clicks"),
                 values={f'{{"id":["ALL"],"type":"{large_screen.ACK}"}}.n_clicks': [(ack, 1)]})
    assert acked.status_code == 200 and "not an alarm: abc" in acked.get_data(as_text=True)
    # a history range that is not one
    with connect(url) as conn:
        device = conn.execute("SELECT id FROM device WHERE building_id IS NOT NULL "
                              "ORDER BY id LIMIT 1").fetchone()[0]
    history = post(client, app, output="b-history.figure", trigger="b-range.value",
                   values={"b-device.value": device, "b-metric.value": "co",
                           "b-range.value": "forever"})
    assert history.status_code == 400 and "forever" in history.json["error"]
    # the filters of the list, forged
    listed = post(client, app, output="wo-list.children", trigger="wo-f-grid.value",
                  values={"wo-f-grid.value": ["g1", "g2"], "wo-f-state.value": None})
    assert listed.status_code == 400
    # an unknown scenario, loaded by the planner
    planner = login(app, users.planner)
    scenario = post(planner, app, output="wi-closed.data", trigger="wi-scenario.value",
                    values={"wi-scenario.value": "no-such-scenario"})
    assert scenario.status_code == 200 and "no-such-scenario" in scenario.get_data(as_text=True)
    assert {order: _history(url, order) for order in orders} == before


def test_the_page_services_turn_bad_ids_into_messages(room) -> None:
    app, users, ids, _ = room
    with as_user(app, users.operator):
        assert "not a work order" in str(work_orders.detail_view("abc")[0].children)
        assert work_orders.perform({"id": 1}, "close").startswith("✗")
        assert work_orders.perform(ids["order_leak"], ["close"]).startswith("✗ ")
        assert work_orders.perform(ids["order_leak"], "frobnicate").startswith("✗ ")
        assert "abc" in large_screen.acknowledge("abc")
        from twin.errors import TwinError

        with pytest.raises(TwinError, match="unknown history range"):
            building.history_figure("some-device", "co", "forever")


def test_an_operator_of_another_community_cannot_acknowledge_its_alarm(room) -> None:
    """A login bound to a community is refused (and audited) on another's alarm, called
    straight through the service as a forged callback would."""
    *_, url = room
    with connect(url) as conn:
        auth.add_user(conn, "op-elsewhere", DEMO_PASSWORD, "operator",
                      community_id=_other_community(conn))
        conn.commit()
        (alarm_id,) = conn.execute("SELECT id FROM alarm WHERE state = 'active' "
                                   "ORDER BY id LIMIT 1").fetchone()
        user = auth.get_user(conn, "op-elsewhere")
        assert user is not None
        with pytest.raises(AccessDenied, match="community"):
            scoped.acknowledge(conn, user, alarm_id, at=datetime.now(UTC))
        state = conn.execute("SELECT state FROM alarm WHERE id = %s", (alarm_id,)).fetchone()
        refused = conn.execute("SELECT count(*) FROM audit_log WHERE user_name = 'op-elsewhere' "
                               "AND action = 'denied'").fetchone()
    assert state == ("active",) and refused == (1,)


def _other_community(conn) -> str:
    conn.execute("INSERT INTO community (id, name, city, local_srid, boundary, timezone) "
                 "SELECT 'elsewhere', 'elsewhere', city, local_srid, boundary, timezone "
                 "FROM community ORDER BY id LIMIT 1")
    return "elsewhere"
