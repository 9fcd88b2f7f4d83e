"""Masking of residents' names and phone numbers (pure)."""

from __future__ import annotations

import pytest

from twin.privacy import family_name, mask_name, mask_phone


@pytest.mark.parametrize(("name", "masked"), [
    ("张三丰", "张**"),
    ("周佳", "周*"),
    ("欧阳娜娜", "欧阳**"),
    ("司马光", "司马*"),
    ("欧阳", "欧*"),  # a name that is only a compound surname still hides something
    ("王", "王*"),
    ("Mary Ann Smith", "**** Smith"),
    ("Smith", "S****"),
    ("", ""),
])
def test_names_keep_the_family_name_only(name: str, masked: str) -> None:
    assert mask_name(name) == masked
    if name:
        assert mask_name(name) != name


@pytest.mark.parametrize(("phone", "masked"), [
    ("13812345678", "138****5678"),
    ("138-1234-5678", "138****5678"),
    ("+8613812345678", "+861****5678"),
    ("10030047424", "100****7424"),
    ("12345", "***45"),
    ("", ""),
])
def test_phones_keep_three_and_four_digits(phone: str, masked: str) -> None:
    assert mask_phone(phone) == masked


def test_masking_the_sample_residents_never_shows_a_given_name(sample) -> None:
    residents = dict(sample.tables())["resident"]
    for name, phone in zip(residents["name"].head(500), residents["phone"].head(500), strict=True):
        masked = mask_name(name)
        assert masked.startswith(family_name(name)) and set(masked[len(family_name(name)):]) == {"*"}
        assert mask_phone(phone)[3:7] == "****"
