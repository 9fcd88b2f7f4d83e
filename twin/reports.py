"""Residents' reports (报事): the service list, what a report must hold, and the work order
it becomes.

Pure, apart from reading the service list it is given. A report is a category of the
service list (`twin/service_catalogue.yaml`), the resident's own words, an optional photo
and a place (picked on the map or their unit's). The category says who goes first (the
staff role and skill the dispatcher looks for) and, through the order's kind and
`twin/escalation.yaml`, which city department the order reaches at the top tier; the
place is snapped to the walkway graph, so that a place nobody can walk to is refused
before an order is opened. The order is then dispatched and escalated like a rule's.

The order's title is a key and parameters (``report/<category>``, the building's id):
the resident's words stay in the report, shown to the staff who handle it, and never go
into a title, a notification or a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from shapely.geometry import Point

from twin.config_errors import describe
from twin.errors import TwinError
from twin.escalation import EscalationConfig
from twin.walkgraph import WalkGraph, snap
from twin.work_orders import PRIORITIES, STAFF_ROLES, WorkOrderSpec
from twin.yaml12 import load_mapping

#: The shipped service list.
CATALOGUE_PATH = Path(__file__).with_name("service_catalogue.yaml")
#: The longest report text kept (a few paragraphs on a phone).
MAX_TEXT_CHARS = 1000
#: The shortest: a report must say something.
MIN_TEXT_CHARS = 2
#: How many reports one resident may make in `RATE_WINDOW` (a flood is refused, politely).
RATE_LIMIT = 5
RATE_WINDOW = timedelta(hours=1)
#: A place further than this from any walkway is not in the community.
MAX_SNAP_M = 150.0
#: The longest rating comment.
MAX_COMMENT_CHARS = 500
#: Order states a report may be rated in.
RATEABLE = frozenset({"resolved", "closed"})
#: The rule id the catalogue's title templates are stored under (``rule_text``).
TEXTS_OWNER = "service-catalogue"
DOMAINS = ("safety", "environment", "service", "activity", "equipment")

PlaceSource = Literal["unit", "map"]


class CatalogueError(TwinError):
    """The service list is not valid: the message names the file and the key."""


class Refused(TwinError):
    """Input that cannot be kept as sent, said as a label key of `dashboard.labels.reports`
    and its values, so that each reader gets it in their language (the exception's own
    text, for logs, is the key and the values)."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(f"{key} {values}" if values else key)
        self.key = key
        self.values = values


class ReportRefused(Refused):
    """A report, or its rating, that cannot be kept as sent."""


class Category(BaseModel):
    """One entry of the service list."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: dict[str, str]
    role: str
    skill: str | None = None
    kind: str
    department: str
    domain: str
    priority: str = "normal"
    due_min: int = Field(default=480, gt=0)

    @model_validator(mode="after")
    def _known(self) -> Category:
        if set(self.name) != {"zh-CN", "en"}:
            raise ValueError("name needs zh-CN and en, and nothing else")
        if self.role not in STAFF_ROLES:
            raise ValueError(f"unknown role {self.role!r}; expected one of {STAFF_ROLES}")
        if self.priority not in PRIORITIES:
            raise ValueError(f"unknown priority {self.priority!r}; expected one of {PRIORITIES}")
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}; expected one of {DOMAINS}")
        return self


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: dict[str, Category] = Field(min_length=1)

    def get(self, category: object) -> tuple[str, Category]:
        """The category a browser named, or a ReportRefused."""
        if not isinstance(category, str) or category not in self.categories:
            raise ReportRefused("rpt.err.category")
        return category, self.categories[category]

    def texts(self) -> dict[str, dict[str, str]]:
        """The order titles' templates by key (stored in ``rule_text``, rendered per viewer):
        a report's, and an operator's hand-made order of the category."""
        reports = {title_key(cid): {
            "zh-CN": f"居民报事：{c.name['zh-CN']}（{{building_name}}）",
            "en": f"Resident's report: {c.name['en']} ({{building_name}})"}
            for cid, c in self.categories.items()}
        manual = {manual_key(cid): {
            "zh-CN": f"人工工单：{c.name['zh-CN']}（{{building_name}}）",
            "en": f"Hand-made order: {c.name['en']} ({{building_name}})"}
            for cid, c in self.categories.items()}
        return reports | manual


def title_key(category: str) -> str:
    return f"report/{category}"


def manual_key(category: str) -> str:
    return f"manual/{category}"


def parse_catalogue(text: str, *, origin: str, escalation: EscalationConfig) -> Catalogue:
    """The service list in a YAML text, checked against the escalation tiers: each category's
    kind must lead to the department it names."""
    data = load_mapping(text, origin=origin, error=CatalogueError, holds="categories")
    try:
        catalogue = Catalogue.model_validate(data)
    except ValidationError as e:
        raise CatalogueError(describe(origin, e)) from None
    top = next((t for t in escalation.tiers if t.external), None)
    for cid, c in catalogue.categories.items():
        if top is None:
            continue
        found, _ = escalation.department_for(top, c.kind)
        if found != c.department:
            raise CatalogueError(
                f"{origin}: categories.{cid}.department: kind {c.kind!r} reaches {found!r} "
                f"in the escalation tiers, not {c.department!r}")
    return catalogue


@lru_cache(maxsize=4)
def load_catalogue(path: str = str(CATALOGUE_PATH)) -> Catalogue:
    from twin.escalation import DEFAULT_PATH, load_config

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise CatalogueError(f"{path}: cannot read: {e.strerror}") from None
    return parse_catalogue(text, origin=path, escalation=load_config(DEFAULT_PATH))


def checked_text(text: object) -> str:
    """The resident's words, trimmed, or a ReportRefused."""
    if not isinstance(text, str) or len(text.strip()) < MIN_TEXT_CHARS:
        raise ReportRefused("rpt.err.text_short")
    if len(text) > MAX_TEXT_CHARS:
        raise ReportRefused("rpt.err.text_long", chars=MAX_TEXT_CHARS)
    return text.strip()


def check_rate(recent: int, *, limit: int = RATE_LIMIT) -> None:
    """Refuse a report past the resident's allowance (``recent``: their reports in the
    window, this one not counted)."""
    if recent >= limit:
        raise ReportRefused("rpt.err.rate", limit=limit,
                            minutes=int(RATE_WINDOW.total_seconds() // 60))


def checked_rating(stars: object, comment: object, *, state: str | None, rated: bool
                   ) -> tuple[int, str]:
    """A rating of 1-5 with an optional comment, once, for a report whose order is done."""
    if rated:
        raise ReportRefused("rpt.err.rated")
    if state not in RATEABLE:
        raise ReportRefused("rpt.err.not_done")
    if isinstance(stars, bool) or not isinstance(stars, int | str) \
            or not str(stars).strip().isdecimal() or not 1 <= int(stars) <= 5:
        raise ReportRefused("rpt.err.stars")
    comment = comment if isinstance(comment, str) else ""
    if len(comment) > MAX_COMMENT_CHARS:
        raise ReportRefused("rpt.err.text_long", chars=MAX_COMMENT_CHARS)
    return int(stars), comment.strip()


def checked_point(lon: object, lat: object) -> Point:
    """A place a browser sent, as a point, or a ReportRefused."""
    try:
        x, y = float(lon), float(lat)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ReportRefused("rpt.err.place") from None
    if not (np.isfinite(x) and np.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        raise ReportRefused("rpt.err.place")
    return Point(x, y)


@dataclass(frozen=True, slots=True)
class Snapped:
    """Where a report's place meets the walkway: the spot on it and how far off it lies."""

    point: Point
    offset_m: float
    edge_id: str


def snap_place(graph: WalkGraph, place: Point, *, max_m: float = MAX_SNAP_M) -> Snapped:
    """The place snapped to the nearest walkway, or a ReportRefused when it is further than
    ``max_m`` from every walkway (outside the community)."""
    s = snap(graph, [place])[0]
    if s.offset_m > max_m:
        raise ReportRefused("rpt.err.far", metres=round(max_m))
    line = graph.edge_lines[s.edge]
    length = float(shapely.length(line))
    fraction = s.along_m / float(graph.edge_length[s.edge]) if graph.edge_length[s.edge] else 0.0
    spot = shapely.line_interpolate_point(line, fraction * length)
    lon, lat = graph.to_lonlat(np.array([[spot.x, spot.y]]))[0]
    return Snapped(Point(float(lon), float(lat)), float(s.offset_m), str(graph.edge_ids[s.edge]))


@dataclass(frozen=True, slots=True)
class Where:
    """The report's place: what the twin knows there (unit and building when from the unit,
    the building the point falls in or nearest when picked on the map)."""

    community_id: str
    point: Point
    source: PlaceSource
    building_id: str | None
    grid_id: str | None
    unit_id: str | None = None


def order_spec(category_id: str, category: Category, where: Where, *, resident_id: str,
               at: datetime) -> WorkOrderSpec:
    """The work order a report becomes: the category's staff, kind and due time, titled by
    key (the building by id) and described as a resident's report (not their words)."""
    return WorkOrderSpec(
        community_id=where.community_id, kind=category.kind, domain=category.domain,
        role=category.role, skill=category.skill, priority=category.priority,
        location=where.point, at=at, due_in=timedelta(minutes=category.due_min),
        title=f"resident report: {category_id}", description=f"resident report ({category_id})",
        grid_id=where.grid_id, building_id=where.building_id, unit_id=where.unit_id,
        resident_id=resident_id, text_key=title_key(category_id),
        text_params={"building": where.building_id} if where.building_id else {})
