"""Who is calling: API tokens as ``Authorization: Bearer psk_…`` or the console's cookie.

``require(Role.OPERATOR)`` is a dependency returning the :class:`Principal`; it raises
401 (problem+json, ``WWW-Authenticate: Bearer``) without a valid token and 403 when the
token's role is too low. Roles: viewers read; operators also manage jobs and tasks, run
and cancel; admins also manage platforms and tokens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from polysync.api.deps import get_services
from polysync.api.problems import Forbidden, Unauthorized
from polysync.api.tokens import Role, authenticate
from polysync.services.context import Services

__all__ = ["COOKIE_NAME", "Principal", "Role", "require"]

COOKIE_NAME = "polysync_token"

# auto_error=False: we answer missing credentials ourselves, as problem+json 401s.
_bearer = HTTPBearer(auto_error=False, description="An API token: `polysync token create`.")
_cookie = APIKeyCookie(
    name=COOKIE_NAME, auto_error=False, description="The web console's sign-in cookie."
)


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: Role


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits tokens of ``role`` or above."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008 — FastAPI's idiom
        cookie: str | None = Depends(_cookie),
        svc: Services = Depends(get_services),  # noqa: B008 — FastAPI's idiom
    ) -> Principal:
        token = bearer.credentials if bearer is not None else cookie
        if not token:
            raise Unauthorized(
                "this request needs an API token: send `Authorization: Bearer psk_…` "
                "(create one with `polysync token create --name NAME --role viewer`)."
            )
        found = await run_in_threadpool(authenticate, svc, token)
        if found is None:
            raise Unauthorized(
                "the API token is not valid (unknown or revoked); create a new one with "
                "`polysync token create`."
            )
        principal = Principal(token_id=found.id, name=found.name, role=Role(found.role))
        if not principal.role.allows(role):
            raise Forbidden(
                f"token {principal.name!r} has role {principal.role.value}; this request "
                f"needs {role.value} or above."
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency
