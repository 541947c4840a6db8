"""Every operation through the official async SDK (``azure.batch.aio``, aiohttp transport)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
import pytest
from azure.batch import models
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from batch_emulator.app import create_app
from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed, SharedKeyAuth


async def _wait_task(client: AsyncBatchClient, job: str, task: str, state: str) -> Any:
    for _ in range(750):
        current = await client.get_task(job, task)
        if current.state == state:
            return current
        await asyncio.sleep(0.02)
    pytest.fail(f"task {job}/{task} never reached {state}")


async def test_pool_operations(aclient: Any) -> None:
    await aclient.create_pool(
        models.BatchPoolCreateOptions(id="apool", vm_size="small", target_dedicated_nodes=0)
    )
    assert (await aclient.get_pool("apool")).current_dedicated_nodes == 0
    assert await aclient.pool_exists("apool") is True
    assert "apool" in [p.id async for p in aclient.list_pools()]
    poller = await aclient.begin_resize_pool(
        "apool", models.BatchPoolResizeOptions(target_dedicated_nodes=2), polling_interval=0.05
    )
    await poller.result()
    assert (await aclient.get_pool("apool")).current_dedicated_nodes == 2
    poller = await aclient.begin_delete_pool("apool", polling_interval=0.05)
    await poller.result()
    with pytest.raises(ResourceNotFoundError):
        await aclient.get_pool("apool")


async def test_job_and_task_lifecycle(fresh: EmulatorServer, aclient: Any, h: Any) -> None:
    await aclient.create_job(
        models.BatchJobCreateOptions(
            id="aj",
            pool_info=models.BatchPoolInfo(pool_id=h.POOL),
            common_environment_settings=[models.EnvironmentSetting(name="WHO", value="async")],
        )
    )
    with pytest.raises(ResourceExistsError):
        await aclient.create_job(
            models.BatchJobCreateOptions(id="AJ", pool_info=models.BatchPoolInfo(pool_id="x"))
        )
    await aclient.update_job("aj", models.BatchJobUpdateOptions(priority=7))
    job = await aclient.get_job("aj")
    assert job.priority == 7
    job.priority = 8
    await aclient.replace_job("aj", job)
    assert (await aclient.get_job("aj")).priority == 8
    assert "aj" in [j.id async for j in aclient.list_jobs(filter="id eq 'aj'")]

    await aclient.create_task(
        "aj", models.BatchTaskCreateOptions(id="t1", command_line="/bin/sh -c 'echo $WHO'")
    )
    result = await aclient.create_task_collection(
        "aj",
        models.BatchTaskGroup(
            task_values=[
                models.BatchTaskCreateOptions(id="t2", command_line="/bin/sh -c 'sleep 30'"),
                models.BatchTaskCreateOptions(id="t3", command_line="/bin/true"),
            ]
        ),
    )
    assert {r.status for r in result.result_values} == {"success"}
    done = await _wait_task(aclient, "aj", "t1", "completed")
    assert done.execution_info.exit_code == 0
    stream = await aclient.download_task_file("aj", "t1", "stdout.txt")
    assert b"".join([chunk async for chunk in stream]) == b"async\n"
    ranged = await aclient.download_task_file("aj", "t1", "stdout.txt", ocp_range="bytes=0-1")
    assert b"".join([chunk async for chunk in ranged]) == b"as"
    props = await aclient.get_task_file_properties("aj", "t1", "stdout.txt")
    assert props.content_length == 6
    names = [f.name async for f in aclient.list_task_files("aj", "t1")]
    assert "stdout.txt" in names

    await _wait_task(aclient, "aj", "t2", "running")
    await aclient.terminate_task("aj", "t2")
    assert (await aclient.get_task("aj", "t2")).execution_info.failure_info.code == "TaskEnded"
    await _wait_task(aclient, "aj", "t3", "completed")
    await aclient.delete_task("aj", "t3")
    assert sorted([t.id async for t in aclient.list_tasks("aj")]) == ["t1", "t2"]
    counts = await aclient.get_job_task_counts("aj")
    assert counts.task_counts.completed == 2

    poller = await aclient.begin_terminate_job(
        "aj", {"terminateReason": "async done"}, polling_interval=0.05
    )
    await poller.result()
    job = await aclient.get_job("aj")
    assert job.state == models.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "async done"
    poller = await aclient.begin_delete_job("aj", polling_interval=0.05)
    await poller.result()
    with pytest.raises(ResourceNotFoundError):
        await aclient.get_job("aj")


async def test_async_wall_clock_via_control(fresh: EmulatorServer, aclient: Any, h: Any) -> None:
    await aclient.create_job(
        models.BatchJobCreateOptions(id="w", pool_info=models.BatchPoolInfo(pool_id=h.POOL))
    )
    await aclient.create_task(
        "w",
        models.BatchTaskCreateOptions(
            id="t",
            command_line="/bin/sh -c 'sleep 30'",
            constraints=models.BatchTaskConstraints(max_wall_clock_time=dt.timedelta(seconds=5)),
        ),
    )
    await _wait_task(aclient, "w", "t", "running")
    await asyncio.to_thread(fresh.control.advance_clock, 6)
    task = await _wait_task(aclient, "w", "t", "completed")
    assert task.execution_info.exit_code == -1073741510


async def test_in_process_asgi_app(tmp_path: Any) -> None:
    """``create_app`` mounted in-process (no server, no lifespan): the scheduler starts
    with the first request and stops with ``shutdown()``."""
    app = create_app(EmulatorConfig(data_dir=tmp_path, pools=(PoolSeed("p", 1, 1),)))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://emulator.local",
            auth=SharedKeyAuth(app.config.account, app.config.key),
        ) as c:
            q = {"api-version": "2025-06-01"}
            created = await c.post("/jobs", params=q, json={"id": "j", "poolInfo": {"poolId": "p"}})
            assert created.status_code == 201
            task = {"id": "t", "commandLine": "/bin/sh -c 'echo $AZ_BATCH_ACCOUNT_URL'"}
            assert (await c.post("/jobs/j/tasks", params=q, json=task)).status_code == 201
            for _ in range(500):
                body = (await c.get("/jobs/j/tasks/t", params=q)).json()
                if body["state"] == "completed":
                    break
                await asyncio.sleep(0.02)
            assert body["url"] == "http://emulator.local/jobs/j/tasks/t"
            out = await c.get("/jobs/j/tasks/t/files/stdout.txt", params=q)
            assert out.text == "http://emulator.local\n"
    finally:
        await app.shutdown()
        app.close()
