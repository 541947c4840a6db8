"""Fixtures for the engine: a real emulator, a real SQLite store, the real SDK.

Each test gets its own POLYSYNC_HOME (so its own installation id and job id prefix) and
a fresh Services with a fake clock unless it asks for the real one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient, models

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer, PoolSeed
from polysync.config import load_settings
from polysync.dispatcher.clock import FakeClock
from polysync.dispatcher.worker import Worker
from polysync.domain.models import RetryPolicy, TaskRun
from polysync.domain.secrets import Writer
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.services import jobs as job_service
from polysync.services import tasks as task_service
from polysync.services.context import Services, open_services
from tests.support import add_emulator_platform, emulator_config, sdk_client

KEY_ENV = "PS_ENGINE_KEY"


def start_emulator(data_dir: Path, **extra: object) -> EmulatorServer:
    pool = PoolSeed("pool1", nodes=4, slots=64)
    return EmulatorServer(emulator_config(data_dir, pool, **extra)).start()


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    emu = start_emulator(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.stop()


@pytest.fixture(scope="module")
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


async def open_svc(home: Path, emulator: EmulatorServer, *, fake_clock: bool) -> Services:
    svc = open_services(load_settings({"home": home}, environ={}))
    if fake_clock:
        svc.clock = FakeClock()
    # Fast SDK retries: the faults tests inject many 5xx and the defaults back off for seconds.
    svc.use_jobtype(BatchJobType(retry_total=3, retry_backoff_factor=0.02))
    add_emulator_platform(svc, emulator, KEY_ENV)
    return svc


@pytest.fixture
async def svc(
    tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Services]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    services = await open_svc(tmp_path / "home", emulator, fake_clock=True)
    yield services
    await services.aclose()
    services.close()


def clock_of(svc: Services) -> FakeClock:
    assert isinstance(svc.clock, FakeClock)
    return svc.clock


def make_template(batch: BatchClient, command: str, *, pool: str = "pool1") -> str:
    job_id = f"tpl-{uuid.uuid4().hex[:8]}"
    batch.create_job(
        models.BatchJobCreateOptions(
            id=job_id,
            pool_info=models.BatchPoolInfo(pool_id=pool),
            constraints=models.BatchJobConstraints(max_wall_clock_time=timedelta(minutes=10)),
            common_environment_settings=[models.EnvironmentSetting(name="CODE", value="0")],
        )
    )
    batch.create_task(job_id, models.BatchTaskCreateOptions(id="t", command_line=command))
    return job_id


async def make_task(
    svc: Services,
    batch: BatchClient,
    name: str,
    command: str = "/bin/sh -c 'exit $CODE'",
    *,
    retry: RetryPolicy | None = None,
    timeout_s: int | None = None,
    priority: int = 0,
) -> str:
    template = make_template(batch, command)
    await job_service.import_jobs(svc, "local", [template])
    task_service.create_task(
        svc,
        name,
        template,
        {},
        retry_policy=retry,
        execution_timeout_s=timeout_s,
        priority=priority,
        writer=Writer.HOST,
    )
    return template


async def drive(
    worker: Worker,
    done: Callable[[], bool],
    *,
    advance_s: float = 0.0,
    timeout_s: float = 30.0,
) -> None:
    """Step the worker (and the fake clock by ``advance_s`` per pass) until ``done()``.

    Real time passes between passes (the emulator runs real processes); the deadline
    bounds the wait.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        await worker.step()
        await worker.drain()
        if done():
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {timeout_s} s")
        if advance_s:
            clock = worker.svc.clock
            assert isinstance(clock, FakeClock)
            clock.advance(advance_s)
        await asyncio.sleep(0.02)


def state_of(svc: Services, run: TaskRun) -> str:
    return svc.store.get_run(run.id).state.value
