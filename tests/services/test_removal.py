"""Forced removals stop their unfinished runs' Batch work first, or remove nothing.

Real emulator, SDK and SQLite store: a Task, Job or Platform whose run is Running is
force-removed and the run's Batch task and job are read back terminated; when Batch
refuses or cannot be reached, every record stays as it was and the error names the run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer, PoolSeed
from polysync.config import load_settings
from polysync.dispatcher.clock import FakeClock
from polysync.dispatcher.worker import Worker, WorkerOptions
from polysync.domain.models import RunState, TaskRun
from polysync.domain.secrets import Writer
from polysync.errors import InputError, NotFoundError, RemovalBlocked
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.services import jobs as job_service
from polysync.services import removal
from polysync.services import runs as run_service
from polysync.services import tasks as task_service
from polysync.services.context import Services, open_services
from tests.support import add_emulator_platform, create_template, running_emulator, sdk_client

KEY_ENV = "PS_REMOVAL_KEY"
# The template's own task ends at once (SECS=0); the runs' tasks sleep (their SECS=120).
SLEEP = "/bin/sh -c 'sleep $SECS'"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with running_emulator(tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 1, 8)) as emu:
        yield emu


@pytest.fixture
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


@pytest.fixture
async def svc(
    tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Services]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    services = open_services(load_settings({"home": tmp_path / "home"}, environ={}))
    services.clock = FakeClock()
    # Few, quick SDK retries: the unreachable case should fail in well under a second.
    services.use_jobtype(BatchJobType(retry_total=1, retry_backoff_factor=0.01))
    add_emulator_platform(services, emulator, KEY_ENV)
    yield services
    await services.aclose()
    services.close()


async def running_run(svc: Services, batch: BatchClient, task: str) -> TaskRun:
    """A run of a new Task (on a new Job) whose Batch task is running, recorded Running."""
    template = create_template(batch, SLEEP, prefix="rm", task_id="t", env={"SECS": "0"})
    await job_service.import_jobs(svc, "local", [template])
    task_service.create_task(svc, task, template, {"SECS": "120"}, writer=Writer.HOST)
    run = await run_service.submit_run(svc, run_service.start_run(svc, task, writer=Writer.HOST).id)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while run.state is not RunState.RUNNING:
        assert loop.time() < deadline, f"run {run.id} did not start: {run}"
        await asyncio.sleep(0.05)
        run = await run_service.refresh_run(svc, run.id)
    return run


def batch_states(batch: BatchClient, run: TaskRun) -> tuple[str | None, str | None]:
    """The run's Batch task and job states, read back with the SDK (str enums)."""
    assert run.batch_job_id is not None
    assert run.batch_task_id is not None
    task = batch.get_task(run.batch_job_id, run.batch_task_id)
    job = batch.get_job(run.batch_job_id)
    return task.state, job.state


async def _remove(svc: Services, kind: str, name: str) -> removal.Removal:
    if kind == "task":
        return await removal.remove_task(svc, name, force=True)
    if kind == "job":
        return await removal.remove_job(svc, name, force=True)
    return await removal.remove_platform(svc, name, force=True)


@pytest.mark.parametrize("kind", ["task", "job", "platform"])
async def test_forced_removal_terminates_the_batch_work_of_running_runs(
    svc: Services, batch: BatchClient, kind: str
) -> None:
    run = await running_run(svc, batch, "busy")
    queued = run_service.start_run(
        svc, "busy", writer=Writer.HOST
    )  # never reached Batch: nothing to stop
    assert batch_states(batch, run) == ("running", "active")
    name = {"task": run.task, "job": run.job, "platform": run.platform}[kind]

    done = await _remove(svc, kind, name)

    assert done.stopped == (run.id,)
    assert f"run(s) {run.id} was stopped" in done.message()
    task_state, job_state = batch_states(batch, run)
    assert task_state == "completed"
    assert job_state in ("terminating", "completed")
    for gone in (run.id, queued.id):
        with pytest.raises(NotFoundError):
            svc.store.get_run(gone)
    with pytest.raises(NotFoundError):
        svc.store.get_task("busy")


async def test_removal_without_force_is_refused_and_stops_nothing(
    svc: Services, batch: BatchClient
) -> None:
    run = await running_run(svc, batch, "busy")
    with pytest.raises(InputError, match=rf"task busy has run\(s\) still in progress: {run.id}"):
        await removal.remove_task(svc, "busy")
    with pytest.raises(InputError, match="is used by task"):
        await removal.remove_job(svc, run.job)
    assert batch_states(batch, run) == ("running", "active")
    assert svc.store.get_run(run.id).state is RunState.RUNNING


@pytest.mark.parametrize(
    ("fault", "phrase"),
    [
        pytest.param({"drop": True}, "could not be stopped", id="unreachable"),
        pytest.param(
            {"status": 403, "code": "AuthorizationFailure"}, "could not be stopped", id="refused"
        ),
    ],
)
async def test_when_batch_cannot_stop_the_work_nothing_is_removed(
    svc: Services,
    batch: BatchClient,
    emulator: EmulatorServer,
    fault: dict[str, object],
    phrase: str,
) -> None:
    run = await running_run(svc, batch, "busy")
    emulator.control.set_faults(
        [
            {"method": "POST", "path": "/jobs/*/tasks/*/terminate", **fault},
            {"method": "POST", "path": "/jobs/*/terminate", **fault},
        ]
    )
    try:
        with pytest.raises(RemovalBlocked) as raised:
            await removal.remove_task(svc, "busy", force=True)
    finally:
        emulator.control.clear_faults()
    message = str(raised.value)
    assert message.startswith("task busy was not removed")
    assert f"run(s) {run.id} {phrase}" in message
    assert "polysync platform test local" in message
    assert DEFAULT_KEY not in message
    assert raised.value.exit_code == 3
    # Everything in place: the task, the run as it was, its Batch work still running.
    assert svc.store.get_task("busy").name == "busy"
    kept = svc.store.get_run(run.id)
    assert (kept.state, kept.cancel_requested) == (RunState.RUNNING, False)
    assert batch_states(batch, run) == ("running", "active")
    # Once Batch answers again, the same removal goes through.
    done = await removal.remove_task(svc, "busy", force=True)
    assert done.stopped == (run.id,)
    assert batch_states(batch, run)[0] == "completed"


async def test_a_worker_tracking_a_removed_run_lets_it_go(
    svc: Services, batch: BatchClient
) -> None:
    template = create_template(batch, SLEEP, prefix="rm", task_id="t", env={"SECS": "0"})
    await job_service.import_jobs(svc, "local", [template])
    task_service.create_task(svc, "tracked", template, {"SECS": "120"}, writer=Writer.HOST)
    run = run_service.start_run(svc, "tracked", writer=Writer.HOST)
    worker = Worker(svc, WorkerOptions(worker_id="w1", submit_rate=1000.0, sweep_interval_s=0.2))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    while run.id not in worker.tracked_ids():
        assert loop.time() < deadline, "the worker did not submit the run"
        await worker.step()
        await worker.drain()
    done = await removal.remove_task(svc, "tracked", force=True)
    assert done.stopped == (run.id,)
    clock = svc.clock
    assert isinstance(clock, FakeClock)
    clock.advance(60)  # its next poll is due: it finds the run gone
    await worker.step()
    await worker.drain()
    assert worker.tracked_ids() == set()
    assert worker.metrics.events["poll_errors"] == 0


async def test_a_removal_stopped_half_way_records_the_runs_it_did_stop_cancelled(
    svc: Services, batch: BatchClient, emulator: EmulatorServer
) -> None:
    first = await running_run(svc, batch, "pair")
    second = run_service.start_run(svc, "pair", writer=Writer.HOST)
    second = await run_service.submit_run(svc, second.id)
    # Batch refuses one of the two task terminations.
    emulator.control.set_faults(
        [
            {
                "method": "POST",
                "path": "/jobs/*/tasks/*/terminate",
                "every": 2,
                "status": 403,
                "code": "AuthorizationFailure",
            }
        ]
    )
    try:
        with pytest.raises(RemovalBlocked) as raised:
            await removal.remove_task(svc, "pair", force=True)
    finally:
        emulator.control.clear_faults()
    runs = {r.id: svc.store.get_run(r.id) for r in (first, second)}
    stopped = [r for r in runs.values() if r.state is RunState.CANCELLED]
    refused = [r for r in runs.values() if r.state is not RunState.CANCELLED]
    assert len(stopped) == len(refused) == 1
    assert f"run(s) {refused[0].id} could not be stopped" in str(raised.value)
    assert f"Run(s) {stopped[0].id} were stopped and are now Cancelled" in str(raised.value)
    assert batch_states(batch, stopped[0])[0] == "completed"
    assert not refused[0].cancel_requested
    assert svc.store.get_task("pair").name == "pair"
