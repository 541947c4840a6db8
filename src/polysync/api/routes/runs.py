"""/api/runs: list, show, tail the logs of and cancel runs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from starlette.concurrency import run_in_threadpool

from polysync.api.deps import get_services
from polysync.api.routes.common import (
    Limit,
    Offset,
    Operator,
    Viewer,
    problems,
    refused_is_conflict,
    within,
)
from polysync.domain import limits
from polysync.domain.models import RunState
from polysync.errors import InputError
from polysync.services import runs as run_service
from polysync.services import views
from polysync.services.context import Services
from polysync.store.base import RunAttempt

router = APIRouter(prefix="/api/runs", tags=["runs"])
Svc = Annotated[Services, Depends(get_services)]
RunId = Annotated[int, Path(**within(limits.RUN_ID), description="The run number.")]


def _state(value: str | None) -> RunState | None:
    if value is None:
        return None
    for state in RunState:
        if state.value.lower() == value.lower():
            return state
    raise InputError(
        f"state {value!r} is not a run state: use one of "
        + ", ".join(s.value for s in RunState)
        + "."
    )


@router.get("", responses=problems(401, 404, 422))
def list_runs(
    svc: Svc,
    _: Viewer,
    task: Annotated[
        str | None, Query(max_length=limits.NAME.max_len, description="Only this task's runs.")
    ] = None,
    state: Annotated[
        str | None,
        Query(max_length=limits.CHOICE.max_len, description="Queued, Starting, Running, …"),
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict[str, Any]:
    """Runs, newest first: ``{"items": [...], "total": N, "limit", "offset"}``."""
    wanted = _state(state)
    items = svc.store.list_runs(task=task, state=wanted, limit=limit, offset=offset)
    total = svc.store.count_runs(task=task, state=wanted)
    return {
        "items": [views.run_view(r) for r in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


def _attempt_view(a: RunAttempt) -> dict[str, Any]:
    ts = views._ts
    return {
        "attempt": a.attempt,
        "batch_job_id": a.batch_job_id,
        "batch_task_id": a.batch_task_id,
        "run_id": f"{a.batch_job_id}/{a.batch_task_id}",
        "monitor_url": a.monitor_url,
        "state": a.state.value if a.state else None,
        "exit_code": a.exit_code,
        "failure": views.failure_view(a.failure),
        "created_at": ts(a.created_at),
        "started_at": ts(a.started_at),
        "ended_at": ts(a.ended_at),
    }


@router.get("/{run_id}", responses=problems(401, 404))
def get_run(run_id: RunId, svc: Svc, _: Viewer) -> dict[str, Any]:
    """A run with its status history and every attempt's Batch ids."""
    run = svc.store.get_run(run_id)
    return {
        **views.run_view(run),
        "attempts": [_attempt_view(a) for a in svc.store.attempts(run_id)],
    }


@router.get("/{run_id}/logs", responses=problems(401, 404, 422, 502))
async def read_logs(
    run_id: RunId,
    svc: Svc,
    _: Viewer,
    file: Annotated[
        str,
        Query(max_length=limits.TASK_FILE.max_len, description="A file of the task directory."),
    ] = "stdout.txt",
    offset: Annotated[
        int, Query(**within(limits.OFFSET), description="Byte offset to read from.")
    ] = 0,
    max_bytes: Annotated[int, Query(**within(limits.LOG_CHUNK_BYTES))] = 64 * 1024,
) -> dict[str, Any]:
    """Tail a task file: bytes from ``offset``; call again with ``next_offset`` until
    ``eof`` (the run has ended and everything was read)."""
    run_service.check_task_file(file)
    run = await run_in_threadpool(svc.store.get_run, run_id)
    if run.batch_job_id is None:
        # Not in Batch yet (or failed before): nothing to read, maybe later.
        return {"data": "", "offset": offset, "next_offset": offset, "eof": run.state.is_terminal}
    # Masked with every secret the server knows and the run's own (decision 0010 §6).
    chunk = await run_service.read_log(svc, run, file, offset=offset, max_bytes=max_bytes)
    at_end = chunk.size is None or chunk.next_offset >= chunk.size
    return {
        "data": chunk.data.decode("utf-8", "replace"),
        "offset": offset,
        "next_offset": chunk.next_offset,
        "size": chunk.size,
        "eof": run.state.is_terminal and at_end,
    }


@router.post("/{run_id}/cancel", responses=problems(401, 403, 404, 409, 502))
async def cancel_run(run_id: RunId, svc: Svc, _: Operator) -> dict[str, Any]:
    """Terminate the run's Batch task, then its job (idempotent); 409 if it already ended
    otherwise than Cancelled."""
    with refused_is_conflict():
        result = await run_service.cancel_run(svc, run_id)
    return {**views.run_view(result.run), "message": result.message}
