"""Who is calling: an API token as ``Authorization: Bearer psk_…``, or a console session.

``require(Role.OPERATOR)`` is a dependency returning the :class:`Principal`; it raises
401 (problem+json, ``WWW-Authenticate: Bearer``) without valid credentials and 403 when
the token's role is too low. Roles: viewers read; operators also manage jobs and tasks,
run and cancel; admins also manage platforms and tokens.

A bearer token wins when both are sent. The session cookie (``polysync_session``, see
``sessions.py``) acts with exactly its token's name and role; because a browser attaches
it to requests other pages make, a state-changing request authenticated by it must also
pass the CSRF checks of ``csrf.py`` (403 otherwise). Bearer requests are exempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from polysync.api import csrf
from polysync.api.deps import get_services
from polysync.api.problems import Forbidden, Unauthorized
from polysync.api.sessions import SESSION_COOKIE, Sessions, get_sessions
from polysync.api.tokens import Role, authenticate
from polysync.services.context import Services
from polysync.store.base import Store

__all__ = ["Principal", "Role", "bearer_of", "identify", "own_origin", "require", "still_live"]

# auto_error=False: we answer missing credentials ourselves, as problem+json 401s.
_bearer = HTTPBearer(auto_error=False, description="An API token: `polysync token create`.")
_cookie = APIKeyCookie(
    name=SESSION_COOKIE,
    auto_error=False,
    description="The web console's session (sign in at /signin); POST, PUT, PATCH and "
    "DELETE also need the `X-CSRF-Token` header from the page's `csrf-token` meta tag.",
)


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: int
    name: str
    role: Role
    # The console session that authenticated the request; None for a bearer token.
    session_id: int | None = None


def own_origin(request: Request) -> str:
    """The origin this request was sent to, as a browser writes it in ``Origin``."""
    return f"{request.url.scheme}://{request.url.netloc}"


def cross_site_refusal(request: Request) -> str | None:
    """Why this state-changing browser request must be refused (Origin checks), or None."""
    if not csrf.is_unsafe(request.method):
        return None
    return csrf.origin_refusal(
        own_origin=own_origin(request),
        origin=request.headers.get("origin"),
        fetch_site=request.headers.get("sec-fetch-site"),
    )


def _session_principal(sessions: Sessions, session_id: str) -> Principal:
    session = sessions.lookup(session_id)
    if session is None:
        raise Unauthorized(
            "your console session has ended (signed out, expired, or its token was "
            "revoked); sign in again at /signin, or send `Authorization: Bearer psk_…`."
        )
    return Principal(
        token_id=session.token.id,
        name=session.token.name,
        role=Role(session.token.role),
        session_id=session.id,
    )


async def identify(
    request: Request, svc: Services, bearer: str | None, session_id: str | None
) -> Principal:
    """The caller: the bearer token if one is sent, else the console session (with the
    CSRF checks on state-changing requests). Raises 401 or 403 (problem+json)."""
    if bearer is not None:
        found = await run_in_threadpool(authenticate, svc, bearer)
        if found is None:
            raise Unauthorized(
                "the API token is not valid (unknown or revoked); create a new one with "
                "`polysync token create`."
            )
        return Principal(token_id=found.id, name=found.name, role=Role(found.role))
    if session_id:
        # Refused before the session is even looked up: nothing runs for a forgery.
        refusal = cross_site_refusal(request)
        if refusal is not None:
            raise Forbidden(refusal)
        if csrf.is_unsafe(request.method) and not csrf.token_matches(
            session_id, request.headers.get(csrf.HEADER)
        ):
            raise Forbidden(csrf.API_REFUSAL)
        return await run_in_threadpool(_session_principal, get_sessions(request), session_id)
    raise Unauthorized(
        "this request needs an API token: send `Authorization: Bearer psk_…` "
        "(create one with `polysync token create --name NAME --role viewer`)."
    )


async def bearer_of(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header (outside a dependency)."""
    credentials = await _bearer(request)
    return None if credentials is None else credentials.credentials


def require(role: Role) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits tokens of ``role`` or above."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008 — FastAPI's idiom
        cookie: str | None = Depends(_cookie),
        svc: Services = Depends(get_services),  # noqa: B008 — FastAPI's idiom
    ) -> Principal:
        token = None if bearer is None else bearer.credentials
        principal = await identify(request, svc, token, cookie)
        if not principal.role.allows(role):
            raise Forbidden(
                f"token {principal.name!r} has role {principal.role.value}; this request "
                f"needs {role.value} or above."
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


def still_live(
    store: Store, sessions: Sessions
) -> Callable[[Collection[Principal]], set[Principal]]:
    """For the open event streams: which of these callers may still read (two queries)."""

    def check(principals: Collection[Principal]) -> set[Principal]:
        session_ids = {p.session_id for p in principals if p.session_id is not None}
        token_ids = {p.token_id for p in principals if p.session_id is None}
        live_sessions = sessions.live_ids(session_ids) if session_ids else set()
        live_tokens = store.existing_api_token_ids(token_ids) if token_ids else set()
        return {
            p
            for p in principals
            if (
                p.session_id in live_sessions
                if p.session_id is not None
                else p.token_id in live_tokens
            )
        }

    return check
