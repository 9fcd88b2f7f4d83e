"""Attacks on the people features of issue 13 (resident app, family page, operator actions,
doors and passes, reports and notices), over real HTTP against `twin dashboard` as
production serves it (gunicorn, `tests.dashboard_process`).

Each test logs in as a role with the real login form (CSRF token and all), reads the
callback map from ``/_dash-dependencies`` as any browser does, and posts forged callback
requests to ``/_dash-update-component``. It then checks the answer (a refusal is a 4xx or a
refusal in the page's words, never a 500), the database (nothing changed that should not
have) and the audit log (a refusal is written down with the real login).

A test that fails here is a defect found by the probe; the others are regression checks of
what held up.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from dashboard import auth
from dashboard.demo import DEMO_PASSWORD, DemoUsers, seed_operations, seed_users
from tests.dashboard_process import DashboardProcess, dashboard_process
from twin.store.connection import connect

pytestmark = pytest.mark.timeout(900)

FAMILY = "family-probe"
REPORT_MARK = "探针报事文字 probe-report-text"


# --- the served control room and its logins ----------------------------------------------------

@dataclass
class Room:
    url: str
    served: DashboardProcess
    users: DemoUsers
    ids: dict[str, int]
    #: resident A (the attacker) and resident B (the victim): id, phone, name, building
    a: dict[str, str]
    b: dict[str, str]
    cared: dict[str, str]
    deps: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture(scope="module")
def room(pg, sample_template) -> Iterator[Room]:
    name = f"probe_{os.getpid()}"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        users = seed_users(conn)
        ids = seed_operations(conn)
        rows = conn.execute(
            """SELECT r.id, r.phone, r.name, u.building_id FROM resident r
               JOIN unit u ON u.id = r.unit_id WHERE r.phone <> ''
               ORDER BY u.building_id, r.id""").fetchall()
        a = rows[0]
        b = next(r for r in rows if r[3] != a[3])
        cared = conn.execute(
            """SELECT r.id, r.phone, r.name, u.building_id FROM resident r
               JOIN unit u ON u.id = r.unit_id
               WHERE cardinality(r.care_flags) > 0 AND r.id NOT IN (%s, %s)
               ORDER BY r.id LIMIT 1""", (a[0], b[0])).fetchone()
        for r in (a, b):
            auth.add_user(conn, r[1], DEMO_PASSWORD, "resident", resident_id=r[0])
        auth.add_user(conn, FAMILY, DEMO_PASSWORD, "family", resident_id=cared[0])
        conn.commit()
    as_dict = lambda r: {"id": r[0], "phone": r[1], "name": r[2], "building": r[3]}
    try:
        with dashboard_process(url, secret="probe", workers=1, threads=4) as served:
            r = Room(url, served, users, ids, as_dict(a), as_dict(b), as_dict(cared))
            _SERVED.append(served)
            r.deps = requests.get(f"{served.base}/_dash-dependencies", timeout=30,
                                  cookies=login(r, users.operator).cookies).json()
            yield r
    finally:
        pg.drop_database(name)


def login(room: Room, name: str) -> requests.Session:
    s = requests.Session()
    page = s.get(f"{room.served.base}/login", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = s.post(f"{room.served.base}/login", timeout=60, allow_redirects=False,
                    data={"username": name, "password": DEMO_PASSWORD, "csrf_token": token})
    assert answer.status_code == 302, (name, answer.status_code)
    return s


def _outputs(key: str) -> list[Any]:
    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    out: list[Any] = []
    for p in parts:
        cid, prop = p.rsplit(".", 1)
        prop = prop.split("@")[0]
        out.append([] if cid.startswith("{") else {"id": cid, "property": prop})
    return out


def _find(room: Room, output: str, trigger: str) -> dict[str, Any]:
    trigger_id = trigger.rsplit(".", 1)[0]
    for spec in room.deps:
        first = _outputs(spec["output"])[0]
        name = f"{first['id']}.{first['property']}" if isinstance(first, dict) else None
        ids = [d["id"] for d in spec["inputs"]]
        if (name == output or spec["output"].lstrip(".").startswith(output)) and (
                trigger_id in ids or (trigger_id.startswith("{") and any(
                    i.startswith("{") and _same(i, trigger_id) for i in ids))):
            return spec
    raise AssertionError(f"no callback {output} triggered by {trigger}")


def _same(wild: str, concrete: str) -> bool:
    w, c = json.loads(wild), json.loads(concrete)
    return w.keys() == c.keys() and all(w[k] == c[k] for k in w
                                        if not isinstance(w[k], list))


def pattern(id_: dict[str, Any], prop: str) -> str:
    return json.dumps(id_, sort_keys=True, separators=(",", ":")) + "." + prop


def post(room: Room, s: requests.Session, *, output: str, trigger: str,
         values: dict[str, Any], changed: str | None = None) -> requests.Response:
    """A forged callback post: ``values`` by "id.prop" (a pattern input: a list of
    (id dict, value)); ``changed`` overrides changedPropIds (a forged trigger)."""
    spec = _find(room, output, trigger)

    def entry(dep: dict[str, str]) -> Any:
        if dep["id"].startswith("{"):  # a pattern: keyed by its type, "type.prop"
            name = f"{json.loads(dep['id'])['type']}.{dep['property']}"
            return [{"id": i, "property": dep["property"], "value": v}
                    for i, v in values.get(name, [])]
        name = f"{dep['id']}.{dep['property']}"
        return {"id": dep["id"], "property": dep["property"], "value": values.get(name)}

    outs = _outputs(spec["output"])
    body = {"output": spec["output"],
            "outputs": outs if spec["output"].startswith("..") else outs[0],
            "inputs": [entry(d) for d in spec["inputs"]],
            "state": [entry(d) for d in spec.get("state", [])],
            "changedPropIds": [changed or trigger]}
    return s.post(f"{room.served.base}/_dash-update-component", json=body, timeout=120)


def denied_rows(room: Room, user: str, since: int = 0) -> list[tuple[Any, ...]]:
    with connect(room.url) as conn:
        return conn.execute(
            "SELECT id, subject_kind, subject_id, detail FROM audit_log "
            "WHERE action = 'denied' AND user_name = %s AND id > %s ORDER BY id",
            (user, since)).fetchall()


def last_audit_id(room: Room) -> int:
    with connect(room.url) as conn:
        return conn.execute("SELECT coalesce(max(id), 0) FROM audit_log").fetchone()[0]


def scalar(room: Room, sql: str, *args: Any) -> Any:
    with connect(room.url) as conn:
        return conn.execute(sql, args).fetchone()[0]


#: The served room, for the failure messages (the exception the server logged).
_SERVED: list[DashboardProcess] = []


def not_500(answer: requests.Response, what: str) -> None:
    if answer.status_code >= 500 and _SERVED:
        rid = answer.headers.get("X-Request-ID", "")
        lines = [json.loads(x) for x in _SERVED[-1].log_lines() if x.startswith("{")]
        exc = [x.get("exc", "") for x in lines if x.get("request_id") == rid and x.get("exc")]
        last = " | ".join(exc[-1].strip().splitlines()[-4:]) if exc else "(no trace)"
        raise AssertionError(f"{what}: {answer.status_code}, the server raised {last}")
    assert answer.status_code < 500, f"{what}: {answer.status_code} {answer.text[:300]}"


def refused_or_said(answer: requests.Response) -> None:
    """A refusal: a 4xx, or a 200 whose output is a refusal message (✗ ...)."""
    assert answer.status_code < 500, (answer.status_code, answer.text[:300])
    if answer.status_code == 200:
        assert "✗" in answer.text or "denied" in answer.text.lower(), answer.text[:300]


def first_category() -> str:
    from twin.reports import load_catalogue

    return next(iter(load_catalogue().categories))


def open_alarm(room: Room) -> int:
    return scalar(room, "SELECT min(id) FROM alarm WHERE state <> 'cleared'")


def publish(room: Room, s: requests.Session, *, title: str, body: str = "正文") -> requests.Response:
    community = scalar(room, "SELECT min(id) FROM community")
    return post(room, s, output="p-message.children", trigger="p-publish.n_clicks", values={
        "p-publish.n_clicks": 1, "p-kind.value": "notice", "p-scope.value": f"community:{community}",
        "p-title-zh.value": title, "p-title-en.value": None, "p-body-zh.value": body,
        "p-body-en.value": None, "p-starts.value": None, "p-ends.value": None})


def open_notice(room: Room, s: requests.Session, notice: Any, *,
                changed: str | None = None) -> requests.Response:
    nid = {"type": "n-open", "notice": notice}
    return post(room, s, output="n-list.children", trigger=pattern(nid, "n_clicks"),
                values={"n-open.n_clicks": [(nid, 1)], "n-open.id": [(nid, nid)]},
                changed=changed)


def submit_report(room: Room, s: requests.Session, text: str, *, photo: Any = None,
                  category: Any = None) -> requests.Response:
    return post(room, s, output="r-message.children", trigger="r-submit.n_clicks", values={
        "r-submit.n_clicks": 1, "r-category.value": category or first_category(),
        "r-text.value": text, "r-photo.contents": photo, "r-place.value": "unit",
        "r-point.data": None})


def rate(room: Room, s: requests.Session, report: Any) -> requests.Response:
    rid = {"type": "r-rate", "report": report}
    return post(room, s, output="r-rate-message.children", trigger=pattern(rid, "n_clicks"),
                values={"r-rate.n_clicks": [(rid, 1)],
                        "r-stars.value": [({"type": "r-stars", "report": report}, 5)],
                        "r-stars.id": [({"type": "r-stars", "report": report},
                                        {"type": "r-stars", "report": report})],
                        "r-comment.value": [], "r-comment.id": []})


def stop_session(room: Room, s: requests.Session, session: Any) -> requests.Response:
    sid = {"type": "rc-stop", "session": session}
    return post(room, s, output="rc-done.data", trigger=pattern(sid, "n_clicks"),
                values={"rc-stop.n_clicks": [(sid, 1)], "rc-start.n_clicks": []})


def open_door(room: Room, s: requests.Session, door: Any, pending: Any = None,
              trigger: str | None = None) -> requests.Response:
    did = {"type": "dr-open", "door": door}
    return post(room, s, output="dr-pending.data", trigger=trigger or pattern(did, "n_clicks"),
                values={"dr-open.n_clicks": [(did, 1)], "dr-poll.n_intervals": 1,
                        "dr-pending.data": pending or {}})


def clear(room: Room, s: requests.Session, alarm: Any, reason: Any = "probe") -> requests.Response:
    return post(room, s, output="h-clear-message.children", trigger="h-clear.n_clicks",
                values={"h-clear.n_clicks": 1, "h-clear-alarm.value": alarm,
                        "h-reason.value": reason})


def broadcast(room: Room, s: requests.Session, text: Any, speaker: str | None = None
              ) -> requests.Response:
    return post(room, s, output="bc-sent.data", trigger="bc-send.n_clicks", values={
        "bc-send.n_clicks": 1, "bc-kind.value": "speakers",
        "bc-speakers.value": [speaker or a_speaker(room)], "bc-text.value": text,
        "bc-points.data": []})


def create_order(room: Room, s: requests.Session, building: str) -> requests.Response:
    return post(room, s, output="h-message.children", trigger="h-create.n_clicks", values={
        "h-create.n_clicks": 1, "h-source.value": "building", "h-category.value": first_category(),
        "h-building.value": building, "h-text.value": "probe"})


def a_door(room: Room, building: str) -> str:
    return scalar(room, "SELECT min(id) FROM device WHERE type = 'access_door' "
                        "AND building_id = %s", building)


def a_speaker(room: Room) -> str:
    return scalar(room, "SELECT min(id) FROM device WHERE type = 'speaker'")


def a_building(room: Room) -> str:
    return room.b["building"]


# === 1. forged ids: every refusal a 4xx or a message, never a 500 ===========================

@pytest.mark.parametrize("notice", ["²", "99999999999999999999"])
def test_a_forged_notice_id_is_refused_not_a_500(room, notice) -> None:
    """read_notice checks str.isdigit() (true for '²') and no upper bound, then int() and
    the bigint column: ValueError / NumericValueOutOfRange, a 500."""
    s = login(room, room.a["phone"])
    not_500(open_notice(room, s, notice), f"notice id {notice!r}")


def test_a_forged_report_id_in_a_rating_is_refused_not_a_500(room) -> None:
    s = login(room, room.a["phone"])
    not_500(rate(room, s, "²"), "report id '²'")


def test_a_forged_alarm_id_in_a_manual_clear_is_refused_not_a_500(room) -> None:
    s = login(room, room.users.operator)
    not_500(clear(room, s, "²"), "alarm id '²'")


def test_a_forged_session_id_in_a_charging_stop_is_refused_not_a_500(room) -> None:
    s = login(room, room.a["phone"])
    not_500(stop_session(room, s, "²"), "session id '²'")


def test_a_forged_trigger_without_its_key_is_refused_not_a_500(room) -> None:
    """changedPropIds is the browser's word: a pattern id without the key the callback
    reads (dash.ctx.triggered_id["notice"]) is a KeyError, a 500."""
    s = login(room, room.a["phone"])
    not_500(open_notice(room, s, 1, changed='{"type":"n-open"}.n_clicks'),
            "a trigger without 'notice'")


def test_forged_pending_door_commands_are_refused_not_a_500(room) -> None:
    """The door page's pending openings are a dcc.Store the browser sends back: a string
    there is dict("...") → ValueError, a 500."""
    s = login(room, room.a["phone"])
    not_500(open_door(room, s, "x", pending="not-a-dict", trigger="dr-poll.n_intervals"),
            "pending = a string")


@pytest.mark.parametrize("what", ["report", "door", "broadcast", "notice", "clear"])
def test_a_nul_character_in_a_text_is_refused_not_a_500(room, what) -> None:
    """PostgreSQL refuses NUL in text (and \\u0000 in jsonb): a string input that holds one
    must be refused as input (4xx or a message), not reach the database as a 500."""
    nul = "ab\x00cd"
    if what == "report":
        answer = submit_report(room, login(room, room.a["phone"]), nul + " long enough")
    elif what == "door":
        answer = open_door(room, login(room, room.a["phone"]), nul)
    elif what == "broadcast":
        answer = broadcast(room, login(room, room.users.operator), nul)
    elif what == "notice":
        answer = publish(room, login(room, room.users.operator), title=nul)
    else:
        answer = clear(room, login(room, room.users.operator), open_alarm(room), reason=nul)
    not_500(answer, f"NUL in the {what}")


# === 2. roles: people and field staff may not act as operators ===============================

PEOPLE_AND_STAFF = ["resident", "family", "grid_worker", "planner"]


def _login_name(room: Room, role: str) -> str:
    return {"resident": room.a["phone"], "family": FAMILY, "grid_worker": room.users.worker,
            "planner": room.users.planner, "operator": room.users.operator}[role]


@pytest.mark.parametrize("role", PEOPLE_AND_STAFF)
def test_only_operators_broadcast_clear_create_publish_or_read_the_queue(room, role) -> None:
    name = _login_name(room, role)
    s = login(room, name)
    since = last_audit_id(room)
    alarm = open_alarm(room)
    building = a_building(room)
    commands = scalar(room, "SELECT count(*) FROM device_command")
    orders = scalar(room, "SELECT count(*) FROM work_order")
    notices = scalar(room, "SELECT count(*) FROM notice")
    answers = {
        "broadcast": broadcast(room, s, "probe broadcast"),
        "clear": clear(room, s, alarm),
        "order": create_order(room, s, building),
        "notice": publish(room, s, title=f"probe by {role}"),
        "queue": post(room, s, output="q-queue.children", trigger="q-refresh.n_clicks",
                      values={"q-refresh.n_clicks": 1}),
    }
    for what, answer in answers.items():
        assert answer.status_code < 500, (what, answer.status_code)
        assert answer.status_code == 403 or "✗" in answer.text or "denied" in answer.text, \
            (what, answer.status_code, answer.text[:200])
    assert scalar(room, "SELECT count(*) FROM device_command") == commands
    assert scalar(room, "SELECT count(*) FROM work_order") == orders
    assert scalar(room, "SELECT count(*) FROM notice") == notices
    assert scalar(room, "SELECT state FROM alarm WHERE id = %s", alarm) != "cleared"
    asked = {(r[3] or {}).get("asked") for r in denied_rows(room, name, since)}
    assert {"broadcast.send", "alarm.clear", "order.create", "notice.publish",
            "report.queue"} <= asked, asked


# === 3. a resident and another household ======================================================

def test_a_resident_cannot_open_a_door_of_another_building(room) -> None:
    door = a_door(room, room.b["building"])
    assert door is not None
    s = login(room, room.a["phone"])
    since = last_audit_id(room)
    answer = open_door(room, s, door)
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert scalar(room, "SELECT count(*) FROM device_command WHERE device_id = %s "
                        "AND sent_at > now() - interval '1 hour'", door) == 0
    rows = denied_rows(room, room.a["phone"], since)
    assert [r[2] for r in rows] == [door], rows


def test_a_resident_cannot_follow_another_residents_door_command(room) -> None:
    b = login(room, room.b["phone"])
    mine = a_door(room, room.b["building"])
    answer = open_door(room, b, mine)
    assert answer.status_code == 200, answer.text[:300]
    command = scalar(room, "SELECT id FROM device_command WHERE device_id = %s "
                           "ORDER BY sent_at DESC LIMIT 1", mine)
    a = login(room, room.a["phone"])
    since = last_audit_id(room)
    answer = open_door(room, a, "x", pending={"x": command}, trigger="dr-poll.n_intervals")
    assert answer.status_code == 403, (answer.status_code, answer.text[:200])
    assert denied_rows(room, room.a["phone"], since)


def test_a_resident_cannot_stop_another_residents_charging_session(room) -> None:
    from datetime import UTC, datetime

    from twin.store import charging

    with connect(room.url) as conn:
        pile, community = conn.execute(
            "SELECT id, community_id FROM device WHERE type = 'ev_charger' ORDER BY id "
            "LIMIT 1").fetchone()
        sid = charging.start_session(conn, community_id=community, device_id=pile,
                                     resident_id=room.b["id"], login=room.b["phone"],
                                     at=datetime.now(UTC))
        conn.execute("UPDATE charging_session SET state = 'charging', started_at = now() "
                     "WHERE id = %s", (sid,))
        conn.commit()
    s = login(room, room.a["phone"])
    since = last_audit_id(room)
    answer = stop_session(room, s, sid)
    refused_or_said(answer)
    assert scalar(room, "SELECT stop_requested_at FROM charging_session WHERE id = %s",
                  sid) is None
    assert denied_rows(room, room.a["phone"], since)


def test_a_resident_cannot_see_or_rate_another_residents_report(room) -> None:
    b = login(room, room.b["phone"])
    answer = submit_report(room, b, REPORT_MARK)
    assert answer.status_code == 200 and "✓" in answer.text, answer.text[:300]
    report = scalar(room, "SELECT max(id) FROM report WHERE resident_id = %s", room.b["id"])
    a = login(room, room.a["phone"])
    since = last_audit_id(room)
    answer = rate(room, a, report)
    refused_or_said(answer)
    assert REPORT_MARK not in answer.text
    assert denied_rows(room, room.a["phone"], since)
    # and the resident's own list shows only their own reports
    listing = post(room, a, output="r-list.children", trigger="r-refresh.n_intervals",
                   values={"r-refresh.n_intervals": 1})
    assert listing.status_code == 200 and REPORT_MARK not in listing.text


def test_a_residents_photo_route_and_forms_need_a_session_and_a_token(room) -> None:
    base = room.served.base
    assert requests.get(f"{base}/photo/1/0", allow_redirects=False, timeout=30).status_code \
        in (302, 401)
    a = login(room, room.a["phone"])
    assert a.get(f"{base}/photo/1/0", timeout=30).status_code == 403
    assert a.post(f"{base}/lang/en", timeout=30).status_code == 400
    assert a.post(f"{base}/logout", timeout=30).status_code == 400


def test_a_resident_cannot_follow_a_broadcast_or_read_anothers_access_history(room) -> None:
    s = login(room, room.a["phone"])
    since = last_audit_id(room)
    poll = post(room, s, output="bc-sent.data", trigger="bc-poll.n_intervals", values={
        "bc-poll.n_intervals": 1, "bc-sent.data": "bc-000000000000"})
    assert poll.status_code == 403, poll.text[:200]
    deps = [d for d in room.deps if d["output"].startswith("resident-history")
            or "resident-history" in d["output"]]
    if deps:
        spec = deps[0]
        body = {"output": spec["output"], "outputs": _outputs(spec["output"])[0],
                "inputs": [{"id": d["id"], "property": d["property"], "value": room.b["id"]}
                           for d in spec["inputs"]],
                "state": [], "changedPropIds": [f"{spec['inputs'][0]['id']}.value"]}
        answer = s.post(f"{room.served.base}/_dash-update-component", json=body, timeout=60)
        assert answer.status_code == 403, answer.text[:200]
    assert len(denied_rows(room, room.a["phone"], since)) >= 1 + bool(deps)


# === 4. a family member: their relative's care status, and nothing else =======================

def test_a_family_member_cannot_act_as_the_resident(room) -> None:
    s = login(room, FAMILY)
    since = last_audit_id(room)
    sos = post(room, s, output="m-sos-done.children", trigger="m-sos-yes.n_clicks",
               values={"m-sos-yes.n_clicks": 1, "m-sos-fix.data": None})
    refused_or_said(sos)
    door = a_door(room, room.cared["building"])
    assert open_door(room, s, door).status_code == 403
    issue = post(room, s, output="vp-result.children", trigger="vp-issue.n_clicks",
                 values={"vp-issue.n_clicks": 1, "vp-hours.value": 4})
    assert issue.status_code == 403, issue.text[:200]
    refused_or_said(submit_report(room, s, "family report probe"))
    charging = post(room, s, output="rc-session.children", trigger="rc-tick.n_intervals",
                    values={"rc-tick.n_intervals": 1})
    refused_or_said(charging)
    assert scalar(room, "SELECT count(*) FROM alarm WHERE type = 'sos'") == 0
    assert scalar(room, "SELECT count(*) FROM visitor_pass WHERE resident_id = %s",
                  room.cared["id"]) == 0
    asked = {(r[3] or {}).get("asked") for r in denied_rows(room, FAMILY, since)}
    assert {"sos.raise", "door.open", "pass.issue", "report.submit", "charging.use"} <= asked


def test_a_family_member_cannot_read_notices_for_the_resident(room) -> None:
    """Issue 13: a family member sees their relative's care status "and nothing else". The
    notice callback lets a family login open the community's notices, and its read is
    recorded as the resident's own (notice_read.resident_id): the real actor is lost and
    the resident's read state and the operators' read counts are changed by someone else."""
    op = login(room, room.users.operator)
    assert "✓" in publish(room, op, title="family probe notice").text
    notice = scalar(room, "SELECT max(id) FROM notice")
    s = login(room, FAMILY)
    since = last_audit_id(room)
    answer = open_notice(room, s, notice)
    assert answer.status_code < 500
    assert scalar(room, "SELECT count(*) FROM notice_read WHERE notice_id = %s "
                        "AND resident_id = %s", notice, room.cared["id"]) == 0, \
        "the family login's read was recorded as the resident's own"
    assert denied_rows(room, FAMILY, since)


# === 5. inputs bounded, refusals audited, the real actor recorded ============================

def test_a_photo_that_is_no_image_or_too_big_is_refused_and_audited(room) -> None:
    import base64

    s = login(room, room.a["phone"])
    since = last_audit_id(room)
    fake = "data:image/jpeg;base64," + base64.b64encode(b"<svg onload=alert(1)>").decode()
    huge = "data:image/png;base64," + base64.b64encode(
        b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024 + 10)).decode()
    for photo in (fake, huge, ["a list"], {"a": "dict"}):
        answer = submit_report(room, s, "a photo probe", photo=photo)
        refused_or_said(answer)
    assert scalar(room, "SELECT count(*) FROM report WHERE resident_id = %s AND text = %s",
                  room.a["id"], "a photo probe") == 0
    reasons = [(r[3] or {}).get("reason") for r in denied_rows(room, room.a["phone"], since)]
    assert reasons.count("not an acceptable photo") == 4, reasons


@pytest.mark.parametrize("text", ["x" * 1001, ["a", "list"], {"a": 1}, 12345, ""])
def test_an_oversized_or_odd_report_text_is_refused(room, text) -> None:
    s = login(room, room.a["phone"])
    refused_or_said(submit_report(room, s, text))


@pytest.mark.parametrize("category", [["x"], {"a": 1}, "'; DROP TABLE report; --", "x" * 10000])
def test_a_forged_category_is_refused(room, category) -> None:
    s = login(room, room.a["phone"])
    refused_or_said(submit_report(room, s, "a category probe", category=category))


@pytest.mark.parametrize("door", [["a"], {"a": 1}, -1, "x" * 10000, "' OR 1=1 --"])
def test_a_forged_door_id_is_refused(room, door) -> None:
    s = login(room, room.a["phone"])
    answer = open_door(room, s, door)
    not_500(answer, f"door {door!r:.40}")


@pytest.mark.parametrize("hours", [["4"], {"h": 4}, -1, 0, 73, "nan", "inf", "1e309", True])
def test_a_forged_pass_duration_is_refused(room, hours) -> None:
    s = login(room, room.a["phone"])
    answer = post(room, s, output="vp-result.children", trigger="vp-issue.n_clicks",
                  values={"vp-issue.n_clicks": 1, "vp-hours.value": hours})
    not_500(answer, f"hours {hours!r}")
    assert "vp-token" not in answer.text


def test_a_visitor_pass_past_the_days_allowance_is_refused_and_audited(room) -> None:
    """A report past its allowance is audited (denied, rpt.err.rate); a visitor pass past
    PASSES_PER_DAY is only a TwinError, and nothing lands in the audit log."""
    from twin.doors import PASSES_PER_DAY

    s = login(room, room.b["phone"])
    issued = scalar(room, "SELECT count(*) FROM visitor_pass WHERE resident_id = %s",
                    room.b["id"])
    for _ in range(PASSES_PER_DAY - issued):
        answer = post(room, s, output="vp-result.children", trigger="vp-issue.n_clicks",
                      values={"vp-issue.n_clicks": 1, "vp-hours.value": 1})
        assert "vp-token" in answer.text
    since = last_audit_id(room)
    answer = post(room, s, output="vp-result.children", trigger="vp-issue.n_clicks",
                  values={"vp-issue.n_clicks": 1, "vp-hours.value": 1})
    assert "vp-token" not in answer.text
    assert scalar(room, "SELECT count(*) FROM visitor_pass WHERE resident_id = %s",
                  room.b["id"]) == PASSES_PER_DAY
    assert denied_rows(room, room.b["phone"], since), \
        "the refused pass (past the day's allowance) was not written to the audit log"


def test_an_operators_clear_names_the_operator(room) -> None:
    alarm = open_alarm(room)
    s = login(room, room.users.operator)
    answer = clear(room, s, alarm, reason="probe: cleared by hand")
    assert answer.status_code == 200 and "✓" in answer.text, answer.text[:300]
    assert scalar(room, "SELECT state FROM alarm WHERE id = %s", alarm) == "cleared"
    assert scalar(room, "SELECT user_name FROM audit_log WHERE action = 'alarm.clear' "
                        "AND subject_id = %s", str(alarm)) == room.users.operator


def test_an_operators_broadcast_names_the_operator(room) -> None:
    s = login(room, room.users.operator)
    answer = broadcast(room, s, "probe: a broadcast that works")
    assert answer.status_code == 200 and '"bc-sent":{"data":"bc-' in answer.text, answer.text
    issued = scalar(room, "SELECT issued_by FROM device_command WHERE command = 'broadcast' "
                          "ORDER BY sent_at DESC LIMIT 1")
    assert issued == f"user:{room.users.operator}", issued


# === 6. no personal data in the logs (runs last: it reads every line the server wrote) ======

def test_zz_no_phone_name_or_report_text_in_the_servers_log(room) -> None:
    text = "\n".join(room.served.log_lines())
    assert text, "the server wrote no log"
    for who in (room.a, room.b, room.cared):
        assert who["phone"] not in text, "a resident's phone number is in the log"
        assert who["name"] not in text, "a resident's name is in the log"
    assert REPORT_MARK not in text, "a report's text is in the log"


def test_text_typed_before_a_nul_does_not_land_in_the_log(room) -> None:
    """A \\u0000 in a jsonb parameter (a clear's reason, a notice) fails in PostgreSQL, whose
    error CONTEXT quotes the JSON up to it ("JSON data, line 1: {"reason":"..."); the
    500's trace carries it into the JSON log: whatever the operator typed, a resident's
    name and phone number among them."""
    marker = f"{room.b['name']} 回电 {room.b['phone']}"
    s = login(room, room.users.operator)
    clear(room, s, open_alarm(room), reason=marker + "\x00")
    publish(room, s, title="t", body=marker + "\x00")
    time.sleep(0.5)
    text = "\n".join(room.served.log_lines())
    assert room.b["name"] not in text, "a resident's name typed in a reason is in the log"


def test_a_reports_order_history_does_not_show_the_residents_phone_to_an_operator(room) -> None:
    """A report opens its order with actor=access.actor(user), whose name is the resident's
    login: their phone number. The order's history keeps it as the 'created' step's actor
    and the work-order page shows e.actor as it is, to an operator, who sees residents
    masked (UNMASKED_ROLES is admin and grid_worker); twin.doors.actor_ref exists to name
    a resident by id for exactly this reason."""
    b = login(room, room.b["phone"])
    answer = submit_report(room, b, "楼道灯坏了 probe for the history")
    assert "✓" in answer.text, answer.text[:300]
    order = scalar(room, "SELECT max(work_order_id) FROM report WHERE resident_id = %s",
                   room.b["id"])
    op = login(room, room.users.operator)
    detail = post(room, op, output="wo-detail.children", trigger="wo-selected.data",
                  values={"wo-selected.data": order, "wo-message.children": None})
    assert detail.status_code == 200, detail.text[:300]
    assert "wo-title" in detail.text, detail.text[:300]
    assert room.b["phone"] not in detail.text, \
        "the resident's phone number is shown whole to an operator in the order's history"
    with connect(room.url) as conn:
        actors = [r[0] for r in conn.execute(
            "SELECT actor FROM work_order_event WHERE work_order_id = %s", (order,))]
    assert room.b["phone"] not in actors, "the order's history keeps the resident's phone"


@pytest.mark.parametrize("role", ["grid_worker", "planner", "family"])
def test_staff_and_family_cannot_open_doors(room, role) -> None:
    name = _login_name(room, role)
    s = login(room, name)
    since = last_audit_id(room)
    door = a_door(room, room.a["building"])
    assert open_door(room, s, door).status_code == 403
    assert denied_rows(room, name, since)


def test_concurrent_passes_stay_within_the_days_allowance(room) -> None:
    """issue_pass counts the passes of the day, then inserts, with no lock between: passes
    asked for at the same moment each see the count below the allowance (a race: seen as
    21-22 passes in 2 of 3 runs here; the report's allowance locks, lock_and_count)."""
    from concurrent.futures import ThreadPoolExecutor

    from twin.doors import PASSES_PER_DAY

    s = login(room, room.a["phone"])

    def ask(_: int) -> bool:
        answer = post(room, s, output="vp-result.children", trigger="vp-issue.n_clicks",
                      values={"vp-issue.n_clicks": 1, "vp-hours.value": 1})
        return "vp-token" in answer.text

    issued = scalar(room, "SELECT count(*) FROM visitor_pass WHERE resident_id = %s",
                    room.a["id"])
    for i in range(PASSES_PER_DAY - 2 - issued):
        assert ask(i)
    with ThreadPoolExecutor(12) as pool:
        list(pool.map(ask, range(16)))
    count = scalar(room, "SELECT count(*) FROM visitor_pass WHERE resident_id = %s",
                   room.a["id"])
    assert count <= PASSES_PER_DAY, f"{count} passes in a day, allowance {PASSES_PER_DAY}"


@pytest.mark.parametrize("where", ["charging", "feed", "map-click"])
def test_more_forged_triggers_and_clicks_are_refused_not_a_500(room, where) -> None:
    """The same class as the notices' KeyError: the charging tab reads trig["type"], the
    by-hand panel's feed reads triggered_id["id"], the broadcast panel's map tap calls
    click.get(...) on whatever the browser sent as clickInfo (any login may post these)."""
    s = login(room, room.a["phone"] if where == "charging" else room.users.operator)
    if where == "charging":
        answer = post(room, s, output="rc-done.data",
                      trigger=pattern({"type": "rc-start", "pile": "x"}, "n_clicks"),
                      values={"rc-start.n_clicks": [({"type": "rc-start", "pile": "x"}, 1)],
                              "rc-stop.n_clicks": []},
                      changed='{"pile":"x"}.n_clicks')
    elif where == "feed":
        fid = {"type": "feed-row", "id": 1}
        answer = post(room, s, output="h-alarm.value", trigger=pattern(fid, "n_clicks"),
                      values={"feed-row.n_clicks": [(fid, 1)]},
                      changed='{"type":"feed-row"}.n_clicks')
    else:
        answer = post(room, s, output="bc-speakers.value", trigger="ls-map.clickInfo",
                      values={"ls-map.clickInfo": ["not", "a", "dict"],
                              "bc-speakers.value": [], "bc-kind.value": "speakers"})
    not_500(answer, where)
