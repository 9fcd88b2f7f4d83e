"""What the twin itself says (dispatch, escalation, settling), as keys and parameters.

The rules' texts live in the rule files; these are the system's own lines in
an order's history and in the notifications it writes: who was sent and why,
why an order climbed a tier, why an order was settled. Each is kept as a key
and parameters (ids and numbers, never a name) beside an English line for
logs, and rendered for each reader by `twin.texts` like a rule's text.

A :class:`Said` is a ``str`` (the English line) that also carries its key and
parameters, so code that only wants the words keeps working. A parameter may
itself be a said thing (``{"key": ..., "params": ...}``), rendered first: the
reason inside "escalated to the duty officer: <reason>".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

#: Every system key's templates, in every language (`twin.texts.LANGS`).
SYSTEM_TEXTS: dict[str, dict[str, str]] = {
    # dispatch
    "sys/assigned-fix": {
        "zh-CN": "按步行距离最近的{role}（{distance_m} 米，约 {eta_min} 分钟），从其当前定位出发",
        "en": "nearest {role} by walkway ({distance_m} m, about {eta_min} min), "
              "from their position fix"},
    "sys/assigned-post": {
        "zh-CN": "按步行距离最近的{role}（{distance_m} 米，约 {eta_min} 分钟），从其岗位出发",
        "en": "nearest {role} by walkway ({distance_m} m, about {eta_min} min), "
              "from their post"},
    "sys/nobody-can-go": {
        "zh-CN": "暂无可派人员：{count} 名{role}都不能前往",
        "en": "nobody can be sent: none of the {count} {role} can go"},
    "sys/no-such-staff": {
        "zh-CN": "暂无可派人员：没有{role}",
        "en": "nobody can be sent: there is no {role}"},
    # why an order climbs
    "sys/unassigned": {"zh-CN": "{minutes} 分钟内无人接单",
                       "en": "nobody took it within {minutes} min"},
    "sys/not-accepted": {"zh-CN": "{minutes} 分钟内未接单",
                         "en": "not accepted within {minutes} min"},
    "sys/not-arrived": {"zh-CN": "接单后 {minutes} 分钟内未到场",
                        "en": "not on site within {minutes} min of accepting"},
    "sys/overdue": {"zh-CN": "超过处理时限未解决", "en": "not resolved by its due time"},
    "sys/tier-timeout": {"zh-CN": "本层级 {minutes} 分钟内未解决",
                         "en": "not resolved within {minutes} min at this tier"},
    "sys/escalated-to": {"zh-CN": "升级至{tier_name}：{why}",
                         "en": "escalated to {tier_name}: {why}"},
    "sys/no-tier-above": {"zh-CN": "{why}；{tier_name}之上暂无层级可接手",
                          "en": "{why}; no tier above {tier_name} can take it now"},
    # an order's alarm cleared
    "sys/alarm-cleared": {"zh-CN": "告警 #{alarm} 已解除：{reason}",
                          "en": "alarm #{alarm} cleared: {reason}"},
    # an alarm nobody acknowledged
    "sys/alarm-escalated": {
        "zh-CN": "告警 #{alarm} 已升至第 {level} 级：{minutes} 分钟内无人确认",
        "en": "Alarm #{alarm} escalated to level {level}: not acknowledged within "
              "{minutes} min"},
    # staff roles, said inside the lines above
    "sys/role/grid_worker": {"zh-CN": "网格员", "en": "grid worker"},
    "sys/role/security": {"zh-CN": "保安", "en": "security guard"},
    "sys/role/cleaning": {"zh-CN": "保洁员", "en": "cleaner"},
    "sys/role/engineer": {"zh-CN": "工程人员", "en": "engineer"},
    "sys/role/manager": {"zh-CN": "物业经理", "en": "manager"},
    "sys/role/duty_officer": {"zh-CN": "值班主管", "en": "duty officer"},
    "sys/role/staff": {"zh-CN": "人员", "en": "staff"},
}


class Said(str):
    """An English line that also carries the key and parameters it is rendered from."""

    key: str
    params: dict[str, Any]

    def __new__(cls, text: str, key: str, **params: Any) -> Self:
        if key not in SYSTEM_TEXTS:
            raise KeyError(f"no system text {key!r}")
        said = super().__new__(cls, text)
        said.key = key
        said.params = params
        return said

    def stored(self) -> dict[str, Any]:
        """The key and parameters, as kept in a row's detail (nested ones too)."""
        return {"key": self.key, "params": {k: stored(v) for k, v in self.params.items()}}


def stored(value: Any) -> Any:
    """A parameter as kept: a said thing as its key and parameters, anything else as is."""
    return value.stored() if isinstance(value, Said) else value


def role_said(role: str | None) -> Said:
    """A staff role, said in the reader's language."""
    key = f"sys/role/{role}" if f"sys/role/{role}" in SYSTEM_TEXTS else "sys/role/staff"
    return Said(role or "staff", key)



def nested(params: Mapping[str, Any] | None) -> list[tuple[str, Mapping[str, Any]]]:
    """Every (key, params) said inside ``params``, at any depth."""
    found: list[tuple[str, Mapping[str, Any]]] = []
    for value in (params or {}).values():
        if isinstance(value, Mapping) and "key" in value:
            inner = value.get("params") or {}
            found.append((str(value["key"]), inner))
            found += nested(inner)
    return found


def _with_resident_texts() -> None:
    """The resident app's texts (`twin.resident_texts`), kept in their own module."""
    from twin.resident_texts import RESIDENT_TEXTS

    SYSTEM_TEXTS.update(RESIDENT_TEXTS)


_with_resident_texts()
