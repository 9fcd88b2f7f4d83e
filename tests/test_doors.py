"""Doors, visitor passes, broadcasts and access history, below the page: the service
functions called directly (as a forged request would reach them), against the real
sample twin. Who may open which door, issue a pass for whom, broadcast, and read whose
history; every refusal is written to the audit log with the real actor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import shapely

from dashboard import auth, doors
from dashboard.demo import DEMO_PASSWORD
from twin import doors as policy
from twin.access import AccessDenied
from twin.errors import TwinError
from twin.store import doors as store
from twin.store.connection import connect

NIGHT = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 03:00 in Wuhan


def _resident(conn, *, other_than: str | None = None) -> tuple[str, str, str]:
    """(resident id, building, phone) of a resident of a residential building with doors."""
    row = conn.execute(
        """SELECT r.id, u.building_id, r.phone FROM resident r JOIN unit u ON u.id = r.unit_id
           WHERE EXISTS (SELECT 1 FROM device d WHERE d.building_id = u.building_id
                         AND d.type = 'access_door')
             AND u.building_id IS DISTINCT FROM %s
           ORDER BY r.id LIMIT 1""", (other_than,)).fetchone()
    return row[0], row[1], row[2]


def _people(url: str) -> dict[str, Any]:
    """Two residents of two buildings, with logins, and a family login."""
    with connect(url) as conn:
        a, building_a, phone_a = _resident(conn)
        b, building_b, phone_b = _resident(conn, other_than=building_a)
        community = conn.execute("SELECT id FROM community ORDER BY id LIMIT 1").fetchone()[0]
        ua = auth.add_user(conn, phone_a, DEMO_PASSWORD, "resident", community_id=community,
                           resident_id=a)
        ub = auth.add_user(conn, phone_b, DEMO_PASSWORD, "resident", community_id=community,
                           resident_id=b)
        cared = conn.execute("SELECT id FROM resident WHERE care_flags <> '{}' ORDER BY id "
                             "LIMIT 1").fetchone()[0]
        fam = auth.add_user(conn, "family-1", DEMO_PASSWORD, "family", community_id=community,
                            resident_id=cared)
        conn.commit()
        door_b = conn.execute("SELECT id FROM device WHERE type = 'access_door' AND "
                              "building_id = %s ORDER BY id LIMIT 1", (building_b,)).fetchone()[0]
        gate = conn.execute("SELECT id FROM device WHERE type = 'access_gate' ORDER BY id "
                            "LIMIT 1").fetchone()[0]
    return {"a": ua, "b": ub, "family": fam, "door_b": door_b, "gate": gate,
            "building_a": building_a, "community": community}


def _refusals(url: str, name: str) -> list[tuple[str, dict]]:
    with connect(url) as conn:
        return conn.execute("SELECT subject_id, detail FROM audit_log WHERE action = 'denied' "
                            "AND user_name = %s ORDER BY id", (name,)).fetchall()


def _user(url: str, name: str):
    with connect(url) as conn:
        return auth.get_user(conn, name)


def test_a_resident_opens_their_own_doors_and_the_gates_and_nothing_else(room) -> None:
    _, users, _, url = room
    p = _people(url)
    a = p["a"]
    with connect(url) as conn:
        mine = doors.my_doors(conn, a)
        assert {d.type for d in mine} == {"access_gate", "access_door"}
        assert all(d.is_gate or d.building_id == p["building_a"] for d in mine)
        own = next(d for d in mine if not d.is_gate)
        command_id = doors.open_door(conn, a, own.id, at=NIGHT)
        row = conn.execute("SELECT device_id, command, args, issued_by FROM device_command "
                           "WHERE id = %s", (command_id,)).fetchone()
        # named by id, never by the phone number that is the login's name
        assert row == (own.id, "open", {"by": f"resident:{a.resident_id}",
                                        "subject": a.resident_id}, f"resident:{a.resident_id}")
        assert a.name not in str(row)
        queued = conn.execute("SELECT count(*) FROM rule_outbox WHERE command_id = %s "
                              "AND published_at IS NULL", (command_id,)).fetchone()[0]
        assert queued == 1
        assert doors.door_command(conn, a, command_id)["acked_at"] is None
        doors.open_door(conn, a, p["gate"], at=NIGHT)
        # another building's door: refused, audited, nothing sent
        before = conn.execute("SELECT count(*) FROM device_command").fetchone()[0]
        with pytest.raises(AccessDenied, match="not one of"):
            doors.open_door(conn, a, p["door_b"], at=NIGHT)
        # a command of someone else's is not theirs to follow
        with pytest.raises(AccessDenied):
            doors.door_command(conn, p["b"], command_id)
        # a speaker is not a door, and nothing is a door that is not
        speaker = conn.execute("SELECT id FROM device WHERE type = 'speaker' LIMIT 1"
                               ).fetchone()[0]
        with pytest.raises(AccessDenied):
            doors.open_door(conn, _user(url, users.operator), speaker, at=NIGHT)
        with pytest.raises(TwinError, match="not a door"):
            doors.open_door(conn, a, ["x"], at=NIGHT)
        with pytest.raises(TwinError, match="no door"):
            doors.open_door(conn, a, "nothing", at=NIGHT)
        assert conn.execute("SELECT count(*) FROM device_command").fetchone()[0] == before
        # an operator opens any door of the community; a planner none
        op = _user(url, users.operator)
        doors.open_door(conn, op, p["door_b"], at=NIGHT)
        with pytest.raises(AccessDenied):
            doors.open_door(conn, _user(url, users.planner), p["door_b"], at=NIGHT)
        with pytest.raises(AccessDenied):
            doors.open_door(conn, p["family"], p["gate"], at=NIGHT)
    subjects = [s for s, _ in _refusals(url, a.name)]
    assert p["door_b"] in subjects
    assert [d["asked"] for _, d in _refusals(url, users.planner)] == ["door.open"]
    assert _refusals(url, "family-1")


def test_a_resident_issues_passes_only_for_their_own_household(room) -> None:
    _, users, _, url = room
    p = _people(url)
    a, b = p["a"], p["b"]
    with connect(url) as conn:
        issued = doors.issue_pass(conn, a, a.resident_id, 4, at=NIGHT)
        assert issued["valid_until"] - issued["valid_from"] == timedelta(hours=4)
        assert issued["qr"].startswith("data:image/svg+xml")
        stored = conn.execute("SELECT resident_id, token_sha256 FROM visitor_pass WHERE id = %s",
                              (issued["id"],)).fetchone()
        # the twin keeps the token's hash, never the token
        assert stored == (a.resident_id, policy.token_hash(issued["token"]))
        assert issued["token"].encode() not in bytes(stored[1])
        with pytest.raises(AccessDenied):
            doors.issue_pass(conn, a, b.resident_id, 4, at=NIGHT)
        with pytest.raises(AccessDenied):
            doors.issue_pass(conn, p["family"], a.resident_id, 4, at=NIGHT)
        with pytest.raises(AccessDenied):
            doors.issue_pass(conn, _user(url, users.operator), a.resident_id, 4, at=NIGHT)
        with pytest.raises(TwinError, match="1 to 72 hours"):
            doors.issue_pass(conn, a, a.resident_id, 500, at=NIGHT)
        with pytest.raises(TwinError, match="1 to 72 hours"):
            doors.issue_pass(conn, a, a.resident_id, "soon", at=NIGHT)
        assert [x["id"] for x in doors.my_passes(conn, a)] == [issued["id"]]
        assert doors.my_passes(conn, b) == []
        for _ in range(policy.PASSES_PER_DAY - 1):
            doors.issue_pass(conn, a, a.resident_id, 1, at=NIGHT)
        with pytest.raises(TwinError, match="a day"):
            doors.issue_pass(conn, a, a.resident_id, 1, at=NIGHT)
        doors.issue_pass(conn, a, a.resident_id, 1, at=NIGHT + timedelta(days=1, seconds=1))
    assert b.resident_id in [s for s, _ in _refusals(url, a.name)]
    assert _refusals(url, "family-1") and _refusals(url, users.operator)


def test_a_pass_opens_once_within_its_hours_and_a_redelivered_scan_gets_the_same_answer(
        room) -> None:
    _, _, _, url = room
    p = _people(url)
    a = p["a"]
    with connect(url) as conn:
        issued = doors.issue_pass(conn, a, a.resident_id, 2, at=NIGHT)
        token = issued["token"]
        answer = {"device_id": p["gate"], "community_id": p["community"], "token": token,
                      "now": NIGHT}
        with conn.transaction():
            first, reason = store.answer_scan(conn, scan_id="s1", at=NIGHT + timedelta(
                minutes=5), **answer)
        assert reason is None
        with conn.transaction():  # the same scan again: the same answer, no new command
            again, reason = store.answer_scan(conn, scan_id="s1", at=NIGHT + timedelta(
                minutes=5), **answer)
        assert again == first and reason is None
        with conn.transaction():
            _, reason = store.answer_scan(conn, scan_id="s2", at=NIGHT + timedelta(
                minutes=6), **answer)
        assert reason == "used"
        late = doors.issue_pass(conn, a, a.resident_id, 1, at=NIGHT)
        with conn.transaction():
            _, reason = store.answer_scan(conn, scan_id="s3", at=NIGHT + timedelta(hours=2),
                                          **{**answer, "token": late["token"]})
        assert reason == "expired"
        with conn.transaction():
            _, reason = store.answer_scan(conn, scan_id="s4", at=NIGHT,
                                          **{**answer, "token": "not-a-pass"})
        assert reason == "unknown"
        commands = conn.execute("SELECT command, args FROM device_command WHERE "
                                "issued_by = 'pass-check' ORDER BY sent_at, id").fetchall()
        assert sorted(c for c, _ in commands) == ["deny", "deny", "deny", "open"]
        assert ("open", {"pass": issued["id"]}) in commands
        # the pass as its resident sees it: used, at which gate
        used = {x["id"]: x for x in doors.my_passes(conn, a)}[issued["id"]]
        assert used["used_at"] == NIGHT + timedelta(minutes=5) and used["used_gate"]


def test_only_operators_broadcast_and_an_area_reaches_exactly_its_speakers(room) -> None:
    _, users, _, url = room
    p = _people(url)
    op = _user(url, users.operator)
    with connect(url) as conn:
        speakers = conn.execute("SELECT id, ST_X(geom), ST_Y(geom) FROM device "
                                "WHERE type = 'speaker' ORDER BY id").fetchall()
        grid_id, area = conn.execute("SELECT id, ST_AsText(area) FROM grid ORDER BY id LIMIT 1"
                                     ).fetchone()
        polygon = shapely.from_wkt(area)
        inside = sorted(s for s, x, y in speakers if polygon.contains(shapely.Point(x, y)))
        assert inside and len(inside) < len(speakers)
        sent = doors.broadcast(conn, op, "消防演习，请勿惊慌", community_id=p["community"],
                               at=NIGHT, area=shapely.to_geojson(polygon))
        assert sent["speakers"] == inside
        by_grid = doors.broadcast(conn, op, "notice", community_id=p["community"], at=NIGHT,
                                  grid_id=grid_id)
        assert by_grid["speakers"] == inside
        rows = doors.broadcast_status(conn, op, sent["id"])
        assert [r["device_id"] for r in rows] == inside
        assert all(r["acked_at"] is None and r["issued_by"] == "user:operator" for r in rows)
        picked = doors.broadcast(conn, op, "x", community_id=p["community"], at=NIGHT,
                                 speakers=[speakers[0][0], p["gate"]])
        assert picked["speakers"] == [speakers[0][0]]
        with pytest.raises(TwinError, match="polygon drawn"):
            doors.broadcast(conn, op, "x", community_id=p["community"], at=NIGHT,
                            area='{"type": "Point", "coordinates": [1, 2]}')
        with pytest.raises(TwinError, match="needs a text"):
            doors.broadcast(conn, op, "  ", community_id=p["community"], at=NIGHT,
                            grid_id=grid_id)
        before = conn.execute("SELECT count(*) FROM device_command").fetchone()[0]
        for who in (p["family"], p["a"], _user(url, users.worker), _user(url, users.planner)):
            with pytest.raises(AccessDenied):
                doors.broadcast(conn, who, "x", community_id=p["community"], at=NIGHT,
                                grid_id=grid_id)
            with pytest.raises(AccessDenied):
                doors.broadcast_status(conn, who, sent["id"])
        assert conn.execute("SELECT count(*) FROM device_command").fetchone()[0] == before
    for name in ("family-1", users.worker, users.planner):
        assert [d["asked"] for _, d in _refusals(url, name)] == ["broadcast.send"] * 2


def test_access_history_of_a_door_and_a_resident_by_role(room) -> None:
    _, users, _, url = room
    p = _people(url)
    a, b = p["a"], p["b"]
    with connect(url) as conn:
        door_a = next(d for d in doors.my_doors(conn, a) if not d.is_gate)
        conn.execute(
            """INSERT INTO event (time, device_id, event_id, kind, method, direction,
                                  subject_id, attrs)
               VALUES (%s, %s, 'e1', 'access', 'face', 'in', %s, '{}'),
                      (%s, %s, 'e2', 'access', 'remote', 'in', %s, %s)""",
            (NIGHT, door_a.id, a.resident_id, NIGHT + timedelta(minutes=1), door_a.id,
             a.resident_id, f'{{"by": "resident:{a.resident_id}"}}'))
        conn.commit()
        own = doors.resident_history(conn, a, a.resident_id)
        assert [r["method"] for r in own["rows"]] == ["remote", "face"]
        with pytest.raises(AccessDenied):
            doors.resident_history(conn, a, b.resident_id)
        with pytest.raises(AccessDenied):
            doors.resident_history(conn, _user(url, users.operator), a.resident_id)
        with pytest.raises(AccessDenied):
            doors.resident_history(conn, p["family"], a.resident_id)
        admin = doors.resident_history(conn, _user(url, users.admin), a.resident_id)
        assert not admin["masked"]
        name = conn.execute("SELECT name FROM resident WHERE id = %s", (a.resident_id,)
                            ).fetchone()[0]
        assert name in admin["rows"][0]["who"]
        # the operator sees the door's passages, who passed masked
        seen = doors.door_history(conn, _user(url, users.operator), door_a.id)
        assert seen["masked"] and name not in str(seen["rows"])
        with pytest.raises(AccessDenied):
            doors.door_history(conn, a, door_a.id)
        grid = door_a.grid_id
        worker = next(u for u in (users.worker, users.worker2)
                      if _user(url, u).grid_id != grid)
        with pytest.raises(AccessDenied):
            doors.door_history(conn, _user(url, worker), door_a.id)
        views = conn.execute("SELECT count(*) FROM audit_log WHERE action = "
                             "'view_residents_unmasked' AND user_name = %s",
                             (users.admin,)).fetchone()[0]
        assert views == 1
    assert _refusals(url, users.operator) and _refusals(url, worker)


# --- the simulated gates and doors ----------------------------------------------------------

def _small(sample):
    from tests.test_simulator import BUILDINGS, LEFT_OUT, community_of

    return community_of(sample, buildings=BUILDINGS, left_out=LEFT_OUT)


def test_a_simulated_door_opened_remotely_reports_who_asked_and_a_gate_asks_about_a_pass(
        sample) -> None:
    """Pure simulation: ``open`` with ``by`` gives an access event with method remote naming
    the actor by id; a pass shown at a gate is a pass_scan with its token; the twin's open
    or deny is reported as visitor_qr access or access_denied. Every message is one ingest
    accepts."""
    import orjson

    from ingest import contract
    from ingest.simulator.simulation import Simulation
    from tests.test_simulator import accepted

    small = _small(sample)
    start = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)  # 03:00 in Wuhan
    sim = Simulation(small, start=start, seed=2, tick_s=1)
    d = small.devices
    door = d.loc[d["type"] == "access_door", "id"].iloc[0]
    gate = d.loc[d["type"] == "access_gate", "id"].iloc[0]
    cid = small.id
    out = sim.opening() + sim.advance(start + timedelta(seconds=5))

    def command(device: str, name: str, args: dict, cid_: str = "c1") -> dict:
        topic = contract.topic(cid, device, "cmd")
        (ack,) = sim.obey(topic, orjson.dumps({"id": cid_, "ts": contract.fmt_time(start),
                                               "command": name, "args": args}))
        return orjson.loads(ack[1])

    ack = command(door, "open", {"by": "resident:r-1", "subject": "r-1"})
    assert ack["ok"] and "resident:r-1" in ack["detail"]
    sim.present_pass(gate, "tok-abc")
    with pytest.raises(ValueError, match="not a gate"):
        sim.present_pass(door, "tok-abc")
    out += sim.advance(start + timedelta(seconds=10))
    assert command(gate, "open", {"pass": "vp-1"}, "c2")["ok"]
    assert command(gate, "deny", {"pass": "vp-1", "reason": "used"}, "c3")["ok"]
    out += sim.advance(start + timedelta(seconds=15))
    rows = accepted(small, out, received_at=start + timedelta(seconds=16))
    assert rows.dead == []
    events = [(e[1], e[3], e[6], e[8], orjson.loads(e[10])) for e in rows.events
              if e[3] in ("access", "pass_scan", "access_denied")
              and e[6] in (None, "remote", "visitor_qr")]
    assert (door, "access", "remote", "r-1", {"by": "resident:r-1"}) in events
    assert (gate, "pass_scan", None, None, {"token": "tok-abc"}) in events
    assert (gate, "access", "visitor_qr", None, {"pass": "vp-1", "result": "granted"}) in events
    assert (gate, "access_denied", "visitor_qr", None,
            {"pass": "vp-1", "result": "denied", "reason": "used"}) in events


def test_old_access_payloads_and_the_new_methods_are_accepted() -> None:
    from ingest import contract

    for method in ("face", "card", "qr", "remote", "voice", "intercom", "password", "nfc",
                   "visitor_qr", "fingerprint", "bluetooth", "super_sim", "exit_button"):
        contract.Event.model_validate({"ts": "2026-11-24T07:00:00Z", "id": "e", "kind": "access",
                                       "method": method})
    with pytest.raises(ValueError):
        contract.Event.model_validate({"ts": "2026-11-24T07:00:00Z", "id": "e",
                                       "kind": "access", "method": "telepathy"})


# --- the pages' callbacks, called directly as a forged request would ---------------------

def test_the_callbacks_refuse_and_audit_what_the_role_may_not_do(room) -> None:
    from dashboard.pages import broadcast_panel, door_panel, resident_doors
    from tests.control_room import as_user

    app, users, _, url = room
    p = _people(url)
    with as_user(app, p["a"].name, "/m/doors"):
        with pytest.raises(AccessDenied):
            resident_doors.open_door(p["door_b"])
        command_id, shown = resident_doors.open_door(p["gate"])
        assert command_id and shown
        assert resident_doors.door_answers({p["gate"]: command_id}) == {
            p["gate"]: shown}  # still waiting: nobody answers in this test
        with pytest.raises(AccessDenied):
            door_panel.door_history(p["door_b"])
        with pytest.raises(AccessDenied):
            broadcast_panel.send("x", grid_id="any")
    with as_user(app, "family-1", "/m/doors"):
        with pytest.raises(AccessDenied):
            resident_doors.issue_pass(4)
        with pytest.raises(AccessDenied):
            broadcast_panel.send("x", speakers=["any"])
    with as_user(app, users.worker, "/"):
        with pytest.raises(AccessDenied):
            broadcast_panel.send("x", speakers=["any"])
        with pytest.raises(AccessDenied):
            door_panel.open_door(p["door_b"])
    with as_user(app, users.admin, "/"):
        assert door_panel.resident_history(p["a"].resident_id) is not None
    with as_user(app, users.operator, "/"):
        with pytest.raises(AccessDenied):  # an operator sees doors' histories, not people's
            door_panel.resident_history(p["a"].resident_id)
        # bad input is a message, nothing sent
        assert broadcast_panel.send("", speakers=["x"]) == (None, "a broadcast needs a text")
        assert door_panel.open_door({"x": 1})[0] is None
    with connect(url) as conn:
        refused = conn.execute(
            "SELECT user_name, detail ->> 'asked' FROM audit_log WHERE action = 'denied'"
        ).fetchall()
    assert (p["a"].name, "door.open") in refused
    assert (p["a"].name, "access.history") in refused
    assert ("family-1", "pass.issue") in refused and ("family-1", "broadcast.send") in refused
    assert (users.worker, "broadcast.send") in refused and (users.worker, "door.open") in refused
    assert (users.operator, "access.history") in refused


def test_refusals_name_a_resident_by_id_never_by_their_phone(room) -> None:
    _, _, _, url = room
    p = _people(url)
    a = p["a"]
    with connect(url) as conn, pytest.raises(AccessDenied) as refused:
        doors.open_door(conn, a, p["door_b"], at=NIGHT)
    assert a.name not in str(refused.value) and a.resident_id in str(refused.value)
    assert all(a.name not in str(detail) for _, detail in _refusals(url, a.name))
