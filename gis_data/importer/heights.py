"""Building heights and floor counts from whatever the source says, and where each came from.

The rule, per building, first that applies:

1. a usable height attribute (a number of metres, optionally with ``m``, or
   of feet with ``ft`` / ``'``) → ``height_source = 'attribute'``;
2. a height measured on a 3D model (CityJSON) → ``'model'``;
3. a usable levels attribute times :attr:`HeightRules.floor_height_m` → ``'levels'``;
4. :attr:`HeightRules.default_levels` floors of that height → ``'default'``.

A value is usable when it parses as a number within ``(0, max_height_m]``
(levels within ``[1, max_levels]``). Floors come from the levels attribute
when there is one, else from the height divided by the floor height (at
least 1). Every building that fell back gets a note saying why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

_NUMBER = r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$"
_FOOT_M = 0.3048


@dataclass(frozen=True, slots=True)
class HeightRules:
    """The documented defaults of the import (all can be set in a mapping file)."""

    #: Storey height used to turn levels into metres and metres into floors.
    floor_height_m: float = 3.0
    #: Floors of a building that says nothing about its height.
    default_levels: int = 3
    #: Flats per floor of an imported building (the sources never say; 一梯两户).
    units_per_floor: int = 2
    #: Heights above this are taken as errors.
    max_height_m: float = 1000.0
    #: Levels above this are taken as errors.
    max_levels: int = 200


@dataclass(frozen=True, slots=True)
class Heights:
    """Resolved values, one per building, aligned with the input."""

    height_m: np.ndarray
    floors: np.ndarray
    source: np.ndarray
    #: Why a building fell back (None where it did not), for the report.
    note: np.ndarray


def resolve_heights(
    n: int,
    *,
    height: pd.Series | None = None,
    model: pd.Series | None = None,
    levels: pd.Series | None = None,
    rules: HeightRules = HeightRules(),
) -> Heights:
    """Resolve the height, floors and height source of ``n`` buildings.

    Parameters
    ----------
    n
        Number of buildings.
    height
        The height attribute as read (text or numbers), or None if the source has none.
    model
        Heights measured on a 3D model, or None.
    levels
        The levels (storeys) attribute as read, or None.
    rules
        Floor height, default floors and limits.
    """
    h, h_bad = _parse(height, n, rules.max_height_m, metres=True)
    m, _ = _parse(model, n, rules.max_height_m, metres=True)
    lv, lv_bad = _parse(levels, n, rules.max_levels, metres=False)
    lv = np.where(np.isnan(lv), np.nan, np.round(lv))
    lv = np.where(lv >= 1, lv, np.nan)

    default_height = rules.default_levels * rules.floor_height_m
    source = np.select([~np.isnan(h), ~np.isnan(m), ~np.isnan(lv)],
                       ["attribute", "model", "levels"], "default").astype(object)
    height_m = np.select([~np.isnan(h), ~np.isnan(m), ~np.isnan(lv)],
                         [h, m, lv * rules.floor_height_m], default_height)
    by_height = np.maximum(1, np.round(height_m / rules.floor_height_m))
    floors = np.where(~np.isnan(lv), lv, np.where(source == "default", rules.default_levels,
                                                  by_height)).astype(np.int64)

    note = np.full(n, None, dtype=object)
    bad_height = h_bad & (source != "attribute")
    say_levels = source == "levels"
    note[say_levels & bad_height] = [
        f"height {v!r} is not usable; used {int(f)} levels x {rules.floor_height_m:g} m"
        for v, f in zip(_raw(height, n)[say_levels & bad_height], lv[say_levels & bad_height])]
    fallback = source == "default"
    reasons = (np.where(bad_height, "height " + _raw_text(height, n) + " is not usable",
                        "no height")
               + np.where(lv_bad, ", levels " + _raw_text(levels, n) + " not usable",
                          ", no levels"))
    note[fallback] = [f"{r}; used the default {default_height:g} m ({rules.default_levels} "
                      f"floors)" for r in reasons[fallback]]
    return Heights(height_m=np.round(height_m, 2), floors=floors, source=source, note=note)


def _parse(values: pd.Series | None, n: int, limit: float, *, metres: bool
           ) -> tuple[np.ndarray, np.ndarray]:
    """Numbers (NaN where missing or unusable) and a mask of present-but-unusable values."""
    if values is None:
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    values = values.reset_index(drop=True)
    present = values.notna().to_numpy() & (values.astype(str).str.strip() != "").to_numpy()
    if pd.api.types.is_numeric_dtype(values.dtype):
        number = values.to_numpy(dtype=float, na_value=np.nan)
    else:
        parts = values.astype(str).str.extract(_NUMBER)
        number = pd.to_numeric(parts[0].str.replace(",", ".", regex=False),
                               errors="coerce").to_numpy(dtype=float)
        if metres:
            feet = parts[1].isin(["ft", "feet", "'"]).to_numpy()
            number = np.where(feet, number * _FOOT_M, number)
    usable = (number > 0) & (number <= limit)
    number = np.where(usable, number, np.nan)
    return number, present & ~usable


def _raw(values: pd.Series | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, None, dtype=object)
    return values.reset_index(drop=True).to_numpy(dtype=object)


def _raw_text(values: pd.Series | None, n: int) -> np.ndarray:
    return np.array([repr(v) if isinstance(v, str) else str(v) for v in _raw(values, n)],
                    dtype=object)
