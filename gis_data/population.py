"""Who lives and works in a community: households, residents and the staff roster.

Households and residents are drawn for many communities at once with numpy
(no loop over households or residents), from shares typical of a Wuhan
high-rise community: about 8% of flats empty, 2.7 people per occupied flat,
3-4% of residents with a special-care flag.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gis_data.names import person_names, phone_numbers

AGE_BANDS: tuple[str, ...] = ("0-6", "7-17", "18-59", "60-79", "80+")
OCCUPANCY: tuple[str, ...] = ("owner", "tenant", "vacant")
CARE_FLAGS: tuple[str, ...] = ("elderly_alone", "child", "disabled")

VACANT_SHARE = 0.08
TENANT_SHARE = 0.17
#: People per occupied flat, 1..6 (mean 2.71).
HOUSEHOLD_SIZE_P = (0.20, 0.30, 0.23, 0.16, 0.08, 0.03)
#: Age band probabilities (order of AGE_BANDS) for someone living alone, the first
#: member of a larger household, and everyone else in it.
_AGE_P_ALONE = (0.0, 0.0, 0.70, 0.20, 0.10)
_AGE_P_HEAD = (0.0, 0.0, 0.80, 0.17, 0.03)
_AGE_P_OTHER = (0.12, 0.18, 0.50, 0.16, 0.04)
#: Chance of a 'disabled' flag by age band.
_DISABLED_P = (0.002, 0.002, 0.003, 0.015, 0.05)
#: Relations of family contacts outside the community, with their gender.
_RELATIONS = (("儿子", "M"), ("女儿", "F"), ("儿媳", "F"), ("女婿", "M"), ("侄子", "M"),
              ("外孙女", "F"))

#: The staff besides the grid workers: (role, shift, skills, works in a grid).
_ROSTER: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("security", "day", ("first_aid",), False),
    ("security", "day", ("fire",), False),
    ("security", "day", ("first_aid", "fire"), False),
    ("security", "day", (), False),
    ("security", "night", ("first_aid",), False),
    ("security", "night", ("fire",), False),
    ("security", "night", (), False),
    ("security", "night", (), False),
    ("cleaning", "day", (), True),
    ("cleaning", "day", (), True),
    ("cleaning", "day", (), True),
    ("cleaning", "day", (), True),
    ("cleaning", "day", (), True),
    ("cleaning", "day", (), True),
    ("engineer", "day", ("electrical", "hvac"), False),
    ("engineer", "day", ("plumbing",), False),
    ("engineer", "day", ("elevator", "electrical"), False),
    ("engineer", "day", ("plumbing", "hvac"), False),
    ("engineer", "night", ("electrical", "elevator"), False),
    ("manager", "office", ("first_aid",), False),
)
#: Added after the roster (whose people keep their names and places): the engineer on call
#: and the property's duty officers round the clock (the escalation's duty_officer tier is a
#: 24-hour duty line, twin/escalation.yaml). With the night security, every role and skill
#: the rule library asks for is reached at 03:00, directly or through the duty officer.
_NIGHT_COVER: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("engineer", "night", ("plumbing", "hvac"), False),        # the engineer on call
    ("duty_officer", "night", ("first_aid", "fire"), False),   # the night duty officer
    ("duty_officer", "day", ("first_aid", "fire"), False),     # and the day one
)
#: Where each role waits when nobody knows where they are (a facility kind of the layout).
POST_KIND: dict[str, str] = {"security": "security_room", "cleaning": "property_office",
                             "engineer": "property_office", "manager": "property_office",
                             "grid_worker": "property_office", "duty_officer": "property_office"}


def plan_units(buildings: pd.DataFrame) -> pd.DataFrame:
    """List the flats of the plan's buildings, numbered as residents say them ('1203').

    Returns id suffix ('-b01-u1203'), building_id, floor, number, the building's
    name and the flat's position (x, y: the middle of its share of the footprint).
    """
    b = buildings[buildings["units_per_floor"] > 0]
    upf = b["units_per_floor"].to_numpy()
    per = b["floors"].to_numpy() * upf
    owner = np.repeat(np.arange(len(b)), per)
    k = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    floor = k // upf[owner] + 1
    door = k % upf[owner] + 1
    number = (floor * 100 + door).astype(str)
    building_id = b["id"].to_numpy().astype(str)[owner]
    x0, x1 = b["x0"].to_numpy()[owner], b["x1"].to_numpy()[owner]
    y0, y1 = b["y0"].to_numpy()[owner], b["y1"].to_numpy()[owner]
    return pd.DataFrame({
        "id": np.strings.add(building_id, np.strings.add("-u", np.strings.zfill(number, 4))),
        "building_id": building_id,
        "floor": floor,
        "number": number,
        "building_name": b["name"].to_numpy().astype(str)[owner],
        "x": x0 + (door - 0.5) * (x1 - x0) / upf[owner],
        "y": (y0 + y1) / 2 + 2.0,
    })


def draw_occupancy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw owner / tenant / vacant for ``n`` flats."""
    u = rng.random(n)
    pick = np.where(u < VACANT_SHARE, 2, np.where(u < VACANT_SHARE + TENANT_SHARE, 1, 0))
    return np.array(OCCUPANCY)[pick]


def draw_residents(rng: np.random.Generator, *, unit_ids: np.ndarray, occupancy: np.ndarray,
                   community: np.ndarray, prefixes: np.ndarray) -> pd.DataFrame:
    """Draw the residents of every occupied flat, for any number of communities at once.

    Parameters
    ----------
    unit_ids, occupancy
        One entry per flat, flats of a community together and in id order.
    community
        Index into ``prefixes`` of each flat's community (non-decreasing).
    prefixes
        Community ids; resident ids are '<community>-r000001', numbered per community.

    Returns
    -------
    pandas.DataFrame
        The ``resident`` table's columns, rows in id order.
    """
    size = np.where(occupancy == "vacant", 0,
                    rng.choice(np.arange(1, 7), size=len(unit_ids), p=HOUSEHOLD_SIZE_P))
    flat = np.repeat(np.arange(len(unit_ids)), size)
    n = len(flat)
    first = np.repeat(np.cumsum(size) - size, size)
    member = np.arange(n) - first
    alone = size[flat] == 1
    age = np.select(
        [alone, member == 0],
        [rng.choice(5, size=n, p=_AGE_P_ALONE), rng.choice(5, size=n, p=_AGE_P_HEAD)],
        rng.choice(5, size=n, p=_AGE_P_OTHER),
    )
    female = rng.random(n) < 0.5
    female = np.where(member == 1, ~female[first], female)  # the second member: the partner
    gender = np.where(female, "F", "M")
    minor = age <= 1
    working_adults = np.bincount(flat, weights=age == 2, minlength=len(unit_ids))
    elderly_alone = alone & (age >= 3)
    child = (age == 0) & (working_adults[flat] == 0)  # toddlers left with grandparents (隔代照料)
    disabled = rng.random(n) < np.array(_DISABLED_P)[age]
    code = elderly_alone * 1 + child * 2 + disabled * 4
    phone = phone_numbers(rng, n)
    phone = np.where(minor, phone[first], phone)  # children are reached through the first adult
    seq = _sequence_in_group(community[flat])
    width = max(6, len(str(int(seq.max(initial=0)))))
    ids = np.strings.add(np.strings.add(prefixes[community[flat]].astype(str), "-r"),
                         np.strings.zfill(seq.astype(str), width))
    return pd.DataFrame({
        "id": ids,
        "unit_id": unit_ids[flat],
        "name": person_names(rng, gender),
        "phone": phone,
        "gender": gender,
        "age_band": np.array(AGE_BANDS)[age],
        "care_flags": _flag_lists()[code],
        "family_contacts": _family_contacts(rng, elderly_alone),
    })


def plan_staff(grid_ids: np.ndarray) -> pd.DataFrame:
    """The staff roster of one community: one grid worker per grid, then the rest.

    Returns id suffix ('-s01'), role, skills, grid_id (suffix or None), shift, the
    facility kind of their post, whether they wear a position badge (everyone but the
    grid workers of a grid, whose phone page reports where they are) and whether they
    are the night cover added last; names, phones and positions are drawn per community
    by the generator.
    """
    grid_ids = np.asarray(grid_ids, dtype=object)
    rows: list[tuple[str, str, tuple[str, ...], str | None]] = [
        ("grid_worker", "day", (), g) for g in grid_ids]
    cleaning = 0
    for role, shift, skills, in_grid in _ROSTER + _NIGHT_COVER:
        grid = None
        if in_grid:
            grid = grid_ids[cleaning % len(grid_ids)]
            cleaning += 1
        rows.append((role, shift, skills, grid))
    return pd.DataFrame({
        "id": [f"-s{k + 1:02d}" for k in range(len(rows))],
        "role": [r for r, _, _, _ in rows],
        "skills": pd.Series([list(s) for _, _, s, _ in rows], dtype=object),
        "grid_id": pd.Series([g for _, _, _, g in rows], dtype=object),
        "shift": [s for _, s, _, _ in rows],
        "post_kind": [POST_KIND[r] for r, _, _, _ in rows],
        "badge": [not (r == "grid_worker" and g is not None) for r, _, _, g in rows],
        # drawn after the others, so that adding them left everyone else as they were
        "night_cover": np.arange(len(rows)) >= len(rows) - len(_NIGHT_COVER),
    })


def _sequence_in_group(group: np.ndarray) -> np.ndarray:
    """1, 2, 3 ... restarting wherever the (sorted) group index changes."""
    if len(group) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    lengths = np.diff(np.r_[starts, len(group)])
    return np.arange(len(group)) - np.repeat(starts, lengths) + 1


def _flag_lists() -> np.ndarray:
    """Care-flag lists by bit code (elderly_alone=1, child=2, disabled=4), shared objects."""
    lists = np.empty(8, dtype=object)
    for code in range(8):
        lists[code] = [flag for bit, flag in enumerate(CARE_FLAGS) if code & (1 << bit)]
    return lists


def _family_contacts(rng: np.random.Generator, needs: np.ndarray) -> np.ndarray:
    """One or two contacts outside the community for every flagged resident, [] for the rest."""
    out = np.empty(len(needs), dtype=object)
    out.fill([])  # one shared empty list
    who = np.flatnonzero(needs)
    count = rng.integers(1, 3, size=len(who))
    relation = rng.integers(0, len(_RELATIONS), size=count.sum())
    genders = np.array([g for _, g in _RELATIONS])[relation]
    names = person_names(rng, genders)
    phones = phone_numbers(rng, len(relation))
    words = np.array([r for r, _ in _RELATIONS])[relation]
    contacts = [{"name": str(n), "relation": str(r), "phone": str(p)}
                for n, r, p in zip(names, words, phones)]
    ends = np.cumsum(count)
    out[who] = np.fromiter((contacts[e - c:e] for c, e in zip(count, ends)), dtype=object,
                           count=len(who))
    return out
