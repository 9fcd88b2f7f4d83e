"""Errors a user can act on, each stated in one sentence.

The CLI prints a ``TwinError`` as its message alone (no stack trace) and exits
with status 1; anything else is a bug and is allowed to crash loudly.
"""


class TwinError(Exception):
    """A problem with the environment or the input that the user can fix."""


class MissingComponentError(TwinError):
    """A piece of infrastructure (extension, binary) is not installed."""


class UnreachableError(TwinError):
    """A configured server does not answer."""
