"""Evaluating rules: observations and clock ticks in, firings (with their intents) out.

Pure: the twin's read model (`Snapshot`) and the time are passed in, and all
the state a rule keeps (which sensors are over a threshold, since when a
condition holds, the times in a window, when a resident last went out) lives
in `Engine.state` as JSON-ready dictionaries, so the service can store what
changed after every batch and load it back after a restart.

How a rule is walked, for one key (a device, a garage, a resident ...):

- a source that matches the observation emits a PULSE;
- each condition computes its level for the key from its input, and, from
  the level it had before, emits RISE (false -> true), HOLD (still true),
  FALL (true -> false) or nothing; a stateless filter (time window,
  geofence, state of another device) passes a PULSE through as a PULSE;
- an action runs on RISE or PULSE (``when: raised``) or on FALL
  (``when: cleared``); an action after another action runs when that one ran;
- a node with several ``after`` nodes takes the strongest of their signals
  (either condition suffices).

Timed conditions (for a duration, no signal, count in a window, absence)
also change level with the clock alone: `Engine.tick` finds them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import Point, Polygon

from twin.alarms import AlarmGroup, AlarmSpec, severity_rank
from twin.model import DeviceInfo
from twin.rules import actions as act
from twin.rules import schema
from twin.rules.compile import CompiledRule, node_text, text_key
from twin.rules.schema import ACTIONS, Node
from twin.rules.snapshot import ResidentInfo, Snapshot
from twin.texts import DEFAULT_LANG, Names, Viewer, ids_in, params_of, render
from twin.work_orders import WorkOrderSpec

RISE, HOLD, FALL, PULSE = "rise", "hold", "fall", "pulse"
_TRUE = (RISE, HOLD, PULSE)
_FRESH = (RISE, PULSE)
_STRENGTH = {PULSE: 4, RISE: 3, HOLD: 2, FALL: 1}
#: Filters with no state of their own: a pulse in is a pulse out.
_FILTERS = (schema.TimeWindow, schema.Geofence, schema.StateOf, schema.Enrich)
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A rule's own entry in the state (cooldowns), beside its nodes'.
RULE_ENTRY = "_rule"
#: The MAD of a normal distribution is this fraction of its standard deviation.
MAD_SCALE = 1.4826
#: A learnt baseline: per device, per bucket (hour of the week or day): median, MAD, samples.
Baselines = dict[str, dict[int, tuple[float, float, int]]]


@dataclass(frozen=True, slots=True)
class Observation:
    """One reading message, event or status of one device, as the rules see it."""

    community_id: str
    device_id: str
    at: datetime
    #: telemetry, event or status
    kind: str
    #: telemetry: metric -> value; status: {"online": bool}
    values: dict[str, Any] = field(default_factory=dict)
    event: str | None = None
    cls: str | None = None
    confidence: float | None = None
    direction: str | None = None
    subject: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    #: When the twin received it. Silence (no_signal) is measured from this: a device
    #: is silent when the twin has heard nothing from it, whatever its own clock says,
    #: so replayed or late messages with old timestamps do not look like silence.
    received: datetime | None = None


@dataclass(slots=True)
class Counter:
    evaluated: int = 0
    fired: int = 0
    last_fired: datetime | None = None


class Engine:
    """Rules over one snapshot of the twin, with their state and counters."""

    def __init__(self, rules: Iterable[CompiledRule], snapshot: Snapshot, *,
                 state: dict[tuple[str, str, str], dict] | None = None,
                 started: datetime | None = None) -> None:
        self.snapshot = snapshot
        self.rules: dict[str, CompiledRule] = {}
        self._by_type: dict[str, list[CompiledRule]] = {}
        #: rule -> node -> key -> JSON-ready state
        self.state: dict[str, dict[str, dict[str, dict]]] = {}
        self.counters: dict[str, Counter] = {}
        #: (rule, node, key) changed since the last `take_dirty`
        self._dirty: set[tuple[str, str, str]] = set()
        self.started = started or datetime.now(UTC)
        #: (rule, node) -> the baselines of a baseline node, learnt by the store (`seed`)
        self.baselines: dict[tuple[str, str], Baselines] = {}
        for rule in rules:
            self.add(rule)
        for (rule_id, node_id, key), value in (state or {}).items():
            if rule_id in self.state:
                self.state[rule_id].setdefault(node_id, {})[key] = value

    def add(self, rule: CompiledRule) -> None:
        if not rule.rule.enabled:
            return
        self.rules[rule.id] = rule
        self.state.setdefault(rule.id, {})
        self.counters.setdefault(rule.id, Counter())
        for code in rule.device_types:
            self._by_type.setdefault(code, []).append(rule)

    # --- the two entry points ------------------------------------------------------------
    def observe(self, obs: Observation) -> list[act.Firing]:
        """Evaluate one observation against every rule that listens to its device type."""
        device = self.snapshot.devices.get(obs.device_id)
        if device is None:
            return []
        self._remember(obs)
        firings: list[act.Firing] = []
        for rule in self._by_type.get(device.type, ()):
            signals: dict[str, str] = {}
            for source in rule.sources:
                if _matches(rule.source(source), obs, device, self.snapshot):
                    signals[source] = PULSE
            if not signals:
                continue
            key = self._key(rule, device, obs)
            if key is None:
                continue
            self.counters[rule.id].evaluated += 1
            firing = self._walk(rule, key, signals, obs, device)
            if firing is not None:
                firings.append(firing)
        return firings

    def tick(self, now: datetime) -> list[act.Firing]:
        """What the clock alone changes: durations reached, silences, windows, absences."""
        t = now.timestamp()
        firings: list[act.Firing] = []
        for rule in self.rules.values():
            for node_id in rule.order:
                node = rule.node(node_id)
                kind = node.kind
                if kind not in ("for_duration", "no_signal", "count_in_window", "absence"):
                    continue
                for key, level in self._timed_levels(rule, node, t, now):
                    out = self._edge(rule, node_id, key, level)
                    if out is None:
                        continue
                    obs, device = self._recall(rule, node_id, key, now)
                    firing = self._walk(rule, key, {node_id: out}, obs, device, start=node_id)
                    if firing is not None:
                        firings.append(firing)
        return firings

    def seed(self, rule_id: str, node_id: str, baselines: Baselines) -> None:
        """Learnt baselines of one baseline node (from the readings, by the store): these
        devices' buckets are replaced, the others kept."""
        known = self.baselines.setdefault((rule_id, node_id), {})
        for device_id, buckets in baselines.items():
            known.setdefault(device_id, {}).update(buckets)

    # --- state -----------------------------------------------------------------------------
    def take_dirty(self) -> dict[tuple[str, str, str], dict | None]:
        """State entries changed since last asked: the value, or None when it was dropped."""
        out = {}
        for rule_id, node_id, key in self._dirty:
            out[(rule_id, node_id, key)] = self.state.get(rule_id, {}).get(node_id, {}).get(key)
        self._dirty.clear()
        return out

    def take_counters(self) -> dict[str, Counter]:
        """Evaluations and firings per rule since last asked (the store adds them up)."""
        out = self.counters
        self.counters = {rule_id: Counter() for rule_id in self.rules}
        return out

    def all_state(self) -> dict[tuple[str, str, str], dict]:
        return {(r, n, k): v for r, nodes in self.state.items() for n, keys in nodes.items()
                for k, v in keys.items()}

    # --- walking a rule ---------------------------------------------------------------------
    def _walk(self, rule: CompiledRule, key: str, signals: dict[str, str], obs: Observation,
              device: DeviceInfo | None, *, start: str | None = None) -> act.Firing | None:
        graph = rule.graph
        fired: list[Node] = []
        edge = "raised"
        began = start is None
        for node_id in rule.order:
            if not began:
                began = node_id == start
                continue
            if node_id in signals and (start is None or node_id == start):
                continue  # sources (or the timed node the tick started from) already have one
            inputs = [signals[p] for p in graph.predecessors(node_id) if p in signals]
            if not inputs:
                continue
            inp = max(inputs, key=_STRENGTH.__getitem__)
            node = rule.node(node_id)
            kind = node.kind
            if kind in ACTIONS:
                wanted = _FRESH if node.when == "raised" else (FALL,)
                if inp not in wanted:
                    continue
                if node.when == "raised" and inp == PULSE and not self._cool(rule, key, obs):
                    return None
                fired.append(node)
                if node.when == "cleared":
                    edge = "cleared"
                signals[node_id] = inp
                continue
            out = self._evaluate(rule, node, key, inp, obs, device)
            if out is not None:
                signals[node_id] = out
        if not fired:
            return None
        # The context is written once every condition of this walk has spoken.
        context = self._context(rule, key, obs, device, signals)
        intents = [i for node in fired for i in self._intents(
            rule, node, key, obs, device, context, _after_alarm(rule, node.id))]
        if not intents:
            return None
        counter = self.counters[rule.id]
        counter.fired += 1
        counter.last_fired = obs.at
        if any(s == PULSE for s in signals.values()) and rule.rule.cooldown_s:
            self._put(rule.id, RULE_ENTRY, key, {"last": obs.at.timestamp()})
        return act.Firing(rule_id=rule.id, community_id=obs.community_id, key=key, at=obs.at,
                          edge=edge, intents=tuple(intents), context=context)

    def _evaluate(self, rule: CompiledRule, node: Node, key: str, inp: str, obs: Observation,
                  device: DeviceInfo | None) -> str | None:
        """A condition's (or enrichment's) signal out, given the signal in."""
        spec, t = node.spec, obs.at.timestamp()
        true = inp in _TRUE
        if isinstance(spec, _FILTERS):
            if isinstance(spec, schema.TimeWindow):
                passes = _in_window(spec, obs.at, rule.rule.utc_offset_h)
            elif isinstance(spec, schema.Geofence):
                passes = self._inside(spec, obs, device)
            elif isinstance(spec, schema.StateOf):
                passes = self._state_of(spec, device)
            else:  # enrich
                passes = True
            if inp == PULSE:
                return PULSE if passes else None
            return self._edge(rule, node.id, key, true and passes)
        if isinstance(spec, (schema.Threshold, schema.RateOfChange)):
            value = obs.values.get(spec.metric)
            if value is None or device is None:
                return None if true else self._edge(rule, node.id, key, False)
            st = self._get(rule.id, node.id, key)
            devs = set(st.get("devs", ()))
            if isinstance(spec, schema.Threshold) and spec.devices == "all":
                group = self._group(rule, device)
                values = [self.snapshot.latest.get(d, {}).get(spec.metric) for d in group]
                known = [v for v in values if v is not None]
                n = sum(1 for v in known if _compare(spec, v))
                st.update(n=n, of=len(group))
                self._store(rule.id, node.id, key, st)
                return self._edge(rule, node.id, key, true and bool(known) and n == len(group))
            if isinstance(spec, schema.Threshold):
                hit = true and _compare(spec, value)
            else:
                last = st.setdefault("last", {}).get(device.id)
                if last is not None and 0 <= t - last[0] < spec.min_interval_s:
                    return self._edge(rule, node.id, key, bool(devs))  # too soon to tell
                st["last"][device.id] = [t, value]
                hit = False
                if last is not None and isinstance(value, (int, float)) and t > last[0]:
                    rate = (float(value) - float(last[1])) / (t - last[0]) * spec.per_seconds
                    hit = true and _compare(spec, rate)
                    st["rate"] = round(rate, 3)
            (devs.add if hit else devs.discard)(device.id)
            if devs:
                st["devs"] = sorted(devs)
            else:  # nothing to remember: most readings of most devices end here
                st.pop("devs", None)
            if st != self.state[rule.id][node.id].get(key, {}):
                self._store(rule.id, node.id, key, st)
            return self._edge(rule, node.id, key, bool(devs))
        if isinstance(spec, schema.Baseline):
            value = obs.values.get(spec.metric)
            if value is None or device is None or isinstance(value, (str, bool)):
                return None if true else self._edge(rule, node.id, key, False)
            st = self._get(rule.id, node.id, key)
            hits = dict(st.get("hits", {}))
            usual = self.baselines.get((rule.id, node.id), {}).get(device.id, {}).get(
                bucket_of(spec.bucket, obs.at, rule.rule.utc_offset_h))
            z = None
            if true and usual is not None and usual[2] >= spec.min_samples:
                z = robust_z(spec, float(value), usual[0], usual[1])
            if z is not None and usual is not None:
                hits[device.id] = hits.get(device.id, 0) + 1
                st["z"], st["usual"] = round(min(z, 999.0), 1), usual[0]
            else:
                hits.pop(device.id, None)
            if hits:
                st["hits"] = hits
            else:
                st.pop("hits", None)
            level = any(n >= spec.consecutive for n in hits.values())
            if st != self.state[rule.id][node.id].get(key, {}):
                self._store(rule.id, node.id, key, st, keep_on=True)
            return self._edge(rule, node.id, key, level)
        if isinstance(spec, schema.ForDuration):
            st = self._get(rule.id, node.id, key)
            if true:
                st.setdefault("since", t)
                st["last"] = t
                st["ctx"] = _ctx(obs)
                level = t - st["since"] >= spec.seconds
            else:
                st = {}
                level = False
            self._store(rule.id, node.id, key, st, keep_on=True)
            return self._edge(rule, node.id, key, level)
        if isinstance(spec, schema.NoSignal):
            st = self._get(rule.id, node.id, key)
            heard = max(t, obs.received.timestamp()) if obs.received is not None else t
            st["last"] = max(st.get("last", heard), heard)
            st["ctx"] = _ctx(obs)
            self._store(rule.id, node.id, key, st, keep_on=True)
            return self._edge(rule, node.id, key, False)
        if isinstance(spec, schema.CountInWindow):
            st = self._get(rule.id, node.id, key)
            times = [x for x in st.get("times", ()) if x > t - spec.seconds]
            if inp in _FRESH:
                times.append(t)
            st["times"] = times
            st["ctx"] = _ctx(obs)
            self._store(rule.id, node.id, key, st if times else {}, keep_on=True)
            return self._edge(rule, node.id, key, len(times) >= spec.count)
        if isinstance(spec, schema.Absence):
            if obs.direction not in ("in", "out") or obs.subject != key:
                return None
            st = self._get(rule.id, node.id, key)
            st[obs.direction] = max(t, st.get(obs.direction, 0.0))
            self._store(rule.id, node.id, key, st, keep_on=True)
            return self._edge(rule, node.id, key, False)
        raise AssertionError(f"no evaluator for {node.kind}")

    def _timed_levels(self, rule: CompiledRule, node: Node, t: float, now: datetime
                      ) -> list[tuple[str, bool]]:
        """(key, level) of a timed node's keys whose level the clock may have changed."""
        spec, states = node.spec, self.state[rule.id].setdefault(node.id, {})
        out: list[tuple[str, bool]] = []
        st: dict[str, Any] | None
        if isinstance(spec, schema.ForDuration):
            for key, st in list(states.items()):
                if "since" not in st:
                    continue
                if spec.gap_s is not None and t - st["last"] > spec.gap_s:
                    self._store(rule.id, node.id, key, {}, keep_on=True)
                    out.append((key, False))
                elif t - st["since"] >= spec.seconds:
                    out.append((key, True))
        elif isinstance(spec, schema.CountInWindow):
            for key, st in list(states.items()):
                if "times" not in st:
                    continue
                times = [x for x in st["times"] if x > t - spec.seconds]
                if len(times) != len(st["times"]):
                    st["times"] = times
                    self._store(rule.id, node.id, key, st if times else {}, keep_on=True)
                out.append((key, len(times) >= spec.count))
        elif isinstance(spec, schema.NoSignal):
            for device_id in self._watched(rule):
                st = states.get(device_id)
                if st is None:
                    seen = self.snapshot.last_seen.get(device_id)
                    st = {"last": (seen or self.started).timestamp(), "ctx": {"d": device_id}}
                    self._store(rule.id, node.id, device_id, st, keep_on=True)
                if "on" not in st and t - st["last"] >= spec.seconds:
                    out.append((device_id, True))
        elif isinstance(spec, schema.Absence):
            quiet = spec.quiet is not None and _in_span(spec.quiet, now, rule.rule.utc_offset_h)
            for resident in self._cared(rule, spec.care_flags):
                st = states.get(resident.id)
                if st is None:
                    access = self.snapshot.last_access.get(resident.id, {})
                    st = {d: access[d].timestamp() for d in ("in", "out") if d in access}
                    watched = self.snapshot.history_since or self.started
                    st["since"] = min(watched, self.started).timestamp()
                    self._store(rule.id, node.id, resident.id, st, keep_on=True)
                if "on" in st or quiet:
                    continue
                last_in, last_out = st.get("in", 0.0), st.get("out", 0.0)
                hours = _care_hours(spec, resident)
                if spec.direction == "out":  # at home, not seen at any gate since
                    away = last_out > last_in
                    since = max(last_in, last_out, st.get("since", self.started.timestamp()))
                else:  # went out, not back
                    away = last_out > last_in
                    since = last_out
                due = (not away if spec.direction == "out" else away) \
                    and t - since >= hours * 3600
                if due:
                    st["hours"] = hours
                    out.append((resident.id, True))
        return out

    def _edge(self, rule: CompiledRule, node_id: str, key: str, level: bool) -> str | None:
        st = self.state[rule.id].setdefault(node_id, {}).get(key) or {}
        was = bool(st.get("on"))
        if level and not was:
            st = dict(st)
            st["on"] = True
            self._put(rule.id, node_id, key, st)
            return RISE
        if level:
            return HOLD
        if was:
            st = dict(st)
            del st["on"]
            self._store(rule.id, node_id, key, st)
            return FALL
        return None

    # --- keys, contexts and intents ---------------------------------------------------------
    def _key(self, rule: CompiledRule, device: DeviceInfo, obs: Observation) -> str | None:
        how = rule.rule.key
        if how == "device":
            return device.id
        if how == "resident":
            return obs.subject if obs.subject in self.snapshot.residents else None
        if how == "facility":
            return device.facility_id
        if how == "building":
            if device.building_id:
                return device.building_id
            f = self.snapshot.facilities.get(device.facility_id or "")
            return f.building_id if f else None
        if how == "unit":
            return device.unit_id
        if how == "grid":
            return self.snapshot.grid_of(device)
        return device.community_id

    def _context(self, rule: CompiledRule, key: str, obs: Observation,
                 device: DeviceInfo | None, signals: dict[str, str]) -> dict[str, Any]:
        snap = self.snapshot
        c: dict[str, Any] = {"rule": rule.id, "time": _local(obs.at, rule.rule.utc_offset_h)}
        resident = snap.residents.get(key) if rule.rule.key == "resident" else None
        if device is not None:
            c.update(device=device.id, device_name=device.name, device_type=device.type,
                     floor=device.floor, unit=device.unit_id, building=device.building_id,
                     facility=device.facility_id, grid=snap.grid_of(device))
        if obs.values:
            metric, value = next(iter(obs.values.items()))
            c.update(metric=metric, value=_fmt(value), values=dict(obs.values))
        if obs.event:
            c.update(event=obs.event, **{"class": obs.cls or ""},
                     confidence=obs.confidence)
        floor = obs.attrs.get("floor_estimate")
        if isinstance(floor, int) and not isinstance(floor, bool):
            # a camera's estimate of the floor it saw (a throw from a window) is the alarm's
            c.update(floor=floor, floor_estimate=floor)
        if resident is not None:
            unit, building = snap.resident_place(resident.id)
            c.update(resident=resident.id, resident_name=resident.name,
                     age_band=resident.age_band, care_flags=",".join(resident.care_flags),
                     unit=resident.unit_id, unit_number=unit.number if unit else "",
                     floor=unit.floor if unit else None,
                     building=unit.building_id if unit else None,
                     grid=building.grid_id if building else None, direction=obs.direction)
        facility = snap.facilities.get(c.get("facility") or "")
        if facility is not None:
            c["facility_name"] = facility.name
            c["building"] = c.get("building") or facility.building_id
        building = snap.buildings.get(c.get("building") or "")
        if building is not None:
            c["building_name"] = building.name
            c["grid"] = c.get("grid") or building.grid_id
        unit = snap.units.get(c.get("unit") or "")
        if unit is not None:
            c["unit_number"] = unit.number
        for node_id in rule.order:
            spec = rule.node(node_id).spec
            if isinstance(spec, schema.Baseline):
                # what the meter usually reads, also when the clock fires what follows it
                st = self.state[rule.id].get(node_id, {}).get(key, {})
                if spec.metric in obs.values:
                    c.update(metric=spec.metric, value=_fmt(obs.values[spec.metric]))
                if "usual" in st:
                    c.update(usual=_fmt(float(st["usual"])), z=st["z"])
            if node_id not in signals:
                continue
            if isinstance(spec, schema.Enrich):
                self._enrich(spec, c, device)
            elif isinstance(spec, schema.CountInWindow):
                st = self.state[rule.id].get(node_id, {}).get(key, {})
                c["count"] = len(st.get("times", ()))
            elif isinstance(spec, schema.Absence):
                st = self.state[rule.id].get(node_id, {}).get(key, {})
                if "hours" in st:
                    c["hours"] = _fmt(st["hours"])
            elif isinstance(spec, (schema.Threshold, schema.RateOfChange)):
                metric = spec.metric
                if metric in obs.values:
                    c.update(metric=metric, value=_fmt(obs.values[metric]))
                st = self.state[rule.id].get(node_id, {}).get(key, {})
                if "of" in st:
                    c.update(count=st["n"], total=st["of"], other=st["of"] - st["n"])
                if "rate" in st:
                    c["rate"] = _fmt(st["rate"])
        return c

    def _enrich(self, spec: schema.Enrich, c: dict[str, Any], device: DeviceInfo | None
                ) -> None:
        snap = self.snapshot
        if spec.residents:
            # the flat; else the floor of the building (a stairwell detector); else the building
            found = snap.care_residents(unit_id=c["unit"]) if c.get("unit") else (
                snap.care_residents(building_id=c["building"], floor=c.get("floor"))
                if c.get("building") else [])
            c["care_residents"] = len(found)
            c["residents"] = [r.id for r in found]
        where = self._where(c, device)
        if where is not None and spec.nearby:
            near = {}
            for n in spec.nearby:
                near[n.device_type] = [i for i, _ in snap.nearby(*where, n.device_type,
                                                                 n.radius_m)]
            c["nearby"] = ", ".join(f"{len(v)} {k}" for k, v in near.items())
            c["nearby_devices"] = near

    def _intents(self, rule: CompiledRule, node: Node, key: str, obs: Observation,
                 device: DeviceInfo | None, c: dict[str, Any], after_alarm: str | None
                 ) -> list[act.Intent]:
        spec, r = node.spec, rule.rule
        community = obs.community_id
        # Texts are kept as a key and parameters (ids and values, never a name); the
        # rendering beside them is zh-CN with residents masked, for readers that do not render.
        params = params_of(c)
        params.pop("rule", None)
        key_of = text_key(r.id, node.id)
        node_text_ = node_text(node)
        zh = render(node_text_.by_lang(), params, viewer=Viewer(DEFAULT_LANG),
                    names=self.names(params)) if node_text_ is not None else ""
        if isinstance(spec, schema.RaiseAlarm):
            source_kind, source_id = self._source(rule, spec.source, key, c)
            where = self._where(c, device)
            group = AlarmGroup(r.group.radius_m, r.group.window_s) if r.group else None
            return [act.RaiseAlarm(
                node=node.id, after_alarm=after_alarm, escalate_after_s=spec.escalate_after_s,
                group=group,
                spec=AlarmSpec(
                    community_id=community, type=spec.type, domain=r.domain,
                    severity=spec.severity, source_kind=source_kind, source_id=source_id,
                    title=zh, at=obs.at, rule_id=r.id,
                    building_id=c.get("building"), floor=c.get("floor"), unit_id=c.get("unit"),
                    device_id=c.get("device"), resident_id=c.get("resident"),
                    location=Point(*where) if where else None, detail=dict(params),
                    text_key=key_of, text_params=params))]
        if isinstance(spec, schema.ClearAlarm):
            _, source_id = self._source(rule, spec.source, key, c)
            own = [n.spec.severity for n in r.nodes
                   if isinstance(n.spec, schema.RaiseAlarm) and n.spec.type == spec.type]
            # the reason's line for logs is English; readers get it rendered from its key
            said = render(node_text_.by_lang(), params, viewer=Viewer("en"),
                          names=self.names(params)) if node_text_ is not None else ""
            plain = spec.reason if isinstance(spec.reason, str) else ""
            return [act.ClearAlarm(node=node.id, community_id=community, source_id=source_id,
                                   type=spec.type, at=obs.at, reason=said or plain or
                                   f"rule {r.id}: condition cleared", after_alarm=after_alarm,
                                   orders=r.orders_on_clear,
                                   up_to=min(own, key=severity_rank) if own else None,
                                   text_key=key_of if node_text_ is not None else None,
                                   text_params=params)]
        if isinstance(spec, schema.Command):
            ids = self._targets(spec.target, c, device)
            return [act.SendCommand(node=node.id, community_id=community, device_ids=ids,
                                    command=spec.command, args=dict(spec.args), at=obs.at,
                                    after_alarm=after_alarm)] if ids else []
        if isinstance(spec, schema.Broadcast):
            target = spec.target.model_copy(update={"device_type": "speaker"}) \
                if spec.target.device_type is None else spec.target
            ids = self._targets(target, c, device)
            return [act.Broadcast(node=node.id, community_id=community, speaker_ids=ids,
                                  message=zh, at=obs.at, after_alarm=after_alarm,
                                  text_key=key_of, text_params=params)] if ids else []
        if isinstance(spec, schema.Notify):
            intents: list[act.Intent] = []
            for channel in spec.to:
                recipients = self._recipients(channel, c)
                if recipients:
                    intents.append(act.Notify(
                        node=node.id, community_id=community,
                        channel="staff" if channel == "manager" else channel,
                        recipients=recipients, message=zh, at=obs.at,
                        after_alarm=after_alarm, text_key=key_of, text_params=params))
            return intents
        if isinstance(spec, schema.WorkOrder):
            where = self._where(c, device)
            if where is None:
                return []
            return [act.OpenWorkOrder(node=node.id, after_alarm=after_alarm, spec=WorkOrderSpec(
                community_id=community, kind=spec.kind, title=zh,
                text_key=key_of, text_params=params,
                domain=r.domain, role=spec.role, location=Point(*where), at=obs.at,
                priority=spec.priority, skill=spec.skill,
                description=r.title_in(DEFAULT_LANG), rule_id=r.id,
                grid_id=c.get("grid"), building_id=c.get("building"), unit_id=c.get("unit"),
                resident_id=c.get("resident"), device_id=c.get("device"),
                due_in=timedelta(minutes=spec.due_min) if spec.due_min else None))]
        raise AssertionError(f"no intent for {node.kind}")

    def names(self, params: dict[str, Any]) -> Names:
        """The names the snapshot knows for the ids of one firing's texts."""
        snap = self.snapshot
        wanted = ids_in([params])

        def found(table: dict[str, Any], kind: str, attr: str) -> dict[str, str]:
            return {i: getattr(table[i], attr) for i in wanted[kind] if i in table}

        return Names(resident=found(snap.residents, "resident", "name"),
                     building=found(snap.buildings, "building", "name"),
                     facility=found(snap.facilities, "facility", "name"),
                     device=found(snap.devices, "device", "name"),
                     unit=found(snap.units, "unit", "number"))

    def _source(self, rule: CompiledRule, source: str | None, key: str, c: dict[str, Any]
                ) -> tuple[str, str]:
        how = source or {"device": "device", "resident": "resident", "facility": "facility",
                         "building": "building", "unit": "building", "grid": "community",
                         "community": "community"}[rule.rule.key]
        if source is None:
            return how, key
        value = {"device": c.get("device"), "resident": c.get("resident"),
                 "facility": c.get("facility"), "building": c.get("building"),
                 "community": None}[how]
        return how, value or key

    def _where(self, c: dict[str, Any], device: DeviceInfo | None) -> tuple[float, float] | None:
        snap = self.snapshot
        if device is not None:
            return device.lon, device.lat
        b = snap.buildings.get(c.get("building") or "")
        if b is not None:
            return b.lon, b.lat
        f = snap.facilities.get(c.get("facility") or "")
        return (f.lon, f.lat) if f else None

    def _targets(self, target: schema.Target, c: dict[str, Any], device: DeviceInfo | None
                 ) -> tuple[str, ...]:
        snap = self.snapshot
        if target.devices is not None:
            return tuple(d for d in target.devices if d in snap.devices)
        if target.same == "device":
            return (device.id,) if device is not None else ()
        code = target.device_type
        if code is None:  # no type to look for (compile refuses such a rule)
            return ()
        candidates = snap.of_type(code)
        if target.same is not None:
            attr = {"unit": "unit", "building": "building", "facility": "facility",
                    "grid": "grid", "community": None}[target.same]
            want = c.get(attr) if attr else None
            if attr and want is None:
                return ()
            candidates = [i for i in candidates if attr is None or _place_of(
                snap, snap.devices[i], attr) == want]
        where = self._where(c, device)
        if target.radius_m is not None:
            if where is None:
                return ()
            close = {i for i, _ in snap.nearby(*where, code, target.radius_m)}
            candidates = [i for i in candidates if i in close]
        if where is not None:
            candidates = sorted(candidates, key=lambda i: snap.distance_m(
                where, (snap.devices[i].lon, snap.devices[i].lat)))
        if target.limit is not None:
            candidates = candidates[:target.limit]
        return tuple(candidates)

    def _recipients(self, channel: str, c: dict[str, Any]) -> tuple[str, ...]:
        snap = self.snapshot
        if channel == "family":
            ids = [c["resident"]] if c.get("resident") else c.get("residents", [])
            phones = []
            for rid in ids:
                r = snap.residents.get(rid)
                for contact in (r.family_contacts if r else ()):
                    phones.append(f"{contact.get('name', '')} <{contact.get('phone', '')}>")
            return tuple(phones)
        if channel == "grid_worker":
            g = snap.grids.get(c.get("grid") or "")
            return (g.worker_id,) if g and g.worker_id else ()
        if channel == "security_desk":
            return ("security_desk",)
        return tuple(sorted(s for s, (_, role) in snap.staff.items() if role == "manager"))

    # --- helpers over the state ---------------------------------------------------------------
    def _cool(self, rule: CompiledRule, key: str, obs: Observation) -> bool:
        if not rule.rule.cooldown_s:
            return True
        st = self.state[rule.id].get(RULE_ENTRY, {}).get(key)
        return st is None or obs.at.timestamp() - st["last"] >= rule.rule.cooldown_s

    def _get(self, rule_id: str, node_id: str, key: str) -> dict:
        return dict(self.state[rule_id].setdefault(node_id, {}).get(key) or {})

    def _put(self, rule_id: str, node_id: str, key: str, value: dict) -> None:
        self.state[rule_id].setdefault(node_id, {})[key] = value
        self._dirty.add((rule_id, node_id, key))

    def _store(self, rule_id: str, node_id: str, key: str, value: dict, *,
               keep_on: bool = False) -> None:
        """Write a node's state for a key; `keep_on` carries its level over (set by _edge)."""
        states = self.state[rule_id].setdefault(node_id, {})
        old = states.get(key)
        if keep_on and old and old.get("on"):
            value = {**value, "on": True}
        if value:
            states[key] = value
        else:
            states.pop(key, None)
        self._dirty.add((rule_id, node_id, key))

    def _remember(self, obs: Observation) -> None:
        snap = self.snapshot
        held = snap.last_seen.get(obs.device_id)
        if held is None or held < obs.at:
            snap.last_seen[obs.device_id] = obs.at
        if obs.kind == "telemetry":
            snap.latest.setdefault(obs.device_id, {}).update(obs.values)
        elif obs.kind == "status":
            snap.latest.setdefault(obs.device_id, {})["online"] = obs.values.get("online")
        if obs.subject and obs.direction:
            seen = snap.last_access.setdefault(obs.subject, {})
            if obs.direction not in seen or seen[obs.direction] < obs.at:
                seen[obs.direction] = obs.at

    def _recall(self, rule: CompiledRule, node_id: str, key: str, now: datetime
                ) -> tuple[Observation, DeviceInfo | None]:
        """The observation a clock-driven firing speaks about: the last one the node saw."""
        st = self.state[rule.id].get(node_id, {}).get(key, {})
        ctx = st.get("ctx", {})
        device_id = ctx.get("d") or (key if rule.rule.key == "device" else "")
        device = self.snapshot.devices.get(device_id)
        community = device.community_id if device else self.snapshot.community_of_resident(key)
        obs = Observation(community_id=community, device_id=device_id, at=now, kind="tick",
                          values=ctx.get("v", {}), event=ctx.get("e"), cls=ctx.get("c"),
                          subject=ctx.get("s") or (key if rule.rule.key == "resident" else None))
        return obs, device

    def _watched(self, rule: CompiledRule) -> list[str]:
        """Devices a no-signal rule keeps an eye on: every device its sources match by place."""
        out: list[str] = []
        for source_id in rule.sources:
            source = rule.source(source_id)
            for code in source.device_types:
                for device_id in self.snapshot.of_type(code):
                    if _in_place(source.place, self.snapshot.devices[device_id], self.snapshot):
                        out.append(device_id)
        return out

    def _group(self, rule: CompiledRule, device: DeviceInfo) -> list[str]:
        """The devices that share the key with this one (and are of the rule's types)."""
        attr = {"device": None, "resident": None, "facility": "facility",
                "building": "building", "unit": "unit", "grid": "grid",
                "community": "community"}[rule.rule.key]
        if attr is None:
            return [device.id]
        want = _place_of(self.snapshot, device, attr)
        return [i for code in sorted(rule.device_types) for i in self.snapshot.of_type(code)
                if _place_of(self.snapshot, self.snapshot.devices[i], attr) == want]

    def _cared(self, rule: CompiledRule, flags: list[str]) -> list[ResidentInfo]:
        wanted = set(flags)
        return [r for r in self.snapshot.residents.values() if wanted & set(r.care_flags)]

    def _inside(self, spec: schema.Geofence, obs: Observation, device: DeviceInfo | None) -> bool:
        lon = obs.attrs.get("lon", device.lon if device else None)
        lat = obs.attrs.get("lat", device.lat if device else None)
        if lon is None or lat is None:
            return False
        snap = self.snapshot
        if spec.facility is not None:
            inside = snap.in_facility(spec.facility, lon, lat, spec.margin_m)
        elif spec.facility_kind is not None:
            inside = any(snap.in_facility(f.id, lon, lat, spec.margin_m)
                         for f in snap.facilities.values() if f.kind == spec.facility_kind)
        elif spec.around is not None:
            inside = snap.distance_m((spec.around.lon, spec.around.lat), (lon, lat)) \
                <= spec.around.radius_m
        else:
            inside = Polygon(spec.polygon).contains(Point(lon, lat))
        return inside != spec.outside

    def _state_of(self, spec: schema.StateOf, device: DeviceInfo | None) -> bool:
        if device is None:
            return False
        snap = self.snapshot
        if spec.same == "device":
            others = [device.id]
        else:
            attr = {"unit": "unit", "building": "building", "facility": "facility",
                    "grid": "grid", "community": None}[spec.same]
            want = _place_of(snap, device, attr) if attr else None
            others = [i for i in snap.of_type(spec.device_type)
                      if attr is None or _place_of(snap, snap.devices[i], attr) == want]
        for other in others:
            value = snap.latest.get(other, {}).get(spec.metric)
            if value is not None and _compare(spec, value):
                return True
        return False


def _matches(source: schema.Source, obs: Observation, device: DeviceInfo, snap: Snapshot) -> bool:
    if device.type not in source.device_types:
        return False
    if obs.kind == "telemetry":
        if source.metrics is None or not any(m in obs.values for m in source.metrics):
            return False
    elif obs.kind == "event":
        events = source.events
        if source.classes is not None:
            if obs.event != "detection" or obs.cls not in source.classes:
                return False
        elif events is None or obs.event not in events:
            return False
        if source.min_confidence is not None and (obs.confidence or 0.0) < source.min_confidence:
            return False
        if source.care_flags is not None:
            r = snap.residents.get(obs.subject or "")
            if r is None or not set(r.care_flags) & set(source.care_flags):
                return False
    elif obs.kind == "status":
        if not source.status:
            return False
    else:
        return False
    return _in_place(source.place, device, snap)


def _in_place(place: schema.Place | None, device: DeviceInfo, snap: Snapshot) -> bool:
    if place is None:
        return True
    if place.community is not None and device.community_id != place.community:
        return False
    if place.grid is not None and snap.grid_of(device) != place.grid:
        return False
    if place.building is not None and device.building_id != place.building:
        return False
    if place.facility is not None and device.facility_id != place.facility:
        return False
    if place.facility_kind is not None:
        f = snap.facilities.get(device.facility_id or "")
        if f is None or f.kind != place.facility_kind:
            return False
    # not (> radius) rather than <= radius: a device with no position (NaN) stays in place
    return not (place.around is not None and snap.distance_m(
        (place.around.lon, place.around.lat), (device.lon, device.lat)) > place.around.radius_m)


def _place_of(snap: Snapshot, device: DeviceInfo, attr: str) -> str | None:
    if attr == "unit":
        return device.unit_id
    if attr == "facility":
        return device.facility_id
    if attr == "building":
        if device.building_id:
            return device.building_id
        f = snap.facilities.get(device.facility_id or "")
        return f.building_id if f else None
    if attr == "grid":
        return snap.grid_of(device)
    return device.community_id


def _compare(spec: schema.Comparison, value: Any) -> bool:
    if spec.not_equals is not None:
        return not _compare(spec.model_copy(update={"equals": spec.not_equals,
                                                    "not_equals": None}), value)
    if spec.equals is not None:
        if isinstance(spec.equals, bool) or isinstance(value, bool):
            return str(value).lower() == str(spec.equals).lower()
        if isinstance(spec.equals, str) or isinstance(value, str):
            return str(value) == str(spec.equals)
        return math.isclose(float(value), float(spec.equals))
    if isinstance(value, str):
        return False
    return (spec.above is not None and value > spec.above) or \
        (spec.below is not None and value < spec.below)


def bucket_of(kind: str, at: datetime, offset_h: float) -> int:
    """The baseline bucket of a time: the local hour of the week (0: Monday 00:00-01:00)
    or of the day."""
    local = at.astimezone(UTC) + timedelta(hours=offset_h)
    return local.weekday() * 24 + local.hour if kind == "hour_of_week" else local.hour


def bucket_hours(kind: str, at: datetime, *, offset_h: float, since: datetime,
                 until: datetime) -> list[tuple[datetime, datetime]]:
    """The past hours (UTC ranges) in [since, until) of the same bucket as ``at``'s local
    hour, newest first: the same hour a week (``hour_of_week``) or a day before, and so on."""
    offset = timedelta(hours=offset_h)
    local = at.astimezone(UTC) + offset
    start = local.replace(minute=0, second=0, microsecond=0) - offset
    step = timedelta(days=7 if kind == "hour_of_week" else 1)
    out = []
    lo = start - step
    while lo >= since:
        if lo + timedelta(hours=1) <= until:
            out.append((lo, lo + timedelta(hours=1)))
        lo -= step
    return out


def robust_z(spec: schema.Baseline, value: float, median: float, mad: float) -> float | None:
    """The robust z of a reading against its bucket's median and MAD, when it is a hit
    (past ``z`` the rule's way, and far enough from the median to matter); else None."""
    deviation = value - median if spec.direction == "above" else median - value
    if deviation < max(spec.min_deviation, spec.min_ratio * abs(median)):
        return None
    # A perfectly steady meter (MAD 0) has no spread to measure by: any deviation past the
    # minimum counts, as infinitely unusual.
    z = deviation / (MAD_SCALE * mad) if mad > 0 else math.inf
    return z if z >= spec.z else None


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def _local_minutes(at: datetime, offset_h: float) -> tuple[int, int]:
    local = at.astimezone(UTC) + timedelta(hours=offset_h)
    return local.hour * 60 + local.minute, local.weekday()


def _in_window(spec: schema.TimeWindow, at: datetime, offset_h: float) -> bool:
    now, weekday = _local_minutes(at, offset_h)
    start, end = _minutes(spec.start), _minutes(spec.end)
    inside = start <= now < end if start < end else (now >= start or now < end)
    if spec.days is not None:
        # a window past midnight belongs to the day it started on
        day = weekday if start < end or now >= start else (weekday - 1) % 7
        inside = inside and _DAYS[day] in spec.days
    return inside


def _in_span(span: str, at: datetime, offset_h: float) -> bool:
    start, end = span.split("-")
    now, _ = _local_minutes(at, offset_h)
    a, b = _minutes(start), _minutes(end)
    return a <= now < b if a < b else (now >= a or now < b)


def _care_hours(spec: schema.Absence, resident: ResidentInfo) -> float:
    own = resident.care_hours.get(spec.direction)
    if own is not None:
        return float(own)
    hours = [spec.hours.get(f, spec.default_hours) for f in resident.care_flags
             if f in spec.care_flags]
    return float(min(hours)) if hours else spec.default_hours


def _ctx(obs: Observation) -> dict[str, Any]:
    ctx: dict[str, Any] = {"d": obs.device_id}
    if obs.values:
        ctx["v"] = dict(obs.values)
    if obs.event:
        ctx["e"] = obs.event
    if obs.cls:
        ctx["c"] = obs.cls
    if obs.subject:
        ctx["s"] = obs.subject
    return ctx


def _after_alarm(rule: CompiledRule, node_id: str) -> str | None:
    """The raise_alarm node this action follows (directly or through other actions)."""
    graph = rule.graph
    todo = list(graph.predecessors(node_id))
    while todo:
        p = todo.pop()
        kind = graph.nodes[p]["kind"]
        if kind == "raise_alarm":
            return p
        if kind in ACTIONS:
            todo.extend(graph.predecessors(p))
    return None


def _local(at: datetime, offset_h: float) -> str:
    return (at.astimezone(UTC) + timedelta(hours=offset_h)).strftime("%m-%d %H:%M")


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        if value.is_integer() or abs(value) >= 1000:
            return f"{value:.0f}"
        return f"{value:.1f}"
    return value
