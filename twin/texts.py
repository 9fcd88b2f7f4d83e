"""Words for the viewer: a stored text (key and parameters) rendered in a language, masked.

Alarms, work orders and notifications keep what a rule said as a key
(``garage-co/alarm``: the rule and its node) and parameters: ids (device,
building, facility, unit, resident) and values (``value``, ``hours``,
``count``), never a name. The templates live in the rule files, one per
language (`twin.rules.schema.LANGS`), and are stored per key in
``rule_text``. Rendering happens when somebody reads:

- in the viewer's language (zh-CN when it has none, or the text lacks it);
- with names looked up at render time (`Names`), so a renamed building reads
  right in old alarms;
- a resident's name whole only for a viewer who may see residents whole
  (`Viewer.whole`: an admin, the grid worker of that grid, a family contact);
  everybody else gets `twin.privacy.mask_name`.

Pure, no I/O: the dashboard, the notification worker and the exports each
pass the templates, the names and the viewer. A row kept before texts had
keys (no templates) renders as its stored ``fallback`` text.

    >>> render({"zh-CN": "{resident_name} 已 {hours} 小时未出门", "en": "..."},
    ...        {"resident": "r1", "hours": 36}, viewer=Viewer("zh-CN"),
    ...        names=Names(residents={"r1": "张三丰"}))
    '张** 已 36 小时未出门'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from twin.privacy import mask_name

#: The languages texts are written in; the first is the default (and the speakers').
LANGS: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LANG = LANGS[0]

#: Placeholders that are names, and the id parameter each is looked up by.
NAME_OF: dict[str, str] = {
    "resident_name": "resident",
    "building_name": "building",
    "facility_name": "facility",
    "device_name": "device",
    "unit_number": "unit",
}
#: What a name that cannot be found reads.
UNKNOWN = "?"


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who reads: their language, and whether they may see residents' names whole."""

    lang: str = DEFAULT_LANG
    whole: bool = False


@dataclass(frozen=True, slots=True)
class Names:
    """Names by id, for the ids the rendered texts mention (`ids_in`)."""

    resident: Mapping[str, str] = field(default_factory=dict)
    building: Mapping[str, str] = field(default_factory=dict)
    facility: Mapping[str, str] = field(default_factory=dict)
    device: Mapping[str, str] = field(default_factory=dict)
    #: a unit's number as said: '1203'
    unit: Mapping[str, str] = field(default_factory=dict)

    def of(self, kind: str, id_: Any) -> str | None:
        if id_ is None:
            return None
        found: Mapping[str, str] = getattr(self, kind)
        return found.get(str(id_))


def params_of(context: Mapping[str, Any]) -> dict[str, Any]:
    """What a firing keeps for its texts: its ids and values, without the names in it."""
    return {k: v for k, v in context.items() if k not in NAME_OF and v is not None}


def ids_in(params: Iterable[Mapping[str, Any]]) -> dict[str, set[str]]:
    """The ids of every kind that `Names` needs to render these texts (said ones inside
    them too)."""
    wanted: dict[str, set[str]] = {kind: set() for kind in NAME_OF.values()}
    todo = list(params)
    while todo:
        p = todo.pop()
        todo += [v["params"] for v in p.values()
                 if isinstance(v, Mapping) and "key" in v and v.get("params")]
        for kind, found in wanted.items():
            if p.get(kind) and not isinstance(p[kind], Mapping):
                found.add(str(p[kind]))
    return wanted


def render(templates: Mapping[str, str] | None, params: Mapping[str, Any] | None, *,
           viewer: Viewer, names: Names, fallback: str = "") -> str:
    """One text for one viewer; ``fallback`` when there are no templates (an old row).

    Parameters
    ----------
    templates
        The text in each language, ``{"zh-CN": ..., "en": ...}``.
    params
        The stored parameters: ids and values.
    viewer
        The reader's language and whether residents' names are shown whole.
    names
        Names by id (looked up by the caller for `ids_in` of the texts).
    fallback
        What to show when the row has no key (kept before texts had keys).
    """
    if not templates:
        return fallback
    template = templates.get(viewer.lang) or templates.get(DEFAULT_LANG) \
        or next(iter(templates.values()))
    values = _Values(params or {})
    for placeholder, kind in NAME_OF.items():
        name = names.of(kind, values.get(kind))
        if name is None:
            continue
        if kind == "resident" and not viewer.whole:
            name = mask_name(name)
        values[placeholder] = name
    return template.format_map(values)


class _Values(dict[str, Any]):
    """Parameters for str.format_map; a name without a value reads '?'."""

    def __getitem__(self, key: str) -> Any:
        value = dict.get(self, key)
        return UNKNOWN if value is None else value


@dataclass(frozen=True, slots=True)
class Wording:
    """Templates by key and the names their ids stand for: all a page needs to render."""

    templates: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    names: Names = field(default_factory=Names)

    def render(self, key: str | None, params: Mapping[str, Any] | None, *, viewer: Viewer,
               fallback: str = "") -> str:
        """`render` of the text stored under ``key``; ``fallback`` for a row without one.

        A parameter that is itself a said thing (``{"key": ..., "params": ...}``, see
        `twin.system_texts`) is rendered first, for the same viewer."""
        if params and any(isinstance(v, Mapping) and "key" in v for v in params.values()):
            params = {k: (self.render(str(v["key"]), v.get("params"), viewer=viewer,
                                      fallback=str(v.get("text", "")))
                          if isinstance(v, Mapping) and "key" in v else v)
                      for k, v in params.items()}
        return render(self.templates.get(key) if key else None, params, viewer=viewer,
                      names=self.names, fallback=fallback)

    def names_resident(self, key: str | None, params: Mapping[str, Any] | None) -> str | None:
        """The resident whose name this text would show, if any (for the audit log)."""
        if not key or not params or not params.get("resident"):
            return None
        texts = self.templates.get(key) or {}
        return str(params["resident"]) if any(
            "{resident_name}" in t for t in texts.values()) else None
