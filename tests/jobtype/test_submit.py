"""Behaviour 3, 6, 7: submit builds the seed's bodies race-free, adopts only its own jobs."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from azure.batch import BatchClient, models

from batch_emulator.server import EmulatorServer
from polysync.domain import ids
from polysync.domain.models import Direction, JobOverrides, Parameter, Platform
from polysync.errors import (
    FingerprintMismatch,
    PlatformError,
    PoolNotFoundError,
    QuotaError,
    TemplateError,
    ThrottledError,
)
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.jobtypes.base import ProviderStatus, ResolvedParam
from tests.jobtype.conftest import (
    INSTALLATION,
    RESOURCE_GROUP,
    SUBSCRIPTION,
    jid,
    make_job,
    make_run,
    make_template,
    request_for,
    tid,
    unique,
    wait_for,
)


def _requests(emulator: EmulatorServer, since: int = 0) -> list[dict[str, Any]]:
    return list(emulator.control.requests())[since:]


def _calls(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(str(e.get("method")), str(e.get("path"))) for e in entries]


def create_fingerprinted_job(batch: BatchClient, job_id: str, run_id: int, attempt: int) -> None:
    """A Batch job as an earlier submission of (run_id, attempt) would have left it."""
    batch.create_job(
        models.BatchJobCreateOptions(
            id=job_id,
            pool_info=models.BatchPoolInfo(pool_id="pool1"),
            metadata=[
                models.BatchMetadataItem(name=n, value=v)
                for n, v in ids.fingerprint(INSTALLATION, run_id, attempt)
            ],
        )
    )


def _env(items: list[models.EnvironmentSetting] | None) -> list[tuple[str, str | None]]:
    return [(e.name, e.value) for e in items or []]


async def test_submit_creates_the_seed_job_and_task_race_free(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(
        batch,
        command_line="/bin/sh -c 'echo hello $GREETING from $REGION'",
        common_env={"REGION": "eu"},
        task_env={"GREETING": "hi", "RESULT": "none"},
        metadata={"owner": "team-a"},
    )
    job = make_job(
        template_id,
        parameters=(
            Parameter("GREETING"),
            Parameter("COUNT", direction=Direction.INPUT_OUTPUT),
            Parameter("RESULT", direction=Direction.OUTPUT),
        ),
    )
    run = make_run()
    mark = len(_requests(emulator))
    params = (ResolvedParam("GREETING", "bonjour"), ResolvedParam("COUNT", "3"))

    result = await jobtype.submit(request_for(platform, job, run, params))

    assert (result.batch_job_id, result.batch_task_id) == (jid(run), tid(run))
    assert result.adopted is False
    assert run.run_id == f"{result.batch_job_id}/{result.batch_task_id}"
    made = batch.get_job(result.batch_job_id)
    assert made.id == jid(run)
    assert made.display_name == f"Polysync nightly run {run.id}"
    assert made.pool_info.pool_id == "pool1"
    assert result.pool_id == "pool1"  # recorded on the run: the node sweep lists it (0009)
    assert made.all_tasks_complete_mode == "terminatejob"  # after the D3 PATCH
    assert made.job_manager_task is None
    metadata = {m.name: m.value for m in made.metadata or []}
    assert metadata["owner"] == "team-a"
    assert ids.fingerprint_matches(metadata, INSTALLATION, run.id, run.attempt)
    assert _env(made.common_environment_settings) == [("REGION", "eu")]
    task = batch.get_task(result.batch_job_id, result.batch_task_id)
    assert task.command_line == "/bin/sh -c 'echo hello $GREETING from $REGION'"
    # Input and Input&Output as strings; the Output parameter RESULT is never sent.
    assert _env(task.environment_settings) == [("GREETING", "bonjour"), ("COUNT", "3")]
    assert task.container_settings is None
    # D3: create with noaction, add the task, then switch to terminatejob.
    calls = _calls(_requests(emulator, mark))
    job_path = f"/jobs/{jid(run)}"
    order = [c for c in calls if c[0] in ("POST", "PATCH") and "/terminate" not in c[1]]
    assert order == [("POST", "/jobs"), ("POST", f"{job_path}/tasks"), ("PATCH", job_path)]

    finished = await wait_for(
        jobtype, platform, run, [ProviderStatus.SUCCESS, ProviderStatus.FAILED]
    )
    assert finished.status is ProviderStatus.SUCCESS
    out = await jobtype.read_file(platform, run, "stdout.txt")
    assert out.data.decode().strip() == "hello bonjour from eu"


async def test_job_starts_noaction_until_its_task_exists(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    """D3, seen from Batch: make the final PATCH fail and look at what POST /jobs made."""
    template_id = make_template(batch)
    run = make_run()
    emulator.control.set_faults(
        [
            {
                "method": "PATCH",
                "path": f"/jobs/{jid(run)}",
                "status": 400,
                "code": "InvalidPropertyValue",
            }
        ]
    )
    try:
        with pytest.raises(PlatformError) as caught:
            await jobtype.submit(request_for(platform, make_job(template_id), run))
    finally:
        emulator.control.clear_faults()
    assert caught.value.batch_code == "InvalidPropertyValue"
    assert f"updating Batch job {jid(run)!r}" in str(caught.value)
    made = batch.get_job(jid(run))
    assert made.all_tasks_complete_mode == "noaction"
    assert [t.id for t in batch.list_tasks(jid(run))] == [tid(run)]
    # Submitting again (the dispatcher's retry) adopts the job and finishes the switch.
    again = await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert again.adopted is True
    assert batch.get_job(jid(run)).all_tasks_complete_mode == "terminatejob"


async def test_execution_timeout_bounds_the_task(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, pool_id="nonodes")
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run, execution_timeout_s=600))
    task = batch.get_task(jid(run), tid(run))
    assert task.constraints is not None
    assert task.constraints.max_wall_clock_time == timedelta(minutes=10)
    await jobtype.cancel(platform, run)


async def test_server_errors_name_the_action_and_code(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch)
    emulator.control.set_faults(
        [{"method": "POST", "path": "/jobs", "status": 500, "code": "InternalError"}]
    )
    try:
        with pytest.raises(PlatformError) as caught:
            await jobtype.submit(request_for(platform, make_job(template_id)))
    finally:
        emulator.control.clear_faults()
    assert type(caught.value) is PlatformError
    assert (caught.value.status, caught.value.batch_code) == (500, "InternalError")
    assert "creating Batch job" in str(caught.value)
    assert "platform 'emu'" in str(caught.value)
    assert "RequestId" not in str(caught.value)


async def test_container_settings_from_template_and_overrides(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, image="alpine:3.19", run_options="--rm")
    emulator.control.hold(job_id=f"{ids.job_id_prefix(INSTALLATION)}*", task_id="*", state="active")
    try:
        run = make_run()
        await jobtype.submit(request_for(platform, make_job(template_id), run))
        task = batch.get_task(jid(run), tid(run))
        assert task.container_settings is not None
        assert task.container_settings.image_name == "alpine:3.19"
        assert task.container_settings.container_run_options == "--rm"

        overridden = make_job(
            template_id,
            overrides=JobOverrides(
                image="busybox:1", container_run_options="--network none", command_line="true"
            ),
        )
        run2 = make_run()
        await jobtype.submit(request_for(platform, overridden, run2))
        task2 = batch.get_task(jid(run2), tid(run2))
        assert task2.command_line == "true"
        assert task2.container_settings is not None
        assert task2.container_settings.image_name == "busybox:1"
        assert task2.container_settings.container_run_options == "--network none"
    finally:
        # release() drops only the rule with the same globs; drop every hold of this test.
        emulator.control.release_all()


async def test_pool_not_found_creates_nothing(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, pool_id="gone-pool")
    run = make_run()
    mark = len(_requests(emulator))

    with pytest.raises(PoolNotFoundError) as caught:
        await jobtype.submit(request_for(platform, make_job(template_id), run))

    message = str(caught.value)
    assert "poolInfo.poolId 'gone-pool' no longer exists" in message
    assert "update the template Batch Job's pool" in message
    assert template_id in message
    writes = [c for c in _calls(_requests(emulator, mark)) if c[0] != "GET"]
    assert writes == [], f"PoolNotFound must create nothing, saw {writes}"
    assert jid(run) not in {j.id for j in batch.list_jobs(filter=f"id eq '{jid(run)}'")}


async def test_template_gone_at_run_time_is_a_template_error(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    job = make_job(unique("vanished"))
    with pytest.raises(TemplateError, match="no longer exists"):
        await jobtype.submit(request_for(platform, job))


async def test_adopts_its_own_job_after_a_lost_answer(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch)
    run = make_run()
    # An earlier attempt created the job (with our fingerprint) but its answer was lost.
    create_fingerprinted_job(batch, jid(run), run.id, run.attempt)
    result = await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert result.adopted is True
    assert batch.get_task(jid(run), tid(run)).id == tid(run)
    assert batch.get_job(jid(run)).all_tasks_complete_mode == "terminatejob"

    # The same submit again (a retry after a restart): job and task are ours, nothing new.
    again = await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert again.adopted is True
    assert len(list(batch.list_tasks(jid(run)))) == 1


async def test_refuses_to_adopt_a_job_that_is_not_ours(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch)
    run = make_run()
    create_fingerprinted_job(batch, jid(run), run.id + 1, run.attempt)
    with pytest.raises(FingerprintMismatch) as caught:
        await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert jid(run) in str(caught.value)
    assert list(batch.list_tasks(jid(run))) == []


async def test_template_is_re_read_every_run(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, metadata={"stage": "one"})
    job = make_job(template_id)
    first = make_run()
    await jobtype.submit(request_for(platform, job, first))
    mark = len(_requests(emulator))
    second = make_run()
    await jobtype.submit(request_for(platform, job, second))
    reads = [
        e
        for e in _requests(emulator, mark)
        if e.get("method") == "GET" and e.get("path") == f"/jobs/{template_id}"
    ]
    assert len(reads) == 1  # re-read, conditionally
    if "status" in reads[0]:
        assert reads[0]["status"] == 304

    batch.update_job(
        template_id,
        models.BatchJobUpdateOptions(
            metadata=[models.BatchMetadataItem(name="stage", value="two")]
        ),
    )
    third = make_run()
    await jobtype.submit(request_for(platform, job, third))
    metadata = {m.name: m.value for m in batch.get_job(jid(third)).metadata or []}
    assert metadata["stage"] == "two"


def test_monitor_link_is_the_seed_url(platform: Platform, jobtype: BatchJobType) -> None:
    run = make_run()
    assert jobtype.monitor_url(platform, jid(run)) == (
        f"https://portal.azure.com/#resource/subscriptions/{SUBSCRIPTION}/resourceGroups/"
        f"{RESOURCE_GROUP}/providers/Microsoft.Batch/batchAccounts/{platform.account_name}"
        f"/jobs/{jid(run)}"
    )


async def test_quota_and_throttling_map_to_their_errors(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch)
    try:
        emulator.control.set_faults(
            [
                {
                    "method": "POST",
                    "path": "/jobs",
                    "status": 409,
                    "code": "ActiveJobAndScheduleQuotaReached",
                }
            ]
        )
        with pytest.raises(QuotaError, match="active job quota"):
            await jobtype.submit(request_for(platform, make_job(template_id)))
        emulator.control.set_faults(
            [
                {
                    "method": "POST",
                    "path": "/jobs",
                    "status": 429,
                    "code": "TooManyRequests",
                    "retry_after_s": 0,
                }
            ]
        )
        with pytest.raises(ThrottledError) as caught:
            await jobtype.submit(request_for(platform, make_job(template_id)))
        assert caught.value.retry_after_s == 0
        assert "throttling" in str(caught.value)
    finally:
        emulator.control.clear_faults()


async def test_adopts_a_job_whose_task_already_finished(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    """A worker died after the PATCH to terminatejob but before recording the run.

    The restarted worker submits again; Batch now answers ``JobCompleted`` (not
    ``TaskExists``) to the task create. The task is ours, so the run is adopted and its
    real outcome kept — never failed, never a second attempt.
    """
    # A pool of its own: earlier tests of this module keep pool1's slots busy.
    pool_id = unique("adopt-pool")
    batch.create_pool(
        models.BatchPoolCreateOptions(
            id=pool_id, vm_size="standard_d2s_v3", target_dedicated_nodes=1, task_slots_per_node=1
        )
    )
    template_id = make_template(batch, pool_id=pool_id)
    run = make_run()
    first = await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert first.adopted is False
    done = await wait_for(jobtype, platform, run, [ProviderStatus.SUCCESS])
    for _ in range(200):
        if batch.get_job(jid(run)).state == "completed":
            break
        await asyncio.sleep(0.05)
    assert batch.get_job(jid(run)).state == "completed"

    again = await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert again.adopted is True
    assert (await jobtype.poll(platform, run)).exit_code == done.exit_code == 0
    assert len(list(batch.list_tasks(jid(run)))) == 1


async def test_completed_job_without_our_task_is_still_an_error(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch)
    run = make_run()
    # Our fingerprinted job exists and completed, but holds no task of ours.
    create_fingerprinted_job(batch, jid(run), run.id, run.attempt)
    # A plain dict: BatchJobTerminateOptions is not exported (NOTES.md §11.7); a fractional
    # polling interval works at run time although the stub says int.
    poller = batch.begin_terminate_job(
        jid(run),
        {"terminateReason": "test"},  # type: ignore[arg-type]  # not exported, see above
        polling_interval=0.05,  # type: ignore[arg-type]  # float works, see above
    )
    poller.result()
    with pytest.raises(PlatformError) as caught:
        await jobtype.submit(request_for(platform, make_job(template_id), run))
    assert caught.value.batch_code == "JobCompleted"
