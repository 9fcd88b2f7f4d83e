"""One way of saying what is wrong with a YAML configuration: the file, the key, why.

The escalation tiers and the notification routes are validated by pydantic
models; its first error becomes one sentence, ``<file>: key 'a.b': <why>; got
<value>``, like the rule loader's. A check across keys raises
:class:`KeyCheckError` inside validation, to be reported at its own key.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from pydantic import ValidationError


class KeyCheckError(ValueError):
    """A check across keys, raised inside validation, reported at its own key."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def describe(origin: str, error: ValidationError, *,
             path: Callable[[list[Any]], list[Any]] = lambda loc: loc,
             unechoed: Collection[str] = ()) -> str:
    """The first error of ``error`` as one sentence.

    ``path`` rewrites the error's location (a tagged union adds its tag to it);
    a value under a key in ``unechoed`` (people's contacts) is not repeated back.
    """
    first = error.errors(include_url=False)[0]
    cause = (first.get("ctx") or {}).get("error")
    loc = path(list(first["loc"]))
    where = ".".join(str(p) for p in loc)
    if isinstance(cause, KeyCheckError):
        key = f"{where}.{cause.key}" if where and not cause.key.startswith(where) else cause.key
        return f"{origin}: key '{key}': {cause}"
    message = first["msg"].removeprefix("Value error, ")
    shown = first["type"] not in ("missing", "extra_forbidden") \
        and not any(str(p) in unechoed for p in loc)
    got = f"; got {first['input']!r}" if shown else ""
    return f"{origin}: key '{where or '(top)'}': {message}{got}"
