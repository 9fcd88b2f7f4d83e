"""Reading the twin's YAML files (rules, escalation tiers, delivery routes) the same way.

YAML 1.2 booleans only (true/false): PyYAML's YAML 1.1 reads on/off/yes/no as
booleans, which turns a node named ``off`` or a state ``equals: on`` into
true/false. Each file holds one mapping, and an error names the file.
"""

from __future__ import annotations

import re
from typing import Any

import yaml


class Yaml12Loader(yaml.SafeLoader):
    """A SafeLoader with YAML 1.2's booleans."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))


def load_mapping(text: str, *, origin: str, holds: str,
                 error: type[Exception]) -> dict[str, Any]:
    """The one mapping a file holds, or ``error`` naming ``origin`` (and what it should hold)."""
    try:
        data = yaml.load(text, Loader=Yaml12Loader)
    except yaml.YAMLError as e:
        raise error(f"{origin}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise error(f"{origin}: the file holds one mapping ({holds})")
    return data
