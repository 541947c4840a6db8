"""Followers (`task run`, `run wait`, the server) advance a run only while they hold it.

The rule itself is pure (``claims.step``, table-driven in ``test_rules.py``); here the
real emulator, SDK and SQLite store with a fake clock: a follower beside a live worker
makes no Batch call at all, and one beside a dead holder watches until the lease runs
out, then takes the run over and submits it once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from polysync.dispatcher.metrics import Metrics
from polysync.dispatcher.worker import Worker, WorkerOptions
from polysync.domain.models import RunState
from polysync.domain.secrets import Writer
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.services import runs as run_service
from polysync.services.context import Services
from tests.engine.conftest import clock_of, make_task
from tests.requestlog import creates


def _follower(svc: Services) -> tuple[Services, Metrics]:
    """Another process's view of the same store and clock: its own Batch client, whose
    every call (each HTTP try) is counted by the SDK hook the worker's metrics use."""
    jobtype = BatchJobType(retry_total=3, retry_backoff_factor=0.02)
    calls = Metrics("follower")
    jobtype.add_call_observer(calls)
    follower = Services(settings=svc.settings, store=svc.store, clock=svc.clock)
    follower.use_jobtype(jobtype)
    return follower, calls


async def test_a_follower_beside_a_live_worker_makes_no_batch_call(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "watched")
    run = run_service.start_run(svc, "watched", writer=Writer.HOST)
    worker = Worker(svc, WorkerOptions(worker_id="w1", submit_rate=1000.0, sweep_interval_s=0.2))
    emulator.control.clear_requests()
    await worker.step()  # claims the run (and starts submitting it)
    assert not svc.store.claim_run(run.id, "probe", clock_of(svc)(), 30)  # w1 holds it
    follower, calls = _follower(svc)
    clock = clock_of(svc)

    async def time_passes(seconds: float) -> None:
        # While the follower waits, the worker lives on: its passes, the clock, real time
        # for the emulator's task.
        await worker.drain()
        clock.advance(seconds)
        await worker.step()
        await asyncio.sleep(0.02)

    try:
        final = await asyncio.wait_for(
            run_service.wait_run(follower, run.id, sleep=time_passes), 30
        )
    finally:
        await worker.drain()
        await follower.aclose()
    assert final.state is RunState.SUCCEEDED
    assert calls.calls_by_operation() == {}  # not a submission, not even a poll
    seen = creates(emulator.control.requests())
    assert (seen.job_posts, seen.job_conflicts, seen.task_conflicts) == (1, 0, 0)


async def test_a_follower_takes_over_once_the_holders_lease_runs_out(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "orphan")
    clock = clock_of(svc)
    run = run_service.start_run(svc, "orphan", writer=Writer.HOST)
    # Claimed by a process that then died: never renewed, never released.
    assert svc.store.claim_run(run.id, "dead-cli", clock(), 30)
    expiry = clock() + timedelta(seconds=30)
    follower, calls = _follower(svc)
    emulator.control.clear_requests()
    watched: list[RunState] = []

    async def time_passes(seconds: float) -> None:
        current = svc.store.get_run(run.id)
        if clock() < expiry:
            # Until the lease runs out the follower only reads the store: no Batch call.
            assert calls.calls_by_operation() == {}
            watched.append(current.state)
        clock.advance(seconds)
        await asyncio.sleep(0)

    try:
        final = await asyncio.wait_for(
            run_service.wait_run(follower, run.id, sleep=time_passes), 30
        )
    finally:
        await follower.aclose()
    assert len(watched) >= 25  # about one look a second
    assert set(watched) == {RunState.QUEUED}
    assert final.state is RunState.SUCCEEDED
    submitted = next(h for h in final.history if h.to_state is RunState.STARTING)
    assert submitted.at >= expiry
    seen = creates(emulator.control.requests())
    assert (seen.job_posts, seen.task_posts) == (1, 1)
    assert (seen.job_conflicts, seen.task_conflicts) == (0, 0)
