"""Behaviour 1: discovery lists every job, following odata.nextLink, at scale."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from azure.batch import models
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator.server import EmulatorServer
from polysync.domain.models import Platform
from polysync.jobtypes.azure_batch.jobtype import BatchJobType

BULK = 2_100  # > 2 × the service's 1,000-per-page default: at least three pages


async def _create_jobs(emulator: EmulatorServer, job_ids: Sequence[str]) -> None:
    credential = AzureNamedKeyCredential(emulator.account, emulator.key)
    async with AsyncBatchClient(emulator.endpoint, credential) as client:
        gate = asyncio.Semaphore(24)

        async def one(job_id: str) -> None:
            async with gate:
                await client.create_job(
                    models.BatchJobCreateOptions(
                        id=job_id,
                        display_name=f"bulk job {job_id}",
                        pool_info=models.BatchPoolInfo(pool_id="pool1"),
                    )
                )

        await asyncio.gather(*(one(j) for j in job_ids))


def _list_pages(emulator: EmulatorServer) -> list[dict[str, object]]:
    return [
        r
        for r in emulator.control.requests()
        if r.get("method") == "GET" and str(r.get("path", "")).rstrip("/") == "/jobs"
    ]


async def test_discovers_thousands_of_jobs_over_three_pages(
    emulator: EmulatorServer, platform: Platform, jobtype: BatchJobType
) -> None:
    wanted = [f"bulk-{i:05d}" for i in range(BULK)]
    await _create_jobs(emulator, wanted)
    emulator.control.clear_requests()

    found = [job async for job in jobtype.discover(platform)]

    found_ids = [job.id for job in found]
    assert len(found_ids) == len(set(found_ids)), "a page repeated jobs"
    assert set(wanted) <= set(found_ids)
    sample = next(job for job in found if job.id == "bulk-01234")
    assert sample.display_name == "bulk job bulk-01234"
    assert sample.state == "active"
    pages = _list_pages(emulator)
    assert len(pages) >= 3
    # Every page asked only for what discovery shows ($select=id,displayName,state).
    assert all("id,displayName,state" in str(page.get("query", "")) for page in pages)


async def test_page_size_sets_maxresults_of_every_page(
    emulator: EmulatorServer, platform: Platform, jobtype: BatchJobType
) -> None:
    await _create_jobs(emulator, [f"paged-{i}" for i in range(7)])
    emulator.control.clear_requests()
    found = [job.id async for job in jobtype.discover(platform, id_prefix="paged-", page_size=3)]
    assert sorted(found) == sorted(f"paged-{i}" for i in range(7))
    pages = _list_pages(emulator)
    assert len(pages) == 3  # 3 + 3 + 1
    assert all("maxresults=3" in str(page.get("query", "")) for page in pages)


async def test_discover_with_prefix_filters_server_side(
    emulator: EmulatorServer, platform: Platform, jobtype: BatchJobType
) -> None:
    await _create_jobs(emulator, ["pfx-a", "pfx-b", "other-c"])
    found = {job.id async for job in jobtype.discover(platform, id_prefix="pfx-")}
    assert found == {"pfx-a", "pfx-b"}
