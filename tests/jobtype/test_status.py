"""D6: the seed's status table (plus the failureInfo extension), table-driven."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from polysync.jobtypes.azure_batch.status import (
    decode_status,
    decode_task,
    parse_time,
    recent_tasks,
)
from polysync.jobtypes.base import ProviderStatus


@pytest.mark.parametrize(
    ("state", "exit_code", "has_info", "expected"),
    [
        # The seed's table, row by row.
        ("active", None, False, ProviderStatus.STARTING),
        ("preparing", None, False, ProviderStatus.STARTING),
        ("running", None, False, ProviderStatus.RUNNING),
        ("completed", 0, False, ProviderStatus.SUCCESS),
        ("completed", 3, False, ProviderStatus.FAILED),
        ("completed", -1073741510, False, ProviderStatus.FAILED),
        ("weird", None, False, ProviderStatus.UNKNOWN),
        (None, None, False, ProviderStatus.UNKNOWN),
        ("Completed", 0, False, ProviderStatus.UNKNOWN),  # wire enums are lower-case only
        # Documented extension: failureInfo makes a completed task Failed.
        ("completed", 0, True, ProviderStatus.FAILED),
        ("completed", None, True, ProviderStatus.FAILED),
        # Completed without exit code or failureInfo: outside the table.
        ("completed", None, False, ProviderStatus.UNKNOWN),
        # failureInfo on a task that is not completed does not end it.
        ("running", None, True, ProviderStatus.RUNNING),
    ],
)
def test_decode_status_table(
    state: str | None, exit_code: int | None, has_info: bool, expected: ProviderStatus
) -> None:
    assert decode_status(state, exit_code, has_info) is expected


def _task(state: str, **execution: Any) -> dict[str, Any]:
    return {"id": "t", "state": state, "executionInfo": {"retryCount": 0, **execution}}


def test_failed_task_keeps_failure_info() -> None:
    info = {
        "category": "usererror",
        "code": "FailureExitCode",
        "message": "The task exited with an exit code representing a failure",
        "details": [{"name": "Message", "value": "boom"}],
    }
    result = decode_task(
        _task(
            "completed",
            exitCode=3,
            failureInfo=info,
            startTime="2026-11-24T19:37:01.1234567Z",
            endTime="2026-11-24T19:37:05Z",
            retryCount=2,
        )
        | {"nodeInfo": {"nodeId": "node-1"}}
    )
    assert result.status is ProviderStatus.FAILED
    assert result.exit_code == 3
    assert result.failure is not None
    assert result.failure.code == "FailureExitCode"
    assert result.failure.category == "usererror"
    assert result.failure.details == (("Message", "boom"),)
    assert result.start_time == datetime(2026, 11, 24, 19, 37, 1, 123456, tzinfo=UTC)
    assert result.end_time == datetime(2026, 11, 24, 19, 37, 5, tzinfo=UTC)
    assert result.node_id == "node-1"
    assert result.retry_count == 2


def test_exit_code_without_failure_info_names_the_code() -> None:
    result = decode_task(_task("completed", exitCode=7))
    assert result.failure is not None
    assert "7" in result.failure.message
    assert result.failure.code == "FailureExitCode"


def test_success_has_no_failure() -> None:
    result = decode_task(_task("completed", exitCode=0, result="success"))
    assert result.status is ProviderStatus.SUCCESS
    assert result.failure is None


def test_timeout_is_failed_servererror() -> None:
    info = {"category": "servererror", "code": "TaskEnded", "message": "timed out"}
    result = decode_task(_task("completed", exitCode=-1073741510, failureInfo=info))
    assert result.status is ProviderStatus.FAILED
    assert result.failure is not None
    assert (result.failure.category, result.failure.code) == ("servererror", "TaskEnded")


def test_spec_example_get_task_decodes() -> None:
    # The body of the spec example Tasks_GetTask.json (NOTES.md §4.10): a fresh task.
    body = {
        "id": "testTask",
        "eTag": "0x8D3D62350711C55",
        "state": "active",
        "commandLine": "cmd /c hostname",
        "constraints": {
            "maxWallClockTime": "P10675199DT2H48M5.4775807S",
            "retentionTime": "P10675199DT2H48M5.4775807S",
            "maxTaskRetryCount": 0,
        },
        "executionInfo": {"retryCount": 0, "requeueCount": 0},
    }
    result = decode_task(body)
    assert result.status is ProviderStatus.STARTING
    assert result.batch_state == "active"
    assert (result.exit_code, result.failure, result.start_time) == (None, None, None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2023-10-17T08:48:43.7161816Z", datetime(2023, 10, 17, 8, 48, 43, 716181, tzinfo=UTC)),
        ("2023-10-17T08:48:43Z", datetime(2023, 10, 17, 8, 48, 43, tzinfo=UTC)),
        ("not a date", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_time(text: str | None, expected: datetime | None) -> None:
    assert parse_time(text) == expected


_NODE = {
    "id": "tvm-3",
    "recentTasks": [
        {  # ours, running
            "taskUrl": "https://acct/jobs/ps-ab12-r1-a1/tasks/t",
            "jobId": "ps-ab12-r1-a1",
            "taskId": "t",
            "taskState": "running",
            "executionInfo": {"startTime": "2026-01-01T00:00:05.1234567Z", "retryCount": 0},
        },
        {  # ours (ids are case-insensitive), ended with exit code 0
            "jobId": "PS-AB12-r2-a1",
            "taskId": "t",
            "taskState": "completed",
            "executionInfo": {
                "startTime": "2026-01-01T00:00:01Z",
                "endTime": "2026-01-01T00:00:09Z",
                "exitCode": 0,
            },
        },
        {  # ours, failed: decoded as a poll would, failure included
            "jobId": "ps-ab12-r3-a2",
            "taskId": "t",
            "taskState": "completed",
            "executionInfo": {"exitCode": 2, "endTime": "2026-01-01T00:00:09Z"},
        },
        {"jobId": "someone-elses-job", "taskId": "t", "taskState": "running"},
        {"jobId": "ps-ab12-r4-a1", "taskId": "t", "subtaskId": 1, "taskState": "running"},
        {"jobId": "ps-ab12-r5-a1", "taskState": "running"},  # no task id: skipped
        "not an object",
    ],
}


def test_recent_tasks_of_a_node_are_ours_decoded_like_a_poll() -> None:
    got = list(recent_tasks(_NODE, "ps-ab12-"))
    assert [(t.batch_job_id, t.batch_task_id) for t in got] == [
        ("ps-ab12-r1-a1", "t"),
        ("PS-AB12-r2-a1", "t"),
        ("ps-ab12-r3-a2", "t"),
    ]
    running, succeeded, failed = (t.decode() for t in got)
    assert running.status is ProviderStatus.RUNNING
    assert running.node_id == "tvm-3"
    assert running.start_time == datetime(2026, 1, 1, 0, 0, 5, 123456, tzinfo=UTC)
    assert succeeded.status is ProviderStatus.SUCCESS
    assert (succeeded.exit_code, succeeded.end_time) == (
        0,
        datetime(2026, 1, 1, 0, 0, 9, tzinfo=UTC),
    )
    assert failed.status is ProviderStatus.FAILED
    assert failed.failure is not None
    assert failed.failure.code == "FailureExitCode"


@pytest.mark.parametrize("node", [{"id": "n"}, {"id": "n", "recentTasks": None}, {}])
def test_a_node_that_never_ran_a_task_lists_nothing(node: dict[str, Any]) -> None:
    assert list(recent_tasks(node, "ps-")) == []
