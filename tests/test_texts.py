"""Rendering a stored text for its reader (pure): language, names at render time, masking."""

from __future__ import annotations

from twin.texts import Names, Viewer, Wording, ids_in, params_of, render

TEXTS = {"zh-CN": "上门探访：{resident_name}，{building_name} {unit_number}",
         "en": "Welfare check: {resident_name}, {building_name} {unit_number}"}
PARAMS = {"resident": "r1", "building": "b1", "unit": "u1", "hours": "36"}
NAMES = Names(resident={"r1": "欧阳娜娜"}, building={"b1": "3栋"}, unit={"u1": "1203"})


def test_the_reader_gets_their_language_and_the_name_masked_unless_they_may_see_it() -> None:
    assert render(TEXTS, PARAMS, viewer=Viewer("zh-CN"), names=NAMES) == \
        "上门探访：欧阳**，3栋 1203"
    assert render(TEXTS, PARAMS, viewer=Viewer("en", whole=True), names=NAMES) == \
        "Welfare check: 欧阳娜娜, 3栋 1203"


def test_a_language_the_text_lacks_falls_back_to_chinese() -> None:
    assert render(TEXTS, PARAMS, viewer=Viewer("fr"), names=NAMES).startswith("上门探访")


def test_names_are_looked_up_when_read_and_an_unknown_one_reads_a_question_mark() -> None:
    renamed = Names(resident=NAMES.resident, building={"b1": "三号楼"}, unit=NAMES.unit)
    assert "三号楼" in render(TEXTS, PARAMS, viewer=Viewer(), names=renamed)
    assert render(TEXTS, PARAMS, viewer=Viewer(), names=Names()) == "上门探访：?，? ?"


def test_a_row_kept_before_texts_had_keys_shows_its_old_text() -> None:
    words = Wording(templates={"r/n": TEXTS}, names=NAMES)
    assert words.render(None, {}, viewer=Viewer("en"), fallback="old title") == "old title"
    assert words.render("gone/n", PARAMS, viewer=Viewer("en"), fallback="old") == "old"
    assert words.render("r/n", PARAMS, viewer=Viewer("en")).startswith("Welfare check: 欧阳**")
    assert words.names_resident("r/n", PARAMS) == "r1"


def test_what_a_firing_keeps_has_ids_and_values_and_no_names() -> None:
    context = {"resident": "r1", "resident_name": "欧阳娜娜", "device": "d1",
               "device_name": "东门", "value": "86", "floor": None}
    assert params_of(context) == {"resident": "r1", "device": "d1", "value": "86"}
    assert ids_in([params_of(context)])["resident"] == {"r1"}
