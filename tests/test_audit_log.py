"""Reading the audit log back: the filters and the pages, against the real database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from twin.errors import TwinError
from twin.store import audit as log
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
