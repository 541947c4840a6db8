"""/api/tasks: Jobs with pinned parameter values and run settings; Run Once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from polysync.api.deps import follow_run, get_services, run_owner
from polysync.api.routes.common import (
    Force,
    Name,
    Operator,
    Viewer,
    problems,
    refused_is_conflict,
)
from polysync.domain.models import BackoffStrategy, RetryPolicy
from polysync.services import removal, views
from polysync.services import runs as run_service
from polysync.services import tasks as task_service
from polysync.services.context import Services

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
Svc = Annotated[Services, Depends(get_services)]

ParamName = Annotated[str, Field(min_length=1, max_length=200)]
ParamValue = Annotated[str, Field(max_length=100_000)]
Params = Annotated[
    dict[ParamName, ParamValue],
    Field(
        max_length=500,
        description="NAME → value; a value may be a reference env:VAR or file:PATH "
        "(Secret parameters: references only).",
    ),
]
Timeout = Annotated[int, Field(ge=1, le=10 * 365 * 86400, description="Seconds.")]
Priority = Annotated[int, Field(ge=-1_000_000, le=1_000_000, description="Higher runs first.")]
Delay = Annotated[float, Field(ge=0, le=10 * 365 * 86400)]


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 1
    backoff: BackoffStrategy = BackoffStrategy.FIXED
    initial_delay_s: Delay = 30.0
    max_delay_s: Delay = 3600.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200, examples=["nightly-etl"])]
    job: Annotated[str, Field(min_length=1, max_length=200)]
    params: Params = {}
    execution_timeout_s: Timeout | None = None
    retry_policy: RetryBody | None = None
    priority: Priority = 0
    description: Annotated[str, Field(max_length=4000)] = ""


@router.post("", status_code=201, responses=problems(401, 403, 404, 409, 422))
def create_task(body: TaskCreate, svc: Svc, _: Operator) -> dict[str, Any]:
    task = task_service.create_task(
        svc,
        body.name,
        body.job,
        body.params,
        execution_timeout_s=body.execution_timeout_s,
        retry_policy=body.retry_policy.policy() if body.retry_policy else None,
        priority=body.priority,
        description=body.description,
    )
    return views.task_view(task)


@router.get("", responses=problems(401, 404))
def list_tasks(
    svc: Svc, _: Viewer, job: Annotated[str | None, Query(max_length=200)] = None
) -> list[dict[str, Any]]:
    if job is not None:
        svc.store.get_job(job)  # an unknown job is a 404, not an empty list
    return [views.task_view(t) for t in svc.store.list_tasks(job=job)]


@router.get("/{name}", responses=problems(401, 404))
def get_task(name: Name, svc: Svc, _: Viewer) -> dict[str, Any]:
    return views.task_view(svc.store.get_task(name))


class TaskPatch(BaseModel):
    """Only the fields present change; ``execution_timeout_s: null`` removes the timeout."""

    model_config = ConfigDict(extra="forbid")

    set_params: Params = {}
    unset_params: Annotated[list[ParamName], Field(max_length=500)] = []
    execution_timeout_s: Timeout | None = None
    retry_policy: RetryBody | None = None
    priority: Priority | None = None
    description: Annotated[str | None, Field(max_length=4000)] = None


@router.patch("/{name}", responses=problems(401, 403, 404, 422))
def update_task(name: Name, body: TaskPatch, svc: Svc, _: Operator) -> dict[str, Any]:
    given = body.model_fields_set
    task = task_service.update_task(
        svc,
        name,
        set_params=body.set_params,
        unset_params=body.unset_params,
        execution_timeout_s=body.execution_timeout_s,
        clear_timeout="execution_timeout_s" in given and body.execution_timeout_s is None,
        retry_policy=body.retry_policy.policy() if body.retry_policy else None,
        priority=body.priority,
        description=body.description,
    )
    return views.task_view(task)


@router.delete("/{name}", status_code=204, responses=problems(401, 403, 404, 409, 502))
async def delete_task(name: Name, svc: Svc, _: Operator, force: Force = False) -> Response:
    """Remove a Task; refused (409) while one of its runs is not finished, unless ``force``,
    which first stops those runs' Batch work (502, nothing removed, if Batch cannot)."""
    with refused_is_conflict():
        await removal.remove_task(svc, name, force=force)
    return Response(status_code=204)


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    params: Params = {}


@router.post("/{name}/runs", status_code=202, responses=problems(401, 403, 404, 422))
async def run_once(
    name: Name, request: Request, svc: Svc, _: Operator, body: RunBody | None = None
) -> dict[str, Any]:
    """Run Once: queue a run with parameter overrides and return it at once (Queued).

    The server's worker (or, with `--no-worker`, a background follower) submits it and
    takes it to its end; watch it with ``GET /api/runs/{id}`` or ``GET /api/events``.
    """
    run = run_service.start_run(svc, name, body.params if body else {}, owner=run_owner(request))
    follow_run(request, run.id)
    return views.run_view(run)
