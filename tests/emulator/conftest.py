"""Shared fixtures of the emulator tests: one server per session, reset between tests.

``emu`` runs the real server (uvicorn on a thread) with pool ``pool1`` (2 nodes × 2 slots)
seeded; every test that uses it starts from a clean state (``control.reset()`` re-creates
the seeded pools). Tests talk to it through the official SDK (sync ``client``, async
``aclient``) and, for wire details, through ``raw`` — an httpx client that signs requests
with Shared Key exactly as the SDK does. Helpers come as the ``h`` fixture (so test modules
need not import this file, whatever pytest's import mode).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from azure.batch import BatchClient, models
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed, SharedKeyAuth

T = TypeVar("T")
API = {"api-version": "2025-06-01"}
POOL = "pool1"


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 15.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what or probe}.")
        time.sleep(interval)


def wait_task(client: Any, job_id: str, task_id: str, state: str) -> Any:
    """The task once it is in ``state`` (typed Any: SDK models are Optional everywhere)."""

    def probe() -> models.BatchTask | None:
        task = client.get_task(job_id, task_id)
        return task if task.state == state else None

    return wait_for(probe, what=f"task {job_id}/{task_id} to be {state}")


def wait_job(client: Any, job_id: str, state: str) -> Any:
    def probe() -> models.BatchJob | None:
        job = client.get_job(job_id)
        return job if job.state == state else None

    return wait_for(probe, what=f"job {job_id} to be {state}")


def new_job(client: BatchClient, job_id: str, pool_id: str = POOL, **kwargs: Any) -> None:
    client.create_job(
        models.BatchJobCreateOptions(
            id=job_id, pool_info=models.BatchPoolInfo(pool_id=pool_id), **kwargs
        )
    )


def new_task(client: BatchClient, job_id: str, task_id: str, command: str, **kwargs: Any) -> None:
    client.create_task(
        job_id, models.BatchTaskCreateOptions(id=task_id, command_line=command, **kwargs)
    )


def code(exc: HttpResponseError) -> str:
    """The Batch error code the SDK parsed from the error envelope (NOTES.md §9.3)."""
    assert exc.error is not None, f"no parsed error body on {exc!r}"
    return str(exc.error.code)


def message(exc: HttpResponseError) -> str:
    assert exc.error is not None, f"no parsed error body on {exc!r}"
    return str(exc.error.message)


def sdk_client(emu: EmulatorServer, **kwargs: Any) -> BatchClient:
    return BatchClient(emu.endpoint, AzureNamedKeyCredential(emu.account, emu.key), **kwargs)


class Helpers:
    """The module-level helpers above, as a fixture."""

    API = API
    POOL = POOL
    wait_for = staticmethod(wait_for)
    wait_task = staticmethod(wait_task)
    wait_job = staticmethod(wait_job)
    new_job = staticmethod(new_job)
    new_task = staticmethod(new_task)
    sdk_client = staticmethod(sdk_client)
    code = staticmethod(code)
    message = staticmethod(message)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers


@pytest.fixture(scope="session")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        data_dir=tmp_path_factory.mktemp("emulator"),
        pools=(PoolSeed(POOL, nodes=2, slots=2),),
        kill_grace_s=1.0,
    )
    with EmulatorServer(config) as server:
        yield server


@pytest.fixture
def fresh(emu: EmulatorServer) -> EmulatorServer:
    """The shared server, reset to its start state."""
    emu.control.reset()
    return emu


@pytest.fixture
def client(fresh: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(fresh, retry_total=0) as c:
        yield c


@pytest.fixture
async def aclient(fresh: EmulatorServer) -> AsyncIterator[AsyncBatchClient]:
    async with AsyncBatchClient(
        fresh.endpoint, AzureNamedKeyCredential(fresh.account, fresh.key), retry_total=0
    ) as c:
        yield c


@pytest.fixture
def raw(fresh: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fresh.endpoint, auth=SharedKeyAuth(fresh.account, fresh.key), timeout=30
    ) as c:
        yield c


@pytest.fixture
def data_dir(fresh: EmulatorServer) -> Path:
    return fresh.data_dir
