from __future__ import annotations

import math

import pytest

from polysync.domain.models import BackoffStrategy, RetryPolicy
from polysync.domain.retry import retries_allowed, retry_delay_s, validate_policy
from polysync.errors import InputError

F, L, E = BackoffStrategy.FIXED, BackoffStrategy.LINEAR, BackoffStrategy.EXPONENTIAL


def policy(
    backoff: BackoffStrategy = F,
    *,
    attempts: int = 10,
    initial: float = 10.0,
    cap: float = 1000.0,
    enabled: bool = True,
) -> RetryPolicy:
    return RetryPolicy(
        enabled=enabled,
        max_attempts=attempts,
        backoff=backoff,
        initial_delay_s=initial,
        max_delay_s=cap,
    )


@pytest.mark.parametrize(
    ("backoff", "failed", "expected"),
    [
        (F, 1, 10.0),
        (F, 2, 10.0),
        (F, 9, 10.0),
        (L, 1, 10.0),
        (L, 2, 20.0),
        (L, 5, 50.0),
        (E, 1, 10.0),
        (E, 2, 20.0),
        (E, 3, 40.0),
        (E, 4, 80.0),
        (E, 7, 640.0),
        (E, 8, 1000.0),  # 1280 capped
        (E, 9, 1000.0),
    ],
)
def test_retry_delay_formulas(backoff: BackoffStrategy, failed: int, expected: float) -> None:
    assert retry_delay_s(policy(backoff), failed) == expected


@pytest.mark.parametrize(
    ("pol", "failed"),
    [
        (policy(attempts=1), 1),  # 1 attempt = no retry
        (policy(attempts=3), 3),  # the last attempt failed
        (policy(attempts=3), 4),
        (policy(enabled=False), 1),  # disabled ignores max_attempts
    ],
)
def test_no_attempt_left(pol: RetryPolicy, failed: int) -> None:
    assert retry_delay_s(pol, failed) is None


def test_linear_capped_and_exponential_huge_attempt_does_not_overflow() -> None:
    assert retry_delay_s(policy(L, cap=25.0), 3) == 25.0
    big = policy(E, attempts=5000, cap=60.0)
    assert retry_delay_s(big, 4999) == 60.0


def test_zero_initial_delay_retries_at_once() -> None:
    assert retry_delay_s(policy(E, initial=0.0, cap=0.0), 3) == 0.0


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay_s(policy(), 0)


@pytest.mark.parametrize(
    ("pol", "count"),
    [(policy(attempts=1), 0), (policy(attempts=4), 3), (policy(attempts=4, enabled=False), 0)],
)
def test_retries_allowed(pol: RetryPolicy, count: int) -> None:
    assert retries_allowed(pol) == count


@pytest.mark.parametrize(
    "pol",
    [
        RetryPolicy(),
        policy(attempts=1),
        policy(attempts=100),
        policy(initial=0.0, cap=0.0),
        policy(initial=5.0, cap=5.0),
    ],
)
def test_valid_policies(pol: RetryPolicy) -> None:
    validate_policy(pol)


@pytest.mark.parametrize(
    ("pol", "fragments"),
    [
        (policy(attempts=0), ["max attempts 0", "from 1 to 100"]),
        (policy(attempts=101), ["max attempts 101", "from 1 to 100"]),
        (policy(initial=-1.0), ["initial retry delay -1", "from 0s to 3650d"]),
        (policy(cap=-1.0, initial=0.0), ["max retry delay -1", "from 0s to 3650d"]),
        (policy(cap=3650 * 86400 + 1.0), ["max retry delay 3650d1s", "out of range"]),
        (policy(initial=math.nan), ["initial retry delay", "finite"]),
        (policy(cap=math.inf), ["max retry delay", "finite"]),
        (policy(initial=30.0, cap=10.0), ["10s", "30s", "--retry-max-delay", "--retry-delay"]),
    ],
)
def test_invalid_policies_name_the_field_and_fix(pol: RetryPolicy, fragments: list[str]) -> None:
    with pytest.raises(InputError) as info:
        validate_policy(pol)
    for fragment in fragments:
        assert fragment in str(info.value)
