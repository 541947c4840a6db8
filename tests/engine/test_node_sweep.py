"""The node sweep (decision 0009) against the emulator, through the real SDK pipeline.

Each sweep lists the nodes of the runs' pools; a task seen running moves its run to
Running and one seen ending with exit code 0 ends its run Succeeded — both without a
per-run ``GET task``. Failures are still polled (for their details and stderr), and a
credential that may not list nodes leaves the worker polling as before.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from polysync.dispatcher.worker import Worker, WorkerOptions
from polysync.domain import ids
from polysync.domain.models import RunState
from polysync.domain.secrets import Writer
from polysync.services import runs as run_service
from polysync.services.context import Services
from tests.engine.conftest import drive, make_task

OPTIONS = WorkerOptions(worker_id="w1", submit_rate=1000.0, sweep_interval_s=0.2)
GET_TASK = "GET /jobs/{jobId}/tasks/{taskId}"
LIST_NODES = "GET /pools/{poolId}/nodes"


@pytest.fixture
def clean_emulator(emulator: EmulatorServer) -> Iterator[EmulatorServer]:
    yield emulator
    emulator.control.release_all()
    emulator.control.clear_faults()


def _prefix(svc: Services) -> str:
    return ids.job_id_prefix(svc.store.installation_id())


async def test_starts_and_successes_are_recorded_from_the_nodes_without_polls(
    svc: Services, batch: BatchClient, clean_emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "nodes")
    # Pinned running (the processes run; their outcome waits): the sweep must see them so.
    clean_emulator.control.hold(job_id=f"{_prefix(svc)}*", state="running")
    created = [
        run_service.start_run(svc, "nodes", {"CODE": "0"}, writer=Writer.HOST) for _ in range(4)
    ]
    worker = Worker(svc, OPTIONS)
    # 0.25 s of fake time per pass: a sweep every pass, the first safety poll (10 s for a
    # run whose pool is swept) never due before the runs are seen running.
    await drive(
        worker,
        lambda: all(svc.store.get_run(r.id).state is RunState.RUNNING for r in created),
        advance_s=0.25,
    )
    calls = worker.metrics.calls_by_operation()
    assert calls.get(GET_TASK, 0) == 0
    assert calls[LIST_NODES] >= 1
    for run in created:
        got = svc.store.get_run(run.id)
        assert got.batch_pool_id == "pool1"
        assert got.history[-1].reason.startswith("running on node ")
        assert got.batch_job_id is not None
        assert got.batch_task_id is not None
        task = batch.get_task(got.batch_job_id, got.batch_task_id)
        assert task.execution_info is not None
        # Running is recorded at Batch's start time (decision 0004), as a poll would.
        assert got.started_at == task.execution_info.start_time

    clean_emulator.control.release_all()
    await drive(
        worker,
        lambda: all(svc.store.get_run(r.id).state.is_terminal for r in created),
        advance_s=0.25,
    )
    for run in created:
        final = svc.store.get_run(run.id)
        assert final.state is RunState.SUCCEEDED
        assert final.exit_code == 0
        assert final.ended_at is not None
    calls = worker.metrics.calls_by_operation()
    assert calls.get(GET_TASK, 0) == 0  # not one poll for four runs
    assert worker.metrics.events["node_sweep_observed"] == 2 * len(created)


async def test_a_failure_seen_on_a_node_is_polled_for_its_details(
    svc: Services, batch: BatchClient, clean_emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "fails", "/bin/sh -c 'echo broken >&2; exit 3'")
    run = run_service.start_run(svc, "fails", writer=Writer.HOST)
    worker = Worker(svc, OPTIONS)
    await drive(worker, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    final = svc.store.get_run(run.id)
    assert final.state is RunState.FAILED
    assert final.exit_code == 3
    assert final.failure is not None
    assert final.failure.stderr_tail is not None
    assert "broken" in final.failure.stderr_tail
    assert worker.metrics.calls_by_operation()[GET_TASK] >= 1


async def test_without_permission_to_list_nodes_the_worker_polls_each_run(
    svc: Services,
    batch: BatchClient,
    clean_emulator: EmulatorServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await make_task(svc, batch, "denied")
    rule = {"method": "GET", "path": "/pools/*/nodes", "status": 403}
    clean_emulator.control.set_faults([{**rule, "code": "AuthorizationPermissionMismatch"}])
    created = [
        run_service.start_run(svc, "denied", {"CODE": c}, writer=Writer.HOST) for c in ("0", "4")
    ]
    worker = Worker(svc, OPTIONS)
    with caplog.at_level(logging.WARNING, logger="polysync.dispatcher.worker"):
        await drive(
            worker,
            lambda: all(svc.store.get_run(r.id).state.is_terminal for r in created),
            advance_s=0.25,
        )
    states = [svc.store.get_run(r.id).state for r in created]
    assert states == [RunState.SUCCEEDED, RunState.FAILED]
    assert worker.metrics.events["node_sweep_errors"] == 1  # tried once, then off
    warnings = [r.getMessage() for r in caplog.records if "cannot list pool nodes" in r.message]
    assert len(warnings) == 1
    assert worker.metrics.calls_by_operation()[GET_TASK] >= len(created)


async def test_no_node_sweep_option_lists_no_nodes(
    svc: Services, batch: BatchClient, clean_emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "plain")
    run = run_service.start_run(svc, "plain", writer=Writer.HOST)
    options = WorkerOptions(
        worker_id="w1", submit_rate=1000.0, sweep_interval_s=0.2, node_sweep=False
    )
    worker = Worker(svc, options)
    await drive(worker, lambda: svc.store.get_run(run.id).state.is_terminal, advance_s=0.25)
    assert svc.store.get_run(run.id).state is RunState.SUCCEEDED
    calls = worker.metrics.calls_by_operation()
    assert LIST_NODES not in calls
    assert calls[GET_TASK] >= 1


async def test_a_pool_is_listed_less_often_the_more_nodes_it_has(
    svc: Services, batch: BatchClient, clean_emulator: EmulatorServer
) -> None:
    await make_task(svc, batch, "big-pool")
    clean_emulator.control.hold(job_id=f"{_prefix(svc)}*", state="running")
    run = run_service.start_run(svc, "big-pool", writer=Writer.HOST)
    # pool1 has 4 nodes: at 1 node per second it is listed every 4 s, while the job
    # sweep still runs every 0.2 s.
    options = WorkerOptions(
        worker_id="w1", submit_rate=1000.0, sweep_interval_s=0.2, node_sweep_nodes_per_s=1.0
    )
    worker = Worker(svc, options)
    await drive(worker, lambda: svc.store.get_run(run.id).state is RunState.RUNNING, advance_s=0.25)
    before = worker.metrics.calls_by_operation()
    passes = iter(range(40))  # 10 s of fake time, 0.25 s a pass
    await drive(worker, lambda: next(passes, None) is None, advance_s=0.25)
    after = worker.metrics.calls_by_operation()
    node_lists = after[LIST_NODES] - before.get(LIST_NODES, 0)
    job_lists = after["GET /jobs"] - before.get("GET /jobs", 0)
    assert 2 <= node_lists <= 3  # 10 s / 4 s
    assert job_lists >= 30
    assert svc.store.get_run(run.id).state is RunState.RUNNING
