"""Staff at work: the simulated staff answer the orders the twin gives them.

A real staff member reads the order on their phone, accepts it, walks there,
reports they have arrived and, once done, resolves it. The simulated ones do
the same through the service function behind the worker's phone page
(:func:`twin.store.operations.act_on_work_order`), as themselves, on the
simulated clock: they look at their phone within :data:`REACT_S` of the
assignment, take the dispatcher's walking time to get there and work
:data:`WORK_S` on site (finishing a minute before the order's due time when it
has one, as staff work to deadlines). The delays come from the order id, so a replay acts
the same. Without it nobody ever accepts an order in a simulation and every
order climbs the escalation tiers.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from twin.errors import TwinError
from twin.store import operations as ops
from twin.store.reads.work_orders import in_hand
from twin.work_orders import Actor

log = logging.getLogger(__name__)

#: Seconds between an assignment and the staff member accepting it (inside the five
#: minutes the escalation tiers give).
REACT_S = (45.0, 210.0)
#: Minutes on site before the job is done.
WORK_S = (8 * 60.0, 25 * 60.0)
#: An order with a due time is done this long before it, however long the job would take.
DUE_MARGIN = timedelta(minutes=1)
#: The least time on site.
MIN_WORK_S = 120.0
#: The walk when the dispatcher gave no walking time (s).
DEFAULT_WALK_S = 300.0
#: What the simulated staff member writes when resolving (their own words, in Chinese).
RESOLVED_NOTE = "已处理（模拟人员）"


@dataclass(slots=True)
class StaffAtWork:
    """The staff of one community, working their orders."""

    community_id: str

    def step(self, conn: psycopg.Connection, now: datetime) -> Counter[str]:
        """Take every step that is due by ``now`` (accept, arrive, resolve); each at the
        simulated moment it falls due. Returns the steps taken, by action."""
        done: Counter[str] = Counter()
        for order in in_hand(conn, self.community_id):
            action, due = _next_step(order)
            if due > now:
                continue
            staff = order["assignee_id"]
            try:
                ops.act_on_work_order(conn, order["id"], action,
                                      actor=Actor(name=staff, role="staff", staff_id=staff),
                                      at=due, note=RESOLVED_NOTE if action == "resolve" else "")
            except TwinError as e:  # moved meanwhile (escalated, taken back): next time
                log.info("order %s: %s", order["id"], e)
                continue
            done[action] += 1
        return done


def _next_step(order: dict[str, Any]) -> tuple[str, datetime]:
    oid, since = int(order["id"]), order["updated_at"]
    if order["state"] == "assigned":
        return "accept", since + timedelta(seconds=_spread(oid, REACT_S))
    if order["state"] == "accepted":
        walk = order["eta_s"] if order["eta_s"] is not None else DEFAULT_WALK_S
        return "arrive", since + timedelta(seconds=float(walk))
    done = since + timedelta(seconds=_spread(oid * 7919, WORK_S))
    due = order.get("due_at")
    if due is not None and done > due - DUE_MARGIN:
        # working to the order's due time, as staff do: done a little before it
        done = max(since + timedelta(seconds=MIN_WORK_S), due - DUE_MARGIN)
    return "resolve", done


def _spread(n: int, bounds: tuple[float, float]) -> float:
    """A value within ``bounds`` that depends only on ``n`` (a replay does the same)."""
    lo, hi = bounds
    return lo + (hi - lo) * ((n * 2654435761) % 1000) / 1000.0
