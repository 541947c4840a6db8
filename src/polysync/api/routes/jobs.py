"""/api/jobs: imported templates, their parameter schema and overrides (operators edit).

Code-bearing edits (command line, image, container run options, loader/interpreter-hook
parameters) need ``[server] code_overrides_role`` (admin by default): decision 0011.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from polysync.api.deps import get_services
from polysync.api.routes.common import (
    Force,
    Name,
    NameFilter,
    Operator,
    ParamNamePath,
    Viewer,
    problems,
    refused_is_conflict,
    sees_references,
    within,
)
from polysync.domain import limits
from polysync.domain.secrets import Writer
from polysync.errors import InputError
from polysync.services import code_access, removal, views
from polysync.services import jobs as job_service
from polysync.services.context import Services

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
Svc = Annotated[Services, Depends(get_services)]

BatchId = Annotated[str, Field(min_length=1, max_length=limits.BATCH_ID.max_len)]
JobName = Annotated[str, Field(min_length=1, max_length=limits.NAME.max_len)]


def _text(limit: limits.Text) -> Any:
    return Field(min_length=1, max_length=limit.max_len)


class ImportBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform: JobName
    external_ids: Annotated[list[BatchId], Field(max_length=limits.IMPORT_IDS_MAX_COUNT)] = []
    all: bool = Field(default=False, description="Import every template the account lists.")
    name: JobName | None = Field(
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
def list_jobs(svc: Svc, who: Viewer, platform: NameFilter = None) -> list[dict[str, Any]]:
    """Jobs; a viewer sees Secret parameters' defaults as ``***`` (decision 0010)."""
    if platform is not None:
        svc.store.get_platform(platform)  # an unknown platform is a 404, not an empty list
    jobs = svc.store.list_jobs(platform=platform)
    if not sees_references(who):
        jobs = [views.job_for_viewers(j) for j in jobs]
    return [views.job_view(j) for j in jobs]


@router.get("/{name}", responses=problems(401, 404))
def get_job(name: Name, svc: Svc, who: Viewer) -> dict[str, Any]:
    job = svc.store.get_job(name)
    return views.job_view(job if sees_references(who) else views.job_for_viewers(job))


class JobPatch(BaseModel):
    """Override fields: a value sets it, ``null`` drops it (back to the template's)."""

    model_config = ConfigDict(extra="forbid")

    command_line: Annotated[str | None, _text(limits.COMMAND_LINE)] = None
    image: Annotated[str | None, _text(limits.IMAGE)] = None
    container_run_options: Annotated[str | None, _text(limits.RUN_OPTIONS)] = None
    max_wall_clock_s: Annotated[int | None, Field(**within(limits.MAX_WALL_CLOCK_S))] = None
    retention_s: Annotated[int | None, Field(**within(limits.RETENTION_S))] = None
    max_task_retries: Annotated[int | None, Field(**within(limits.MAX_TASK_RETRIES))] = None
    description: Annotated[str | None, Field(max_length=limits.DESCRIPTION.max_len)] = None
    tags: Annotated[
        list[Annotated[str, Field(max_length=limits.TAG.max_len)]] | None,
        Field(max_length=limits.TAGS_MAX_COUNT),
    ] = None


_OVERRIDES = (
    "command_line",
    "image",
    "container_run_options",
    "max_wall_clock_s",
    "retention_s",
    "max_task_retries",
)


@router.patch("/{name}", responses=problems(401, 403, 404, 422))
def update_job(name: Name, body: JobPatch, svc: Svc, who: Operator) -> dict[str, Any]:
    """Change overrides (what each run's task takes instead of the template's), description
    or tags. Only the fields present in the body change. Changing ``command_line``,
    ``image`` or ``container_run_options`` runs code on the pool: it needs the admin role
    (or ``[server] code_overrides_role``), else 403."""
    given = body.model_fields_set
    if "command_line" in given and body.command_line is not None and not body.command_line.strip():
        raise InputError("command_line is blank: send null to drop the override.")
    changes = {k: getattr(body, k) for k in _OVERRIDES if k in given}
    code_access.check_job_overrides(svc, who.role, name, changes)
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

    type: Annotated[str | None, Field(max_length=limits.CHOICE.max_len, examples=["Int"])] = Field(
        default=None, description="String, Int, Float, Bool, JSON or Secret."
    )
    direction: Annotated[
        str | None, Field(max_length=limits.CHOICE.max_len, examples=["Input"])
    ] = Field(default=None, description="Input, Output or Input&Output.")
    default: Annotated[str | None, Field(max_length=limits.PARAM_VALUE.max_len)] = Field(
        default=None,
        description="Default value (Secret: a vault://VAULT/SECRET reference only).",
    )
    clear_default: bool = False
    description: Annotated[str | None, Field(max_length=limits.DESCRIPTION.max_len)] = None


@router.put("/{name}/parameters/{param}", responses=problems(401, 403, 404, 422))
def set_parameter(
    name: Name, param: ParamNamePath, body: ParameterBody, svc: Svc, who: Operator
) -> dict[str, Any]:
    """Add or change one parameter of the Job's schema; ``notices`` says what it implies.
    A name that loads code (``LD_PRELOAD``, ``PATH``, ``PYTHONPATH``, …) needs the admin
    role (or ``[server] code_overrides_role``), else 403."""
    code_access.check_schema_edit(svc, who.role, name, param)
    edit = job_service.ParamEdit(
        name=param,
        data_type=body.type,
        direction=body.direction,
        default=body.default,
        clear_default=body.clear_default,
        description=body.description,
    )
    job, notices = job_service.set_parameter(svc, name, edit, writer=Writer.for_role(who.role))
    return {**views.job_view(job), "notices": notices}


@router.delete("/{name}/parameters/{param}", responses=problems(401, 403, 404, 409))
def remove_parameter(name: Name, param: ParamNamePath, svc: Svc, who: Operator) -> dict[str, Any]:
    """Remove a parameter; refused (409) while a task sets it, and (403) for a name that
    loads code unless the role may change code."""
    code_access.check_schema_edit(svc, who.role, name, param)
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
