"""The worker against the emulator: end to end, retries, timeout, priority, quota, throttling,
reconciliation after a crash. Fake clock wherever time decides the outcome."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer
from polysync.dispatcher.worker import Worker, WorkerOptions
from polysync.domain.models import BackoffStrategy, RetryPolicy, RunState, TaskRun
from polysync.domain.secrets import Writer
from polysync.services import runs as run_service
from polysync.services.context import Services
from tests.engine.conftest import KEY_ENV, clock_of, drive, make_task, open_svc, start_emulator

FAST = WorkerOptions(worker_id="w1", submit_rate=1000.0, sweep_interval_s=0.2)


async def test_worker_runs_a_batch_of_runs_to_their_end(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "mixed")
    codes = [0, 0, 3, 0, 7, 0]
    created = [
        run_service.start_run(svc, "mixed", {"CODE": str(c)}, writer=Writer.HOST) for c in codes
    ]
    worker = Worker(svc, FAST)
    await drive(
        worker,
        lambda: all(svc.store.get_run(r.id).state.is_terminal for r in created),
        advance_s=0.25,
    )
    for run, code in zip(created, codes, strict=True):
        final = svc.store.get_run(run.id)
        assert final.state is (RunState.SUCCEEDED if code == 0 else RunState.FAILED)
        assert final.exit_code == code
    assert worker.metrics.events["submitted"] == len(codes)
    calls = worker.metrics.calls_by_operation()
    assert calls["POST /jobs"] == len(codes)
    assert calls["POST /jobs/{jobId}/tasks"] == len(codes)
    # The template and pool are read once for the whole batch (decision 0006), not per run.
    assert calls.get("GET /pools/{poolId}", 0) <= 1
    assert calls.get("GET /jobs/{jobId}", 0) <= 1
    assert worker.idle()


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        pytest.param(BackoffStrategy.FIXED, [10.0, 10.0, 10.0], id="fixed"),
        pytest.param(BackoffStrategy.LINEAR, [10.0, 20.0, 30.0], id="linear"),
        pytest.param(BackoffStrategy.EXPONENTIAL, [10.0, 20.0, 35.0], id="exponential-capped"),
    ],
)
async def test_retry_delays_are_exact_for_each_backoff(
    svc: Services, batch: BatchClient, backoff: BackoffStrategy, expected: list[float]
) -> None:
    policy = RetryPolicy(
        enabled=True, max_attempts=4, backoff=backoff, initial_delay_s=10, max_delay_s=35
    )
    await make_task(svc, batch, "flaky", "/bin/sh -c 'exit 4'", retry=policy)
    run = run_service.start_run(svc, "flaky", writer=Writer.HOST)
    worker = Worker(svc, FAST)
    clock = clock_of(svc)
    delays: list[float] = []
    for attempt, delay in enumerate(expected, start=1):
        # Attempt n runs and fails; the retry is queued exactly `delay` after the failure.
        def next_attempt_queued(n: int = attempt) -> bool:
            return svc.store.get_run(run.id).attempt == n + 1

        await drive(worker, next_attempt_queued, advance_s=0.25)
        current = svc.store.get_run(run.id)
        assert current.state is RunState.QUEUED
        assert current.not_before is not None
        failed_at = current.history[-1].at
        assert current.history[-2].to_state is RunState.FAILED
        delays.append((current.not_before - failed_at).total_seconds())
        # Not claimed a moment before it is due ...
        clock.advance(delay - 0.5)
        await worker.step()
        await worker.drain()
        assert svc.store.get_run(run.id).state is RunState.QUEUED
        # ... and submitted once it is.
        clock.advance(0.5)
        await drive(worker, lambda: svc.store.get_run(run.id).state is not RunState.QUEUED)
    assert delays == expected
    await drive(worker, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    final = svc.store.get_run(run.id)
    assert final.state is RunState.FAILED
    assert final.attempt == 4
    attempts = svc.store.attempts(run.id)
    assert [a.state for a in attempts] == [RunState.FAILED] * 4
    # Each attempt is its own Batch job.
    assert len({a.batch_job_id for a in attempts}) == 4
    for a in attempts:
        assert batch.get_job(a.batch_job_id).state in ("terminating", "completed")


async def test_a_cancel_request_stops_retries(svc: Services, batch: BatchClient) -> None:
    policy = RetryPolicy(enabled=True, max_attempts=3, initial_delay_s=1, max_delay_s=1)
    await make_task(svc, batch, "stopme", "/bin/sh -c 'exit 1'", retry=policy)
    run = run_service.start_run(svc, "stopme", writer=Writer.HOST)
    svc.store.request_cancel(run.id)
    # cancel_requested with the run still Queued: submission proceeds only through the
    # worker; the failure folds into Cancelled, which never retries.
    worker = Worker(svc, FAST)
    await drive(worker, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    final = svc.store.get_run(run.id)
    assert final.state is RunState.CANCELLED
    assert final.attempt == 1


async def test_execution_timeout_terminates_the_batch_task(
    svc: Services, batch: BatchClient
) -> None:
    await make_task(svc, batch, "slow", "/bin/sh -c 'sleep 120'", timeout_s=30)
    run = run_service.start_run(svc, "slow", writer=Writer.HOST)
    worker = Worker(svc, FAST)
    await drive(worker, lambda: svc.store.get_run(run.id).state is RunState.RUNNING, advance_s=0.5)
    clock_of(svc).advance(31)
    await drive(worker, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    final = svc.store.get_run(run.id)
    assert final.state is RunState.FAILED
    assert final.failure is not None
    assert final.failure.code == "TimedOut"
    assert "execution timeout" in final.failure.message
    assert worker.metrics.events["timed_out"] == 1
    assert final.batch_job_id is not None
    assert final.batch_task_id is not None
    task = batch.get_task(final.batch_job_id, final.batch_task_id)
    assert task.state == "completed"  # terminated by Polysync, long before its 120 s
    assert batch.get_job(final.batch_job_id).state in ("terminating", "completed")


async def test_higher_priority_runs_are_submitted_first(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "low", priority=0)
    await make_task(svc, batch, "high", priority=10)
    await make_task(svc, batch, "mid", priority=5)
    order = [
        run_service.start_run(svc, name, writer=Writer.HOST)
        for name in ("low", "mid", "high", "low", "high")
    ]
    worker = Worker(svc, WorkerOptions(worker_id="w1", concurrency=1, sweep_interval_s=0.2))
    await drive(
        worker,
        lambda: all(svc.store.get_run(r.id).state.is_terminal for r in order),
        advance_s=0.25,
    )
    starts = sorted(
        order, key=lambda r: svc.store.attempts(r.id)[0].created_at
    )  # when each got its Batch ids
    assert [r.task for r in starts] == ["high", "high", "mid", "low", "low"]
    assert [r.id for r in starts][:2] == sorted(r.id for r in order if r.task == "high")


async def test_throttled_submissions_pause_the_account_for_retry_after(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "throttled")
    run = run_service.start_run(svc, "throttled", writer=Writer.HOST)
    emulator.control.set_faults(
        [{"method": "POST", "path": "/jobs", "status": 429, "retry_after_s": 0}]
    )
    try:
        worker = Worker(svc, FAST)
        await drive(worker, lambda: worker.metrics.throttle_pauses["local"] >= 1)
    finally:
        emulator.control.clear_faults()
    current = svc.store.get_run(run.id)
    assert current.state is RunState.QUEUED
    assert current.waiting_reason is not None
    assert "throttling" in current.waiting_reason
    assert worker.metrics.throttled_responses["local"] >= 1
    await drive(worker, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.5)
    assert svc.store.get_run(run.id).state is RunState.SUCCEEDED


@pytest.mark.parametrize(
    "fault_path",
    [
        pytest.param("/jobs", id="job-never-created"),
        pytest.param("/jobs/*/tasks", id="job-created-task-not"),
    ],
)
async def test_a_restarted_worker_finishes_a_half_submitted_run_without_duplicates(
    svc: Services, batch: BatchClient, emulator: EmulatorServer, fault_path: str
) -> None:
    await make_task(svc, batch, "halfway")
    run = run_service.start_run(svc, "halfway", writer=Writer.HOST)
    emulator.control.clear_requests()
    emulator.control.set_faults([{"method": "POST", "path": fault_path, "status": 500}])
    try:
        dead = Worker(svc, WorkerOptions(worker_id="dead", submit_rate=1000.0, lease_s=30))
        await drive(dead, lambda: dead.metrics.events["transient_errors"] >= 1)
    finally:
        emulator.control.clear_faults()
    # The worker "crashes" here: it never runs again and keeps its claim until the lease ends.
    current = svc.store.get_run(run.id)
    assert current.state is RunState.QUEUED
    assert current.batch_job_id is not None
    job_id = current.batch_job_id
    live = Worker(svc, WorkerOptions(worker_id="live", submit_rate=1000.0, sweep_interval_s=0.2))
    await live.step()
    await live.drain()
    assert svc.store.get_run(run.id).state is RunState.QUEUED  # the lease still holds
    clock_of(svc).advance(31)
    await drive(live, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    final = svc.store.get_run(run.id)
    assert final.state is RunState.SUCCEEDED
    assert final.batch_job_id == job_id
    created = [
        r
        for r in emulator.control.requests()
        if r["method"] == "POST" and r["path"] == "/jobs" and r["status"] == 201
    ]
    assert len(created) == 1  # one Batch job for this attempt, whoever created it
    assert len([j for j in batch.list_jobs() if j.id == job_id]) == 1


async def test_a_restart_adopts_submitted_runs_and_sweeps_their_completion(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "adopted")
    run = run_service.start_run(svc, "adopted", writer=Writer.HOST)
    emulator.control.clear_requests()
    first = Worker(svc, FAST)
    await drive(first, lambda: svc.store.get_run(run.id).state is not RunState.QUEUED)
    # Crash: a new process with the same worker id takes its own runs back at once.
    second = Worker(svc, FAST)
    await drive(second, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    assert svc.store.get_run(run.id).state is RunState.SUCCEEDED
    assert second.metrics.events["adopted"] == 1
    assert second.metrics.events["sweeps"] >= 1
    posts = [
        r
        for r in emulator.control.requests()
        if r["method"] == "POST" and r["path"] == "/jobs" and r["status"] == 201
    ]
    assert second.metrics.calls_by_operation().get("POST /jobs", 0) == 0
    assert len(posts) == 1  # the first worker's creation is the only one


@pytest.fixture
def quota_emulator(tmp_path: Path) -> Iterator[EmulatorServer]:
    # The template job itself is active and counts: quota 3 = the template + 2 runs.
    emu = start_emulator(tmp_path / "quota-emulator", active_job_quota=3)
    yield emu
    emu.stop()


async def test_quota_holds_runs_queued_instead_of_failing_them(
    tmp_path: Path, quota_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    svc = await open_svc(tmp_path / "home", quota_emulator, fake_clock=True)
    client = BatchClient(
        quota_emulator.endpoint,
        AzureNamedKeyCredential(quota_emulator.account, quota_emulator.key),
    )
    try:
        await make_task(svc, client, "quota")
        quota_emulator.control.hold(job_id="ps-*", task_id="*", state="running")
        created = [run_service.start_run(svc, "quota", writer=Writer.HOST) for _ in range(4)]
        worker = Worker(svc, FAST)
        await drive(worker, lambda: worker.metrics.quota_holds["local"] >= 1, advance_s=0.1)
        states = [svc.store.get_run(r.id).state for r in created]
        assert states.count(RunState.QUEUED) == 2
        waiting = [svc.store.get_run(r.id) for r in created if r.id not in _started(svc, created)]
        assert all(
            w.waiting_reason is not None and w.waiting_reason.startswith("waiting for quota")
            for w in waiting
        )
        quota_emulator.control.release_all()
        await drive(
            worker,
            lambda: all(svc.store.get_run(r.id).state.is_terminal for r in created),
            advance_s=1.0,
        )
        assert {svc.store.get_run(r.id).state for r in created} == {RunState.SUCCEEDED}
    finally:
        client.close()
        await svc.aclose()
        svc.close()


def _started(svc: Services, runs: list[TaskRun]) -> set[int]:
    return {r.id for r in runs if svc.store.get_run(r.id).state is not RunState.QUEUED}


async def test_run_once_follows_retries_with_the_engine_steps(
    svc: Services, batch: BatchClient
) -> None:
    policy = RetryPolicy(enabled=True, max_attempts=2, initial_delay_s=0, max_delay_s=0)
    await make_task(svc, batch, "once", "/bin/sh -c 'exit 2'", retry=policy)
    run = run_service.start_run(svc, "once", writer=Writer.HOST)
    seen: list[tuple[int, RunState]] = []

    async def no_sleep(_: float) -> None:
        return None

    final = await run_service.wait_run(
        svc, run.id, on_update=lambda r: seen.append((r.attempt, r.state)), sleep=no_sleep
    )
    assert final.state is RunState.FAILED
    assert final.attempt == 2
    assert (1, RunState.STARTING) in seen or (1, RunState.RUNNING) in seen
    assert seen[-1] == (2, RunState.FAILED)
    assert final.history[-1].at - final.history[0].at < timedelta(minutes=1)
