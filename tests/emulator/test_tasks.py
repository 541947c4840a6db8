"""Tasks through the official sync SDK: execution, outcomes, files (NOTES.md §4, §10)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from batch_emulator.runner import probe_container_engine
from batch_emulator.server import EmulatorServer


def _read(client: Any, job: str, task: str, name: str, **kwargs: Any) -> bytes:
    return b"".join(client.download_task_file(job, task, name, **kwargs))


def _read_soon(client: Any, job: str, task: str, name: str) -> bytes:
    """The file's content, or b"" while the just-started process has not created it yet."""
    try:
        return _read(client, job, task, name)
    except ResourceNotFoundError:
        return b""


def test_new_task_defaults(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("j", "*", "active")
    h.new_job(client, "j")
    h.new_task(client, "j", "Task-1", "/bin/true")
    task = client.get_task("j", "TASK-1")
    assert task.id == "Task-1"
    assert task.state == models.BatchTaskState.ACTIVE
    assert task.user_identity.auto_user.scope == "pool"
    assert task.user_identity.auto_user.elevation_level == "nonadmin"
    assert task.constraints.retention_time == dt.timedelta(days=7)
    assert task.constraints.max_task_retry_count == 0
    assert task.constraints.max_wall_clock_time >= dt.timedelta(days=10675199)
    assert task.required_slots == 1
    assert task.execution_info.retry_count == 0
    assert task.execution_info.requeue_count == 0
    assert task.execution_info.start_time is None
    assert task.node_info is None
    assert task.url.endswith("/jobs/j/tasks/Task-1")


@pytest.mark.parametrize(("first", "second"), [("task1", "TASK1"), ("T", "t")])
def test_task_ids_clash_ignoring_case(
    fresh: EmulatorServer, client: Any, h: Any, first: str, second: str
) -> None:
    fresh.control.hold("*", "*", "active")
    h.new_job(client, "j")
    h.new_task(client, "j", first, "/bin/true")
    with pytest.raises(ResourceExistsError) as info:
        h.new_task(client, "j", second, "/bin/true")
    assert h.code(info.value) == "TaskExists"


def test_missing_command_line_is_rejected(raw: Any, client: Any, h: Any) -> None:
    h.new_job(client, "j")
    response = raw.post("/jobs/j/tasks", params=h.API, json={"id": "t"})
    assert response.status_code == 400
    assert response.json()["code"] == "MissingRequiredProperty"
    assert response.json()["values"] == [{"key": "PropertyName", "value": "commandLine"}]


def test_task_to_missing_job_is_404(client: Any, h: Any) -> None:
    with pytest.raises(ResourceNotFoundError) as info:
        h.new_task(client, "ghost", "t", "/bin/true")
    assert h.code(info.value) == "JobNotFound"


def test_success_outcome_and_node_info(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'exit 0'")
    task = h.wait_task(client, "j", "t", "completed")
    info = task.execution_info
    assert info.exit_code == 0
    assert info.result == models.BatchTaskExecutionResult.SUCCESS
    assert info.failure_info is None
    assert info.start_time <= info.end_time
    assert task.previous_state == models.BatchTaskState.RUNNING
    node = task.node_info
    assert node.pool_id == h.POOL
    assert node.task_root_directory == "workitems/j/job-1/t"
    assert node.task_root_directory_url.endswith("/files/workitems/j/job-1/t")
    assert node.node_url.endswith(f"/pools/{h.POOL}/nodes/{node.node_id}")


def test_failure_exit_code_and_retries(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(
        client,
        "j",
        "t",
        "/bin/sh -c 'echo attempt; exit 7'",
        constraints=models.BatchTaskConstraints(max_task_retry_count=2),
    )
    task = h.wait_task(client, "j", "t", "completed")
    info = task.execution_info
    assert info.exit_code == 7
    assert info.retry_count == 2
    assert info.last_retry_time is not None
    assert info.result == models.BatchTaskExecutionResult.FAILURE
    failure = info.failure_info
    assert failure.category == models.BatchErrorSourceCategory.USER_ERROR
    assert failure.code == "FailureExitCode"
    assert failure.message == "The task exited with an exit code representing a failure"
    # Three attempts wrote to the same stdout.txt.
    assert _read(client, "j", "t", "stdout.txt") == b"attempt\n" * 3


def test_retry_then_success_inherits_job_retry_count(client: Any, h: Any) -> None:
    h.new_job(client, "j", constraints=models.BatchJobConstraints(max_task_retry_count=3))
    h.new_task(
        client, "j", "t", "/bin/sh -c 'if [ -f marker ]; then exit 0; fi; touch marker; exit 1'"
    )
    task = h.wait_task(client, "j", "t", "completed")
    assert task.constraints.max_task_retry_count == 3
    assert task.execution_info.retry_count == 1
    assert task.execution_info.result == "success"
    assert task.execution_info.failure_info is None


def test_launch_failure_has_no_exit_code_and_is_not_retried(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(
        client,
        "j",
        "t",
        "/definitely/not/a/program --flag",
        constraints=models.BatchTaskConstraints(max_task_retry_count=3),
    )
    task = h.wait_task(client, "j", "t", "completed")
    assert task.execution_info.exit_code is None
    assert task.execution_info.retry_count == 0
    assert task.execution_info.result == "failure"
    assert task.execution_info.failure_info.code == "CommandProgramNotFound"


def test_task_wall_clock_expiry(fresh: EmulatorServer, client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(
        client,
        "j",
        "t",
        "/bin/sh -c 'sleep 30'",
        constraints=models.BatchTaskConstraints(
            max_wall_clock_time=dt.timedelta(minutes=10), max_task_retry_count=2
        ),
    )
    h.wait_task(client, "j", "t", "running")
    fresh.control.advance_clock(599)
    assert client.get_task("j", "t").state == "running"
    fresh.control.advance_clock(2)
    task = h.wait_task(client, "j", "t", "completed")
    info = task.execution_info
    assert info.exit_code == -1073741510  # 0xC000013A (NOTES.md §10.8)
    assert info.failure_info.code == "TaskEnded"
    assert info.failure_info.category == models.BatchErrorSourceCategory.SERVER_ERROR
    assert info.retry_count == 0  # a timeout is not retried
    assert info.result == "failure"


def test_terminate_running_task_kills_the_process_tree(client: Any, data_dir: Path, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30 & echo $! > child.pid; wait'")
    task = h.wait_task(client, "j", "t", "running")
    wd = data_dir / "nodes" / h.POOL / task.node_info.node_id / "workitems/j/job-1/t/wd"
    pid_file = wd / "child.pid"
    child = int(h.wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()))
    client.terminate_task("j", "t")
    task = client.get_task("j", "t")  # terminate returns once the task is completed
    assert task.state == models.BatchTaskState.COMPLETED
    assert task.execution_info.failure_info.code == "TaskEnded"
    assert task.execution_info.exit_code == 143  # SIGTERM, as the shell reports it
    assert not Path(f"/proc/{child}").exists() or "Z" in _proc_state(child)


def _proc_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return stat[stat.rfind(")") + 2 :].split()[0]


def test_terminate_active_and_completed_tasks(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("j", "waiting", "active")
    h.new_job(client, "j")
    h.new_task(client, "j", "waiting", "/bin/true")
    client.terminate_task("j", "waiting")
    task = client.get_task("j", "waiting")
    assert task.state == models.BatchTaskState.COMPLETED
    assert task.execution_info.exit_code is None
    assert task.execution_info.failure_info.code == "TaskEnded"
    assert task.previous_state == models.BatchTaskState.ACTIVE
    with pytest.raises(ResourceExistsError) as info:
        client.terminate_task("j", "waiting")
    assert h.code(info.value) == "TaskCompleted"
    assert info.value.status_code == 409


def test_delete_task(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'sleep 30'")
    h.wait_task(client, "j", "t", "running")
    client.delete_task("j", "t")
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_task("j", "t")
    assert h.code(info.value) == "TaskNotFound"
    assert [t.id for t in client.list_tasks("j")] == []


def test_environment_files_and_ranges_while_running_and_after(
    client: Any, data_dir: Path, h: Any
) -> None:
    h.new_job(
        client,
        "j",
        common_environment_settings=[
            models.EnvironmentSetting(name="SHARED", value="from-job"),
            models.EnvironmentSetting(name="OVERRIDE", value="job"),
        ],
    )
    script = (
        "echo task=$AZ_BATCH_TASK_ID job=$AZ_BATCH_JOB_ID pool=$AZ_BATCH_POOL_ID; "
        "echo shared=$SHARED override=$OVERRIDE empty=[$EMPTY]; "
        "echo wd=$AZ_BATCH_TASK_WORKING_DIR; echo account=$AZ_BATCH_ACCOUNT_NAME; "
        "echo problem >&2; echo nested > sub.txt; "
        "while [ ! -f go ]; do sleep 0.02; done; echo finished"
    )
    h.new_task(
        client,
        "j",
        "t",
        f'/bin/sh -c "{script}"',
        environment_settings=[
            models.EnvironmentSetting(name="OVERRIDE", value="task"),
            models.EnvironmentSetting(name="EMPTY"),
        ],
    )
    task = h.wait_task(client, "j", "t", "running")
    h.wait_for(lambda: b"account=" in _read_soon(client, "j", "t", "stdout.txt"))
    out = _read(client, "j", "t", "stdout.txt").decode()
    assert f"task=t job=j pool={h.POOL}" in out
    assert "shared=from-job override=task empty=[]" in out
    wd = data_dir / "nodes" / h.POOL / task.node_info.node_id / "workitems/j/job-1/t/wd"
    assert f"wd={wd}" in out
    assert "finished" not in out
    assert _read(client, "j", "t", "stderr.txt") == b"problem\n"
    assert _read(client, "j", "t", "stdout.txt", ocp_range="bytes=0-5") == b"task=t"
    props = client.get_task_file_properties("j", "t", "stdout.txt")
    assert props.is_directory is False
    assert props.content_length == len(out.encode())
    names = {f.name: f for f in client.list_task_files("j", "t")}
    assert set(names) == {"stdout.txt", "stderr.txt", "wd"}
    assert names["wd"].is_directory is True
    assert names["stdout.txt"].properties.content_length == len(out.encode())
    deep = {f.name for f in client.list_task_files("j", "t", recursive=True)}
    assert "wd/sub.txt" in deep
    assert _read(client, "j", "t", "wd/sub.txt") == b"nested\n"
    (wd / "go").touch()
    h.wait_task(client, "j", "t", "completed")
    after = _read(client, "j", "t", "stdout.txt")
    assert after.endswith(b"finished\n")
    assert _read(client, "j", "t", "stdout.txt", ocp_range=f"bytes={len(after) - 9}-") == (
        b"finished\n"
    )
    # A streamed download raises before the SDK reads the error body, so only the status
    # is available here; the envelope itself is checked in test_protocol.
    with pytest.raises(ResourceNotFoundError) as info:
        _read(client, "j", "t", "no-such-file.txt")
    assert info.value.status_code == 404


def test_delete_task_file(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'echo hi > out.txt'")
    h.wait_task(client, "j", "t", "completed")
    assert _read(client, "j", "t", "wd/out.txt") == b"hi\n"
    client.delete_task_file("j", "t", "wd/out.txt")
    with pytest.raises(ResourceNotFoundError):
        client.get_task_file_properties("j", "t", "wd/out.txt")


def test_command_line_is_not_run_by_a_shell(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "echo $HOME '*' \"a  b\" > x")
    h.wait_task(client, "j", "t", "completed")
    assert _read(client, "j", "t", "stdout.txt") == b"$HOME * a  b > x\n"


def test_slots_limit_concurrency(client: Any, h: Any) -> None:
    # pool1 has 2 nodes x 2 slots.
    h.new_job(client, "j")
    for i in range(5):
        h.new_task(client, "j", f"t{i}", "/bin/sh -c 'sleep 30'")
    h.wait_for(lambda: client.get_job_task_counts("j").task_counts.running == 4)
    counts = client.get_job_task_counts("j").task_counts
    assert (counts.active, counts.running) == (1, 4)
    running = [t for t in client.list_tasks("j") if t.state == "running"]
    assert len({t.node_info.node_id for t in running}) == 2
    client.terminate_task("j", running[0].id)
    h.wait_for(lambda: client.get_job_task_counts("j").task_counts.running == 4)
    assert client.get_job_task_counts("j").task_counts.active == 0


def test_required_slots(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    h.new_task(client, "j", "big", "/bin/sh -c 'sleep 30'", required_slots=2)
    h.new_task(client, "j", "huge", "/bin/true", required_slots=3)  # no node has 3 slots
    task = h.wait_task(client, "j", "big", "running")
    assert task.required_slots == 2
    assert client.get_task("j", "huge").state == "active"
    counts = client.get_job_task_counts("j")
    assert counts.task_slot_counts.running == 2
    assert counts.task_slot_counts.active == 3


def test_hold_active_then_release(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("j", "*", "active")
    h.new_job(client, "j")
    h.new_task(client, "j", "a", "/bin/true")
    h.new_task(client, "j", "b", "/bin/true")
    h.new_job(client, "other")
    h.new_task(client, "other", "c", "/bin/true")
    h.wait_task(client, "other", "c", "completed")
    assert client.get_task("j", "a").state == "active"
    assert fresh.control.release("j", "a") == 1
    h.wait_task(client, "j", "a", "completed")
    assert client.get_task("j", "b").state == "active"
    fresh.control.release_all()
    h.wait_task(client, "j", "b", "completed")


def test_hold_running_parks_the_outcome(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("*", "*", "running")
    h.new_job(client, "j")
    h.new_task(client, "j", "t", "/bin/sh -c 'echo done; exit 4'")
    h.wait_for(lambda: _read_soon(client, "j", "t", "stdout.txt") == b"done\n")
    assert client.get_task("j", "t").state == "running"
    fresh.control.release("*", "*")
    task = h.wait_task(client, "j", "t", "completed")
    assert task.execution_info.exit_code == 4


def test_container_settings_run_on_the_host_without_an_engine(client: Any, h: Any) -> None:
    if probe_container_engine() is not None:
        pytest.skip("a container engine is installed; the host fallback is not used")
    h.new_job(client, "j")
    h.new_task(
        client,
        "j",
        "t",
        "/bin/sh -c 'echo on-host'",
        container_settings=models.BatchTaskContainerSettings(image_name="ubuntu:22.04"),
    )
    task = h.wait_task(client, "j", "t", "completed")
    assert task.container_settings.image_name == "ubuntu:22.04"
    assert _read(client, "j", "t", "stdout.txt") == b"on-host\n"


def test_dependencies_need_the_job_flag(client: Any, h: Any) -> None:
    h.new_job(client, "j")
    with pytest.raises(HttpResponseError) as info:
        h.new_task(
            client,
            "j",
            "t",
            "/bin/true",
            depends_on=models.BatchTaskDependencies(task_ids=["other"]),
        )
    assert info.value.status_code == 400
    assert h.code(info.value) == "TaskDependenciesNotSpecifiedOnJob"


def test_task_collection_per_task_results(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("*", "*", "active")
    h.new_job(client, "j")
    h.new_task(client, "j", "exists", "/bin/true")
    result = client.create_task_collection(
        "j",
        models.BatchTaskGroup(
            task_values=[
                models.BatchTaskCreateOptions(id="a", command_line="/bin/true"),
                models.BatchTaskCreateOptions(id="EXISTS", command_line="/bin/true"),
                models.BatchTaskCreateOptions(id="bad id", command_line="/bin/true"),
            ]
        ),
    )
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["a"].status == models.BatchTaskAddStatus.SUCCESS
    assert by_id["a"].etag.startswith("0x")
    assert by_id["a"].location.endswith("/jobs/j/tasks/a")
    assert by_id["EXISTS"].status == models.BatchTaskAddStatus.CLIENT_ERROR
    assert by_id["EXISTS"].error.code == "TaskExists"
    assert by_id["bad id"].error.code == "InvalidPropertyValue"
    assert sorted(t.id for t in client.list_tasks("j")) == ["a", "exists"]


def test_task_collection_limits(raw: Any, client: Any, h: Any) -> None:
    h.new_job(client, "j")
    too_many = {"value": [{"id": f"t{i}", "commandLine": "/bin/true"} for i in range(101)]}
    response = raw.post("/jobs/j/addtaskcollection", params=h.API, json=too_many)
    assert response.status_code == 413
    assert response.json()["code"] == "RequestBodyTooLarge"
    big = {"value": [{"id": "t", "commandLine": "/bin/echo " + "x" * (1024 * 1024)}]}
    response = raw.post("/jobs/j/addtaskcollection", params=h.API, content=json.dumps(big))
    assert response.status_code == 413
    assert list(client.list_tasks("j")) == []


def test_create_tasks_helper_chunks_by_100(fresh: EmulatorServer, client: Any, h: Any) -> None:
    fresh.control.hold("*", "*", "active")
    h.new_job(client, "j")
    tasks = [
        models.BatchTaskCreateOptions(id=f"t{i:03d}", command_line="/bin/true") for i in range(150)
    ]
    result = client.create_tasks("j", tasks)
    assert len(result.result_values) == 150
    posts = [r for r in fresh.control.requests() if r["path"] == "/jobs/j/addtaskcollection"]
    assert len(posts) == 2
    assert client.get_job_task_counts("j").task_counts.active == 150
