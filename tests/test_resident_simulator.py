"""The simulated pile obeys a resident's ``start`` from the app (issue 13): on a pile with
nothing plugged in, ``plugged_in`` says the resident plugged their bike in, and a session
begins in their name; without it the pile refuses, as a real one with no bike would."""

from __future__ import annotations

from datetime import timedelta

from ingest.simulator import Community, Simulation
from tests.test_simulator import MONDAY, _obey, _of, _said, small  # noqa: F401 - a fixture


def test_a_free_pile_starts_for_the_resident_who_plugged_in(small: Community) -> None:  # noqa: F811
    start = MONDAY + timedelta(hours=3)  # a night: nobody else plugs in
    sim = Simulation(small, start=start, seed=7, tick_s=20)
    sim.advance(start + timedelta(minutes=5))
    # a pile with nothing plugged in refuses a bare start (some still hold last night's bike)
    answers = {p: _obey(sim, p, "start") for p in _of(small, "ev_charger", "1号充电棚")}
    free = [p for p, a in answers.items() if a.detail == "nothing is plugged in"]
    assert free and not any(answers[p].ok for p in free)
    pile = free[0]
    ack = _obey(sim, pile, "start", plugged_in=True, subject="r-me")
    assert ack.ok and ack.detail.startswith("charging started (session ")
    stream = sim.advance(start + timedelta(minutes=15))
    [begun] = [e for e in _said(stream, pile, "event") if e["kind"] == "charge_start"]
    assert begun["subject"] == "r-me" and begun["session"] in ack.detail
    readings = [r["readings"] for r in _said(stream, pile)]
    assert readings[-1]["status"] == "charging" and readings[-1]["power"] > 0
    again = _obey(sim, pile, "start", plugged_in=True, subject="r-other")
    assert again.ok and again.detail.startswith("already charging")
