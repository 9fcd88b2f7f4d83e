"""Rules are data checked on load: every refusal names the rule, the node and the field."""

from __future__ import annotations

import textwrap

import pytest

from twin.rules.compile import RuleError, compile_text, library_dir, load_directory

GOOD = """
id: garage-co
title: CO high
domain: safety
key: facility
nodes:
  - id: co
    source: {device_types: [co_sensor], metrics: [co]}
  - id: high
    after: co
    threshold: {metric: co, above: 50}
  - id: fans
    after: high
    command: {target: {device_type: exhaust_fan, same: facility}, command: start}
"""


def _with(old: str, new: str) -> str:
    assert old in GOOD
    return GOOD.replace(old, new)


def _refused(text: str) -> str:
    with pytest.raises(RuleError) as caught:
        compile_text(textwrap.dedent(text))
    return str(caught.value)


def test_a_good_rule_becomes_a_graph_in_evaluation_order() -> None:
    rule = compile_text(GOOD)
    assert rule.order == ("co", "high", "fans")
    assert list(rule.graph.edges) == [("co", "high"), ("high", "fans")]
    assert rule.device_types == {"co_sensor"}


def test_unknown_metric_names_rule_node_field_and_the_choices() -> None:
    assert _refused(_with("threshold: {metric: co,", "threshold: {metric: co2,")) == (
        "rule garage-co: node 'high' field 'threshold.metric': co_sensor has no metric 'co2'; "
        "expected one of ['co', 'temperature']")


def test_unknown_device_type() -> None:
    message = _refused(_with("device_type: exhaust_fan", "device_type: exhaust_fun"))
    assert message.startswith("rule garage-co: node 'fans' field 'command.target.device_type': "
                              "unknown device type 'exhaust_fun'; expected one of [")
    message = _refused(_with("device_types: [co_sensor]", "device_types: [co_sensr]"))
    assert "node 'co' field 'source.device_types.0': unknown device type 'co_sensr'" in message


def test_unknown_command_for_the_target_type() -> None:
    assert _refused(_with("command: start", "command: open")) == (
        "rule garage-co: node 'fans' field 'command.command': exhaust_fan has no command "
        "'open'; expected one of ['start', 'stop']")


def test_a_cycle_is_refused_with_its_path() -> None:
    text = _with("  - id: high\n    after: co\n", "  - id: high\n    after: [co, fans]\n")
    text = text.replace("command: {target: {device_type: exhaust_fan, same: facility}, "
                        "command: start}", "threshold: {metric: co, above: 60}")
    text += ("  - id: act\n    after: high\n    raise_alarm: {type: co, severity: major, "
             "title: {zh-CN: x, en: x}}\n")
    assert "the nodes form a cycle: " in _refused(text)
    assert "high -> fans -> high" in _refused(text) or "fans -> high -> fans" in _refused(text)


def test_an_edge_to_a_missing_node() -> None:
    assert _refused(_with("after: high", "after: hihg")) == (
        "rule garage-co: node 'fans' field 'after.0': there is no node 'hihg'; the nodes are "
        "['co', 'fans', 'high']")


def test_missing_action_target() -> None:
    message = _refused(_with("{target: {device_type: exhaust_fan, same: facility}",
                             "{target: {device_type: exhaust_fan}"))
    assert message == ("rule garage-co: node 'fans' field 'command.target': say which devices: "
                       "'same', 'radius_m' or 'devices'")


def test_shape_errors_name_the_node_by_its_id() -> None:
    message = _refused(_with("threshold: {metric: co, above: 50}", "threshold: {metric: co}"))
    assert message == ("rule garage-co: node 'high' field 'threshold': give 'above', 'below', "
                       "'equals' or 'not_equals'")
    message = _refused(_with("above: 50", "above: fifty"))
    assert message.startswith("rule garage-co: node 'high' field 'threshold.above': ")
    message = _refused(_with("    threshold:", "    colour: red\n    threshold:"))
    assert message.startswith("rule garage-co: node 'high' field 'colour': Extra inputs")


def test_a_node_has_exactly_one_kind() -> None:
    message = _refused(_with("    threshold: {metric: co, above: 50}",
                             "    threshold: {metric: co, above: 50}\n"
                             "    for_duration: {seconds: 30}"))
    assert "node 'high': a node has exactly one of" in message
    assert "this one has threshold, for_duration" in message


def test_unknown_placeholder_in_a_title() -> None:
    text = GOOD + ("  - id: alarm\n    after: high\n    raise_alarm: {type: co, "
                   "severity: major, title: {zh-CN: 'CO {value}', en: 'CO {valeu}'}}\n")
    assert _refused(text).startswith(
        "rule garage-co: node 'alarm' field 'raise_alarm.title.en': unknown placeholder {valeu}")


def test_a_text_missing_a_language_is_refused_naming_rule_node_and_field() -> None:
    text = GOOD + ("  - id: alarm\n    after: high\n    raise_alarm: {type: co, "
                   "severity: major, title: {zh-CN: '一氧化碳 {value} ppm'}}\n")
    assert _refused(text) == (
        "rule garage-co: node 'alarm' field 'raise_alarm.title.en': the en text is missing; "
        "rule texts are written in zh-CN and en")
    text = GOOD + ("  - id: order\n    after: high\n    work_order: {kind: co, role: engineer, "
                   "title: {en: 'Check the fans'}}\n")
    assert _refused(text) == (
        "rule garage-co: node 'order' field 'work_order.title.zh-CN': the zh-CN text is "
        "missing; rule texts are written in zh-CN and en")


def test_a_text_in_one_language_only_is_refused() -> None:
    text = GOOD + ("  - id: tell\n    after: high\n    notify: {to: [security_desk], "
                   "message: 'CO is high'}\n")
    assert _refused(text) == (
        "rule garage-co: node 'tell' field 'notify.message': write the text in every "
        "language: {zh-CN: '...', en: '...'}")


def test_every_library_text_is_in_both_languages_with_the_same_placeholders() -> None:
    import string
    for rule in load_directory(library_dir()):
        for key, by_lang in rule.texts().items():
            assert set(by_lang) == {"zh-CN", "en"}, key
            names = [{n for _, n, _, _ in string.Formatter().parse(t) if n}
                     for t in by_lang.values()]
            assert names[0] == names[1], key


def test_family_needs_a_resident() -> None:
    text = GOOD + "  - id: tell\n    after: high\n    notify: {to: [family], message: {zh-CN: 你好, en: hi}}\n"
    assert _refused(text) == (
        "rule garage-co: node 'tell' field 'notify.to': notifying the family needs residents: "
        "key the rule by resident, or enrich with residents before it")


def test_when_cleared_needs_a_condition_that_can_clear() -> None:
    text = """
    id: dog
    title: dog
    domain: environment
    nodes:
      - id: cam
        source: {device_types: [ai_camera], classes: [unleashed_dog]}
      - id: off
        after: cam
        when: cleared
        clear_alarm: {type: dog}
    """
    assert "node 'off' field 'when': 'when: cleared' needs a condition" in _refused(text)


def test_unknown_detection_class_and_event() -> None:
    text = """
    id: cams
    title: cams
    domain: safety
    nodes:
      - id: cam
        source: {device_types: [ai_camera], classes: [ufo]}
      - id: a
        after: cam
        raise_alarm: {type: x, severity: info, title: {zh-CN: x, en: x}}
    """
    assert "node 'cam' field 'source.classes.0': unknown detection class 'ufo'" in \
        _refused(text)
    text = text.replace("classes: [ufo]", "events: [door_forced]")
    assert "node 'cam' field 'source.events.0': no device type of the source has event " \
           "'door_forced'; expected one of ['detection']" in _refused(text)


def test_yaml_errors_and_non_mappings() -> None:
    assert "not valid YAML" in _refused("id: [unclosed")
    assert "a rule file holds one mapping" in _refused("- just a list")


def test_duplicate_ids_across_files(tmp_path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(RuleError, match="rule garage-co: defined twice: in .*a.yaml and in "
                                        ".*b.yaml"):
        load_directory(tmp_path)


def test_the_shipped_library_loads_and_covers_the_five_domains() -> None:
    rules = load_directory(library_dir())
    domains = {r.rule.domain for r in rules}
    assert domains == {"safety", "environment", "service", "activity", "equipment"}
    for rule in rules:  # each file sits in the folder of its domain
        assert rule.rule.domain in rule.text
    assert len({r.id for r in rules}) == len(rules) >= 30


def test_twin_rules_check_reports_the_first_error_in_one_line(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    twin = str(Path(sys.executable).parent / "twin")
    (tmp_path / "safety").mkdir()
    (tmp_path / "safety" / "co.yaml").write_text(_with("metric: co,", "metric: co2,"))
    done = subprocess.run([twin, "rules", "check", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "error: rule garage-co: node 'high' field 'threshold.metric': co_sensor has no " \
           "metric 'co2'" in " ".join(done.stderr.split())
    (tmp_path / "safety" / "co.yaml").write_text(GOOD)
    done = subprocess.run([twin, "rules", "check", str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0 and "1 rules are valid" in done.stdout
