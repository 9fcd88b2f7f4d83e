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


class AccessDenied(TwinError):
    """Someone asked for something outside their role or their scope (a grid worker's grid).

    Here, not in `twin.access`, so that `twin.work_orders` can say a step is not the
    actor's to take without importing the policy that imports it."""
