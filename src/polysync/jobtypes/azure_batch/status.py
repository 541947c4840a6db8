"""Decode a Batch task into the seed's status vocabulary (D6). Pure.

The seed's table, verbatim:

    active / preparing                      -> Starting
    running                                 -> Running
    completed, executionInfo.exitCode == 0  -> Success
    completed, executionInfo.exitCode != 0  -> Failed
    (other)                                 -> Unknown

One documented extension: a completed task carrying ``executionInfo.failureInfo`` is
Failed even when its exit code is 0 or missing. Batch sets failureInfo for failures that
are not the process's fault — a file-upload error after exit 0 (NOTES.md §10.8), a task
that could not start (no exit code at all), a user terminate of a task still ``active``.
Calling those Success or Unknown would hide a real failure.

The input is the task as Batch puts it on the wire (REST property names), so this module
needs neither the SDK nor the network.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from polysync.domain.models import Failure
from polysync.jobtypes.base import NodeTask, PollResult, ProviderStatus

# What poll asks for: only the fields this decoder reads (NOTES.md §8 $select).
TASK_SELECT: tuple[str, ...] = ("id", "state", "executionInfo", "nodeInfo")

# What the node sweep asks of each node (decision 0009).
NODE_SELECT: tuple[str, ...] = ("id", "recentTasks")

_STARTING = frozenset({"active", "preparing"})


def parse_time(value: object) -> datetime | None:
    """Batch date-times (7 fractional digits, ``Z``) into aware UTC; None if absent/odd."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def decode_failure(info: Mapping[str, Any]) -> Failure:
    """``executionInfo.failureInfo`` → Failure (category, code, message, details)."""
    details: list[tuple[str, str]] = []
    for item in info.get("details") or ():
        if isinstance(item, Mapping):
            details.append((str(item.get("name", "")), str(item.get("value", ""))))
    return Failure(
        category=str(info.get("category") or "usererror").lower(),
        code=str(info.get("code") or "TaskFailed"),
        message=str(info.get("message") or "Batch reported a task failure without a message."),
        details=tuple(details),
    )


def decode_status(
    state: str | None, exit_code: int | None, has_failure_info: bool
) -> ProviderStatus:
    """The seed's table plus the failureInfo extension, as a pure function of three facts."""
    if state in _STARTING:
        return ProviderStatus.STARTING
    if state == "running":
        return ProviderStatus.RUNNING
    if state == "completed":
        if has_failure_info:
            return ProviderStatus.FAILED
        if exit_code == 0:
            return ProviderStatus.SUCCESS
        if exit_code is not None:
            return ProviderStatus.FAILED
    return ProviderStatus.UNKNOWN


def decode_task(task: Mapping[str, Any]) -> PollResult:
    """A wire-shaped Batch task (``GET /jobs/{j}/tasks/{t}``) → PollResult."""
    raw_state = task.get("state")
    state = str(raw_state) if raw_state is not None else None
    execution = task.get("executionInfo") or {}
    if not isinstance(execution, Mapping):
        execution = {}
    exit_code = _int(execution.get("exitCode"))
    info = execution.get("failureInfo")
    has_info = isinstance(info, Mapping) and bool(info)
    status = decode_status(state, exit_code, has_info)
    failure: Failure | None = None
    if status is ProviderStatus.FAILED:
        if isinstance(info, Mapping) and info:
            failure = decode_failure(info)
        else:
            # Exit code != 0 and Batch said nothing more: name the code, point at stderr.
            failure = Failure(
                category="usererror",
                code="FailureExitCode",
                message=f"the task exited with code {exit_code}; see its stderr.txt",
            )
    node = task.get("nodeInfo") or {}
    node_id = node.get("nodeId") if isinstance(node, Mapping) else None
    return PollResult(
        status=status,
        batch_state=state,
        exit_code=exit_code,
        failure=failure,
        start_time=parse_time(execution.get("startTime")),
        end_time=parse_time(execution.get("endTime")),
        node_id=str(node_id) if node_id else None,
        retry_count=_int(execution.get("retryCount")) or 0,
    )


def recent_tasks(node: Mapping[str, Any], prefix: str) -> Iterator[NodeTask]:
    """A listed node's ``recentTasks`` whose job id starts with ``prefix`` (lower-case).

    Each entry carries the task's state and executionInfo, so it decodes exactly as the
    task's own ``GET`` would (:func:`decode_node_task`); the node is the one listed.
    Batch ids are case-insensitive (NOTES.md §9.4). Multi-instance subtasks are not runs
    and are skipped.
    """
    node_id = node.get("id")
    node_id = str(node_id) if node_id else None
    for entry in node.get("recentTasks") or ():
        if not isinstance(entry, Mapping):
            continue
        job_id, task_id = entry.get("jobId"), entry.get("taskId")
        if not isinstance(job_id, str) or not isinstance(task_id, str):
            continue
        if not job_id.lower().startswith(prefix) or entry.get("subtaskId") is not None:
            continue
        state = entry.get("taskState")
        execution = entry.get("executionInfo")
        yield NodeTask(
            job_id,
            task_id,
            state=str(state) if state is not None else None,
            node_id=node_id,
            execution=execution if isinstance(execution, Mapping) else None,
            decoder=decode_node_task,
        )


def decode_node_task(seen: NodeTask) -> PollResult:
    """A node sweep's sighting → PollResult, as :func:`decode_task` decodes a ``GET``."""
    return decode_task(
        {"state": seen.state, "executionInfo": seen.execution, "nodeInfo": {"nodeId": seen.node_id}}
    )
