"""From rule text to a checked graph: every error names the rule, the node and the field.

`parse_rule` reads one YAML document and checks its shape (pydantic);
`compile_rule` checks its meaning against the device-type registry and builds
the networkx DiGraph the engine walks. Nothing here does I/O except
`load_directory`, which reads files.

    rule garage-co: node 'high' field 'threshold.metric': co_sensor has no metric 'co2';
        expected one of ['co', 'temperature']
"""

from __future__ import annotations

import hashlib
import string
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from twin.device_types import CAMERA_CLASSES, DEVICE_TYPES
from twin.errors import TwinError
from twin.model import CARE_FLAGS
from twin.rules import schema
from twin.rules.schema import ACTIONS, CONDITIONS, Node, Rule
from twin.yaml12 import Yaml12Loader

#: Placeholders a title or message may use; unknown ones are refused on load.
PLACEHOLDERS: frozenset[str] = frozenset({
    "rule", "device", "device_name", "device_type", "metric", "value", "event", "class",
    "confidence", "facility", "facility_name", "building", "building_name", "floor", "unit",
    "unit_number", "grid", "resident", "resident_name", "age_band", "care_flags", "hours",
    "direction", "count", "time", "care_residents", "nearby", "rate",
    "total", "other", "usual", "z", "floor_estimate",
})
#: Conditions that hold a level over time (and so can be cleared), not just pass a pulse.
LEVEL_KINDS = frozenset({"threshold", "for_duration", "no_signal", "count_in_window",
                         "rate_of_change", "baseline", "absence"})
#: Conditions driven by the clock as well as by messages.
TIMED_KINDS = frozenset({"for_duration", "no_signal", "count_in_window", "absence"})


#: The text field of each node kind that has one (the key of its texts is ``rule/node``).
TEXT_FIELDS: dict[str, str] = {"raise_alarm": "title", "work_order": "title",
                               "notify": "message", "broadcast": "message",
                               "clear_alarm": "reason"}


def node_text(node: Node) -> schema.Localized | None:
    """The one text a node says (an alarm's or order's title, a message), if it has one."""
    field = TEXT_FIELDS.get(node.kind)
    text = getattr(node.spec, field) if field else None
    return text if isinstance(text, schema.Localized) else None


#: The "node" a rule's own title is kept under: ``garage-co/#title``.
RULE_TITLE = "#title"


def text_key(rule_id: str, node_id: str) -> str:
    """The key a node's text is stored and rendered under: ``garage-co/alarm``."""
    return f"{rule_id}/{node_id}"


class RuleError(TwinError):
    """A rule that cannot be loaded, and exactly where it is wrong."""

    def __init__(self, rule: str, message: str, *, node: str | None = None,
                 field: str | None = None) -> None:
        where = f"rule {rule}"
        if node is not None:
            where += f": node {node!r}"
        if field is not None:
            where += f" field {field!r}"
        super().__init__(f"{where}: {message}")
        self.rule, self.node, self.field = rule, node, field


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A checked rule: the model, its graph in evaluation order, and its source text."""

    rule: Rule
    graph: nx.DiGraph
    order: tuple[str, ...]
    sources: tuple[str, ...]
    #: Every device type any source of the rule listens to.
    device_types: frozenset[str]
    text: str
    checksum: str
    #: Where it was read from (a file), if anywhere.
    origin: str | None = None

    @property
    def id(self) -> str:
        return self.rule.id

    def node(self, node_id: str) -> Node:
        return self.graph.nodes[node_id]["node"]

    def texts(self) -> dict[str, dict[str, str]]:
        """Every text of the rule by its key, each in every language (`schema.LANGS`)."""
        found = {}
        if isinstance(self.rule.title, schema.Localized):
            found[text_key(self.id, RULE_TITLE)] = self.rule.title.by_lang()
        for node in self.rule.nodes:
            text = node_text(node)
            if text is not None:
                found[text_key(self.id, node.id)] = text.by_lang()
        return found

    def source(self, node_id: str) -> schema.Source:
        """What a source node (one of `sources`) listens to."""
        source = self.node(node_id).source
        if source is None:
            raise ValueError(f"rule {self.id}: node {node_id!r} is not a source")
        return source


def parse_rule(text: str, *, origin: str = "<text>") -> Rule:
    """One YAML document as a Rule, or a RuleError naming the node and field."""
    try:
        data = yaml.load(text, Loader=Yaml12Loader)  # a SafeLoader
    except yaml.YAMLError as e:
        raise RuleError(origin, f"not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RuleError(origin, "a rule file holds one mapping (id, title, domain, nodes)")
    name = str(data.get("id") or origin)
    try:
        return Rule.model_validate(data)
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        raise _located(name, data, first) from None


def compile_rule(rule: Rule, *, text: str | None = None, origin: str | None = None
                 ) -> CompiledRule:
    """Check a rule's meaning and build its graph."""
    r = rule.id
    text = text if text is not None else yaml.safe_dump(rule.model_dump(mode="json"),
                                                        allow_unicode=True, sort_keys=False)
    graph = nx.DiGraph(rule=r)
    for node in rule.nodes:
        if node.id in graph:
            raise RuleError(r, "two nodes have this id", node=node.id, field="id")
        graph.add_node(node.id, node=node, kind=node.kind)
    for node in rule.nodes:
        for i, before in enumerate(node.after):
            if before not in graph:
                raise RuleError(r, f"there is no node {before!r}; the nodes are "
                                   f"{sorted(graph.nodes)}", node=node.id, field=f"after.{i}")
            graph.add_edge(before, node.id)
    try:
        cycle = nx.find_cycle(graph)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = " -> ".join([cycle[0][0], *(v for _, v in cycle)])
        raise RuleError(r, f"the nodes form a cycle: {path}", node=cycle[0][0], field="after")
    sources = [n.id for n in rule.nodes if n.kind == "source"]
    if not sources:
        raise RuleError(r, "a rule needs a source node (what it listens to)")
    types: set[str] = set()
    for node in rule.nodes:
        _check_node(rule, graph, node)
        if node.source is not None:
            types.update(node.source.device_types)
    if not any(graph.nodes[n]["kind"] in ACTIONS for n in graph):
        raise RuleError(r, "a rule needs at least one action (raise_alarm, command, broadcast, "
                           "notify, work_order, clear_alarm)")
    kinds = {graph.nodes[n]["kind"] for n in graph}
    if rule.group is not None and "raise_alarm" not in kinds:
        raise RuleError(r, "grouping sources into one incident needs a raise_alarm node",
                        field="group")
    if rule.orders_on_clear != "keep" and not {"clear_alarm", "work_order"} <= kinds:
        raise RuleError(r, f"orders_on_clear: {rule.orders_on_clear} acts on the work orders "
                           "an alarm opened when it clears: the rule needs a work_order and a "
                           "clear_alarm node", field="orders_on_clear")
    order = tuple(nx.lexicographical_topological_sort(graph))
    return CompiledRule(rule=rule, graph=graph, order=order, sources=tuple(sources),
                        device_types=frozenset(types), text=text,
                        checksum=hashlib.sha256(text.encode()).hexdigest(), origin=origin)


def compile_text(text: str, *, origin: str = "<text>") -> CompiledRule:
    return compile_rule(parse_rule(text, origin=origin), text=text,
                        origin=None if origin == "<text>" else origin)


def load_directory(directory: Path | str) -> list[CompiledRule]:
    """Every ``*.yaml`` under a directory (recursively), checked; ids must be unique."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TwinError(f"{directory} is not a directory")
    compiled: list[CompiledRule] = []
    seen: dict[str, Path] = {}
    for path in sorted(directory.rglob("*.yaml")):
        rule = compile_text(path.read_text(encoding="utf-8"), origin=str(path))
        if rule.id in seen:
            raise RuleError(rule.id, f"defined twice: in {seen[rule.id]} and in {path}")
        seen[rule.id] = path
        compiled.append(rule)
    return compiled


def library_dir() -> Path:
    """The scenario library shipped with the twin: ``twin/rules/library/<domain>/*.yaml``."""
    return Path(__file__).parent / "library"


# --- checks ------------------------------------------------------------------------------

def _check_node(rule: Rule, graph: nx.DiGraph, node: Node) -> None:
    r, n, kind = rule.id, node.id, node.kind
    preds = list(graph.predecessors(n))
    if node.source is not None:
        if node.after:
            raise RuleError(r, "a source starts the graph; it follows no node", node=n,
                            field="after")
        _check_source(r, n, node.source)
        return
    if not preds:
        raise RuleError(r, f"a {kind} node must follow another node", node=n, field="after")
    upstream = nx.ancestors(graph, n)
    up_kinds = {graph.nodes[u]["kind"] for u in upstream}
    types = _upstream_types(graph, n)
    if kind in CONDITIONS or kind == "enrich":
        for p in preds:
            if graph.nodes[p]["kind"] in ACTIONS:
                raise RuleError(r, f"a {kind} node cannot follow an action ({p!r})", node=n,
                                field="after")
    if node.when == "cleared":
        if kind not in ACTIONS:
            raise RuleError(r, "only actions run 'when: cleared'", node=n, field="when")
        if not (up_kinds & LEVEL_KINDS):
            raise RuleError(r, "'when: cleared' needs a condition that can become false again "
                               f"({', '.join(sorted(LEVEL_KINDS))}) before it", node=n,
                            field="when")
    spec = node.spec
    if isinstance(spec, (schema.Threshold, schema.RateOfChange, schema.Baseline)):
        _check_metric(r, n, f"{kind}.metric", types, spec.metric, upstream, graph)
        if isinstance(spec, schema.Baseline):
            _check_baseline(r, n, spec, types)
    elif isinstance(spec, schema.StateOf):
        _check_type(r, n, "state_of.device_type", spec.device_type)
        _check_metric(r, n, "state_of.metric", {spec.device_type}, spec.metric, set(), graph)
    elif isinstance(spec, schema.NoSignal) and rule.key != "device":
        raise RuleError(r, "no_signal watches devices: the rule needs 'key: device'", node=n,
                        field="no_signal")
    elif isinstance(spec, schema.ForDuration) and spec.gap_s is None \
            and not (up_kinds & LEVEL_KINDS):
        raise RuleError(r, "events are instants: say how long one keeps the condition true "
                           "(gap_s), or put a threshold before it", node=n,
                        field="for_duration.gap_s")
    elif isinstance(spec, schema.Absence):
        src_events = {e for u in upstream if graph.nodes[u]["kind"] == "source"
                      for e in (graph.nodes[u]["node"].source.events or ())}
        if "access" not in src_events:
            raise RuleError(r, "absence needs a source of access events (events: [access])",
                            node=n, field="absence")
        if rule.key != "resident":
            raise RuleError(r, "absence tracks residents: the rule needs 'key: resident'",
                            node=n, field="absence")
    elif isinstance(spec, schema.Enrich):
        for i, near in enumerate(spec.nearby):
            _check_type(r, n, f"enrich.nearby.{i}.device_type", near.device_type)
    elif isinstance(spec, (schema.Command, schema.Broadcast)):
        target = spec.target
        if target.device_type is None and target.same != "device" and target.devices is None:
            raise RuleError(r, "say which device type the action speaks to", node=n,
                            field=f"{kind}.target.device_type")
        if target.device_type is not None:
            _check_type(r, n, f"{kind}.target.device_type", target.device_type)
        command = spec.command if isinstance(spec, schema.Command) else "broadcast"
        for target_type in ([target.device_type] if target.device_type else sorted(types)):
            commands = DEVICE_TYPES[target_type].commands
            if command not in commands:
                field = f"{kind}.command" if kind == "command" else f"{kind}.target.device_type"
                raise RuleError(r, f"{target_type} has no command {command!r}; expected one "
                                   f"of {sorted(commands)}", node=n, field=field)
        if target.same == "device" and target.device_type and target.device_type not in types:
            raise RuleError(r, f"'same: device' targets the triggering device, which is never "
                               f"a {target.device_type}", node=n, field=f"{kind}.target.same")
    elif isinstance(spec, schema.Notify) and "family" in spec.to and rule.key != "resident" \
            and not _enriched_residents(graph, upstream):
        raise RuleError(r, "notifying the family needs residents: key the rule by "
                           "resident, or enrich with residents before it", node=n,
                        field="notify.to")
    text = node_text(node)
    if text is not None:
        for lang, template in text.by_lang().items():
            _check_template(r, n, f"{kind}.{TEXT_FIELDS[kind]}.{lang}", template)
    if isinstance(spec, schema.TimeWindow) and spec.start == spec.end:
        raise RuleError(r, "start and end are the same time", node=n, field="time_window.end")


def _check_baseline(r: str, n: str, spec: schema.Baseline, types: set[str]) -> None:
    for code in sorted(types):
        metric = DEVICE_TYPES[code].metrics.get(spec.metric)
        if metric is not None and metric.choices:
            raise RuleError(r, f"{code}'s {spec.metric!r} is a state ({list(metric.choices)}), "
                               "not a number a baseline can learn", node=n,
                            field="baseline.metric")
    if spec.min_deviation == 0 and spec.min_ratio == 0:
        raise RuleError(r, "say how far from its usual a reading must be to matter "
                           "(min_deviation in the metric's units, or min_ratio of the median): "
                           "a meter that is always steady would otherwise fire on a crumb",
                        node=n, field="baseline.min_deviation")


def _check_source(r: str, n: str, source: schema.Source) -> None:
    for i, code in enumerate(source.device_types):
        _check_type(r, n, f"source.device_types.{i}", code)
    for i, metric in enumerate(source.metrics or ()):
        if not any(metric in DEVICE_TYPES[c].metrics for c in source.device_types):
            if len(source.device_types) == 1:
                code = source.device_types[0]
                message = f"{code} has no metric {metric!r}"
            else:
                message = f"no device type of the source has metric {metric!r}"
            known = sorted({m for c in source.device_types for m in DEVICE_TYPES[c].metrics})
            raise RuleError(r, f"{message}; expected one of {known}", node=n,
                            field=f"source.metrics.{i}")
    for i, event in enumerate(source.events or ()):
        if not any(event in DEVICE_TYPES[c].events for c in source.device_types):
            known = sorted({e for c in source.device_types for e in DEVICE_TYPES[c].events})
            raise RuleError(r, f"no device type of the source has event {event!r}; expected "
                               f"one of {known}", node=n, field=f"source.events.{i}")
    for i, cls in enumerate(source.classes or ()):
        if cls not in CAMERA_CLASSES:
            raise RuleError(r, f"unknown detection class {cls!r}; expected one of "
                               f"{list(CAMERA_CLASSES)}", node=n, field=f"source.classes.{i}")
    if source.classes and not any("detection" in DEVICE_TYPES[c].events
                                  for c in source.device_types):
        raise RuleError(r, "detection classes need a device type with detections (ai_camera)",
                        node=n, field="source.classes")
    for i, flag in enumerate(source.care_flags or ()):
        if flag not in CARE_FLAGS:
            raise RuleError(r, f"unknown care flag {flag!r}; expected one of {list(CARE_FLAGS)}",
                            node=n, field=f"source.care_flags.{i}")


def _check_type(r: str, n: str, field: str, code: str) -> None:
    if code not in DEVICE_TYPES:
        raise RuleError(r, f"unknown device type {code!r}; expected one of "
                           f"{sorted(DEVICE_TYPES)}", node=n, field=field)


def _check_metric(r: str, n: str, field: str, types: Iterable[str], metric: str,
                  upstream: set[str], graph: nx.DiGraph) -> None:
    status = any(graph.nodes[u]["kind"] == "source" and graph.nodes[u]["node"].source.status
                 for u in upstream)
    if metric == "online" and (status or not upstream):
        return
    for code in sorted(types):
        metrics = DEVICE_TYPES[code].metrics
        if metric not in metrics:
            raise RuleError(r, f"{code} has no metric {metric!r}; expected one of "
                               f"{sorted(metrics)}", node=n, field=field)


def _check_template(r: str, n: str, field: str, text: str) -> None:
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    except ValueError as e:
        raise RuleError(r, f"not a valid template: {e}", node=n, field=field) from None
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise RuleError(r, f"unknown placeholder {{{unknown[0]}}}; expected one of "
                           f"{sorted(PLACEHOLDERS)}", node=n, field=field)


def _upstream_types(graph: nx.DiGraph, n: str) -> set[str]:
    return {code for u in nx.ancestors(graph, n) if graph.nodes[u]["kind"] == "source"
            for code in graph.nodes[u]["node"].source.device_types}


def _enriched_residents(graph: nx.DiGraph, upstream: set[str]) -> bool:
    return any(graph.nodes[u]["kind"] == "enrich" and graph.nodes[u]["node"].enrich.residents
               for u in upstream)


def _located(rule: str, data: dict[str, Any], error: ErrorDetails) -> RuleError:
    """A pydantic error as a RuleError that names the node (by its id) and the field."""
    loc = list(error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing" and loc and loc[-1] in schema.LANGS:
        message = (f"the {loc[-1]} text is missing; rule texts are written in "
                   f"{' and '.join(schema.LANGS)}")
    if len(loc) >= 2 and loc[0] == "nodes" and isinstance(loc[1], int):
        nodes = data.get("nodes") or []
        raw = nodes[loc[1]] if loc[1] < len(nodes) else None
        node = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") else f"#{loc[1]}"
        field = ".".join(str(p) for p in loc[2:]) or None
        return RuleError(rule, message, node=node, field=field)
    field = ".".join(str(p) for p in loc) or None
    return RuleError(rule, message, field=field)
