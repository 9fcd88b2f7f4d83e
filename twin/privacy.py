"""Masking residents' personal data for the people who should not see it whole.

Pure functions, no I/O: the dashboard decides who sees what (and writes the
audit log when somebody sees it whole); this module only says what a masked
name or phone number looks like.

- A Chinese name keeps its family name and stars the rest: 张三丰 -> 张**;
  the common two-character family names are kept whole: 欧阳娜娜 -> 欧阳**.
- A Latin-script name keeps its last word: "Mary Ann Smith" -> "**** Smith".
- A phone number keeps its first three and last four digits: 13812345678 -> 138****5678.
"""

from __future__ import annotations

import re

MASK = "*"

#: Two-character family names (复姓) common enough to be kept whole.
COMPOUND_SURNAMES: frozenset[str] = frozenset({
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "宇文",
    "司徒", "令狐", "夏侯", "端木", "澹台", "轩辕", "南宫", "西门", "百里", "呼延", "独孤",
})

_CJK = re.compile(r"[\u3400-\u9fff]")


def family_name(name: str) -> str:
    """The family name of a resident's name, as it is kept when masking."""
    name = name.strip()
    if not name:
        return ""
    if _CJK.match(name):
        return name[:2] if name[:2] in COMPOUND_SURNAMES and len(name) > 2 else name[:1]
    return name.split()[-1]


def mask_name(name: str) -> str:
    """张三丰 -> 张**, 欧阳娜娜 -> 欧阳**, "Mary Ann Smith" -> "**** Smith"; "" stays ""."""
    name = name.strip()
    if not name:
        return ""
    family = family_name(name)
    if _CJK.match(name):
        return family + MASK * max(1, len(name) - len(family))
    if family == name:  # a single word: keep its first letter only
        return name[0] + MASK * max(1, len(name) - 1)
    return MASK * 4 + " " + family


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678; separators are dropped; short numbers keep two digits."""
    digits = re.sub(r"\D", "", phone)
    prefix = "+" if phone.strip().startswith("+") else ""
    if len(digits) >= 7:
        return prefix + digits[:3] + MASK * 4 + digits[-4:]
    if len(digits) > 2:
        return MASK * (len(digits) - 2) + digits[-2:]
    return MASK * len(digits)
