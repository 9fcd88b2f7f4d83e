"""Synthetic Chinese person names and plainly fake mobile numbers.

Names are drawn from common surnames (weighted roughly by frequency) and a
fixed list of given-name characters; phones start with '100', a prefix no
Chinese carrier uses, so a shipped file can never reach a real person.
Both are vectorised: a million and a half names take well under a second.
"""

from __future__ import annotations

import numpy as np

#: Common surnames with rough relative frequencies (percent of the population).
SURNAMES: tuple[tuple[str, float], ...] = (
    ("王", 7.1), ("李", 7.0), ("张", 6.7), ("刘", 5.4), ("陈", 4.5), ("杨", 3.1),
    ("黄", 2.2), ("赵", 2.2), ("吴", 2.0), ("周", 1.9), ("徐", 1.5), ("孙", 1.5),
    ("马", 1.3), ("朱", 1.3), ("胡", 1.3), ("郭", 1.2), ("何", 1.2), ("高", 1.1),
    ("林", 1.1), ("罗", 1.0), ("郑", 1.0), ("梁", 0.9), ("谢", 0.8), ("宋", 0.8),
    ("唐", 0.8), ("许", 0.7), ("韩", 0.7), ("冯", 0.7), ("邓", 0.7), ("曹", 0.7),
    ("彭", 0.6), ("曾", 0.6), ("肖", 0.6), ("田", 0.6), ("董", 0.5), ("袁", 0.5),
    ("潘", 0.5), ("于", 0.5), ("蒋", 0.5), ("蔡", 0.5), ("余", 0.5), ("杜", 0.5),
    ("叶", 0.5), ("程", 0.5), ("苏", 0.4), ("魏", 0.4), ("吕", 0.4), ("丁", 0.4),
    ("任", 0.4), ("沈", 0.4),
)

#: Given-name characters that read as female / male; names mix one or two of them.
FEMALE_CHARS = "芳娜敏静丽艳娟霞秀英兰玲萍红燕梅琳雪婷慧颖倩洁琴云莉欣怡悦涵萱晨雨佳瑶琪"
MALE_CHARS = "伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆峰亮建国文博志睿轩宏林"

#: Share of given names with a single character (the rest have two).
SINGLE_CHAR_SHARE = 0.3

#: Every fake number starts with this; no Chinese mobile carrier uses it.
PHONE_PREFIX = "100"


def person_names(rng: np.random.Generator, genders: np.ndarray) -> np.ndarray:
    """Draw one synthetic full name per entry of ``genders`` ('F' or 'M').

    Parameters
    ----------
    rng
        The generator to draw from (the caller's, so whole datasets stay reproducible).
    genders
        Array of 'F' / 'M'; decides which given-name characters are used.

    Returns
    -------
    numpy.ndarray
        Unicode array of names such as '王秀英' or '李伟'.
    """
    genders = np.asarray(genders)
    n = len(genders)
    surnames = np.array([s for s, _ in SURNAMES])
    weights = np.array([w for _, w in SURNAMES])
    surname = surnames[rng.choice(len(surnames), size=n, p=weights / weights.sum())]
    female = genders == "F"
    first = _given_chars(rng, female)
    second = _given_chars(rng, female)
    second[rng.random(n) < SINGLE_CHAR_SHARE] = ""
    return np.strings.add(np.strings.add(surname, first), second)


def phone_numbers(rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` fake 11-digit mobile numbers, all starting with '100'."""
    base = int(PHONE_PREFIX) * 10**8
    return (base + rng.integers(0, 10**8, size=n, dtype=np.int64)).astype(str)


def _given_chars(rng: np.random.Generator, female: np.ndarray) -> np.ndarray:
    female_pool = np.array(list(FEMALE_CHARS))
    male_pool = np.array(list(MALE_CHARS))
    n = len(female)
    return np.where(
        female,
        female_pool[rng.integers(0, len(female_pool), size=n)],
        male_pool[rng.integers(0, len(male_pool), size=n)],
    )
