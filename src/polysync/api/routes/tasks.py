"""/api/tasks: Jobs with pinned parameter values and run settings; Run Once."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from polysync.api.deps import follow_run, get_services, run_owner
from polysync.api.routes.common import (
    Force,
    Name,
    NameFilter,
    Operator,
    Viewer,
    problems,
    refused_is_conflict,
    sees_references,
    within,
)
from polysync.domain import limits
from polysync.domain.models import BackoffStrategy, RetryPolicy
from polysync.domain.secrets import Writer
from polysync.services import code_access, removal, views
from polysync.services import runs as run_service
from polysync.services import tasks as task_service
from polysync.services.context import Services

router = APIRouter(prefix="/api/tasks", tags=["tasks"])
Svc = Annotated[Services, Depends(get_services)]

ParamName = Annotated[str, Field(min_length=1, max_length=limits.PARAM_NAME.max_len)]
ParamValue = Annotated[str, Field(max_length=limits.PARAM_VALUE.max_len)]
Params = Annotated[
    dict[ParamName, ParamValue],
    Field(
        max_length=limits.PARAMS_MAX_COUNT,
        description="NAME → value. A Secret parameter takes a reference "
        "vault://VAULT/SECRET to a declared Secret Vault (env:/file: are refused from the API); "
        "any other value is a literal.",
    ),
]
Timeout = Annotated[int, Field(**within(limits.EXECUTION_TIMEOUT_S), description="Seconds.")]
Priority = Annotated[int, Field(**within(limits.PRIORITY), description="Higher runs first.")]
Delay = Annotated[float, Field(**within(limits.RETRY_DELAY_S), description="Seconds.")]
Description = Annotated[str, Field(max_length=limits.DESCRIPTION.max_len)]
TaskName = Annotated[str, Field(min_length=1, max_length=limits.NAME.max_len)]


class RetryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    max_attempts: Annotated[int, Field(**within(limits.MAX_ATTEMPTS))] = 1
    backoff: BackoffStrategy = BackoffStrategy.FIXED
    initial_delay_s: Delay = 30.0
    max_delay_s: Delay = 3600.0

    def policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class TaskCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[TaskName, Field(examples=["nightly-etl"])]
    job: TaskName
    params: Params = {}
    execution_timeout_s: Timeout | None = None
    retry_policy: RetryBody | None = None
    priority: Priority = 0
    description: Description = ""


@router.post("", status_code=201, responses=problems(401, 403, 404, 409, 422))
def create_task(body: TaskCreate, svc: Svc, who: Operator) -> dict[str, Any]:
    """Create a Task. Values of parameters that load code (``LD_PRELOAD``, ``PATH``, …)
    need the admin role (or ``[server] code_overrides_role``), else 403."""
    code_access.check_task_params(svc, who.role, body.name, body.params, new=True)
    task = task_service.create_task(
        svc,
        body.name,
        body.job,
        body.params,
        execution_timeout_s=body.execution_timeout_s,
        retry_policy=body.retry_policy.policy() if body.retry_policy else None,
        priority=body.priority,
        description=body.description,
        writer=Writer.for_role(who.role),
    )
    return views.task_view(task)


@router.get("", responses=problems(401, 404))
def list_tasks(svc: Svc, who: Viewer, job: NameFilter = None) -> list[dict[str, Any]]:
    """Tasks; a viewer sees Secret parameters' values as ``***`` (decision 0010)."""
    if job is not None:
        svc.store.get_job(job)  # an unknown job is a 404, not an empty list
    tasks = svc.store.list_tasks(job=job)
    if sees_references(who):
        return [views.task_view(t) for t in tasks]
    jobs = {j.name: j for j in svc.store.list_jobs()}
    return [views.task_view(views.task_for_viewers(t, jobs[t.job])) for t in tasks]


@router.get("/{name}", responses=problems(401, 404))
def get_task(name: Name, svc: Svc, who: Viewer) -> dict[str, Any]:
    task = svc.store.get_task(name)
    if sees_references(who):
        return views.task_view(task)
    return views.task_view(views.task_for_viewers(task, svc.store.get_job(task.job)))


class TaskPatch(BaseModel):
    """Only the fields present change; ``execution_timeout_s: null`` removes the timeout."""

    model_config = ConfigDict(extra="forbid")

    set_params: Params = {}
    unset_params: Annotated[list[ParamName], Field(max_length=limits.PARAMS_MAX_COUNT)] = []
    execution_timeout_s: Timeout | None = None
    retry_policy: RetryBody | None = None
    priority: Priority | None = None
    description: Description | None = None


@router.patch("/{name}", responses=problems(401, 403, 404, 422))
def update_task(name: Name, body: TaskPatch, svc: Svc, who: Operator) -> dict[str, Any]:
    """Change a Task; setting or unsetting a parameter that loads code needs the role
    ``create`` needs for it."""
    code_access.check_task_params(svc, who.role, name, body.set_params, body.unset_params)
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
        writer=Writer.for_role(who.role),
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
    name: Name, request: Request, svc: Svc, who: Operator, body: RunBody | None = None
) -> dict[str, Any]:
    """Run Once: queue a run with parameter overrides and return it at once (Queued).

    The server's worker (or, with `--no-worker`, a background follower) submits it and
    takes it to its end; watch it with ``GET /api/runs/{id}`` or ``GET /api/events``.
    Overriding a parameter that loads code needs the role ``create`` needs for it.
    """
    params = body.params if body else {}
    code_access.check_run_params(svc, who.role, name, params)
    run = run_service.start_run(
        svc, name, params, writer=Writer.for_role(who.role), owner=run_owner(request)
    )
    follow_run(request, run.id)
    return views.run_view(run)
