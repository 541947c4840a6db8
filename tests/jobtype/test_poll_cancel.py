"""Behaviours 4, 5, 7: poll real tasks to their end, read their files, cancel, diagnose."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import timedelta

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer
from polysync.domain.models import Platform
from polysync.jobtypes.azure_batch.jobtype import BatchJobType
from polysync.jobtypes.base import CancelOutcome, ProviderStatus
from tests.jobtype.conftest import (
    jid,
    make_job,
    make_run,
    make_template,
    request_for,
    unique,
    wait_for,
)

DONE = (ProviderStatus.SUCCESS, ProviderStatus.FAILED)


async def test_exit_zero_is_success(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, command_line="/bin/sh -c 'echo ok'")
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    result = await wait_for(jobtype, platform, run, DONE)
    assert result.status is ProviderStatus.SUCCESS
    assert result.batch_state == "completed"
    assert result.exit_code == 0
    assert result.failure is None
    assert result.start_time is not None
    assert result.end_time is not None
    assert result.end_time >= result.start_time


async def test_non_zero_exit_is_failed_with_failure_info_and_stderr_tail(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(
        batch, command_line="/bin/sh -c 'echo working; echo disk is full >&2; exit 3'"
    )
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    result = await wait_for(jobtype, platform, run, DONE)
    assert result.status is ProviderStatus.FAILED
    assert result.exit_code == 3
    assert result.failure is not None
    assert result.failure.code == "FailureExitCode"
    assert result.failure.category == "usererror"
    assert result.failure.message  # Batch's failureInfo.message, kept verbatim
    assert result.failure.stderr_tail is not None
    assert "disk is full" in result.failure.stderr_tail


async def test_a_nul_in_stderr_does_not_reach_the_failure_record(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    """PostgreSQL's text columns refuse NUL: a task printing one must still end Failed."""
    template_id = make_template(
        batch, command_line="/bin/sh -c 'printf \"a\\000b\\n\" >&2; exit 1'"
    )
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    result = await wait_for(jobtype, platform, run, DONE)
    assert result.failure is not None
    assert result.failure.stderr_tail == "a\ufffdb\n"


async def test_stderr_tail_is_only_the_end_of_a_big_file(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    command = (
        "/bin/sh -c 'i=0; while [ $i -lt 400 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxx >&2; "
        "i=$((i+1)); done; echo LAST-LINE >&2; exit 1'"
    )
    template_id = make_template(batch, command_line=command)
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    result = await wait_for(jobtype, platform, run, DONE)
    assert result.failure is not None
    tail = result.failure.stderr_tail or ""
    assert tail.rstrip().endswith("LAST-LINE")
    assert len(tail.encode()) <= 4096
    assert "line-0-" not in tail
    assert tail.startswith("line-")  # the cut partial first line was dropped

    whole = await jobtype.read_file(platform, run, "stderr.txt")
    assert whole.total_size == len(whole.data) > 4096
    middle = await jobtype.read_file(platform, run, "stderr.txt", offset=100, length=50)
    assert middle.data == whole.data[100:150]
    assert middle.offset == 100
    past_end = await jobtype.read_file(platform, run, "stderr.txt", offset=len(whole.data))
    assert past_end.data == b""


async def test_missing_batch_job_polls_as_missing(
    platform: Platform, jobtype: BatchJobType
) -> None:
    result = await jobtype.poll(platform, make_run())
    assert result.missing is True
    assert result.status is ProviderStatus.UNKNOWN


async def test_file_of_a_task_that_has_not_started_reads_empty(
    emulator: EmulatorServer,
    batch: BatchClient,
    platform: Platform,
    jobtype: BatchJobType,
    caplog: pytest.LogCaptureFixture,
) -> None:
    template_id = make_template(batch, pool_id="nonodes")
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    with caplog.at_level(logging.WARNING):
        chunk = await jobtype.read_file(platform, run, "stdout.txt")
    assert chunk.data == b""
    assert chunk.total_size is None
    # The SDK's harmless failsafe-deserialization traceback is filtered (client.py).
    assert not [r for r in caplog.records if r.name.startswith("azure")]
    await jobtype.cancel(platform, run)


async def test_cancel_a_running_task_then_its_job(
    emulator: EmulatorServer, batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, command_line="/bin/sh -c 'sleep 30'")
    run = make_run()
    emulator.control.hold(job_id=jid(run), task_id="*", state="running")
    try:
        await jobtype.submit(request_for(platform, make_job(template_id), run))
        await wait_for(jobtype, platform, run, [ProviderStatus.RUNNING])

        outcome = await jobtype.cancel(platform, run)

        assert outcome is CancelOutcome.TERMINATED
        after = await wait_for(jobtype, platform, run, DONE, timeout_s=15)
        assert after.batch_state == "completed"
        assert after.status is ProviderStatus.FAILED  # terminated: failureInfo TaskEnded
        job = batch.get_job(jid(run))
        assert job.state in ("terminating", "completed")
        # Idempotent: a second cancel finds nothing left to stop.
        assert await jobtype.cancel(platform, run) is CancelOutcome.ALREADY_DONE
    finally:
        emulator.control.release(job_id=jid(run), task_id="*")


async def test_cancel_a_finished_run_is_already_done(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, command_line="/bin/sh -c 'echo fast'")
    run = make_run()
    await jobtype.submit(request_for(platform, make_job(template_id), run))
    await wait_for(jobtype, platform, run, DONE)
    assert await jobtype.cancel(platform, run) is CancelOutcome.ALREADY_DONE
    assert await jobtype.cancel(platform, run) is CancelOutcome.ALREADY_DONE
    assert (await jobtype.poll(platform, run)).status is ProviderStatus.SUCCESS


async def test_cancel_of_an_unknown_batch_job_is_already_done(
    platform: Platform, jobtype: BatchJobType
) -> None:
    run = replace(make_run(), batch_job_id=unique("never-created"))
    assert await jobtype.cancel(platform, run) is CancelOutcome.ALREADY_DONE


async def test_stuck_starting_gets_the_pool_diagnosis(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, pool_id="nonodes", max_wall_clock=None)
    job = make_job(template_id)
    run = make_run()
    await jobtype.submit(request_for(platform, job, run))
    assert (await jobtype.poll(platform, run)).status is ProviderStatus.STARTING

    diagnosis = await jobtype.diagnose_pool(platform, job)

    assert diagnosis is not None
    assert diagnosis.startswith(
        "preparing forever — the pool 'nonodes' has no available compute nodes"
    )
    assert "0 dedicated and 0 low-priority" in diagnosis
    assert "maxWallClockTime" in diagnosis  # the template has none: advise one
    await jobtype.cancel(platform, run)


async def test_diagnosis_of_a_healthy_pool_names_its_nodes(
    batch: BatchClient, platform: Platform, jobtype: BatchJobType
) -> None:
    template_id = make_template(batch, max_wall_clock=timedelta(minutes=5))
    diagnosis = await jobtype.diagnose_pool(platform, make_job(template_id))
    assert diagnosis is not None
    assert "pool 'pool1' has compute nodes" in diagnosis
    assert "maxWallClockTime" not in diagnosis
