"""When a notification that could not be delivered is tried again, and when it is given up.

Exponential back-off with jitter: after the n-th failed try the next one is
``base_s * 2**(n-1)`` seconds later, capped at ``max_s``, each delay drawn
between ``(1 - jitter)`` and 100 % of that, so that workers retrying after an
outage of the gateway do not all come back in the same second.
"""

from __future__ import annotations

import random
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetryPolicy(BaseModel):
    """How often and how long a notification is retried (the ``retry`` key of the config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Tries before a notification is failed for good.
    max_attempts: int = Field(default=6, ge=1, le=100)
    #: Delay after the first failure.
    base_s: float = Field(default=30.0, gt=0)
    #: The longest delay between two tries.
    max_s: float = Field(default=3600.0, gt=0)
    #: Fraction of each delay drawn at random (0: none, 1: anywhere from 0 to the delay).
    jitter: float = Field(default=0.25, ge=0, le=1)
    #: How long a claim holds a notification: a worker that dies leaves it due again after this.
    lease_s: float = Field(default=300.0, gt=0)
    #: A notification older than this when a worker first reaches it is failed, not sent:
    #: a family told hours later that their father was not seen is told wrong.
    max_age_s: float = Field(default=6 * 3600.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_s < self.base_s:
            raise ValueError(f"max_s ({self.max_s:g}) is less than base_s ({self.base_s:g})")
        return self


def backoff(policy: RetryPolicy, attempt: int, *, rng: random.Random) -> timedelta:
    """The wait after failed try number ``attempt`` (1 for the first)."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1; got {attempt}")
    full = min(policy.max_s, policy.base_s * 2.0 ** min(attempt - 1, 60))
    return timedelta(seconds=full * (1.0 - policy.jitter * rng.random()))


def exhausted(policy: RetryPolicy, attempt: int) -> bool:
    """True when failed try number ``attempt`` was the last one allowed."""
    return attempt >= policy.max_attempts
