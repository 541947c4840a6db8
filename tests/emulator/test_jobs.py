"""Jobs through the official sync SDK: lifecycle, rules and error codes (NOTES.md §4, §10)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
from azure.batch import models
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed


def test_create_get_defaults_match_the_service(client: Any, h: Any) -> None:
    h.new_job(client, "Job-A", display_name="first")
    job = client.get_job("job-a")  # ids are case-insensitive, case is preserved
    assert job.id == "Job-A"
    assert job.display_name == "first"
    assert job.state == models.BatchJobState.ACTIVE
    assert job.priority == 0
    assert job.max_parallel_tasks == -1
    assert job.uses_task_dependencies is False
    assert job.allow_task_preemption is False
    assert job.constraints is not None
    assert job.constraints.max_task_retry_count == 0
    assert job.constraints.max_wall_clock_time >= dt.timedelta(days=10675199)
    assert job.all_tasks_complete_mode == models.BatchAllTasksCompleteMode.NO_ACTION
    assert job.task_failure_mode == models.BatchTaskFailureMode.NO_ACTION
    assert job.pool_info.pool_id == h.POOL
    assert job.execution_info.pool_id == h.POOL
    assert job.execution_info.start_time == job.creation_time
    assert job.previous_state is None
    assert job.url.endswith("/jobs/Job-A")
    assert job.etag.startswith("0x")


@pytest.mark.parametrize(("first", "second"), [("job1", "JOB1"), ("Job1", "job1")])
def test_job_ids_clash_ignoring_case(client: Any, h: Any, first: str, second: str) -> None:
    h.new_job(client, first)
    with pytest.raises(ResourceExistsError) as info:
        h.new_job(client, second)
    assert h.code(info.value) == "JobExists"
    assert info.value.status_code == 409


@pytest.mark.parametrize("bad_id", ["has space", "x" * 65, "dots.here", "ümlaut", ""])
def test_invalid_job_id_is_rejected(client: Any, h: Any, bad_id: str) -> None:
    with pytest.raises(HttpResponseError) as info:
        h.new_job(client, bad_id)
    assert info.value.status_code == 400
    assert h.code(info.value) in ("InvalidPropertyValue", "MissingRequiredProperty")


def test_get_missing_job_is_404(client: Any, h: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_job("nope")
    assert h.code(info.value) == "JobNotFound"
    assert "RequestId:" in h.message(info.value)


def test_update_and_replace_job(client: Any, h: Any) -> None:
    h.new_job(client, "j", metadata=[models.BatchMetadataItem(name="k", value="v")])
    before = client.get_job("j")
    client.update_job(
        "j",
        models.BatchJobUpdateOptions(
            priority=100,
            constraints=models.BatchJobConstraints(
                max_wall_clock_time=dt.timedelta(hours=2), max_task_retry_count=3
            ),
        ),
    )
    after = client.get_job("j")
    assert after.priority == 100
    assert after.constraints.max_wall_clock_time == dt.timedelta(hours=2)
    assert after.constraints.max_task_retry_count == 3
    assert after.metadata[0].name == "k"  # PATCH leaves what it does not mention
    assert after.etag != before.etag
    replacement = client.get_job("j")
    replacement.priority = 5
    replacement.metadata = None
    replacement.constraints = None
    client.replace_job("j", replacement)
    replaced = client.get_job("j")
    assert replaced.priority == 5
    assert replaced.metadata is None  # PUT resets what it omits
    assert replaced.constraints.max_task_retry_count == 0


def test_on_all_tasks_complete_cannot_go_back_to_noaction(client: Any, h: Any) -> None:
    h.new_job(client, "j", all_tasks_complete_mode="noaction")
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30'")
    client.update_job("j", models.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    with pytest.raises(HttpResponseError) as info:
        client.update_job("j", models.BatchJobUpdateOptions(all_tasks_complete_mode="noaction"))
    assert info.value.status_code == 400
    assert h.code(info.value) == "InvalidPropertyValue"


def test_zero_task_job_with_terminatejob_completes_at_once(client: Any, h: Any) -> None:
    h.new_job(client, "j", all_tasks_complete_mode="terminatejob")
    job = h.wait_job(client, "j", "completed")
    assert job.execution_info.termination_reason == "AllTasksComplete"
    assert job.execution_info.end_time is not None
    assert job.previous_state == models.BatchJobState.TERMINATING


def test_race_free_pattern_terminates_after_the_last_task(client: Any, h: Any) -> None:
    # DESIGN D3: create with noaction, add the task, then switch to terminatejob.
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    client.update_job("j", models.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    job = h.wait_job(client, "j", "completed")
    assert job.execution_info.termination_reason == "AllTasksComplete"
    assert client.get_task("j", "t").execution_info.result == "success"


def test_terminate_job_with_poller_and_reason(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "running", "/bin/sh -c 'sleep 30'")
    h.wait_task(client, "j", "running", "running")
    poller = client.begin_terminate_job("j", {"terminateReason": "Stop now"}, polling_interval=0.05)
    # The transitional state is observable right after the 202 (NOTES.md §10.6).
    assert client.get_job("j").state == models.BatchJobState.TERMINATING
    poller.result()
    assert poller.status() == "Succeeded"
    job = client.get_job("j")
    assert job.state == models.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "Stop now"
    task = client.get_task("j", "running")
    assert task.state == models.BatchTaskState.COMPLETED
    assert task.execution_info.failure_info.code == "TaskEnded"


def test_terminate_keeps_active_tasks_active_and_unscheduled(client: Any, h: Any) -> None:
    h.new_job(client, "j", pool_id="no-such-pool")
    h.new_task(client, "j", "waiting", "/bin/sh -c 'exit 0'")
    client.begin_terminate_job("j", {"terminateReason": "x"}, polling_interval=0.05).result()
    client.create_pool(
        models.BatchPoolCreateOptions(id="no-such-pool", vm_size="small", target_dedicated_nodes=1)
    )
    assert client.get_task("j", "waiting").state == models.BatchTaskState.ACTIVE
    assert client.get_job_task_counts("j").task_counts.active == 1


def test_default_terminate_reason_is_user_terminate(client: Any, raw: httpx.Client, h: Any) -> None:
    # The SDK cannot send a terminate without a body (NOTES.md §11.7), so go raw.
    h.new_job(client, "j")
    response = raw.post("/jobs/j/terminate", params=h.API)
    assert response.status_code == 202
    assert response.content == b""
    job = h.wait_job(client, "j", "completed")
    assert job.execution_info.termination_reason == "UserTerminate"


@pytest.mark.parametrize(
    ("make_state", "code"),
    [
        ("completed", "JobCompleted"),
        ("terminating", "JobBeingTerminated"),
        ("deleting", "JobBeingDeleted"),
    ],
)
def test_adding_tasks_to_a_closing_job_conflicts(
    client: Any, h: Any, make_state: str, code: str
) -> None:
    h.new_job(client, "j")
    # The task ignores SIGTERM, so killing it takes the kill grace period (1 s here) and
    # the job stays in its transitional state long enough to be observed.
    h.new_task(client, "j", "stubborn", "/bin/sh -c \"trap '' TERM; sleep 30\"")
    h.wait_task(client, "j", "stubborn", "running")
    if make_state == "completed":
        client.begin_terminate_job("j", {"terminateReason": "x"}, polling_interval=0.05).result()
    elif make_state == "terminating":
        client.begin_terminate_job("j", {"terminateReason": "x"}, polling_interval=60)
    else:
        client.begin_delete_job("j", polling_interval=60)
    assert client.get_job("j").state == make_state
    with pytest.raises(ResourceExistsError) as info:
        h.new_task(client, "j", "late", "/bin/true")
    assert h.code(info.value) == code


def test_delete_job_with_poller(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30'")
    h.wait_task(client, "j", "t", "running")
    poller = client.begin_delete_job("j", polling_interval=0.05)
    assert client.get_job("j").state == models.BatchJobState.DELETING
    poller.result()
    assert poller.status() == "Succeeded"
    with pytest.raises(ResourceNotFoundError):
        client.get_job("j")
    h.new_job(client, "J")  # the id is free again
    assert client.get_job("j").id == "J"


def test_missing_pool_task_waits_then_runs_when_the_pool_appears(client: Any, h: Any) -> None:
    h.new_job(client, "j", pool_id="later")  # accepted although the pool does not exist
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    with pytest.raises(ResourceNotFoundError):
        client.get_pool("later")
    assert client.get_task("j", "t").state == models.BatchTaskState.ACTIVE
    client.create_pool(
        models.BatchPoolCreateOptions(id="later", vm_size="small", target_dedicated_nodes=1)
    )
    task = h.wait_task(client, "j", "t", "completed")
    assert task.execution_info.exit_code == 0
    assert task.node_info.pool_id == "later"


def test_job_wall_clock_expiry_terminates_job_and_tasks(
    fresh: EmulatorServer, client: Any, h: Any
) -> None:
    h.new_job(
        client,
        "j",
        constraints=models.BatchJobConstraints(max_wall_clock_time=dt.timedelta(hours=1)),
    )
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30'")
    h.wait_task(client, "j", "t", "running")
    fresh.control.advance_clock(3601)
    job = h.wait_job(client, "j", "completed")
    assert job.execution_info.termination_reason == "MaxWallClockTimeExpiry"
    task = client.get_task("j", "t")
    assert task.state == models.BatchTaskState.COMPLETED
    assert task.execution_info.failure_info.code == "TaskEnded"


def test_task_failure_can_terminate_the_job(client: Any, h: Any) -> None:
    h.new_job(client, "j", task_failure_mode="performexitoptionsjobaction")
    h.new_task(client, "j", "bad", "/bin/sh -c 'exit 3'")
    job = h.wait_job(client, "j", "completed")
    assert job.execution_info.termination_reason == "TaskFailed"


def test_exit_options_none_keeps_the_job(client: Any, h: Any) -> None:
    h.new_job(client, "j", task_failure_mode="performexitoptionsjobaction")
    h.new_task(
        client,
        "j",
        "bad",
        "/bin/sh -c 'exit 3'",
        exit_conditions=models.ExitConditions(
            exit_codes=[
                models.ExitCodeMapping(code=3, exit_options=models.ExitOptions(job_action="none"))
            ]
        ),
    )
    h.wait_task(client, "j", "bad", "completed")
    assert client.get_job("j").state == models.BatchJobState.ACTIVE


def test_job_action_needs_perform_exit_options(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    with pytest.raises(HttpResponseError) as info:
        h.new_task(
            client,
            "j",
            "t",
            "/bin/true",
            exit_conditions=models.ExitConditions(
                default=models.ExitOptions(job_action="terminate")
            ),
        )
    assert h.code(info.value) == "InvalidPropertyValue"


def test_list_jobs_sdk(client: Any, h: Any) -> None:
    for i in range(3):
        h.new_job(client, f"list-{i}")
    ids = [j.id for j in client.list_jobs(filter="startswith(id,'list-')", select=["id", "state"])]
    assert ids == ["list-0", "list-1", "list-2"]
    assert all(j.state == "active" for j in client.list_jobs(filter="state eq 'active'"))


def test_task_counts(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "ok", "/bin/sh -c 'exit 0'")
    h.new_task(client, "j", "bad", "/bin/sh -c 'exit 1'")
    h.wait_task(client, "j", "ok", "completed")
    h.wait_task(client, "j", "bad", "completed")
    counts = client.get_job_task_counts("j")
    assert counts.task_counts.completed == 2
    assert counts.task_counts.succeeded == 1
    assert counts.task_counts.failed == 1
    assert counts.task_slot_counts.completed == 2


def test_conditional_get_and_update(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    etag = client.get_job("j").etag
    # The SDK's own error policy turns 304 into ResourceModifiedError (NOTES.md §9.3).
    with pytest.raises(ResourceModifiedError) as not_modified:
        client.get_job("j", etag=etag, match_condition=MatchConditions.IfModified)
    assert not_modified.value.status_code == 304
    assert client.get_job("j", etag="0x1", match_condition=MatchConditions.IfModified).id == "j"
    with pytest.raises(ResourceModifiedError) as info:
        client.update_job(
            "j",
            models.BatchJobUpdateOptions(priority=1),
            etag="0x1",
            match_condition=MatchConditions.IfNotModified,
        )
    assert info.value.status_code == 412
    client.update_job(
        "j",
        models.BatchJobUpdateOptions(priority=1),
        etag=etag,
        match_condition=MatchConditions.IfNotModified,
    )
    assert client.get_job("j").priority == 1
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    with pytest.raises(ResourceModifiedError) as stale:
        client.get_job("j", if_modified_since=future)
    assert stale.value.status_code == 304


def test_job_etag_moves_with_state_but_task_etag_does_not(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    task_before = client.get_task("j", "t")
    job_before = client.get_job("j")
    done = h.wait_task(client, "j", "t", "completed")
    assert done.etag == task_before.etag  # NOTES.md §4.10
    assert done.last_modified == task_before.last_modified
    client.begin_terminate_job("j", {"terminateReason": "x"}, polling_interval=0.05).result()
    assert client.get_job("j").etag != job_before.etag


def test_active_job_quota(tmp_path: Any, h: Any) -> None:
    config = EmulatorConfig(data_dir=tmp_path, pools=(PoolSeed("p", 1, 1),), active_job_quota=2)
    with EmulatorServer(config) as emu, h.sdk_client(emu, retry_total=0) as client:
        h.new_job(client, "a", pool_id="p")
        h.new_job(client, "b", pool_id="p")
        with pytest.raises(ResourceExistsError) as info:
            h.new_job(client, "c", pool_id="p")
        assert h.code(info.value) == "ActiveJobAndScheduleQuotaReached"
        client.begin_terminate_job("a", {"terminateReason": "x"}, polling_interval=0.05).result()
        h.new_job(client, "c", pool_id="p")  # completed jobs do not count
        assert client.get_job("c").state == "active"


def test_job_manager_task_runs_as_a_task(client: Any, h: Any) -> None:
    h.new_job(
        client,
        "j",
        job_manager_task=models.BatchJobManagerTask(
            id="manager", command_line="/bin/sh -c 'echo managing'"
        ),
    )
    manager = h.wait_task(client, "j", "manager", "completed")
    assert manager.execution_info.exit_code == 0
    job = client.get_job("j")
    assert job.job_manager_task.id == "manager"
    # killJobOnCompletion is not emulated (docs/emulator.md): the job stays open for tasks.
    assert job.state == "active"
    h.new_task(client, "j", "later", "/bin/true")


def test_auto_pool_job_runs_its_tasks(client: Any, h: Any) -> None:
    client.create_job(
        models.BatchJobCreateOptions(
            id="auto",
            pool_info=models.BatchPoolInfo(
                auto_pool_specification=models.BatchAutoPoolSpecification(
                    auto_pool_id_prefix="ap",
                    pool_lifetime_option="job",
                    pool=models.BatchPoolSpecification(
                        vm_size="small", target_dedicated_nodes=1, task_slots_per_node=2
                    ),
                )
            ),
        )
    )
    job = client.get_job("auto")
    pool_id = job.execution_info.pool_id
    assert pool_id.startswith("ap_")
    assert client.get_pool(pool_id).task_slots_per_node == 2
    h.new_task(client, "auto", "t", "/bin/true")
    assert h.wait_task(client, "auto", "t", "completed").node_info.pool_id == pool_id
