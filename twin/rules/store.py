"""The rule engine's edge to PostgreSQL: rules, counters, state, the twin's snapshot, and
carrying out what rules ask (alarms, commands, broadcasts, notifications, work orders).

Every function runs in the caller's transaction, so a batch of messages, the
firings it caused, the rule state it changed and the commands it queued are
committed together, and only then are the messages acknowledged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import networkx as nx
import psycopg
import shapely
from psycopg import sql
from psycopg.types.json import Jsonb

from twin.alarms import Raised
from twin.dispatch import MAX_FIX_AGE, Assignment, NoCandidate, dispatch, started_from
from twin.escalation import climb, config_for, next_retry
from twin.model import DeviceInfo
from twin.rules import actions as act
from twin.rules import schema
from twin.rules.compile import CompiledRule, RuleError, compile_text
from twin.rules.engine import Engine, bucket_hours, bucket_of
from twin.rules.snapshot import (
    BuildingInfo,
    FacilityInfo,
    GridInfo,
    ResidentInfo,
    Snapshot,
    UnitInfo,
)
from twin.store import operations as ops
from twin.store.connection import one_row
from twin.store.graph import dispatch_staff, walk_routing_graph
from twin.system_texts import Said, role_said
from twin.walkgraph import WalkGraph
from twin.work_orders import OPEN_STATES, SYSTEM, Actor, WorkOrder, escalation_due

log = logging.getLogger("twin.rules")


# --- rules -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoredRule:
    id: str
    title: str
    domain: str
    enabled: bool
    origin: str | None
    loaded_at: datetime
    evaluated: int
    fired: int
    last_fired: datetime | None


def store_rules(conn: psycopg.Connection, rules: Iterable[CompiledRule], *, at: datetime,
                origins: dict[str, str] | None = None, replace_all: bool = False) -> int:
    """Write checked rules (insert or replace by id) and bump the rule set's revision.

    With ``replace_all``, stored rules not among ``rules`` are deleted. Returns
    the new revision, which running services pick up.
    """
    rules = list(rules)
    origins = origins or {}
    with conn.transaction():
        for rule in rules:
            conn.execute(
                """INSERT INTO rule (id, title, domain, source, checksum, enabled, origin, loaded_at)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (id) DO UPDATE SET title = excluded.title,
                       domain = excluded.domain, source = excluded.source,
                       checksum = excluded.checksum, enabled = excluded.enabled,
                       origin = excluded.origin, loaded_at = excluded.loaded_at""",
                (rule.id, rule.rule.title_in("en"), rule.rule.domain, rule.text, rule.checksum,
                 rule.rule.enabled, origins.get(rule.id), at),
            )
            conn.execute("INSERT INTO rule_counter (rule_id) VALUES (%s) ON CONFLICT DO NOTHING",
                         (rule.id,))
            store_texts(conn, [rule])
        if replace_all:
            conn.execute("DELETE FROM rule WHERE NOT (id = ANY(%s))", ([r.id for r in rules],))
        return _bump(conn, at)


def store_texts(conn: psycopg.Connection, rules: Iterable[CompiledRule]) -> None:
    """The rules' texts by key, every language (what `twin.texts.render` reads)."""
    rows = [(key, rule.id, Jsonb(by_lang)) for rule in rules
            for key, by_lang in rule.texts().items()]
    if rows:
        conn.cursor().executemany(
            """INSERT INTO rule_text (key, rule_id, texts) VALUES (%s, %s, %s)
               ON CONFLICT (key) DO UPDATE SET rule_id = excluded.rule_id,
                   texts = excluded.texts""", rows)


def set_enabled(conn: psycopg.Connection, rule_id: str, enabled: bool, *, at: datetime) -> int:
    with conn.transaction():
        done = conn.execute("UPDATE rule SET enabled = %s WHERE id = %s", (enabled, rule_id))
        if done.rowcount == 0:
            raise RuleError(rule_id, "is not stored in the database (twin rules load DIR)")
        return _bump(conn, at)


def rule_revision(conn: psycopg.Connection) -> int:
    (revision,) = one_row(conn.execute("SELECT revision FROM rule_set"), "reading the rule set")
    return int(revision)


def stored_rules(conn: psycopg.Connection) -> tuple[list[CompiledRule], list[str]]:
    """The stored rules, compiled; a rule that no longer compiles is left out and reported
    (the device-type registry may have changed since it was loaded)."""
    compiled, errors = [], []
    for rule_id, source, enabled in conn.execute(
            "SELECT id, source, enabled FROM rule ORDER BY id").fetchall():
        try:
            rule = compile_text(source, origin=rule_id)
        except RuleError as e:
            errors.append(str(e))
            continue
        if rule.rule.enabled != enabled:
            rule = replace(rule, rule=rule.rule.model_copy(update={"enabled": enabled}))
        compiled.append(rule)
    return compiled, errors


def rule_table(conn: psycopg.Connection) -> list[StoredRule]:
    """Every stored rule with its counters: what `twin rules list` and the dashboard show."""
    rows = conn.execute(
        """SELECT r.id, r.title, r.domain, r.enabled, r.origin, r.loaded_at,
                  coalesce(c.evaluated, 0), coalesce(c.fired, 0), c.last_fired
           FROM rule r LEFT JOIN rule_counter c ON c.rule_id = r.id
           ORDER BY r.domain, r.id""").fetchall()
    return [StoredRule(*row) for row in rows]


# --- state and counters ------------------------------------------------------------------

def load_state(conn: psycopg.Connection, rules: Iterable[CompiledRule]
               ) -> dict[tuple[str, str, str], dict]:
    """Stored state of these rules, only where it belongs to the same rule text."""
    checksums = {r.id: r.checksum for r in rules}
    out = {}
    for rule_id, node_id, key, state, checksum in conn.execute(
            "SELECT rule_id, node_id, key, state, checksum FROM rule_state"):
        if checksums.get(rule_id) == checksum:
            out[(rule_id, node_id, key)] = state
    return out


def save_engine(conn: psycopg.Connection, engine: Engine, *, at: datetime) -> None:
    """Write the state entries and counters the engine changed since the last save."""
    dirty = engine.take_dirty()
    upserts = [(r, n, k, Jsonb(v), engine.rules[r].checksum, at)
               for (r, n, k), v in dirty.items() if v is not None and r in engine.rules]
    deletes = [(r, n, k) for (r, n, k), v in dirty.items() if v is None]
    with conn.cursor() as cur:
        if upserts:
            cur.executemany(
                """INSERT INTO rule_state (rule_id, node_id, key, state, checksum, updated_at)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (rule_id, node_id, key) DO UPDATE SET state = excluded.state,
                       checksum = excluded.checksum, updated_at = excluded.updated_at""",
                upserts)
        if deletes:
            cur.executemany(
                "DELETE FROM rule_state WHERE rule_id = %s AND node_id = %s AND key = %s",
                deletes)
        counts = [(c.evaluated, c.fired, c.last_fired, rule_id)
                  for rule_id, c in engine.take_counters().items() if c.evaluated or c.fired]
        if counts:
            cur.executemany(
                """INSERT INTO rule_counter AS c (evaluated, fired, last_fired, rule_id)
                   VALUES (%s, %s, %s, %s)
                   ON CONFLICT (rule_id) DO UPDATE SET
                       evaluated = c.evaluated + excluded.evaluated,
                       fired = c.fired + excluded.fired,
                       last_fired = greatest(c.last_fired, excluded.last_fired)""",
                counts)


# --- the twin as the engine sees it ------------------------------------------------------

def load_snapshot(conn: psycopg.Connection, community_id: str | None = None) -> Snapshot:
    """One community (or every one) in memory: devices with their places, care residents,
    grids and staff, and the latest state ingest has stored."""
    c = {"c": community_id}
    snap = Snapshot()
    where = "(%(c)s::text IS NULL OR {}.community_id = %(c)s)"
    for row in conn.execute(
            f"""SELECT b.id, b.community_id, b.name, b.grid_id,
                       coalesce(ST_X(e.geom), ST_X(ST_Centroid(b.footprint))),
                       coalesce(ST_Y(e.geom), ST_Y(ST_Centroid(b.footprint)))
                FROM building b
                LEFT JOIN LATERAL (SELECT geom FROM entrance WHERE building_id = b.id
                                   ORDER BY id LIMIT 1) e ON true
                WHERE {where.format('b')}""", c):
        snap.buildings[row[0]] = BuildingInfo(row[0], row[1], row[2], row[3], row[4], row[5])
    for row in conn.execute(
            f"""SELECT id, kind, name, ST_X(geom), ST_Y(geom), building_id, ST_AsBinary(area)
                FROM facility f WHERE {where.format('f')}""", c):
        snap.facilities[row[0]] = FacilityInfo(
            row[0], row[1], row[2], row[3], row[4], row[5],
            shapely.from_wkb(row[6]) if row[6] is not None else None)
    for row in conn.execute(
            f"""SELECT g.id, g.name, g.grid_worker_id FROM grid g WHERE {where.format('g')}""", c):
        snap.grids[row[0]] = GridInfo(*row)
    # Devices outside any building take the grid whose area holds them.
    for row in conn.execute(
            f"""SELECT d.id, d.type, d.community_id, d.name, ST_X(d.geom), ST_Y(d.geom),
                       d.building_id, d.floor, d.unit_id, d.facility_id,
                       CASE WHEN d.building_id IS NULL THEN
                           (SELECT g.id FROM grid g WHERE g.community_id = d.community_id
                              AND ST_Intersects(g.area, d.geom) ORDER BY g.id LIMIT 1) END
                FROM device d WHERE {where.format('d')}""", c):
        snap.devices[row[0]] = DeviceInfo(*row)
    for row in conn.execute(
            f"""SELECT u.id, u.building_id, u.floor, u.number FROM unit u
                JOIN building b ON b.id = u.building_id WHERE {where.format('b')}""", c):
        snap.units[row[0]] = UnitInfo(*row)
    for row in conn.execute(
            f"""SELECT r.id, r.unit_id, r.name, r.age_band, r.care_flags, r.family_contacts,
                       o.not_out_h, o.not_back_h
                FROM resident r JOIN unit u ON u.id = r.unit_id
                JOIN building b ON b.id = u.building_id
                LEFT JOIN care_override o ON o.resident_id = r.id
                WHERE cardinality(r.care_flags) > 0 AND {where.format('b')}""", c):
        hours = {d: float(h) for d, h in (("out", row[6]), ("in", row[7])) if h is not None}
        snap.residents[row[0]] = ResidentInfo(row[0], row[1], row[2], row[3], tuple(row[4]),
                                              tuple(row[5] or ()), hours)
    for sid, name, role in conn.execute(
            f"SELECT id, name, role FROM staff s WHERE {where.format('s')}", c):
        snap.staff[sid] = (name, role)
    for device_id, online, last_seen, metrics in conn.execute(
            f"""SELECT s.device_id, s.online, s.last_seen, s.metrics FROM device_state s
                JOIN device d ON d.id = s.device_id WHERE {where.format('d')}""", c):
        values = {m: v.get("v") for m, v in (metrics or {}).items()}
        if online is not None:
            values["online"] = online
        snap.latest[device_id] = values
        if last_seen is not None:
            snap.last_seen[device_id] = last_seen
    if snap.residents:
        for subject, direction, last in conn.execute(
                """SELECT subject_id, direction, max(time) FROM event
                   WHERE kind = 'access' AND subject_id = ANY(%s) AND direction IS NOT NULL
                     AND time > now() - interval '30 days'
                   GROUP BY subject_id, direction""", (list(snap.residents),)):
            snap.last_access.setdefault(subject, {})[direction] = last
        (snap.history_since,) = one_row(conn.execute(
            f"""SELECT min(e.time) FROM event e JOIN device d ON d.id = e.device_id
                WHERE e.kind = 'access' AND e.time > now() - interval '30 days'
                  AND {where.format('d')}""", c), "reading when access history starts")
    snap.index()
    return snap


# --- carrying out a firing ---------------------------------------------------------------

@dataclass(slots=True)
class Outcome:
    """What executing firings did: ids of commands to publish and what was written."""

    outbox: list[int] = field(default_factory=list)
    alarms: list[int] = field(default_factory=list)
    orders: list[int] = field(default_factory=list)
    assigned: list[int] = field(default_factory=list)
    notifications: int = 0
    not_dispatched: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Waiting:
    """An order nobody could take: when the clock alone can change that, and what the
    events that can (positions, declines, finished orders, staff) looked like then."""

    retry_at: datetime | None
    seen: tuple[Any, ...]


class Dispatcher:
    """Assigns work orders with `twin.dispatch`, keeping each community's walkway graph.

    An order nobody can take is not retried on every tick. It is retried when
    something can change the answer: a shift of the staff who could take it
    starts or ends (:func:`twin.escalation.next_retry`), a position of such a
    staff member arrives, someone declines, finishes or gives up an order, or
    the staff change; or when it escalates.
    """

    def __init__(self, *, max_fix_age: timedelta = MAX_FIX_AGE) -> None:
        self._graphs: dict[str, WalkGraph] = {}
        #: fixes older than this are not trusted: the staff member's post is used instead
        self.max_fix_age = max_fix_age
        #: order id -> why nobody could be sent, as last logged (the log says each thing once):
        #: the reason and who was passed over, not the clock time the detail mentions
        self._told: dict[int, tuple[str, tuple[str, ...]]] = {}
        self._waiting: dict[int, _Waiting] = {}
        #: orders at the top tier whose SLA has passed, already noted
        self._at_top: set[int] = set()
        #: how many dispatches were tried (what the retry tests count)
        self.tries = 0

    def should_retry(self, conn: psycopg.Connection, order: WorkOrder, *, now: datetime,
                     seen: dict[tuple[str, str], tuple[Any, ...]] | None = None) -> bool:
        """Whether a waiting order's answer may have changed since it was last tried.

        ``seen`` caches the events' look per community and role for one round.
        """
        waiting = self._waiting.get(order.id)
        if waiting is None:
            return True
        if waiting.retry_at is not None and now >= waiting.retry_at:
            return True
        key = (order.spec.community_id, order.spec.role)
        if seen is None or key not in seen:
            looked = _events_seen(conn, order)
            if seen is None:
                return looked != waiting.seen
            seen[key] = looked
        return seen[key] != waiting.seen

    def forget(self) -> None:
        self._graphs.clear()

    def assign(self, conn: psycopg.Connection, order: WorkOrder, *, now: datetime,
               outcome: Outcome, actor: Actor = SYSTEM) -> WorkOrder:
        """Give the order to the nearest qualified staff member; say why not if nobody.

        ``actor`` is who asked: the system (the rule engine), or an operator who pressed
        dispatch, whom the order's history then names (and whose role the store checks)."""
        community = order.spec.community_id
        graph = self._graphs.get(community)
        if graph is None:
            graph = self._graphs[community] = walk_routing_graph(conn, community)
        staff = dispatch_staff(conn, community)
        held = ops.open_orders_by_staff(conn, community)
        self.tries += 1
        declined = set(order.declined_by)
        choice: Assignment | NoCandidate = dispatch(
            graph, order.spec.location, staff, now=now, role=order.spec.role,
            skill=order.spec.skill, open_orders=held, exclude=declined,
            max_fix_age=self.max_fix_age, tz=order.timezone)
        if isinstance(choice, NoCandidate) and order.spec.skill is not None:
            # Nobody with the skill can go: the nearest of the role goes, and says so.
            plain = dispatch(graph, order.spec.location, staff, now=now, role=order.spec.role,
                             open_orders=held, exclude=declined, max_fix_age=self.max_fix_age,
                             tz=order.timezone)
            if isinstance(plain, Assignment):
                choice = replace(plain, reason=f"no {order.spec.skill} skill available "
                                               f"({choice.reason}); {plain.reason}")
        if isinstance(choice, NoCandidate):
            outcome.not_dispatched.append((order.id, choice.detail))
            told = (choice.reason, tuple(staff for staff, _ in choice.rejected))
            if self._told.get(order.id) != told:
                self._told[order.id] = told
                log.info("work order %d not dispatched: %s", order.id, choice.detail)
            ops.note_on_work_order(conn, order.id, actor=actor, at=now,
                                   note=_nobody_said(choice, order.spec.role),
                                   detail={"reason": choice.reason,
                                           "rejected": [list(r) for r in choice.rejected]})
            # shifts are in the community's own time zone, as dispatch reads them
            retry_at = next_retry(shifts=[s.shift for s in staff if s.role == order.spec.role],
                                  now=now, tz=order.timezone)
            self._waiting[order.id] = _Waiting(retry_at, _events_seen(conn, order))
            return order
        assigned = ops.act_on_work_order(
            conn, order.id, "assign", actor=actor, at=now,
            note=Said(f"{choice.reason}; {started_from(choice)}",
                      "sys/assigned-fix" if choice.origin == "fix" else "sys/assigned-post",
                      role=role_said(order.spec.role), distance_m=round(choice.distance_m),
                      eta_min=max(1, round(choice.eta_s / 60))),
            assignee=ops.Assignee(choice.staff_id, choice.route, choice.distance_m,
                                  choice.eta_s, origin=choice.origin,
                                  fix_age_s=choice.fix_age_s))
        outcome.assigned.append(order.id)
        self._told.pop(order.id, None)
        self._waiting.pop(order.id, None)
        return assigned


def execute(conn: psycopg.Connection, firing: act.Firing, *, now: datetime,
            dispatcher: Dispatcher, outcome: Outcome) -> None:
    """Write what one firing asks for, in the caller's transaction.

    An intent that follows a raise_alarm runs only when that alarm is new, or a
    worse repeat that took it over: a plain repeat counts on the open alarm and
    does nothing else.
    """
    raised: dict[str, Raised] = {}
    who = f"rule:{firing.rule_id}"
    for intent in firing.intents:
        # linked to the alarm it follows, else to the one this firing raised before it
        alarm_id = next((r.alarm.id for r in raised.values()), None)
        if intent.after_alarm is not None:
            got = raised.get(intent.after_alarm)
            if got is None or not got.fresh:
                continue
            alarm_id = got.alarm.id
        if isinstance(intent, act.RaiseAlarm):
            detail = dict(intent.spec.detail)
            if intent.escalate_after_s is not None:
                detail["escalate_after_s"] = intent.escalate_after_s
            # escalation counts from when the twin learnt of it, not the device's time
            raised[intent.node] = got = ops.raise_alarm(conn, replace(intent.spec, detail=detail),
                                                        actor=who, known_at=now,
                                                        group=intent.group)
            if got.fresh:
                outcome.alarms.append(got.alarm.id)
        elif isinstance(intent, act.ClearAlarm):
            cleared = ops.clear_source(conn, intent.community_id, intent.source_id, intent.type,
                                       actor=who, at=intent.at, reason=intent.reason,
                                       up_to=intent.up_to)
            if cleared is not None and cleared[1] and intent.orders != "keep":
                _settle_orders(conn, cleared[0].id, intent, now=now)
        elif isinstance(intent, act.SendCommand):
            for device_id in intent.device_ids:
                outcome.outbox.append(_command(conn, device_id, intent.command, intent.args,
                                               who, intent.at))
        elif isinstance(intent, act.Broadcast):
            for device_id in intent.speaker_ids:
                outcome.outbox.append(_command(conn, device_id, "broadcast",
                                               {"text": intent.message}, who, intent.at))
            ops.notify(conn, community_id=intent.community_id, channel="broadcast",
                       recipient=",".join(intent.speaker_ids), message=intent.message,
                       at=intent.at, alarm_id=alarm_id, rule_id=firing.rule_id,
                       text_key=intent.text_key, text_params=intent.text_params)
            outcome.notifications += 1
        elif isinstance(intent, act.Notify):
            for recipient in intent.recipients:
                ops.notify(conn, community_id=intent.community_id, channel=intent.channel,
                           recipient=recipient, message=intent.message, at=intent.at,
                           alarm_id=alarm_id, rule_id=firing.rule_id,
                           text_key=intent.text_key, text_params=intent.text_params)
                outcome.notifications += 1
        elif isinstance(intent, act.OpenWorkOrder):
            # opened when the twin learnt of it: its clock (escalation, due time) starts now
            order = ops.open_work_order(conn, replace(intent.spec, alarm_id=alarm_id, at=now),
                                        actor=SYSTEM)
            outcome.orders.append(order.id)
            dispatcher.assign(conn, order, now=now, outcome=outcome)


def follow_up(conn: psycopg.Connection, communities: Iterable[str], *, now: datetime,
              dispatcher: Dispatcher, outcome: Outcome) -> None:
    """The clock's part of alarms and work orders.

    - an active alarm nobody acknowledged within its rule's ``escalate_after_s``
      escalates one level (and again after as long), and the managers are told;
    - an order left 'assigned' past its tier's acceptance limit is taken back
      from that person and goes to the next candidate, as if they had declined;
    - an order nobody took within its tier's response time, or not on site or
      not resolved in time, climbs to the next tier of its community
      (:mod:`twin.escalation`), with the tier and the reason recorded;
    - an order waiting for someone ('created' after a decline, 'escalated') is
      dispatched again when something can have changed the answer
      (:meth:`Dispatcher.should_retry`).
    """
    communities = list(communities)
    for alarm_id, community, title, limit, since, level in conn.execute(
            """SELECT id, community_id, title, (detail->>'escalate_after_s')::float,
                      coalesce(escalated_at, known_at, raised_at), escalation_level
               FROM alarm WHERE state = 'active' AND detail ? 'escalate_after_s'
                 AND community_id = ANY(%s)""", (communities,)).fetchall():
        if (now - since).total_seconds() <= limit:
            continue
        reason = f"not acknowledged within {limit / 60:g} min"
        ops.escalate_alarm(conn, alarm_id, at=now, reason=reason)
        for (manager,) in conn.execute(
                "SELECT id FROM staff WHERE community_id = %s AND role = 'manager' ORDER BY id",
                (community,)).fetchall():
            said = Said(f"Escalated (level {level + 1}): {title}; {reason}",
                        "sys/alarm-escalated", alarm=alarm_id, level=level + 1,
                        minutes=round(limit / 60))
            ops.notify(conn, community_id=community, channel="staff", recipient=manager,
                       message=said, at=now, alarm_id=alarm_id, text_key=said.key,
                       text_params=said.stored()["params"])
            outcome.notifications += 1
    ids = [r[0] for r in conn.execute(
        """SELECT id FROM work_order
           WHERE community_id = ANY(%s) AND state = ANY(%s) AND department IS NULL
           ORDER BY id""", (communities, sorted(OPEN_STATES))).fetchall()]
    seen: dict[tuple[str, str], tuple[Any, ...]] = {}
    for order_id in ids:
        order = ops.get_work_order(conn, order_id, history=False)
        community, kind = order.spec.community_id, order.spec.kind
        config = config_for(community)
        why = escalation_due(order.state, now=now, updated_at=order.updated_at,
                             due_at=order.due_at, eta_s=order.eta_s, tier_since=order.tier_since,
                             policy=config.policy(order.escalation_level, kind))
        if why is not None and order.state == "assigned" and why.startswith("not accepted"):
            order = ops.act_on_work_order(conn, order_id, "decline", actor=SYSTEM, at=now,
                                          note=why)
            dispatcher.assign(conn, order, now=now, outcome=outcome)
            continue
        if why is not None:
            up = climb(config, level=order.escalation_level, role=order.spec.role,
                       skill=order.spec.skill, kind=kind, now=now,
                       staffed=ops.staffed_roles(conn, community))
            if up is not None:
                order = ops.act_on_work_order(conn, order_id, "escalate", actor=SYSTEM, at=now,
                                              note=why, to=up)
                dispatcher._at_top.discard(order_id)
                log.info("work order %d escalated %s", order_id, up.note(why))
                if up.department is None:
                    dispatcher.assign(conn, order, now=now, outcome=outcome)
                else:
                    outcome.notifications += sum(len(c.recipients()) for c in up.contacts)
                continue
            if order_id not in dispatcher._at_top:
                dispatcher._at_top.add(order_id)
                log.info("work order %d: %s; no tier above %s can take it now", order_id, why,
                         order.tier)
                ops.note_on_work_order(conn, order_id, actor=SYSTEM, at=now, note=Said(
                    f"{why}; no tier above {order.tier} can take it now", "sys/no-tier-above",
                    why=why, tier_name=order.tier or ""))
        if order.state in ("created", "escalated") and dispatcher.should_retry(
                conn, order, now=now, seen=seen):
            dispatcher.assign(conn, order, now=now, outcome=outcome)


def _events_seen(conn: psycopg.Connection, order: WorkOrder) -> tuple[Any, ...]:
    """What events that can change who may take the order look like now: the newest
    position of the staff of its role, those staff, and the last time any order of the
    community was declined, finished or given up (which frees someone's hands)."""
    row = conn.execute(
        """SELECT (SELECT max(position_at) FROM staff WHERE community_id = %(c)s AND role = %(r)s),
                  (SELECT count(*) FROM staff WHERE community_id = %(c)s AND role = %(r)s),
                  (SELECT max(e.id) FROM work_order_event e JOIN work_order w
                          ON w.id = e.work_order_id
                   WHERE w.community_id = %(c)s
                     AND e.action IN ('decline', 'resolve', 'close', 'cancel', 'settle',
                                      'escalate'))""",
        {"c": order.spec.community_id, "r": order.spec.role}).fetchone()
    assert row is not None  # an aggregate query always gives one row
    return tuple(row)


def _nobody_said(choice: NoCandidate, role: str) -> Said:
    """Why nobody can be sent, in words for each reader (the English keeps every reason)."""
    text = f"nobody can be sent: {choice.detail}"
    if choice.reason == "no_such_staff":
        return Said(text, "sys/no-such-staff", role=role_said(role))
    return Said(text, "sys/nobody-can-go", role=role_said(role), count=len(choice.rejected))


def _settle_orders(conn: psycopg.Connection, alarm_id: int, intent: act.ClearAlarm, *,
                   now: datetime) -> None:
    """The alarm that opened these orders cleared: close or cancel them, as the rule says,
    with the reason in their history."""
    action = "settle" if intent.orders == "close" else "cancel"
    for (order_id,) in conn.execute(
            """SELECT id FROM work_order WHERE alarm_id = %s AND state = ANY(%s) ORDER BY id""",
            (alarm_id, sorted(OPEN_STATES | {"resolved"}))).fetchall():
        reason: Any = ({"key": intent.text_key, "params": intent.text_params,
                        "text": intent.reason} if intent.text_key else intent.reason)
        ops.act_on_work_order(conn, order_id, action, actor=SYSTEM, at=now, note=Said(
            f"alarm {alarm_id} cleared: {intent.reason}", "sys/alarm-cleared",
            alarm=alarm_id, reason=reason))


# --- meter baselines ---------------------------------------------------------------------

def seed_baselines(conn: psycopg.Connection, engine: Engine, *, now: datetime,
                   hours: tuple[int, ...] = (-1, 0, 1), community_id: str | None = None) -> int:
    """Learn the baselines every baseline node needs now from the readings hypertable.

    Only the buckets of the hours around ``now`` (``hours``: offsets from the
    current hour) are learnt, each from its own past occurrences in the node's
    trailing window (four hours for four weeks of ``hour_of_week``): small index
    range scans, cheap enough to run at every load and every hour of the clock.
    Buckets learnt before are kept, so a late reading of an earlier hour still
    finds its baseline. Returns the (device, bucket) baselines learnt.
    """
    seeded = 0
    for rule in engine.rules.values():
        offset_h = rule.rule.utc_offset_h
        for node_id in rule.order:
            spec = rule.node(node_id).spec
            if not isinstance(spec, schema.Baseline):
                continue
            types = sorted(_upstream_types(rule, node_id))
            for h in hours:
                at = now + timedelta(hours=h)
                ranges = bucket_hours(spec.bucket, at, offset_h=offset_h,
                                      since=now - timedelta(days=spec.window_days), until=now)
                table = meter_baselines(conn, device_types=types, metric=spec.metric,
                                        ranges=ranges, community_id=community_id)
                bucket = bucket_of(spec.bucket, at, offset_h)
                engine.seed(rule.id, node_id, {d: {bucket: v} for d, v in table.items()})
                seeded += len(table)
    return seeded


def meter_baselines(conn: psycopg.Connection, *, device_types: list[str], metric: str,
                    ranges: list[tuple[datetime, datetime]], community_id: str | None = None
                    ) -> dict[str, tuple[float, float, int]]:
    """Per device of these types: the median and MAD of its 15-minute means of one metric
    over these time ranges (the past occurrences of one hour of the week or day), and how
    many means there were."""
    if not ranges:
        return {}
    # One branch per hour, each with its own constant range: TimescaleDB excludes every
    # chunk but that hour's and reads it by the time index (a join on a list of ranges
    # would scan the whole window).
    hour = sql.SQL("SELECT device_id, time, value FROM reading WHERE metric = %(metric)s "
                   "AND value IS NOT NULL AND time >= {} AND time < {}")
    hours = sql.SQL(" UNION ALL ").join(
        hour.format(sql.Literal(lo), sql.Literal(hi)) for lo, hi in ranges)
    rows = conn.execute(sql.SQL(
        """WITH s AS (
               SELECT r.device_id, avg(r.value) AS v
                 FROM ({}) r
                 JOIN device d ON d.id = r.device_id
                WHERE d.type = ANY(%(types)s) AND (%(c)s::text IS NULL OR d.community_id = %(c)s)
                GROUP BY r.device_id, time_bucket('15 minutes', r.time)
           ), m AS (
               SELECT device_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY v) AS med,
                      count(*) AS n
                 FROM s GROUP BY device_id
           )
           SELECT m.device_id, m.med,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY abs(s.v - m.med)), m.n
             FROM m JOIN s USING (device_id)
            GROUP BY m.device_id, m.med, m.n""").format(hours),
        {"types": device_types, "metric": metric, "c": community_id}).fetchall()
    return {device_id: (float(med), float(mad), int(n)) for device_id, med, mad, n in rows}


def _upstream_types(rule: CompiledRule, node_id: str) -> set[str]:
    return {code for u in nx.ancestors(rule.graph, node_id) if u in rule.sources
            for code in rule.source(u).device_types}


# --- device commands ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command committed by a firing and not yet published."""

    outbox_id: int
    command_id: str
    community_id: str
    device_id: str
    command: str
    args: dict[str, Any]
    issued_at: datetime


def pending_commands(conn: psycopg.Connection, *, limit: int = 5000) -> list[PendingCommand]:
    """Commands committed but not yet published, oldest first."""
    return [PendingCommand(*row) for row in conn.execute(
        """SELECT o.id, c.id, d.community_id, c.device_id, c.command, c.args, c.sent_at
           FROM rule_outbox o
           JOIN device_command c ON c.id = o.command_id
           JOIN device d ON d.id = c.device_id
           WHERE o.published_at IS NULL ORDER BY o.id LIMIT %s""", (limit,))]


def mark_published(conn: psycopg.Connection, ids: list[int], *, at: datetime) -> None:
    if ids:
        conn.execute("UPDATE rule_outbox SET published_at = %s WHERE id = ANY(%s)", (at, ids))


def _command(conn: psycopg.Connection, device_id: str, command: str, args: dict[str, Any],
             issued_by: str, at: datetime) -> int:
    command_id = f"r-{uuid.uuid4().hex[:16]}"
    conn.execute(
        """INSERT INTO device_command (id, device_id, command, args, issued_by, sent_at)
           VALUES (%s, %s, %s, %s, %s, %s)""",
        (command_id, device_id, command, Jsonb(args), issued_by, at))
    (outbox_id,) = one_row(conn.execute(
        """INSERT INTO rule_outbox (command_id, created_at) VALUES (%s, %s) RETURNING id""",
        (command_id, at)), "queueing a command")
    return int(outbox_id)


def _bump(conn: psycopg.Connection, at: datetime) -> int:
    (revision,) = one_row(conn.execute(
        "UPDATE rule_set SET revision = revision + 1, changed_at = %s RETURNING revision",
        (at,)), "bumping the rule set's revision")
    conn.execute("NOTIFY twin_rules")
    return int(revision)



def store_library_if_empty(conn: psycopg.Connection, *, at: datetime) -> None:
    """The shipped library when no rule is stored yet; else its texts only (a twin whose
    rules predate their texts in two languages). What `twin demo` and the live tests start
    from."""
    from twin.rules.compile import library_dir, load_directory

    library = load_directory(library_dir())
    if not rule_table(conn):
        store_rules(conn, library, at=at)
    else:
        store_texts(conn, library)
