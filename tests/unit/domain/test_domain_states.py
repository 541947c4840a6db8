from __future__ import annotations

import itertools

import pytest

from polysync.domain import states
from polysync.domain.models import BackoffStrategy, RetryPolicy, RunState
from polysync.domain.states import InvalidTransition, RetryStep
from polysync.errors import PolysyncError
from polysync.jobtypes.base import ProviderStatus

Q, ST, RU = RunState.QUEUED, RunState.STARTING, RunState.RUNNING
OK, KO, CA = RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED

ALLOWED = {
    (Q, ST), (Q, KO), (Q, CA),
    (ST, RU), (ST, OK), (ST, KO), (ST, CA),
    (RU, OK), (RU, KO), (RU, CA),
}  # fmt: skip

ALL_PAIRS = list(itertools.product(RunState, RunState))


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_transition_table(src: RunState, dst: RunState) -> None:
    expected = (src, dst) in ALLOWED
    assert states.can_transition(src, dst) is expected
    if expected:
        states.check_transition(src, dst)
    else:
        with pytest.raises(InvalidTransition):
            states.check_transition(src, dst)


@pytest.mark.parametrize(("src", "dst"), ALL_PAIRS)
def test_retry_flag_adds_only_failed_to_queued(src: RunState, dst: RunState) -> None:
    expected = (src, dst) in ALLOWED or (src, dst) == (KO, Q)
    assert states.can_transition(src, dst, retry=True) is expected


@pytest.mark.parametrize("dst", list(RunState))
def test_creation_only_as_queued(dst: RunState) -> None:
    assert states.can_transition(None, dst) is (dst is Q)


@pytest.mark.parametrize("state", [OK, KO, CA])
def test_terminal_states_have_no_ordinary_exit(state: RunState) -> None:
    assert state.is_terminal
    assert states.TRANSITIONS[state] == frozenset()


@pytest.mark.parametrize(
    ("src", "dst", "fragments"),
    [
        (OK, RU, ["run 7", "Succeeded to Running", "final", "polysync task run"]),
        (KO, Q, ["run 7", "Failed to Queued", "retry policy"]),
        (RU, ST, ["run 7", "Running to Starting", "Succeeded, Failed, Cancelled", "re-read"]),
        (None, RU, ["run 7", "(new) to Running", "starts Queued"]),
    ],
)
def test_invalid_transition_messages(
    src: RunState | None, dst: RunState, fragments: list[str]
) -> None:
    with pytest.raises(InvalidTransition) as info:
        states.check_transition(src, dst, run_id=7)
    assert isinstance(info.value, PolysyncError)
    assert info.value.code == "InvalidTransition"
    for fragment in fragments:
        assert fragment in str(info.value)


P = ProviderStatus


@pytest.mark.parametrize(
    ("status", "current", "cancel", "expected"),
    [
        # Starting / Running only move forward.
        (P.STARTING, ST, False, None),
        (P.STARTING, RU, False, None),  # Batch re-queued the task: never go backwards
        (P.RUNNING, ST, False, RU),
        (P.RUNNING, RU, False, None),
        (P.RUNNING, ST, True, RU),  # cancel requested but not effective yet
        # Completion.
        (P.SUCCESS, ST, False, OK),  # started and finished between two polls
        (P.SUCCESS, RU, False, OK),
        (P.SUCCESS, RU, True, OK),  # finished before the cancel reached it
        (P.FAILED, ST, False, KO),
        (P.FAILED, RU, False, KO),
        (P.FAILED, RU, True, CA),  # the terminate completes the task with a failure
        (P.FAILED, ST, True, CA),
        # Unknown is a diagnostic, never a state change.
        (P.UNKNOWN, ST, False, None),
        (P.UNKNOWN, RU, True, None),
        # Queued runs have no Batch task; terminal runs never move.
        (P.RUNNING, Q, False, None),
        (P.SUCCESS, Q, False, None),
        (P.RUNNING, OK, False, None),
        (P.FAILED, OK, False, None),
        (P.SUCCESS, KO, False, None),
        (P.SUCCESS, CA, True, None),
        (P.FAILED, CA, True, None),
    ],
)
def test_fold(
    status: ProviderStatus, current: RunState, cancel: bool, expected: RunState | None
) -> None:
    assert states.fold(status, current, cancel) is expected


@pytest.mark.parametrize(
    ("status", "current", "cancel"), list(itertools.product(P, RunState, [False, True]))
)
def test_fold_only_yields_allowed_transitions(
    status: ProviderStatus, current: RunState, cancel: bool
) -> None:
    target = states.fold(status, current, cancel)
    if target is not None:
        assert states.can_transition(current, target)


def _policy(attempts: int, backoff: BackoffStrategy, enabled: bool = True) -> RetryPolicy:
    return RetryPolicy(
        enabled=enabled,
        max_attempts=attempts,
        backoff=backoff,
        initial_delay_s=30.0,
        max_delay_s=600.0,
    )


@pytest.mark.parametrize(
    ("attempt", "policy", "expected"),
    [
        (1, _policy(3, BackoffStrategy.FIXED), RetryStep(Q, 2, 30.0, "retry 1 of 2 in 30s")),
        (2, _policy(3, BackoffStrategy.LINEAR), RetryStep(Q, 3, 60.0, "retry 2 of 2 in 1m")),
        (3, _policy(3, BackoffStrategy.LINEAR), None),
        (5, _policy(9, BackoffStrategy.EXPONENTIAL), RetryStep(Q, 6, 480.0, "retry 5 of 8 in 8m")),
        (6, _policy(9, BackoffStrategy.EXPONENTIAL), RetryStep(Q, 7, 600.0, "retry 6 of 8 in 10m")),
        (1, _policy(3, BackoffStrategy.FIXED, enabled=False), None),
        (1, _policy(1, BackoffStrategy.FIXED), None),
    ],
)
def test_retry_transition(attempt: int, policy: RetryPolicy, expected: RetryStep | None) -> None:
    step = states.retry_transition(KO, attempt, policy)
    assert step == expected
    if step is not None:
        assert states.can_transition(KO, step.to, retry=True)
        assert not states.can_transition(KO, step.to)


def test_retry_transition_fractional_delay_text() -> None:
    policy = RetryPolicy(enabled=True, max_attempts=2, initial_delay_s=1.5, max_delay_s=10.0)
    step = states.retry_transition(KO, 1, policy)
    assert step is not None
    assert step.reason == "retry 1 of 1 in 1.5s"


def test_retry_transition_stops_after_a_cancel_request() -> None:
    assert (
        states.retry_transition(KO, 1, _policy(3, BackoffStrategy.FIXED), cancel_requested=True)
        is None
    )


@pytest.mark.parametrize("current", [Q, ST, RU, OK, CA])
def test_only_failed_attempts_retry(current: RunState) -> None:
    with pytest.raises(InvalidTransition, match="only a Failed attempt"):
        states.retry_transition(current, 1, _policy(3, BackoffStrategy.FIXED))
