"""What an import did, feature by feature and layer by layer, for the summary table.

Nothing is dropped without a line here: every feature the import did not
take as it was gets a :class:`Note` naming its layer, its source id and why.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: Kinds of note, in the order the summary shows them.
KINDS = ("repaired", "skipped", "default", "warning")


@dataclass(frozen=True, slots=True)
class Note:
    """One feature (or one layer, or the graph) that needs the reader's attention."""

    layer: str
    feature: str
    kind: str
    why: str


@dataclass(slots=True)
class LayerCount:
    """Features of one source layer: read, and what became of them."""

    layer: str
    role: str
    read: int = 0
    imported: int = 0
    repaired: int = 0
    skipped: int = 0
    defaulted: int = 0


@dataclass(slots=True)
class ImportReport:
    """Everything the summary table shows."""

    layers: list[LayerCount] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: Rows written per table: table -> {'inserted', 'updated', 'unchanged', 'deleted'}.
    written: dict[str, dict[str, int]] = field(default_factory=dict)
    #: The walkway graph's figures (see walkgraph.GraphReport), if one was built.
    graph: object | None = None

    def layer(self, name: str, role: str, read: int) -> LayerCount:
        count = LayerCount(name, role, read=read)
        self.layers.append(count)
        return count

    def add_statuses(self, count: LayerCount, ids: np.ndarray, status: np.ndarray) -> None:
        """Record the per-feature statuses of :mod:`gis_data.importer.repair` for one layer."""
        for feature, text in zip(ids, status):
            if text is None:
                continue
            kind, _, why = str(text).partition(": ")
            self.notes.append(Note(count.layer, str(feature), kind, why))
            if kind == "repaired":
                count.repaired += 1
            elif kind == "skipped":
                count.skipped += 1

    def note(self, layer: str, feature: str, kind: str, why: str) -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown note kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.notes.append(Note(layer, feature, kind, why))

    def counts_by_kind(self) -> Counter[str]:
        return Counter(note.kind for note in self.notes)

    def skipped(self) -> list[Note]:
        return [note for note in self.notes if note.kind == "skipped"]
