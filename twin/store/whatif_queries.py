"""Named queries the what-if analyses ask of the stored history.

Each function holds its SQL next to it, always parameterised, and returns
the pure types of `twin.whatif` (arrays, not rows): this module is the one
boundary between the hypertables and the analyses.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import psycopg

from twin.errors import TwinError
from twin.rules.compile import CompiledRule, RuleError, compile_text
from twin.whatif.charging import DEFAULT_TZ, ShedDemand
from twin.whatif.replay import (
    NotReplayable,
    RuleReplay,
    ThresholdSpec,
    replay_result,
    threshold_spec,
)

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


# --- rule replay -----------------------------------------------------------------------------

# The devices a threshold rule listens to, each with the key its firings are
# grouped by (NULL: the engine has no key for it and skips it).
_REPLAY_DEVICES_SQL = """
SELECT d.id,
       CASE %(key)s WHEN 'device' THEN d.id
                    WHEN 'facility' THEN d.facility_id
                    WHEN 'building' THEN coalesce(d.building_id, f.building_id)
                    WHEN 'unit' THEN d.unit_id
                    ELSE d.community_id END
FROM device d
LEFT JOIN facility f ON f.id = d.facility_id
WHERE d.type = ANY(%(types)s)
  AND (%(community)s::text IS NULL OR d.community_id = %(community)s)
  AND (%(building)s::text IS NULL OR d.building_id = %(building)s)
  AND (%(facility)s::text IS NULL OR d.facility_id = %(facility)s)
  AND (%(facility_kind)s::text IS NULL OR f.kind = %(facility_kind)s)
ORDER BY d.id
"""

# Firings of a threshold rule, per local day. Ordering every reading by device
# and time (a sort of millions of rows) is what makes such a query slow; but a
# device can only cross the threshold next to one of its readings over it, and
# those are few. So the query
#   hot      finds the hours in which each device had a reading over it
#            (time_bucket over the readings past the threshold only: a parallel
#            scan that keeps a few per cent of the rows, no sort);
#   fetched  reads every reading of those hours and of the hour before and after
#            (a hash join), the only ones ordered;
#   edges    reads by index, for the rare reading over the threshold whose
#            neighbour lies beyond the hour before or after (a device silent
#            for an hour, or the start of the period), that neighbour: so the
#            state coming in and going out is always known, and no crossing is
#            lost or invented (every reading skipped is under the threshold,
#            and so is the one next to it);
#   changes  where each device crosses (gaps and islands);
#   spans    per device, [crossed over, crossed back) (open: still over);
#   episodes per key, the union of its devices' spans (merged islands);
#   fires    an episode that lasted for_s fires at its start + for_s;
#   counted  with count_in_window, only the count-th firing within the window;
# and counts the firings per local day with time_bucket. A key already over
# the threshold when the readings start fired before them and is not counted.
_THRESHOLD_FIRINGS_SQL = """
WITH dev AS (
    -- devices numbered: ordering by an integer is much cheaper than by a text id
    SELECT * FROM unnest(%(ids)s::text[], %(keys)s::text[]) WITH ORDINALITY AS d(device_id, key, n)
), hot AS (
    SELECT DISTINCT device_id, time_bucket('1 hour', time) AS hour
    FROM reading
    WHERE metric = %(metric)s AND time >= %(since)s AND time < %(until)s
      AND device_id = ANY(%(ids)s) AND (value > %(above)s OR value < %(below)s)
), wanted AS (
    SELECT DISTINCT hot.device_id, dev.n, hot.hour + k * interval '1 hour' AS hour
    FROM hot JOIN dev USING (device_id), (VALUES (-1), (0), (1)) AS v(k)
), fetched AS (
    SELECT w.n, r.time,
           coalesce(r.value > %(above)s, false) OR coalesce(r.value < %(below)s, false) AS hit
    FROM reading r
    JOIN wanted w ON w.device_id = r.device_id AND w.hour = time_bucket('1 hour', r.time)
    WHERE r.metric = %(metric)s AND r.value IS NOT NULL
      AND r.time >= %(since)s AND r.time < %(until)s
), ordered AS (
    SELECT n, time, hit, prev_hit,
           hit AND (prev_t IS NULL OR prev_t < time_bucket('1 hour', time) - interval '1 hour')
               AS before,
           hit AND (next_t IS NULL OR next_t >= time_bucket('1 hour', time) + interval '2 hours')
               AS after
    FROM (SELECT n, time, hit,
                 lag(hit) OVER w AS prev_hit, lag(time) OVER w AS prev_t,
                 lead(time) OVER w AS next_t
          FROM fetched
          WINDOW w AS (PARTITION BY n ORDER BY time)) x
), edges AS (
    SELECT o.n, o.time, o.before, p.time AS prev_t, p.hit AS prev_hit, q.time AS next_t,
           q.hit AS next_hit
    FROM (SELECT * FROM ordered WHERE before OR after) o
    JOIN dev USING (n)
    LEFT JOIN LATERAL (
        SELECT time,
               coalesce(value > %(above)s, false) OR coalesce(value < %(below)s, false) AS hit
        FROM reading
        WHERE o.before AND device_id = dev.device_id AND metric = %(metric)s
          AND value IS NOT NULL AND time < o.time
        ORDER BY time DESC LIMIT 1) p ON true
    LEFT JOIN LATERAL (
        SELECT time,
               coalesce(value > %(above)s, false) OR coalesce(value < %(below)s, false) AS hit
        FROM reading
        WHERE o.after AND device_id = dev.device_id AND metric = %(metric)s
          AND value IS NOT NULL AND time > o.time AND time < %(until)s
        ORDER BY time LIMIT 1) q ON true
), changes AS (
    -- crossings among the fetched readings, but where the reading before is not known
    SELECT n, time, hit FROM ordered WHERE hit IS DISTINCT FROM prev_hit AND NOT before
    UNION ALL
    -- ... there, from the reading found before it
    SELECT n, time, true FROM edges WHERE before AND prev_hit IS NOT TRUE
    UNION ALL
    -- a reading over the threshold before the period: the crossing lies before it
    SELECT n, prev_t, true FROM edges WHERE prev_hit AND prev_t < %(since)s
    UNION ALL
    -- the reading under the threshold after a silence: the crossing back
    SELECT n, next_t, false FROM edges WHERE next_hit IS FALSE
), spans AS (
    SELECT dev.key, c.s, coalesce(c.e, 'infinity') AS e
    FROM (SELECT n, time AS s, hit, lead(time) OVER (PARTITION BY n ORDER BY time) AS e
          FROM changes) c
    JOIN dev USING (n)
    WHERE c.hit
), islands AS (
    SELECT key, s, e,
           sum(CASE WHEN s < reach THEN 0 ELSE 1 END) OVER (PARTITION BY key ORDER BY s, e)
               AS island
    FROM (SELECT key, s, e,
                 coalesce(max(e) OVER (PARTITION BY key ORDER BY s, e
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                          '-infinity') AS reach
          FROM spans) x
), episodes AS (
    SELECT key, min(s) AS s, max(e) AS e FROM islands GROUP BY key, island
), fires AS (
    SELECT key, s + %(for)s::interval AS at
    FROM episodes
    WHERE e > s + %(for)s::interval AND s + %(for)s::interval < %(until)s
), counted AS (
    SELECT key, at,
           count(*) OVER (PARTITION BY key ORDER BY at
                          RANGE BETWEEN %(window)s::interval PRECEDING AND CURRENT ROW) AS n
    FROM fires
)
SELECT (time_bucket('1 day', at, %(tz)s::text) AT TIME ZONE %(tz)s::text)::date AS day,
       count(*)::int
FROM counted
WHERE at >= %(start)s AND at < %(until)s AND (%(count)s::int IS NULL OR n = %(count)s)
GROUP BY 1
ORDER BY 1
"""

# What the live system did for one rule, per local day: alarms raised or
# repeated (alarm_log), alarms opened, work orders created.
_RULE_HISTORY_SQL = """
WITH did AS (
    SELECT l.time AS at, 'fired' AS what
    FROM alarm_log l JOIN alarm a ON a.id = l.alarm_id
    WHERE a.rule_id = %(rule)s AND l.action IN ('raised', 'repeated')
      AND l.time >= %(start)s AND l.time < %(end)s
    UNION ALL
    SELECT raised_at, 'opened' FROM alarm
    WHERE rule_id = %(rule)s AND raised_at >= %(start)s AND raised_at < %(end)s
    UNION ALL
    SELECT created_at, 'order' FROM work_order
    WHERE rule_id = %(rule)s AND created_at >= %(start)s AND created_at < %(end)s
)
SELECT (time_bucket('1 day', at, %(tz)s::text) AT TIME ZONE %(tz)s::text)::date AS day,
       count(*) FILTER (WHERE what = 'fired')::int,
       count(*) FILTER (WHERE what = 'opened')::int,
       count(*) FILTER (WHERE what = 'order')::int
FROM did GROUP BY 1 ORDER BY 1
"""

def threshold_firings(conn: psycopg.Connection, spec: ThresholdSpec, *, start: datetime,
                      end: datetime, tz: str = DEFAULT_TZ, community_id: str | None = None) -> dict[date, int]:
    """How often ``spec`` would have fired from ``start`` to ``end``, per local day.

    Readings are read from ``start - for_s - window_s``, so that every firing
    in the period is seen whole, plus the reading before each stretch over the
    threshold, however long before (whether it was already over it).
    """
    _aware(start, end)
    place = {"community": spec.place.get("community", community_id),
             "building": spec.place.get("building"), "facility": spec.place.get("facility"),
             "facility_kind": spec.place.get("facility_kind")}
    devices = conn.execute(_REPLAY_DEVICES_SQL, {"key": spec.key,
                                                 "types": list(spec.device_types),
                                                 **place}).fetchall()
    devices = [(d, k) for d, k in devices if k is not None]
    if not devices:
        return {}
    reach = timedelta(seconds=spec.for_s + (spec.window_s or 0.0))
    # count_in_window drops times at t - window exactly: RANGE includes them, so 1 µs less
    window = timedelta(seconds=spec.window_s) - timedelta(microseconds=1) \
        if spec.window_s else timedelta(0)
    params = {"ids": [d for d, _ in devices], "keys": [k for _, k in devices],
              "metric": spec.metric, "above": spec.above, "below": spec.below,
              "since": start - reach, "start": start, "until": end,
              "for": timedelta(seconds=spec.for_s), "window": window, "count": spec.count,
              "tz": tz}
    with conn.transaction():
        # the readings of the hot hours are ordered in memory instead of on disk;
        # and the planner, unable to guess how many readings the hot hours hold,
        # would otherwise sort every reading for a merge join
        conn.execute("SET LOCAL work_mem = '128MB'")
        conn.execute("SET LOCAL enable_mergejoin = off")
        rows = conn.execute(_THRESHOLD_FIRINGS_SQL, params).fetchall()
    return dict(rows)


def rule_history(conn: psycopg.Connection, rule_id: str, *, start: datetime, end: datetime,
                 tz: str = DEFAULT_TZ) -> dict[date, tuple[int, int, int]]:
    """Per local day: (alarms raised or repeated, alarms opened, work orders) of a rule."""
    _aware(start, end)
    rows = conn.execute(_RULE_HISTORY_SQL, {"rule": rule_id, "start": start, "end": end,
                                            "tz": tz}).fetchall()
    return {day: (fired, opened, orders) for day, fired, opened, orders in rows}


def stored_rule(conn: psycopg.Connection, rule_id: str) -> CompiledRule:
    """A rule as the running service has it (the ``rule`` table), compiled."""
    row = conn.execute("SELECT source FROM rule WHERE id = %s", (rule_id,)).fetchone()
    if row is None:
        known = [r[0] for r in conn.execute("SELECT id FROM rule ORDER BY id")]
        raise TwinError(f"there is no rule {rule_id!r} in the database (twin rules load DIR); "
                        f"the stored rules are {known}")
    try:
        return compile_text(row[0], origin=rule_id)
    except RuleError as e:
        raise TwinError(f"stored rule {rule_id} no longer compiles: {e}") from e


def replay_rule(conn: psycopg.Connection, rule: CompiledRule, *, start: datetime,
                end: datetime, params: dict | None = None, tz: str = DEFAULT_TZ,
                community_id: str | None = None) -> RuleReplay | NotReplayable:
    """The rule as it is and with ``params`` (a scenario's ``rule_params[rule.id]``)
    replayed over the stored readings, beside what the live system did."""
    baseline = threshold_spec(rule)
    if isinstance(baseline, NotReplayable):
        return baseline
    scenario = threshold_spec(rule, params) if params else baseline
    if isinstance(scenario, NotReplayable):
        return scenario
    base = threshold_firings(conn, baseline, start=start, end=end, tz=tz,
                             community_id=community_id)
    scen = base if scenario == baseline else threshold_firings(
        conn, scenario, start=start, end=end, tz=tz, community_id=community_id)
    return replay_result(baseline, scenario, start=start, end=end, tz=tz,
                         baseline_firings=base, scenario_firings=scen,
                         did=rule_history(conn, rule.id, start=start, end=end, tz=tz))


def _aware(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (e.g. UTC)")
    if end <= start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
