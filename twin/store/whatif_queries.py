"""Named queries the what-if analyses ask of the stored history.

Each function holds its SQL next to it, always parameterised, and returns
the pure types of `twin.whatif` (arrays, not rows): this module is the one
boundary between the hypertables and the analyses.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import psycopg

from twin.whatif.charging import ShedDemand

#: Sessions that began this long before a period still hold piles in it.
CHARGING_WARM_UP = timedelta(hours=24)

_SHEDS_SQL = """
SELECT f.id, f.name, count(d.id)::int AS piles
FROM facility f
LEFT JOIN device d ON d.facility_id = f.id AND d.type = 'ev_charger'
WHERE f.kind = 'ev_shed' AND (%(community)s::text IS NULL OR f.community_id = %(community)s)
GROUP BY f.id, f.name
ORDER BY f.id
"""

# A session runs from its charge_start to its charge_stop (same device, same
# attrs.session). A start without a stop (still charging at the end, or a
# stop that never came) ends at the next start of the same pile or at the end
# of the period, whichever is first.
_SESSIONS_SQL = """
WITH ev AS (
    SELECT e.device_id, d.facility_id, e.time, e.kind, e.attrs->>'session' AS session
    FROM event e
    JOIN device d ON d.id = e.device_id
    WHERE e.kind IN ('charge_start', 'charge_stop')
      AND e.time >= %(since)s AND e.time < %(until)s
      AND d.type = 'ev_charger' AND d.facility_id IS NOT NULL
      AND (%(community)s::text IS NULL OR d.community_id = %(community)s)
), starts AS (
    SELECT device_id, facility_id, time, session,
           lead(time) OVER (PARTITION BY device_id ORDER BY time) AS next_start
    FROM ev WHERE kind = 'charge_start'
), stops AS (
    SELECT device_id, session, min(time) AS time
    FROM ev WHERE kind = 'charge_stop' AND session IS NOT NULL
    GROUP BY device_id, session
)
SELECT s.facility_id,
       extract(epoch FROM s.time)::float8 AS started,
       extract(epoch FROM least(p.time, s.next_start, %(until)s))::float8 AS ended
FROM starts s
LEFT JOIN stops p ON p.device_id = s.device_id AND p.session = s.session AND p.time >= s.time
ORDER BY s.facility_id, s.time, s.device_id
"""


def shed_demand(conn: psycopg.Connection, *, start: datetime, end: datetime,
                community_id: str | None = None,
                warm_up: timedelta = CHARGING_WARM_UP) -> list[ShedDemand]:
    """Every EV shed with its piles and the sessions from ``start - warm_up`` to ``end``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (e.g. UTC)")
    sheds = conn.execute(_SHEDS_SQL, {"community": community_id}).fetchall()
    rows = conn.execute(_SESSIONS_SQL, {"since": start - warm_up, "until": end,
                                        "community": community_id}).fetchall()
    by_shed: dict[str, list[tuple[float, float]]] = {}
    for shed_id, started, ended in rows:
        by_shed.setdefault(shed_id, []).append((started, ended))
    out = []
    for shed_id, name, piles in sheds:
        times = np.array(by_shed.get(shed_id, []), dtype=float).reshape(-1, 2)
        out.append(ShedDemand(shed_id=shed_id, name=name, piles=piles, arrivals=times[:, 0],
                              service_s=times[:, 1] - times[:, 0]))
    return out
