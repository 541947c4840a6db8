"""/api/jobs: imported templates, their parameter schema and overrides (operators edit)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from polysync.api.deps import get_services
from polysync.api.routes.common import (
    Force,
    Name,
    Operator,
    Viewer,
    problems,
    refused_is_conflict,
)
from polysync.errors import InputError
from polysync.services import jobs as job_service
from polysync.services import removal, views
from polysync.services.context import Services

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
Svc = Annotated[Services, Depends(get_services)]

BatchId = Annotated[str, Field(min_length=1, max_length=64)]
Seconds = Annotated[int, Field(ge=1, le=10 * 365 * 86400)]


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: Annotated[str, Field(min_length=1, max_length=200)]
    external_ids: Annotated[list[BatchId], Field(max_length=1000)] = []
    all: bool = Field(default=False, description="Import every template the account lists.")
    name: Annotated[str | None, Field(max_length=200)] = Field(
        default=None, description="Job name for a single import (default: the template id)."
    )


@router.post("/import", status_code=201, responses=problems(401, 403, 404, 409, 422, 502))
async def import_jobs(body: ImportBody, svc: Svc, _: Operator) -> list[dict[str, Any]]:
    """Import template Batch jobs as Jobs (or refresh ones already imported)."""
    outcomes = await job_service.import_jobs(
        svc, body.platform, body.external_ids, import_all=body.all, name=body.name
    )
    return [
        {"action": o.action.value, "changes": list(o.changes), **views.job_view(o.job)}
        for o in outcomes
    ]


@router.get("", responses=problems(401, 404))
def list_jobs(
    svc: Svc,
    _: Viewer,
    platform: Annotated[str | None, Query(max_length=200)] = None,
) -> list[dict[str, Any]]:
    if platform is not None:
        svc.store.get_platform(platform)  # an unknown platform is a 404, not an empty list
    return [views.job_view(j) for j in svc.store.list_jobs(platform=platform)]


@router.get("/{name}", responses=problems(401, 404))
def get_job(name: Name, svc: Svc, _: Viewer) -> dict[str, Any]:
    return views.job_view(svc.store.get_job(name))


class JobPatch(BaseModel):
    """Override fields: a value sets it, ``null`` drops it (back to the template's)."""

    model_config = ConfigDict(extra="forbid")

    command_line: Annotated[str | None, Field(min_length=1, max_length=8000)] = None
    image: Annotated[str | None, Field(min_length=1, max_length=1000)] = None
    container_run_options: Annotated[str | None, Field(min_length=1, max_length=4000)] = None
    max_wall_clock_s: Seconds | None = None
    retention_s: Seconds | None = None
    max_task_retries: Annotated[int | None, Field(ge=-1, le=100)] = None
    description: Annotated[str | None, Field(max_length=4000)] = None
    tags: Annotated[list[Annotated[str, Field(max_length=200)]] | None, Field(max_length=100)] = (
        None
    )


_OVERRIDES = (
    "command_line",
    "image",
    "container_run_options",
    "max_wall_clock_s",
    "retention_s",
    "max_task_retries",
)


@router.patch("/{name}", responses=problems(401, 403, 404, 422))
def update_job(name: Name, body: JobPatch, svc: Svc, _: Operator) -> dict[str, Any]:
    """Change overrides (what each run's task takes instead of the template's), description
    or tags. Only the fields present in the body change."""
    given = body.model_fields_set
    if "command_line" in given and body.command_line is not None and not body.command_line.strip():
        raise InputError("command_line is blank: send null to drop the override.")
    changes = {k: getattr(body, k) for k in _OVERRIDES if k in given}
    job = job_service.set_overrides(
        svc,
        name,
        changes=changes,
        description=body.description if "description" in given else None,
        tags=body.tags if "tags" in given and body.tags is not None else None,
    )
    return views.job_view(job)


class ParameterBody(BaseModel):
    """A parameter of the schema; omitted fields keep their current value."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[str | None, Field(max_length=32, examples=["Int"])] = Field(
        default=None, description="String, Int, Float, Bool, JSON or Secret."
    )
    direction: Annotated[str | None, Field(max_length=32, examples=["Input"])] = Field(
        default=None, description="Input, Output or Input&Output."
    )
    default: Annotated[str | None, Field(max_length=100_000)] = Field(
        default=None, description="Default value (Secret: env:NAME or file:PATH only)."
    )
    clear_default: bool = False
    description: Annotated[str | None, Field(max_length=4000)] = None


@router.put("/{name}/parameters/{param}", responses=problems(401, 403, 404, 422))
def set_parameter(
    name: Name, param: Name, body: ParameterBody, svc: Svc, _: Operator
) -> dict[str, Any]:
    """Add or change one parameter of the Job's schema; ``notices`` says what it implies."""
    edit = job_service.ParamEdit(
        name=param,
        data_type=body.type,
        direction=body.direction,
        default=body.default,
        clear_default=body.clear_default,
        description=body.description,
    )
    job, notices = job_service.set_parameter(svc, name, edit)
    return {**views.job_view(job), "notices": notices}


@router.delete("/{name}/parameters/{param}", responses=problems(401, 403, 404, 409))
def remove_parameter(name: Name, param: Name, svc: Svc, _: Operator) -> dict[str, Any]:
    """Remove a parameter; refused (409) while a task sets it."""
    with refused_is_conflict():
        return views.job_view(job_service.remove_parameter(svc, name, param))


@router.post("/{name}/sync", responses=problems(401, 403, 404, 422, 502))
async def sync_job(name: Name, svc: Svc, _: Operator) -> dict[str, Any]:
    """Re-import the template, keeping your schema edits and overrides."""
    outcome = await job_service.sync_job(svc, name)
    return {"changes": list(outcome.changes), **views.job_view(outcome.job)}


@router.delete("/{name}", status_code=204, responses=problems(401, 403, 404, 409, 502))
async def delete_job(name: Name, svc: Svc, _: Operator, force: Force = False) -> Response:
    """Remove a Job; refused (409) while tasks use it, unless ``force``, which first stops
    the Batch work of its unfinished runs (502, nothing removed, if Batch cannot)."""
    with refused_is_conflict():
        await removal.remove_job(svc, name, force=force)
    return Response(status_code=204)
