"""How simulated actuators take commands: the ``cmd`` payload, and manual control.

A real fan, valve or home hub runs on its own automation (a schedule, a CO
threshold) and also obeys remote commands. The rule that has worked for
building automation for decades is "the last command wins": a command sets
the state, and the automation takes over again at its next change of mind
(the next rush hour, the next watering slot, CO crossing its threshold).
:class:`Override` keeps that state per device, so the same seed without
commands gives exactly the stream it always gave.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import ValidationError

from ingest import contract

#: The longest detail an ack may carry (contract.Ack).
DETAIL_MAX = 500


class Override:
    """Manual on/off states of some devices, each held until its automation changes.

    ``state`` is -1 where the automation rules, else 0 (off) or 1 (on);
    ``auto_then`` is what the automation said when the command came.
    """

    def __init__(self, n: int) -> None:
        self.state = np.full(n, -1, dtype=int)
        self.auto_then = np.zeros(n, dtype=bool)

    def set(self, i: int, on: bool, auto_now: bool) -> None:
        self.state[i] = int(on)
        self.auto_then[i] = auto_now

    def apply(self, rows: np.ndarray, auto: np.ndarray) -> np.ndarray:
        """The effective states of ``rows`` given the automation's ``auto``.

        Where the automation changed its mind since the command, the
        override ends and the automation rules again.
        """
        auto = np.asarray(auto, dtype=bool)
        held = self.state[rows] >= 0
        if not held.any():
            return auto
        ended = held & (auto != self.auto_then[rows])
        self.state[rows[ended]] = -1
        held &= ~ended
        return np.where(held, self.state[rows] == 1, auto)

    def holds(self, rows: np.ndarray) -> np.ndarray:
        return self.state[rows] >= 0


def parse(payload: bytes) -> contract.Command | None:
    """The command in a ``cmd`` payload, or None if it is not one (nothing to ack)."""
    try:
        return contract.Command.model_validate_json(payload)
    except ValidationError:
        return None


def number_arg(args: dict[str, Any], name: str, lo: float, hi: float) -> float | str:
    """``args[name]`` as a number in [lo, hi], or the reason it is not one."""
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"args.{name} must be a number from {lo:g} to {hi:g}, got {value!r}"
    if not lo <= value <= hi:
        return f"args.{name} must be from {lo:g} to {hi:g}, got {value:g}"
    return float(value)


def clip_detail(text: str) -> str:
    return text if len(text) <= DETAIL_MAX else text[:DETAIL_MAX - 1] + "…"
