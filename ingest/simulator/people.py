"""The residents: who comes through a door, and who is no longer seen.

Doors, gates and chargers name a resident as the ``subject`` of their events;
:class:`People` draws one by how active their age band is, from the
residents of a building (or of the whole community). A resident hidden by
the ``elderly-not-seen`` or ``elderly-not-back`` incident is never drawn again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ingest.simulator.clock import daily
from ingest.simulator.incidents import Active
from ingest.simulator.world import Domain, World, optional

#: Comings and goings (gates, doors, lifts, cameras, street noise): peaks at 08:00 and
#: 18:00, mean 1, one value per local hour.
ACTIVITY = daily([0.08, 0.04, 0.02, 0.02, 0.03, 0.12, 0.5, 1.6, 2.6, 1.2, 0.8, 0.9,
                  1.0, 0.8, 0.7, 0.8, 1.0, 1.9, 2.6, 1.6, 1.1, 0.8, 0.45, 0.2], mean=1.0)
#: Who goes through doors how often, by age band (relative).
AGE_ACTIVITY = {"0-6": 0.3, "7-17": 1.0, "18-59": 1.2, "60-79": 0.8, "80+": 0.4}


class People(Domain):
    """The residents of the community, weighted by how much they come and go."""

    def __init__(self, world: World) -> None:
        super().__init__(world)
        r = world.community.residents
        self._residents = r
        self.hidden: set[str] = set()
        self.building_of = dict(zip(r["id"], optional(r["building_id"])))
        self.unit_of = dict(zip(r["id"], r["unit_id"]))
        #: Flats with one resident: nobody else moves there when they are not seen.
        self.alone = set(r["unit_id"].value_counts().loc[lambda c: c == 1].index)
        self._weights = r["age_band"].map(AGE_ACTIVITY).fillna(1.0).to_numpy(dtype=float)
        self._pools: dict[object, tuple[np.ndarray, np.ndarray]] = {}
        self._build_pools()

    def begin(self, active: Active) -> None:
        if active.incident.name in ("elderly-not-seen", "elderly-not-back"):
            self.hidden.add(active.incident.place)
            self._build_pools()

    def subject(self, building: object) -> str | None:
        """A resident of ``building`` (anyone, for None or a building with nobody), by activity."""
        ids, cdf = self._pools.get(building, self._pools[None])
        if not len(ids):
            ids, cdf = self._pools[None]
            if not len(ids):
                return None
        rng = self.world.rng
        return str(ids[min(int(np.searchsorted(cdf, rng.random(), side="right")),
                           len(ids) - 1)])

    def _build_pools(self) -> None:
        r = self._residents
        keep = ~r["id"].isin(self.hidden).to_numpy()
        ids = r["id"].to_numpy(dtype=object)[keep]
        weights = self._weights[keep]
        buildings = optional(r["building_id"])[keep]
        self._pools = {None: (ids, _cdf(weights))}
        for b in pd.unique(buildings):
            mine = buildings == b
            self._pools[b] = (ids[mine], _cdf(weights[mine]))


def _cdf(weights: np.ndarray) -> np.ndarray:
    total = weights.sum()
    return np.cumsum(weights) / total if total > 0 else np.zeros(0)
