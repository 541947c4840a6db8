"""Fixtures for the job type's behaviour tests: a real emulator, the real SDK, no fakes.

The emulator is module-scoped (one server per test module); tests keep out of each
other's way with unique template ids and run ids rather than resets.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from polysync.domain import ids
from polysync.domain.models import (
    AuthMode,
    Job,
    JobOverrides,
    Parameter,
    Platform,
    PlatformAuth,
    RunState,
    SecretRef,
    TaskRun,
)
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.jobtypes.base import PollResult, ProviderStatus, ResolvedParam, SubmitRequest
from tests.support import StaticSecrets

if TYPE_CHECKING:
    from batch_emulator.server import EmulatorServer

INSTALLATION = "ptest001"
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
RESOURCE_GROUP = "rg-polysync"
BEARER = "emulator-bearer-token"
KEY_REF = SecretRef("env", "PS_TEST_BATCH_KEY")
TOKEN_REF = SecretRef("env", "PS_TEST_BATCH_TOKEN")

_run_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    # Imported here so the pure unit tests of this directory run without the server.
    from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed

    config = EmulatorConfig(
        host="127.0.0.1",
        port=0,
        account=DEFAULT_ACCOUNT,
        key=DEFAULT_KEY,
        data_dir=tmp_path_factory.mktemp("emulator"),
        pools=(PoolSeed("pool1", nodes=1, slots=4), PoolSeed("nonodes", nodes=0, slots=1)),
        bearer_tokens=(BEARER,),
    )
    with EmulatorServer(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    """A plain sync SDK client for arranging templates and checking what Batch holds."""
    client = BatchClient(emulator.endpoint, AzureNamedKeyCredential(emulator.account, emulator.key))
    yield client
    client.close()


def make_platform(
    emulator: EmulatorServer,
    *,
    name: str = "emu",
    auth: PlatformAuth | None = None,
    account_url: str | None = None,
    **extra: Any,
) -> Platform:
    return Platform(
        name=name,
        account_url=account_url or emulator.endpoint,
        account_name=emulator.account,
        subscription_id=SUBSCRIPTION,
        resource_group=RESOURCE_GROUP,
        auth=auth or PlatformAuth(AuthMode.SHARED_KEY, secret=KEY_REF),
        **extra,
    )


@pytest.fixture
def platform(emulator: EmulatorServer) -> Platform:
    return make_platform(emulator)


def resolver(values: Mapping[str, str]) -> StaticSecrets:
    return StaticSecrets(values)


@pytest.fixture
async def jobtype(emulator: EmulatorServer) -> AsyncIterator[BatchJobType]:
    jt = BatchJobType(
        secrets=resolver({str(KEY_REF): emulator.key, str(TOKEN_REF): BEARER}),
        retry_total=1,
        retry_backoff_factor=0.01,
    )
    yield jt
    await jt.aclose()


def make_template(
    batch: BatchClient,
    job_id: str | None = None,
    *,
    command_line: str | None = "/bin/sh -c 'echo hello $GREETING'",
    task_env: Mapping[str, str] | None = None,
    common_env: Mapping[str, str] | None = None,
    pool_id: str = "pool1",
    max_wall_clock: timedelta | None = timedelta(minutes=10),
    image: str | None = None,
    run_options: str | None = None,
    job_manager: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> str:
    """A template Batch Job as users keep them: pool, constraints, env and a first task."""
    job_id = job_id or unique("tmpl")
    manager = None
    if job_manager is not None:
        manager = models.BatchJobManagerTask(
            id="jm",
            command_line=job_manager,
            environment_settings=[models.EnvironmentSetting(name="JM_VAR", value="from-jm")],
        )
    batch.create_job(
        models.BatchJobCreateOptions(
            id=job_id,
            display_name=f"template {job_id}",
            pool_info=models.BatchPoolInfo(pool_id=pool_id),
            constraints=(
                models.BatchJobConstraints(max_wall_clock_time=max_wall_clock)
                if max_wall_clock
                else None
            ),
            common_environment_settings=[
                models.EnvironmentSetting(name=k, value=v) for k, v in (common_env or {}).items()
            ]
            or None,
            metadata=[
                models.BatchMetadataItem(name=k, value=v) for k, v in (metadata or {}).items()
            ]
            or None,
            job_manager_task=manager,
        )
    )
    if command_line is not None:
        container = (
            models.BatchTaskContainerSettings(image_name=image, container_run_options=run_options)
            if image
            else None
        )
        batch.create_task(
            job_id,
            models.BatchTaskCreateOptions(
                id="template-task",
                command_line=command_line,
                environment_settings=[
                    models.EnvironmentSetting(name=k, value=v) for k, v in (task_env or {}).items()
                ]
                or None,
                container_settings=container,
            ),
        )
    return job_id


def make_job(
    template_id: str,
    *,
    name: str = "nightly",
    parameters: Sequence[Parameter] = (),
    overrides: JobOverrides | None = None,
) -> Job:
    return Job(
        name=name,
        platform="emu",
        external_id=template_id,
        parameters=tuple(parameters),
        overrides=overrides or JobOverrides(),
    )


def make_run(task: str = "nightly", *, attempt: int = 1, run_id: int | None = None) -> TaskRun:
    rid = run_id if run_id is not None else next(_run_ids)
    return TaskRun(
        id=rid,
        task=task,
        job=task,
        platform="emu",
        state=RunState.QUEUED,
        attempt=attempt,
        batch_job_id=ids.batch_job_id(INSTALLATION, rid, attempt),
        batch_task_id=ids.batch_task_id(task),
    )


def jid(run: TaskRun) -> str:
    assert run.batch_job_id is not None
    return run.batch_job_id


def tid(run: TaskRun) -> str:
    assert run.batch_task_id is not None
    return run.batch_task_id


def request_for(
    platform: Platform,
    job: Job,
    run: TaskRun | None = None,
    params: Sequence[ResolvedParam] = (),
    execution_timeout_s: int | None = None,
) -> SubmitRequest:
    return SubmitRequest(
        platform=platform,
        job=job,
        run=run or make_run(job.name),
        params=tuple(params),
        execution_timeout_s=execution_timeout_s,
    )


async def wait_for(
    jobtype: BatchJobType,
    platform: Platform,
    run: TaskRun,
    statuses: Sequence[ProviderStatus],
    *,
    timeout_s: float = 30.0,
) -> PollResult:
    """Poll with a deadline until the run reaches one of ``statuses``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = await jobtype.poll(platform, run)
        if result.status in statuses:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"run {run.run_id} still {result} after {timeout_s} s")
        await asyncio.sleep(0.05)


def with_ids(run: TaskRun, job_id: str, task_id: str) -> TaskRun:
    return replace(run, batch_job_id=job_id, batch_task_id=task_id)
