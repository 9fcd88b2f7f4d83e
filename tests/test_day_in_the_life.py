"""A night in the life of the sample community, through the real broker, ingest, rules,
dispatch and notification worker (tests/day_in_the_life.py judges it).

The suite lives through the small hours, when the staff is thinnest: fire-lane
parking at 01:15, an away-mode intrusion at 02:20 and a CO leak in the garage at
03:00. `scripts/day_in_the_life.py` lives through the whole day and writes
docs/day-in-the-life.md.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.day_in_the_life import LOCAL, SCRIPT, markdown, run_day


@pytest.mark.timeout(900)
def test_a_night_in_the_life(twin_db_url: str, broker) -> None:
    yesterday = (datetime.now(UTC).astimezone(LOCAL) - timedelta(days=1)).date()
    judged = run_day(twin_db_url, broker, day=yesterday, start="00:30", hours=3.5,
                     speed=900.0, script=SCRIPT)
    report = markdown(judged, command="pytest tests/test_day_in_the_life.py")
    assert [i["spec"] for i in judged.incidents] == [
        "fire-lane-parking:东门", "intrusion:wh-guanggu-b01-u0302", "co-leak:1号地库"]
    # the live loop itself holds: every command obeyed, every notification delivered,
    # the screen agrees with SQL, nothing dead-lettered
    assert judged.commands["sent"] > 0 and judged.commands["unacknowledged"] == 0, report
    assert set(judged.notifications) == {"delivered"}, report
    assert all(s == q for s, q in judged.kpis.values()), report
    assert judged.dead_letters == 0, report
    assert judged.problems == [], report
