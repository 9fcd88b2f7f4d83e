"""A scenario: a named overlay on the live twin, never applied to it.

It says what would be different (paths closed or added, staff away, added,
moved or on other shifts, charging piles added, rule parameters changed);
the analyses read the live twin and lay the overlay over their own copies.
Validated with pydantic so that a bad scenario file is refused with the
field named.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from twin.walkgraph import Variant, WalkGraph, variant
from twin.work_orders import STAFF_ROLES

LonLat = tuple[float, float]
Id = Annotated[str, Field(min_length=1, max_length=128)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AddedPath(_Strict):
    """A new walkway; each end joins the nearest existing walkway."""

    coords: list[LonLat] = Field(min_length=2)
    kind: str = "footway"


class AddedStaff(_Strict):
    id: Id
    role: str
    shift: str = "day"
    skills: tuple[str, ...] = ()
    position: LonLat

    @field_validator("role")
    @classmethod
    def _known_role(cls, role: str) -> str:
        if role not in STAFF_ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(STAFF_ROLES)}")
        return role


class Scenario(_Strict):
    """What would be different. Every field is optional: an empty scenario is the baseline."""

    name: Id
    description: str = ""
    closed_edges: tuple[Id, ...] = Field(default=(), description="walk_edge ids closed")
    added_paths: tuple[AddedPath, ...] = ()
    staff_removed: tuple[Id, ...] = Field(default=(), description="staff ids on leave or gone")
    staff_added: tuple[AddedStaff, ...] = ()
    staff_moved: dict[Id, LonLat] = Field(default_factory=dict,
                                          description="staff id -> new usual position")
    shift_changes: dict[Id, str] = Field(default_factory=dict, description="staff id -> shift")
    piles_added: dict[Id, int] = Field(default_factory=dict,
                                       description="ev_shed facility id -> piles added (or removed, < 0)")
    rule_params: dict[Id, dict[str, Any]] = Field(
        default_factory=dict, description="rule id -> parameter -> new value")

    @property
    def is_baseline(self) -> bool:
        return not (self.closed_edges or self.added_paths or self.staff_removed
                    or self.staff_added or self.staff_moved or self.shift_changes
                    or self.piles_added or self.rule_params)


BASELINE = Scenario(name="baseline", description="the twin as it is")


def scenario_network(graph: WalkGraph, scenario: Scenario) -> Variant:
    """The live walkway graph as ``scenario`` would have it: closed edges out, paths in.

    The live graph is never touched; an unknown edge id is refused with the
    scenario named.
    """
    try:
        return variant(graph, closed=scenario.closed_edges,
                       added=[(p.coords, p.kind) for p in scenario.added_paths])
    except ValueError as e:
        raise ValueError(f"scenario {scenario.name!r}: {e}") from e
