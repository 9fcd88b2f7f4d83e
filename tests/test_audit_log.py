"""Reading the audit log back: the filters, the pages, the admin-only page and `twin audit`,
against the real database.

The page's service is called as its callback calls it, inside a request of a given
user, so a non-admin who posts to the callback without the page is refused (and the
refusal is in the log).
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from dashboard import audit as dashboard_audit
from dashboard import auth
from dashboard.pages import audit as page
from tests.control_room import as_user as as_room_user
from twin.errors import TwinError
from twin.store import audit as log
from twin.store.connection import connect
from twin.store.reads.audit import AuditQuery, actions, entries

T0 = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 08:30 in Wuhan


def _seed(conn) -> None:
    """Six rows an hour apart from T0 (the column's default is the transaction's start,
    so the test sets each time itself)."""
    rows = [
        ("admin", "admin", "login", "", "", {}),
        ("li", "grid_worker", "denied", "building", "wh-guanggu-b03",
         {"reason": "building wh-guanggu-b03 is not in li's grid"}),
        ("admin", "admin", "view_residents_unmasked", "building", "wh-guanggu-b01",
         {"residents": ["wh-guanggu-r000001", "wh-guanggu-r000002"]}),
        ("?", "", "login_failed", "", "", {}),
        ("op", "operator", "view_residents_unmasked", "alarm", "7,8",
         {"residents": ["wh-guanggu-r000002"]}),
        ("li", "grid_worker", "logout", "", "", {}),
    ]
    for i, (name, role, action, kind, subject, detail) in enumerate(rows):
        log.record(conn, name, role, action, subject_kind=kind, subject_id=subject, detail=detail)
        conn.execute("UPDATE audit_log SET time = %s WHERE id = (SELECT max(id) FROM audit_log)",
                     (T0 + timedelta(hours=i),))
    conn.commit()


def _actions(rows) -> list[str]:
    return [r.action for r in rows]


# --- the read: twin.store.reads.audit --------------------------------------------------

def test_each_filter_narrows_the_log_newest_first(conn) -> None:
    _seed(conn)
    everything = entries(conn)
    assert _actions(everything) == ["logout", "view_residents_unmasked", "login_failed",
                                    "view_residents_unmasked", "denied", "login"]
    assert [e.time for e in everything] == sorted((e.time for e in everything), reverse=True)

    assert _actions(entries(conn, AuditQuery(actor="li"))) == ["logout", "denied"]
    assert [e.user_name for e in entries(conn, AuditQuery(action="view_residents_unmasked"))
            ] == ["op", "admin"]
    refused = entries(conn, AuditQuery(outcome="refused"))
    assert _actions(refused) == ["login_failed", "denied"]
    assert {e.outcome for e in refused} == {"refused"}
    assert len(entries(conn, AuditQuery(outcome="allowed"))) == 4
    # a target is a subject id, or a resident among those seen whole
    assert _actions(entries(conn, AuditQuery(target="wh-guanggu-b03"))) == ["denied"]
    assert [e.user_name for e in entries(conn, AuditQuery(target="wh-guanggu-r000002"))
            ] == ["op", "admin"]
    # since inclusive, until exclusive
    window = AuditQuery(since=T0 + timedelta(hours=1), until=T0 + timedelta(hours=3))
    assert _actions(entries(conn, window)) == ["view_residents_unmasked", "denied"]
    both = AuditQuery(actor="admin", outcome="allowed", since=T0 + timedelta(minutes=1))
    assert _actions(entries(conn, both)) == ["view_residents_unmasked"]
    assert entries(conn, AuditQuery(actor="nobody")) == []
    assert actions(conn) == ["denied", "login", "login_failed", "logout",
                             "view_residents_unmasked"]


def test_pages_follow_each_other_without_gaps_or_repeats_even_within_one_instant(conn) -> None:
    _seed(conn)
    for _ in range(5):  # five rows at one instant: the id breaks the tie
        log.record(conn, "admin", "admin", "view_audit_log")
    conn.commit()
    everything = [e.id for e in entries(conn)]
    pages, before = [], None
    while True:
        found = entries(conn, before=before, limit=3)
        if not found:
            break
        pages.append([e.id for e in found])
        before = found[-1].cursor
    assert [len(p) for p in pages] == [3, 3, 3, 2]
    assert [i for p in pages for i in p] == everything


def test_a_long_detail_is_one_line_with_a_count_of_what_is_left_out() -> None:
    from twin.store.reads.audit import AuditEntry

    entry = AuditEntry(1, T0, "admin", "admin", "view_residents_unmasked", "alarm", "1",
                       {"residents": [f"r{i}" for i in range(8)], "rows": 3})
    assert entry.detail_line() == "residents: r0, r1, r2, r3, r4 (+3); rows: 3"
    assert entry.detail_line(items=8, label=str.upper).startswith("RESIDENTS: r0")


def test_bad_filters_are_one_sentence(conn) -> None:
    with pytest.raises(TwinError, match="unknown outcome"):
        AuditQuery(outcome="maybe")
    with pytest.raises(TwinError, match="at most 200"):
        AuditQuery(target="x" * 5_000_000)
    with pytest.raises(TwinError, match="timezone-aware"):
        AuditQuery(since=datetime(2026, 11, 24))
    with pytest.raises(TwinError, match="ends .* before it starts"):
        AuditQuery(since=T0, until=T0)
    with pytest.raises(TwinError, match="limit"):
        entries(conn, limit=0)


# --- the page and its service ----------------------------------------------------------

@pytest.fixture(scope="module")
def room(pg, sample_template):
    """(app, database URL): the control room over a copy of the sample, with the demo's
    logins and a seeded log; shared by this module's page tests."""
    from dashboard.app import create_app
    from dashboard.demo import seed_users

    name = "audit_page"
    url = pg.create_database(name, template=sample_template)
    with connect(url) as conn:
        seed_users(conn)
        _seed(conn)
    app = create_app(url, secret_key="test")
    yield app, url
    app.server.config["TWIN"].pool.close()
    pg.drop_database(name)


def as_user(app, name: str):
    return as_room_user(app, name, "/audit")


def _rows_about(url: str, action: str, user_name: str) -> list[tuple]:
    with connect(url) as conn:
        return conn.execute("SELECT role, subject_kind, detail FROM audit_log "
                            "WHERE action = %s AND user_name = %s ORDER BY id",
                            (action, user_name)).fetchall()


def test_an_admin_filters_the_log_on_the_communitys_clock_and_the_read_is_audited(room) -> None:
    app, url = room
    with as_user(app, "admin"):
        shown = page.log_page(page.Filters(actor="li", since="2026-11-24", until="2026-11-24"))
        assert not shown.refused and shown.message == ""
        assert [r["action"] for r in shown.rows] == ["logout", "denied"]
        denied = shown.rows[1]
        # 01:30 UTC is 09:30 in Wuhan, whatever the server's zone
        assert denied["time"] == "2026-11-24 09:30:00"
        assert denied["outcome"] == "refused" and denied["role"] == "网格员"
        assert denied["action_label"] == "拒绝访问" and denied["target"] == "楼栋 wh-guanggu-b03"
        assert denied["detail"] == "原因: building wh-guanggu-b03 is not in li's grid"
        # the day is Wuhan's: 2026-11-24 00:00+08:00 is 16:00 UTC the day before
        late = page.log_page(page.Filters(since="2026-11-24 13:00", until="2026-11-24"))
        assert [r["action"] for r in late.rows] == ["logout"]
        residents = page.log_page(page.Filters(target=" wh-guanggu-r000001 ", outcome="allowed"))
        assert [r["actor"] for r in residents.rows] == ["admin"]
        assert residents.rows[0]["detail"] == "住户: wh-guanggu-r000001, wh-guanggu-r000002"
        layout = page.layout()
        assert _find(layout, page.ACTION) is not None and _find(layout, "denied") is None
    reads = [r for r in _rows_about(url, "view_audit_log", "admin")
             if r[2].get("actor") == "li" or r[2].get("target") == "wh-guanggu-r000001"]
    assert [r[:2] for r in reads] == [("admin", "audit_log")] * 2
    assert reads[0][2] == {"actor": "li", "since": "2026-11-24T00:00:00+08:00",
                           "until": "2026-11-25T00:00:00+08:00", "rows": 2}
    assert reads[1][2] == {"outcome": "allowed", "target": "wh-guanggu-r000001", "rows": 1}


def test_an_admin_pages_through_the_log_newest_first(room) -> None:
    app, _ = room
    with as_user(app, "admin"):
        before = datetime.now(UTC) - timedelta(seconds=1)
        with app.server.config["TWIN"].pool.connection() as conn:
            for i in range(page.PAGE_SIZE + 5):
                log.record(conn, "admin", "admin", "page_test", subject_id=f"x{i:03d}")
        since = before.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
        filters = page.Filters(action="page_test", since=since)
        first = page.log_page(filters)
        assert first.number == 1 and first.has_older and len(first.rows) == page.PAGE_SIZE
        assert first.rows[0]["target"] == f"x{page.PAGE_SIZE + 4:03d}"  # the newest first
        second = page.log_page(filters, cursors=first.cursors, move=page.OLDER)
        assert second.number == 2 and not second.has_older
        assert [r["target"] for r in second.rows] == [f"x{i:03d}" for i in range(4, -1, -1)]
        back = page.log_page(filters, cursors=second.cursors, move=page.NEWER)
        assert back.number == 1 and back.rows == first.rows
        # a changed filter (no move) starts again from the newest page
        assert page.log_page(filters, cursors=second.cursors).number == 1


def test_non_admins_are_refused_by_the_service_and_the_refusal_is_audited(room) -> None:
    app, url = room
    for name in ("operator", "planner", "worker1"):
        with as_user(app, name) as user:
            # the callback's service, called as a forged request would call it
            shown = page.log_page(page.Filters(actor="admin"))
            assert shown.refused and shown.rows == [] and shown.message.startswith("✗")
            assert _find(page.layout(), "denied") is not None
            # the read itself refuses, whoever calls it, and the refusal outlives the
            # caller's rolled-back transaction
            with pytest.raises(auth.AccessDenied), \
                    app.server.config["TWIN"].pool.connection() as conn:
                dashboard_audit.read_log(conn, user, AuditQuery())
        refusals = _rows_about(url, "denied", name)
        assert len(refusals) == 3, name
        assert {r[1] for r in refusals} == {"audit_log"}
        assert "may not open the audit page" in refusals[0][2]["reason"]
        assert _rows_about(url, "view_audit_log", name) == []


def test_a_forged_post_to_the_callback_is_refused_for_a_non_admin_and_served_to_an_admin(
        room) -> None:
    """Over HTTP, as the issue's probe did: straight to /_dash-update-component."""
    from dashboard.demo import DEMO_PASSWORD

    app, url = room
    outputs = [(page.TABLE, "children"), (page.MESSAGE, "children"), (page.CURSORS, "data"),
               (page.NEWER, "disabled"), (page.OLDER, "disabled"), (page.PAGE, "children")]
    inputs = [(page.ACTOR, "value", "li"), (page.ACTION, "value", None),
              (page.OUTCOME, "value", None), (page.TARGET, "value", None),
              (page.SINCE, "value", "2026-11-24"), (page.UNTIL, "value", "2026-11-24"),
              (page.NEWER, "n_clicks", None), (page.OLDER, "n_clicks", None),
              (page.REFRESH, "n_clicks", None)]
    body = {
        "output": ".." + "...".join(f"{i}.{p}" for i, p in outputs) + "..",
        "outputs": [{"id": i, "property": p} for i, p in outputs],
        "inputs": [{"id": i, "property": p, "value": v} for i, p, v in inputs],
        "state": [{"id": page.CURSORS, "property": "data", "value": None}],
        "changedPropIds": [f"{page.ACTOR}.value"],
    }
    answers = {}
    for name in ("worker2", "admin"):
        client = app.server.test_client()
        form = client.get("/login").get_data(as_text=True)  # the form's CSRF token
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        client.post("/login", data={"username": name, "password": DEMO_PASSWORD,
                                    "csrf_token": token})
        answer = client.post("/_dash-update-component", json=body)
        assert answer.status_code == 200, answer.data[:300]
        answers[name] = json.dumps(answer.get_json(), ensure_ascii=False)
    assert "wh-guanggu-b03" not in answers["worker2"] and "may not open" in answers["worker2"]
    assert "wh-guanggu-b03" in answers["admin"] and "2026-11-24 09:30:00" in answers["admin"]
    assert [r[1] for r in _rows_about(url, "denied", "worker2")] == ["audit_log"]


def test_the_audit_link_is_in_the_admins_navigation_only(room) -> None:
    from dashboard.shell import shell

    app, _ = room
    for name, shown in (("admin", True), ("operator", False), ("planner", False),
                        ("worker1", False)):
        with as_user(app, name):
            assert (_find(shell(), "nav-audit") is not None) is shown, name


def test_the_page_answers_bad_input_with_a_message(room) -> None:
    app, _ = room
    with as_user(app, "admin"):
        assert "is not a date or a time" in page.log_page(page.Filters(since="yesterday")).message
        assert "ends" in page.log_page(page.Filters(since="2026-11-25",
                                                    until="2026-11-24")).message
        forged = page.log_page(page.Filters(), cursors={"starts": [["abc", 1]]},
                               move=page.OLDER)
        assert "pager" in forged.message and forged.rows == []
        assert "at most 200" in page.log_page(page.Filters(actor="a" * 10_000)).message


def test_the_page_is_in_english_for_an_english_reader(room) -> None:
    app, _ = room
    with connect(app.server.config["TWIN"].pool.conninfo) as conn:
        auth.set_language(conn, "admin", "en")
    try:
        with as_user(app, "admin"):
            rows = page.log_page(page.Filters(action="denied", actor="li")).rows
            assert rows[0]["action_label"] == "Refused" and rows[0]["role"] == "Grid worker"
            assert rows[0]["detail"].startswith("reason: building")
            text = json.dumps(page.layout().to_plotly_json(), default=lambda c: c.to_plotly_json())
            assert "Audit log" in text and "Asia/Shanghai" in text
    finally:
        with connect(app.server.config["TWIN"].pool.conninfo) as conn:
            auth.set_language(conn, "admin", "zh-CN")


# --- twin audit ----------------------------------------------------------------------

def test_twin_audit_prints_filtered_rows_as_a_table_json_or_csv(db_url, monkeypatch) -> None:
    from twin.cli import app

    with connect(db_url) as conn:
        _seed(conn)
    monkeypatch.setenv("TWIN_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    table = runner.invoke(app, ["audit", "--actor", "li"])
    assert table.exit_code == 0, table.output
    assert "wh-guanggu-b03" in table.output and "denied" in table.output
    assert "2026-11-24 09:30:00" in table.output  # on the community's (default) clock
    assert "login_failed" not in table.output and "2 rows" in table.output

    as_json = runner.invoke(app, ["audit", "--outcome", "refused", "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)
    assert [r["action"] for r in rows] == ["login_failed", "denied"]
    assert rows[1]["time"] == "2026-11-24T09:30:00+08:00" and rows[1]["outcome"] == "refused"
    assert rows[1]["detail"]["reason"].startswith("building wh-guanggu-b03")

    as_csv = runner.invoke(app, ["audit", "--target", "wh-guanggu-r000002", "--since",
                                 "2026-11-24 10:00", "--until", "2026-11-24", "--csv"])
    assert as_csv.exit_code == 0, as_csv.output
    found = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert [(r["actor"], r["subject_id"]) for r in found] == [("op", "7,8"),
                                                               ("admin", "wh-guanggu-b01")]
    assert json.loads(found[0]["detail"]) == {"residents": ["wh-guanggu-r000002"]}

    limited = json.loads(runner.invoke(app, ["audit", "--limit", "2", "--json"]).output)
    assert len(limited) == 2 and limited[0]["action"] == "view_audit_log"  # reads are logged
    assert limited[0]["role"] == "cli"

    # bad input is one sentence (`twin.cli.main` prints a TwinError as its message)
    for args, said in ((["--json", "--csv"], "choose one"),
                       (["--since", "last week"], "not a date or a time"),
                       (["--outcome", "maybe"], "unknown outcome"),
                       (["--limit", "0"], "limit must be"),
                       (["--community", "nowhere"], "no community 'nowhere'")):
        refused = runner.invoke(app, ["audit", *args])
        assert isinstance(refused.exception, TwinError), (args, refused.output)
        assert said in str(refused.exception), args


def _find(component, target_id):
    if getattr(component, "id", None) == target_id:
        return component
    children = getattr(component, "children", None)
    if children is None:
        return None
    for child in children if isinstance(children, (list, tuple)) else [children]:
        found = _find(child, target_id)
        if found is not None:
            return found
    return None
