"""A Task's retry policy: validation and the delay before the next attempt. Pure.

Polysync's documented formulas (POLYSYNC-CONCEPTS.md, Task → retry fields):
Fixed = the initial delay every time; Linear = initial delay × attempt number;
Exponential = the delay doubles each attempt, starting from the initial delay.
All are capped at the max delay.

``max_attempts`` counts every attempt, the first one included: 1 means "never retry",
3 means "the first try and up to two retries". Each attempt is its own Batch job (D5),
which is why this is separate from the template's own ``maxTaskRetryCount`` (Batch's
in-place retries of the same task, NOTES.md §10.5).
"""

from __future__ import annotations

from polysync.domain import limits
from polysync.domain.models import BackoffStrategy, RetryPolicy
from polysync.errors import InputError

MAX_ATTEMPTS_LIMIT = int(limits.MAX_ATTEMPTS.high)
"""More attempts than this is a loop, not a retry policy."""

# 2.0 ** 1024 overflows a float; any exponent past ~60 is capped by max_delay_s anyway.
_MAX_EXPONENT = 1000


def validate_policy(policy: RetryPolicy) -> None:
    """Raise :class:`InputError` naming the bad field and how to fix it."""
    limits.MAX_ATTEMPTS.check(policy.max_attempts)
    for label, value in (
        ("initial retry delay", policy.initial_delay_s),
        ("max retry delay", policy.max_delay_s),
    ):
        limits.RETRY_DELAY_S.check(value, label)
    if policy.max_delay_s < policy.initial_delay_s:
        raise InputError(
            f"the max retry delay ({policy.max_delay_s:g}s) is below the initial retry delay "
            f"({policy.initial_delay_s:g}s); raise --retry-max-delay or lower --retry-delay."
        )


def retries_allowed(policy: RetryPolicy) -> int:
    """How many retries the policy allows after the first attempt (0 when disabled)."""
    return max(policy.max_attempts - 1, 0) if policy.enabled else 0


def retry_delay_s(policy: RetryPolicy, attempt_that_failed: int) -> float | None:
    """Seconds to wait before the next attempt, or None when no attempt is left.

    ``attempt_that_failed`` is 1 for the first try. A disabled policy never retries.
    """
    if attempt_that_failed < 1:
        raise ValueError(f"attempts are numbered from 1, got {attempt_that_failed}")
    if not policy.enabled or attempt_that_failed >= policy.max_attempts:
        return None
    initial = policy.initial_delay_s
    if policy.backoff is BackoffStrategy.FIXED:
        delay = initial
    elif policy.backoff is BackoffStrategy.LINEAR:
        delay = initial * attempt_that_failed
    else:
        delay = initial * 2.0 ** min(attempt_that_failed - 1, _MAX_EXPONENT)
    return min(delay, policy.max_delay_s)
