"""The large screen's live diffing and patches (pure: no database, no browser)."""

from __future__ import annotations

from dash import Patch

from dashboard.live import (
    LIVE_LAYERS,
    LiveCache,
    LiveState,
    color_patch,
    data_patch,
    diff_keyed,
    diff_live,
)


def _state(colors=None, attention=None, kpis=None, feed=None, board=None) -> LiveState:
    layers = {name: {} for name in LIVE_LAYERS}
    layers["attention"] = attention or {}
    return LiveState(colors or {}, layers, kpis or {"a": 1}, feed or [], board or {})


def test_keyed_diff_sets_changed_and_new_keys_and_drops_gone_ones() -> None:
    d = diff_keyed({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "d": 4})
    assert d.set == {"b": 5, "d": 4} and d.drop == ["c"] and not d.empty
    assert diff_keyed({"a": 1}, {"a": 1}).empty


def test_an_unchanged_tick_is_empty_and_a_new_alarm_recolours_one_building() -> None:
    before = _state({"b1": [1, 2, 3, 4]})
    assert diff_live(before, _state({"b1": [1, 2, 3, 4]})).empty
    after = _state({"b1": [1, 2, 3, 4], "b2": [9, 9, 9, 9]},
                   attention={"d1": {"id": "d1", "state": "alarm"}})
    diff = diff_live(before, after)
    assert diff.buildings.set == {"b2": [9, 9, 9, 9]} and diff.buildings.drop == []
    assert diff.layers["attention"].set == {"d1": {"id": "d1", "state": "alarm"}}
    assert not diff.kpis_changed and not diff.feed_changed


def test_patches_carry_only_the_operations_for_what_changed() -> None:
    diff = diff_live(_state({"b1": [1, 1, 1, 1], "b3": [3, 3, 3, 3]}),
                     _state({"b1": [2, 2, 2, 2]}))
    patch = color_patch(diff.buildings)
    assert isinstance(patch, Patch)
    ops = patch.to_plotly_json()["operations"]
    assert {(op["operation"], tuple(op["location"])) for op in ops} == {
        ("Assign", ("buildings", "b1")), ("Delete", ("buildings", "b3"))}
    layer_ops = data_patch({"attention": diff_keyed({}, {"d9": {"id": "d9"}})}).to_plotly_json()
    assert layer_ops["operations"][0]["location"] == ["attention", "d9"]


def test_a_tab_with_no_state_gets_everything() -> None:
    diff = diff_live(None, _state({"b1": [1, 1, 1, 1]}, attention={"d": {"id": "d"}}))
    assert diff.buildings.set == {"b1": [1, 1, 1, 1]} and diff.kpis_changed


def test_cache_forgets_old_tabs() -> None:
    cache = LiveCache(size=2, ttl_s=60)
    for token in ("a", "b", "c"):
        cache.put(token, _state())
    assert cache.get("a") is None and cache.get("c") is not None
    expired = LiveCache(ttl_s=0)
    expired.put("x", _state())
    assert expired.get("x") is None


def test_an_expired_value_is_answered_while_its_successor_is_built() -> None:
    import threading
    import time

    from dashboard.context import Context, Settings

    c = Context(pool=None, communities=["x"], settings=Settings())  # type: ignore[arg-type]
    calls = []
    release = threading.Event()

    def build():
        calls.append(1)
        if len(calls) > 1:
            release.wait(5)
        return len(calls)

    assert c.cached("k", 0.0, build) == 1          # the first build is waited for
    assert c.cached("k", 0.0, build) == 1          # expired: the old value, a refresh starts
    assert c.cached("k", 0.0, build) == 1          # one refresh at a time
    release.set()
    deadline = time.monotonic() + 5
    while c.cached("k", 60.0, build) != 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert c.cached("k", 60.0, build) == 2 and len(calls) == 2
