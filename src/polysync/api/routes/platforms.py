"""/api/platforms: Batch accounts (admins manage them; viewers read, test and discover)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from polysync.api.deps import get_services
from polysync.api.routes.common import (
    Admin,
    CredentialFields,
    Force,
    Limit,
    Name,
    Offset,
    Text,
    Viewer,
    page,
    problems,
    refused_is_conflict,
    sees_credentials,
)
from polysync.domain import limits
from polysync.domain.ids import job_id_prefix
from polysync.domain.models import AuthMode
from polysync.domain.secrets import Writer
from polysync.jobtypes.base import DiscoveredJob
from polysync.services import platforms as platform_service
from polysync.services import removal, views
from polysync.services.context import Services

router = APIRouter(prefix="/api/platforms", tags=["platforms"])
Svc = Annotated[Services, Depends(get_services)]


class PlatformFields(CredentialFields):
    """A Batch account; its credential as a reference (see ``CredentialFields``)."""

    account_url: Text = Field(description="https://<account>.<region>.batch.azure.com")
    account_name: Text = Field(examples=["myaccount"])
    subscription_id: Text = Field(examples=["11111111-2222-3333-4444-555555555555"])
    resource_group: Text = Field(examples=["rg-batch"])
    auth: AuthMode = AuthMode.SHARED_KEY
    key_ref: Text | None = None
    key_env: Text | None = None
    key_file: Text | None = None

    def to_input(self, name: str) -> platform_service.PlatformInput:
        return platform_service.PlatformInput(name=name, **self.model_dump(exclude={"name"}))


class PlatformCreate(PlatformFields):
    name: Annotated[
        str, Field(min_length=1, max_length=limits.NAME.max_len, examples=["prod-westeu"])
    ]


@router.post("", status_code=201, responses=problems(401, 403, 409, 422))
def create_platform(body: PlatformCreate, svc: Svc, who: Admin) -> dict[str, Any]:
    """Register a Batch account (same validation as `polysync platform add`)."""
    data = body.to_input(body.name)
    platform = platform_service.add_platform(svc, data, writer=Writer.for_role(who.role))
    return views.platform_view(platform)


@router.get("", responses=problems(401))
def list_platforms(svc: Svc, who: Viewer) -> list[dict[str, Any]]:
    """Platforms; only admins see where credentials are read from (decision 0010)."""
    reveal = sees_credentials(who)
    return [views.platform_view(p, reveal=reveal) for p in svc.store.list_platforms()]


@router.get("/{name}", responses=problems(401, 404))
def get_platform(name: Name, svc: Svc, who: Viewer) -> dict[str, Any]:
    return views.platform_view(svc.store.get_platform(name), reveal=sees_credentials(who))


@router.put("/{name}", responses=problems(401, 403, 404, 422))
def update_platform(name: Name, body: PlatformFields, svc: Svc, who: Admin) -> dict[str, Any]:
    """Replace a platform's settings (the name stays)."""
    current = svc.store.get_platform(name)
    platform = platform_service.add_platform(
        svc,
        body.to_input(current.name),
        writer=Writer.for_role(who.role),
        replace_existing=True,
    )
    return views.platform_view(platform)


@router.delete("/{name}", status_code=204, responses=problems(401, 403, 404, 409, 502))
async def delete_platform(name: Name, svc: Svc, _: Admin, force: Force = False) -> Response:
    """Remove a platform; refused (409) while jobs use it, unless ``force``, which first
    stops the Batch work of its unfinished runs (502, nothing removed, if Batch cannot)."""
    with refused_is_conflict():
        await removal.remove_platform(svc, name, force=force)
    return Response(status_code=204)


@router.post("/{name}/test", responses=problems(401, 404, 502))
async def check_connectivity(name: Name, svc: Svc, _: Viewer) -> dict[str, Any]:
    """List one job and read one pool, reporting what the credential may do."""
    report = await platform_service.test_platform(svc, name)
    return {
        "platform": name,
        "ok": report.ok,
        "checks": [{"name": c, "ok": ok, "detail": d} for c, ok, d in report.checks],
    }


@router.get("/{name}/discover", responses=problems(401, 404, 502, 503))
async def discover(
    name: Name,
    svc: Svc,
    _: Viewer,
    limit: Limit = 50,
    offset: Offset = 0,
    prefix: Annotated[
        str | None,
        Query(
            max_length=limits.BATCH_ID.max_len,
            description="Only job ids starting with this (server-side).",
        ),
    ] = None,
    include_runs: Annotated[
        bool, Query(description="Also list the Batch jobs Polysync created for runs.")
    ] = False,
) -> dict[str, Any]:
    """The account's Batch jobs (the templates you can import), paginated."""
    own = None
    if not include_runs:
        installation = await run_in_threadpool(svc.store.installation_id)
        own = job_id_prefix(installation).lower()
    found: list[DiscoveredJob] = []
    async for d in platform_service.discover(svc, name, id_prefix=prefix or None):
        if own and d.id.lower().startswith(own):
            continue
        found.append(d)
    return page(found, limit, offset, views.discovered_view)
