"""API tokens: roles, generation, hashing and the token use cases (no FastAPI here).

A token is ``psk_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 digest
is stored: a random token of that strength needs no salt or slow hash, and the lookup
is one indexed equality. The token is shown once, when created.
"""

from __future__ import annotations

import hashlib
import secrets

from polysync.domain.roles import Role as Role  # re-exported: callers import it from here
from polysync.errors import InputError
from polysync.services.context import Services
from polysync.services.platforms import validate_name
from polysync.store.base import ApiToken

PREFIX = "psk_"


def parse_role(value: str) -> Role:
    try:
        return Role(value.strip().lower())
    except ValueError:
        raise InputError(
            f"role {value!r} is not valid: use viewer (read), operator (run and cancel) "
            "or admin (platforms and tokens)."
        ) from None


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(svc: Services, name: str, role: Role | str) -> tuple[ApiToken, str]:
    """Store a new token; returns it with the token text, which is never shown again."""
    validate_name("token", name)
    chosen = role if isinstance(role, Role) else parse_role(role)
    token = new_token()
    return svc.store.add_api_token(name, chosen.value, digest(token)), token


def authenticate(svc: Services, token: str) -> ApiToken | None:
    """The stored token matching ``token``, or None (also for anything malformed)."""
    token = token.strip()
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    return svc.store.find_api_token(digest(token))


def revoke_token(svc: Services, name: str) -> None:
    svc.store.remove_api_token(name)


def has_admin(svc: Services) -> bool:
    return any(t.role == Role.ADMIN.value for t in svc.store.list_api_tokens())


def token_view(t: ApiToken) -> dict[str, object]:
    """JSON of a token without its secret (the API and `token list --output json`)."""
    return {
        "name": t.name,
        "role": t.role,
        "created_at": t.created_at.isoformat().replace("+00:00", "Z"),
    }
