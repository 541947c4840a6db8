"""/api/tokens: API tokens (admins only). A new token is shown once, in the 201 answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from polysync.api import tokens
from polysync.api.deps import get_services
from polysync.api.routes.common import Admin, Name, problems
from polysync.domain import limits
from polysync.services.context import Services

router = APIRouter(prefix="/api/tokens", tags=["tokens"])
Svc = Annotated[Services, Depends(get_services)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=limits.NAME.max_len, examples=["ci-bot"])]
    role: tokens.Role = tokens.Role.VIEWER


@router.post("", status_code=201, responses=problems(401, 403, 409, 422))
def create_token(body: TokenCreate, svc: Svc, _: Admin) -> dict[str, Any]:
    """Create a token; the answer's ``token`` is shown this once and never again."""
    stored, secret = tokens.create_token(svc, body.name, body.role)
    return {**tokens.token_view(stored), "token": secret}


@router.get("", responses=problems(401, 403))
def list_tokens(svc: Svc, _: Admin) -> list[dict[str, Any]]:
    """Every token's name, role and creation time (never the token)."""
    return [tokens.token_view(t) for t in svc.store.list_api_tokens()]


@router.delete("/{name}", status_code=204, responses=problems(401, 403, 404))
def revoke_token(name: Name, svc: Svc, _: Admin) -> Response:
    """Revoke a token: requests carrying it get 401 from now on."""
    tokens.revoke_token(svc, name)
    return Response(status_code=204)
