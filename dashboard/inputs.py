"""How much a user may send: caps checked on the server before any database work.

A look-up of 5 MB held a database connection for 36 s, and 14 of 1 MB starved the pool
(issue 15). The browser's `maxLength` on the same inputs only spares an honest user the
round trip; these checks are the ones that count. The whole request is capped by
`Settings.max_body_bytes` (Flask's MAX_CONTENT_LENGTH: 413).
"""

from __future__ import annotations

from dashboard.context import lang
from dashboard.i18n import t
from twin.errors import TwinError

#: A building or household look-up ("1栋 1203").
LOOKUP_CHARS = 64
#: A note on a work-order step.
NOTE_CHARS = 2000
#: A what-if scenario's name (`twin.whatif.scenario.Id` allows 128).
SCENARIO_NAME_CHARS = 128
#: The login form's fields: no scrypt over a megabyte of "password".
USERNAME_CHARS = 128
PASSWORD_CHARS = 1024


class InputTooLong(TwinError):
    """A text longer than its cap; the message is in the reader's language."""


def check_length(value: object, limit: int) -> None:
    """InputTooLong if `value` is a text of more than `limit` characters. (Whether it must be
    a text at all is for the code that uses it to say.)"""
    if isinstance(value, str) and len(value) > limit:
        raise InputTooLong(t("input.too_long", lang()).format(limit=limit))
