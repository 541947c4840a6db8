"""Pure engine rules, table-driven: cadence, backoff, sweep window, limiter, metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from polysync.dispatcher.metrics import Metrics, quantile
from polysync.dispatcher.ratelimit import CALLS_PER_SUBMISSION, AccountLimiter
from polysync.dispatcher.tracking import SweepWindow
from polysync.domain.cadence import RUN_ONCE_CADENCE, WORKER_CADENCE, Backoff
from polysync.domain.models import RunState
from polysync.jobtypes.azure_batch.client import operation_name
from polysync.services.claims import Step, step

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "age_s", "expected_s"),
    [
        (RunState.STARTING, 0, 1.0),
        (RunState.STARTING, 4, 2.0),
        (RunState.STARTING, 10, 5.0),
        (RunState.STARTING, 600, 30.0),
        (RunState.RUNNING, 0, 30.0),
        (RunState.RUNNING, 120, 60.0),
        (RunState.RUNNING, 86_400, 300.0),
    ],
)
def test_worker_cadence(state: RunState, age_s: float, expected_s: float) -> None:
    assert WORKER_CADENCE.delay_s(state, age_s, rand=0.5) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("state", "age_s", "expected_s"),
    [
        (RunState.STARTING, 0, 10.0),  # the node sweep shows the start: polls are a net
        (RunState.STARTING, 30, 15.0),
        (RunState.STARTING, 600, 30.0),
        (RunState.RUNNING, 0, 30.0),  # Running is the same either way
        (RunState.RUNNING, 86_400, 300.0),
    ],
)
def test_worker_cadence_for_runs_the_node_sweep_covers(
    state: RunState, age_s: float, expected_s: float
) -> None:
    got = WORKER_CADENCE.delay_s(state, age_s, rand=0.5, swept=True)
    assert got == pytest.approx(expected_s)


@pytest.mark.parametrize(("rand", "factor"), [(0.0, 0.9), (0.5, 1.0), (1.0, 1.1)])
def test_cadence_jitter_spreads_by_ten_percent(rand: float, factor: float) -> None:
    assert WORKER_CADENCE.delay_s(RunState.STARTING, 0, rand=rand) == pytest.approx(factor)


@pytest.mark.parametrize(("age_s", "expected_s"), [(0, 0.25), (10, 0.5), (60, 3.0), (1000, 15.0)])
def test_run_once_cadence(age_s: float, expected_s: float) -> None:
    assert RUN_ONCE_CADENCE.delay_s(RunState.RUNNING, age_s) == pytest.approx(expected_s)


def test_backoff_doubles_to_its_cap_and_resets() -> None:
    b = Backoff(first_s=1, cap_s=5)
    assert [b.next_s() for _ in range(5)] == [1, 2, 4, 5, 5]
    b.reset()
    assert b.next_s() == 1


def test_sweep_window_follows_the_latest_end_time_minus_the_margin() -> None:
    w = SweepWindow(T0, margin_s=5)
    assert w.since() == T0 - timedelta(seconds=5)
    w.observe([None, T0 + timedelta(seconds=30), T0 + timedelta(seconds=10)])
    assert w.since() == T0 + timedelta(seconds=25)
    w.observe([T0])  # older completions never move it back
    assert w.since() == T0 + timedelta(seconds=25)


def test_limiter_bucket_refills_at_the_rate() -> None:
    lim = AccountLimiter(rate_per_s=6, now=T0)
    assert [lim.try_submit(T0) for _ in range(3)] == [True, True, False]
    assert lim.wait_s(T0) == pytest.approx(CALLS_PER_SUBMISSION / 6)
    assert lim.try_submit(T0 + timedelta(seconds=0.5))


@pytest.mark.parametrize(("retry_after", "expected_pause"), [(2.5, 2.5), (None, 0.5), (0.0, 0.0)])
def test_throttling_pauses_the_account(retry_after: float | None, expected_pause: float) -> None:
    lim = AccountLimiter(rate_per_s=100, now=T0)
    assert lim.throttled(T0, retry_after) == expected_pause
    assert lim.paused(T0) is (expected_pause > 0)
    assert lim.try_submit(T0 + timedelta(seconds=expected_pause))


def test_a_burst_of_throttled_answers_escalates_once() -> None:
    lim = AccountLimiter(rate_per_s=100, now=T0)
    assert [lim.throttled(T0, None) for _ in range(3)] == [0.5, 0.5, 0.5]
    later = T0 + timedelta(seconds=1)
    assert lim.throttled(later, None) == 1.0  # the next pause doubles


def test_quota_holds_submissions_with_backoff_until_a_success() -> None:
    lim = AccountLimiter(rate_per_s=100, now=T0)
    assert lim.quota_reached(T0) == 2.0
    assert not lim.can_submit(T0 + timedelta(seconds=1))
    assert not lim.paused(T0)  # polls go on
    assert lim.quota_reached(T0 + timedelta(seconds=2)) == 4.0
    lim.succeeded()
    assert lim.can_submit(T0)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/jobs", "GET /jobs"),
        ("post", "/jobs/ps-abc-r1-a1/tasks", "POST /jobs/{jobId}/tasks"),
        ("GET", "/jobs/j/tasks/t", "GET /jobs/{jobId}/tasks/{taskId}"),
        (
            "HEAD",
            "/jobs/j/tasks/t/files/wd/a%2Fb.txt",
            "HEAD /jobs/{jobId}/tasks/{taskId}/files/{path}",
        ),
        ("POST", "/jobs/j/terminate", "POST /jobs/{jobId}/terminate"),
        ("GET", "/pools/p1", "GET /pools/{poolId}"),
        ("GET", "/pools/p1/nodes", "GET /pools/{poolId}/nodes"),
        ("GET", "/pools/p1/nodes/tvm-1", "GET /pools/{poolId}/nodes/{nodeId}"),
    ],
)
def test_operation_names_hide_ids(method: str, path: str, expected: str) -> None:
    assert operation_name(method, path) == expected


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([1.0], 0.99, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0),
        ([1.0, 2.0], 0.99, 2.0),
    ],
)
def test_quantile(values: list[float], q: float, expected: float | None) -> None:
    assert quantile(values, q) == expected


def test_metrics_prometheus_text_and_snapshot() -> None:
    m = Metrics("w-1")
    m.request("local", "GET /jobs")
    m.request("local", "GET /jobs")
    m.response("local", "GET /jobs", 429)
    m.detected(0.3)
    m.detected(1.5)
    m.runs_by_state = {"Queued": 2}
    text = m.prometheus()
    assert (
        'polysync_batch_calls_total{worker="w-1",platform="local",operation="GET /jobs"} 2' in text
    )
    assert 'polysync_batch_throttled_total{worker="w-1",platform="local"} 1' in text
    assert 'polysync_detection_latency_seconds_bucket{worker="w-1",le="0.5"} 1' in text
    assert 'polysync_detection_latency_seconds_count{worker="w-1"} 2' in text
    assert 'polysync_runs{state="Queued"} 2' in text
    snap = m.snapshot()
    assert snap["calls_by_operation"] == {"GET /jobs": 2}
    assert snap["detection_latency"]["p99_s"] == 1.5


# -- one submitter per run: what a follower does (decision 0012) -----------------------

A, T, W = Step.ADVANCE, Step.TAKE, Step.WATCH


@pytest.mark.parametrize(
    ("held", "mine", "free", "renew_due", "fresh", "expected"),
    [
        # Holding it, copy agrees: go on; renewal or a submission next: ask the store.
        (True, True, False, False, False, A),
        (True, True, False, True, False, T),
        (True, True, False, False, True, T),
        # Someone else holds it and its lease is alive: only watch...
        (False, False, False, False, False, W),
        # ...unless a submission is next — the store still decides (it will say no).
        (False, False, False, False, True, T),
        # Its holder's lease ran out, or nobody holds it: try to take it over.
        (False, False, True, False, False, T),
        # Created claimed by this owner (`task run`): take what is ours.
        (False, True, False, False, False, T),
        # Believed held, but the copy names another holder (stalled past the lease) or
        # nobody (a retry freed it): ask the store rather than go on.
        (True, False, False, False, False, T),
        (True, False, True, False, False, T),
    ],
)
def test_what_a_follower_does(
    held: bool, mine: bool, free: bool, renew_due: bool, fresh: bool, expected: Step
) -> None:
    assert step(held=held, mine=mine, free=free, renew_due=renew_due, fresh=fresh) is expected
