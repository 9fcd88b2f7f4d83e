"""Rule replay: how many alarms and work orders a changed rule would have raised over a period.

Pure: a compiled rule (`twin.rules`) and a scenario's parameters become a
`ThresholdSpec`, which `twin.store.whatif_queries` turns into one SQL query
over the ``reading`` hypertable (episodes by gaps and islands, counted per
local day with ``time_bucket``); the counts come back here to be set beside
what the live system did.

What replays exactly, and what does not:

- A rule replays when every alarm or work order it raises hangs after one
  chain ``source -> threshold -> [for_duration] -> [count_in_window]`` (with
  any ``enrich`` between): a telemetry source of numeric metrics placed by
  community, building, facility or facility kind; a threshold ``above``
  and/or ``below`` over ``devices: any``; a for-duration without ``gap_s``.
  The replay then does what the engine does: a key (device, facility ...)
  is over the threshold while any of its devices' latest reading is; it
  fires when that has lasted ``for_duration`` (at start + duration), and
  with ``count_in_window`` when the count-th such firing falls within the
  window. Each firing raises the alarm (or repeats one still open) and
  opens the work orders after it.
- Anything else (events, detections, status, time windows, geofences,
  state of other devices, rates, absences, ``devices: all``, equality on
  text) is refused with a `NotReplayable` naming the rule, the node and its
  kind: we do not guess how often such a rule would have fired.
- Readings are replayed at their timestamps; the live engine checks
  durations on its clock tick, so a live firing lags its replayed time by
  up to one tick and may, at a day boundary, fall on the next day.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from twin.rules import schema
from twin.rules.compile import CompiledRule, compile_rule
from twin.rules.schema import Node, Rule

#: Keys the SQL can group by, and places it can filter on.
KEYS = ("device", "facility", "building", "unit", "community")
PLACES = ("community", "building", "facility", "facility_kind")
#: Nodes that pass a signal through without changing when the rule fires.
_PASS = frozenset({"enrich"})
_COUNTED = ("raise_alarm", "work_order")


@dataclass(frozen=True, slots=True)
class ThresholdSpec:
    """A threshold rule as the SQL replays it: over (or under) for a while, per key."""

    rule_id: str
    device_types: tuple[str, ...]
    metric: str
    above: float | None = None
    below: float | None = None
    #: The condition must hold this long before the rule fires (0: at once).
    for_s: float = 0.0
    #: Fire only on the count-th firing within window_s (count_in_window).
    count: int | None = None
    window_s: float | None = None
    #: What firings are grouped by: one alarm per device, per facility ...
    key: str = "device"
    place: Mapping[str, str] = field(default_factory=dict)
    raises_alarm: bool = True
    #: Work orders opened per firing (after a new alarm, or straight after the condition).
    work_orders: int = 0
    #: Whether the rule clears its alarm when the condition ends, so that every
    #: firing opens a new alarm (otherwise a firing may repeat an open one).
    clears_itself: bool = True

    def __post_init__(self) -> None:
        if self.above is None and self.below is None:
            raise ValueError(f"rule {self.rule_id}: a threshold needs 'above' or 'below'")
        if self.for_s < 0:
            raise ValueError(f"rule {self.rule_id}: for_s must not be negative")
        if (self.count is None) != (self.window_s is None):
            raise ValueError(f"rule {self.rule_id}: give both count and window_s, or neither")
        if self.key not in KEYS:
            raise ValueError(f"rule {self.rule_id}: cannot replay key {self.key!r}; "
                             f"expected one of {KEYS}")
        unknown = sorted(set(self.place) - set(PLACES))
        if unknown:
            raise ValueError(f"rule {self.rule_id}: cannot replay place {unknown[0]!r}; "
                             f"expected one of {PLACES}")


@dataclass(frozen=True, slots=True)
class NotReplayable:
    """A rule whose firings the SQL cannot reproduce exactly, and the node that is why."""

    rule_id: str
    node_id: str | None
    kind: str
    reason: str

    def __str__(self) -> str:
        where = f"node {self.node_id!r} ({self.kind})" if self.node_id else self.kind
        return f"rule {self.rule_id} cannot be replayed: {where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ReplayDay:
    """One local day: firings replayed as the rule is and as changed, beside what happened."""

    day: date
    baseline_alarms: int
    scenario_alarms: int
    baseline_work_orders: int
    scenario_work_orders: int
    #: Alarms the live system raised or repeated for this rule (alarm_log).
    did_alarms: int
    #: Of those, alarms opened (alarm rows raised that day).
    did_opened: int
    did_work_orders: int


@dataclass(frozen=True, slots=True)
class RuleReplay:
    """A rule's replay over a period, day by day; `total` sums it."""

    rule_id: str
    start: datetime
    end: datetime
    tz: str
    baseline: ThresholdSpec
    scenario: ThresholdSpec
    days: tuple[ReplayDay, ...]

    @property
    def total(self) -> ReplayDay:
        sums = [sum(getattr(d, f) for d in self.days) for f in _COUNT_FIELDS]
        return ReplayDay(self.start.astimezone(ZoneInfo(self.tz)).date(), *sums)

    def rows(self) -> list[dict[str, Any]]:
        """One row per day, then the total (day 'all'): for tables and CSV."""
        out = []
        for day, d in [*((d.day.isoformat(), d) for d in self.days), ("all", self.total)]:
            out.append({"rule_id": self.rule_id, "day": day,
                        **{f: getattr(d, f) for f in _COUNT_FIELDS}})
        return out


_COUNT_FIELDS = ("baseline_alarms", "scenario_alarms", "baseline_work_orders",
                 "scenario_work_orders", "did_alarms", "did_opened", "did_work_orders")


def apply_params(rule: Rule, params: Mapping[str, Any]) -> Rule:
    """The rule with a scenario's parameters set, validated as a loaded rule would be.

    A parameter is ``node.field`` (``high.above``, ``lasting.seconds``) or a
    bare field that exactly one node has (``above``).
    """
    data = rule.model_dump(mode="json", exclude_none=True)
    nodes = {n["id"]: n for n in data["nodes"]}
    for name, value in params.items():
        if "." in name:
            node_id, attr = name.split(".", 1)
            if node_id not in nodes:
                raise ValueError(f"rule {rule.id}: parameter {name!r}: there is no node "
                                 f"{node_id!r}; the nodes are {sorted(nodes)}")
            candidates = [node_id]
        else:
            attr = name
            candidates = [n.id for n in rule.nodes if attr in type(n.spec).model_fields]
            if len(candidates) != 1:
                fields = sorted({f"{n.id}.{f}" for n in rule.nodes
                                 if n.kind not in ("source",) for f in type(n.spec).model_fields})
                raise ValueError(f"rule {rule.id}: parameter {name!r} "
                                 f"{'is ambiguous' if candidates else 'is not a field of any node'}"
                                 f"; name the node, one of {fields}")
            node_id = candidates[0]
        node = next(n for n in rule.nodes if n.id == node_id)
        if attr not in type(node.spec).model_fields:
            raise ValueError(f"rule {rule.id}: parameter {name!r}: a {node.kind} node has no "
                             f"field {attr!r}; expected one of "
                             f"{sorted(type(node.spec).model_fields)}")
        nodes[node_id][node.kind][attr] = value
    return Rule.model_validate(data)


def threshold_spec(rule: CompiledRule, params: Mapping[str, Any] | None = None
                   ) -> ThresholdSpec | NotReplayable:
    """The rule (with ``params`` set) as a spec the SQL replays, or why it cannot be."""
    if params:
        rule = compile_rule(apply_params(rule.rule, params))
    r, graph = rule.rule, rule.graph
    counted = [n for n in rule.order if rule.node(n).kind in _COUNTED
               and rule.node(n).when == "raised"]
    if not counted:
        return NotReplayable(r.id, None, "rule", "it raises no alarm and opens no work order")
    chains = {n: _conditions(rule, n) for n in counted}
    first = chains[counted[0]]
    if isinstance(first, NotReplayable):
        return first
    for n in counted[1:]:
        chain = chains[n]
        if isinstance(chain, NotReplayable):
            return chain
        if chain != first:
            return NotReplayable(r.id, n, rule.node(n).kind, "it follows other conditions than "
                                 f"{counted[0]!r}; only one chain of conditions replays")
    if r.key not in KEYS:
        return NotReplayable(r.id, None, "key", f"firings grouped by {r.key} do not replay; "
                             f"only by {', '.join(KEYS)}")
    source_id = first[0]
    source = rule.source(source_id)
    threshold: schema.Threshold | None = None
    duration: schema.ForDuration | None = None
    window: schema.CountInWindow | None = None
    for n in first[1:]:
        spec = rule.node(n).spec
        if isinstance(spec, schema.Threshold):
            threshold = spec
        elif isinstance(spec, schema.ForDuration):
            duration = spec
        elif isinstance(spec, schema.CountInWindow):
            window = spec
    if threshold is None:
        raise AssertionError(f"rule {r.id}: _conditions returned a chain without a threshold")
    place = {k: getattr(source.place, k) for k in PLACES
             if source.place is not None and getattr(source.place, k) is not None}
    if source.place is not None:
        for k in ("grid", "around"):
            if getattr(source.place, k) is not None:
                return NotReplayable(r.id, source_id, "source",
                                     f"a place by {k} does not replay")
    types = tuple(source.device_types)
    alarm_types = {spec.type for spec in (rule.node(n).spec for n in counted)
                   if isinstance(spec, schema.RaiseAlarm)}
    cleared = {node.spec.type for node in (rule.node(n) for n in graph)
               if isinstance(node.spec, schema.ClearAlarm) and node.when == "cleared"}
    return ThresholdSpec(
        rule_id=r.id, device_types=types, metric=threshold.metric,
        above=threshold.above, below=threshold.below,
        for_s=duration.seconds if duration is not None else 0.0,
        count=window.count if window is not None else None,
        window_s=window.seconds if window is not None else None,
        key=r.key, place=place, raises_alarm=bool(alarm_types),
        work_orders=sum(1 for n in counted if rule.node(n).kind == "work_order"),
        clears_itself=alarm_types <= cleared)


def replay_result(baseline: ThresholdSpec, scenario: ThresholdSpec, *, start: datetime,
                  end: datetime, tz: str, baseline_firings: Mapping[date, int],
                  scenario_firings: Mapping[date, int],
                  did: Mapping[date, tuple[int, int, int]]) -> RuleReplay:
    """Firings per day (replayed, both ways) and what happened, as one `RuleReplay`.

    ``did`` maps a day to (alarms raised or repeated, alarms opened, work orders).
    Every local day of the period has a row, zeros included.
    """
    days = []
    for day in _local_days(start, end, tz):
        b, s = baseline_firings.get(day, 0), scenario_firings.get(day, 0)
        did_alarms, did_opened, did_orders = did.get(day, (0, 0, 0))
        days.append(ReplayDay(
            day=day, baseline_alarms=b if baseline.raises_alarm else 0,
            scenario_alarms=s if scenario.raises_alarm else 0,
            baseline_work_orders=b * baseline.work_orders,
            scenario_work_orders=s * scenario.work_orders,
            did_alarms=did_alarms, did_opened=did_opened, did_work_orders=did_orders))
    return RuleReplay(rule_id=baseline.rule_id, start=start, end=end, tz=tz,
                      baseline=baseline, scenario=scenario, days=tuple(days))


# --- helpers --------------------------------------------------------------------------------

def _conditions(rule: CompiledRule, action: str) -> tuple[str, ...] | NotReplayable:
    """The nodes an action hangs after, source first, if they form a chain that replays."""
    r, graph = rule.rule, rule.graph
    chain: list[str] = []
    node_id = action
    while True:
        preds = [p for p in graph.predecessors(node_id)
                 if rule.node(p).kind not in _COUNTED and rule.node(p).kind not in
                 ("command", "broadcast", "notify", "clear_alarm")]
        actions = [p for p in graph.predecessors(node_id) if p not in preds]
        if actions and not preds:
            # an action after another action: it runs when that one does
            if len(actions) != 1:
                return NotReplayable(r.id, node_id, rule.node(node_id).kind,
                                     "it follows several actions")
            node_id = actions[0]
            continue
        if len(preds) != 1 or actions:
            return NotReplayable(r.id, node_id, rule.node(node_id).kind,
                                 "it follows several nodes (either suffices); only a chain "
                                 "replays")
        node_id = preds[0]
        node = rule.node(node_id)
        kind = node.kind
        if kind in _PASS:
            continue
        chain.append(node_id)
        if kind == "source":
            break
        bad = _unreplayable(node)
        if bad is not None:
            return NotReplayable(r.id, node_id, kind, bad)
    source = rule.source(chain[-1])
    if source.events or source.classes or source.status or not source.metrics:
        return NotReplayable(r.id, chain[-1], "source",
                             "only telemetry (metrics) replays, not events, detections or status")
    kinds = [rule.node(n).kind for n in reversed(chain)]
    allowed = (["source", "threshold"], ["source", "threshold", "for_duration"],
               ["source", "threshold", "count_in_window"],
               ["source", "threshold", "for_duration", "count_in_window"])
    if kinds not in [list(a) for a in allowed]:
        where = chain[0] if chain else action
        return NotReplayable(r.id, where, rule.node(where).kind,
                             f"the conditions {' -> '.join(kinds)} do not replay; only "
                             "threshold, then for_duration, then count_in_window")
    return tuple(reversed(chain))


def _unreplayable(node: Node) -> str | None:
    spec = node.spec
    if isinstance(spec, schema.Threshold):
        if spec.equals is not None or spec.not_equals is not None:
            return "only 'above' and 'below' replay, not equality"
        if spec.devices != "any":
            return "'devices: all' needs every device's latest value at each moment"
        return None
    if isinstance(spec, schema.ForDuration):
        return "a duration kept alive by events (gap_s) does not replay" if spec.gap_s else None
    if isinstance(spec, schema.CountInWindow):
        return None
    return "this kind of condition does not replay in SQL"


def _local_days(start: datetime, end: datetime, tz: str) -> list[date]:
    zone = ZoneInfo(tz)
    first, last = start.astimezone(zone).date(), (end - timedelta(microseconds=1)).astimezone(
        zone).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
