"""/api/vaults: Secret Vaults (admins manage and test them; operators list their names).

A vault's own credential is a reference like a platform's; from the API it is a
``vault://`` reference to another vault, or a host reference the host's ``[server]
host_references`` allows (decision 0010). Operators see vault names and their task
secrets — what they need to write ``vault://VAULT/SECRET`` — but not the credentials.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from polysync.api.deps import get_services
from polysync.api.routes.common import (
    Admin,
    CredentialFields,
    Name,
    Operator,
    Text,
    problems,
    refused_is_conflict,
    sees_credentials,
)
from polysync.domain.models import AuthMode
from polysync.domain.secrets import Writer
from polysync.services import vaults as vault_service
from polysync.services import views
from polysync.services.context import Services

router = APIRouter(prefix="/api/vaults", tags=["vaults"])
Svc = Annotated[Services, Depends(get_services)]

Pattern = Annotated[str, Field(min_length=1, max_length=127)]


class VaultFields(CredentialFields):
    """An Azure Key Vault; its credential as a reference (see ``CredentialFields``)."""

    url: Text = Field(description="https://<vault-name>.vault.azure.net/")
    auth: AuthMode = AuthMode.MANAGED_IDENTITY
    task_secrets: Annotated[list[Pattern], Field(max_length=100)] = Field(
        default=["*"],
        description="Secret names (globs) Task parameters may read; [] for none.",
    )

    def to_input(self, name: str) -> vault_service.VaultInput:
        values = self.model_dump(exclude={"name"})
        values["task_secrets"] = tuple(values["task_secrets"])
        return vault_service.VaultInput(name=name, **values)


class VaultCreate(VaultFields):
    name: Annotated[str, Field(min_length=1, max_length=200, examples=["prod-kv"])]


@router.post("", status_code=201, responses=problems(401, 403, 409, 422))
def create_vault(body: VaultCreate, svc: Svc, who: Admin) -> dict[str, Any]:
    """Declare a Secret Vault (same validation as `polysync vault add`)."""
    vault = vault_service.add_vault(svc, body.to_input(body.name), writer=Writer.for_role(who.role))
    return views.vault_view(vault)


@router.get("", responses=problems(401, 403))
def list_vaults(svc: Svc, who: Operator) -> list[dict[str, Any]]:
    """Vaults; only admins see where a vault's own credential is read from."""
    reveal = sees_credentials(who)
    return [views.vault_view(v, reveal=reveal) for v in svc.store.list_vaults()]


@router.get("/{name}", responses=problems(401, 403, 404))
def get_vault(name: Name, svc: Svc, who: Operator) -> dict[str, Any]:
    """A vault; admins also see what refers to it (``used_by``)."""
    vault = svc.store.get_vault(name)
    view = views.vault_view(vault, reveal=sees_credentials(who))
    if sees_credentials(who):
        view["used_by"] = svc.store.vault_users(vault.name)
    return view


@router.put("/{name}", responses=problems(401, 403, 404, 422))
def update_vault(name: Name, body: VaultFields, svc: Svc, who: Admin) -> dict[str, Any]:
    """Replace a vault's settings (the name stays)."""
    current = svc.store.get_vault(name)
    vault = vault_service.add_vault(
        svc,
        body.to_input(current.name),
        writer=Writer.for_role(who.role),
        replace_existing=True,
    )
    return views.vault_view(vault)


@router.delete("/{name}", status_code=204, responses=problems(401, 403, 404, 409))
def delete_vault(name: Name, svc: Svc, _: Admin) -> Response:
    """Remove a vault; refused (409) while a platform, vault, job, task or run uses it."""
    with refused_is_conflict():
        vault_service.remove_vault(svc, name)
    return Response(status_code=204)


@router.post("/{name}/test", responses=problems(401, 403, 404))
async def check_vault(name: Name, svc: Svc, _: Admin) -> dict[str, Any]:
    """Reach the vault and list one secret name; reads no secret value."""
    vault = await run_in_threadpool(svc.store.get_vault, name)
    checks = await svc.secrets.test_vault(vault)
    return {
        "vault": vault.name,
        "ok": all(c.ok for c in checks),
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
    }
