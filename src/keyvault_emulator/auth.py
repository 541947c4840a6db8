"""Bearer authentication and role-based access, the way Key Vault answers them.

Challenge: a request without ``Authorization`` gets 401 with ``WWW-Authenticate: Bearer
authorization="https://login.microsoftonline.com/<tenant>", resource="https://vault.azure.net"``.
The SDK's challenge policy first sends each request to a new vault *without* its body and
credentials, parses that header (``authorization`` gives the tenant, ``resource`` + ``/.default``
the scope), asks its credential for a token and resends the full request. The parser
splits on ``,`` and ``=`` and strips quotes, so the values must hold neither.

Roles stand in for Azure RBAC role assignments on the vault; each grants the data actions
of the built-in role it is named after. Tokens are compared in constant time and never
logged or echoed.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from enum import StrEnum

from keyvault_emulator import errors

RESOURCE = "https://vault.azure.net"
AUTHORITY = "https://login.microsoftonline.com"


class Role(StrEnum):
    SECRETS_USER = "secrets-user"  # "Key Vault Secrets User": read secret contents, list
    SECRETS_OFFICER = "secrets-officer"  # "Key Vault Secrets Officer": everything on secrets
    READER = "reader"  # "Key Vault Reader": metadata only — lists, never values


_ACTION = "Microsoft.KeyVault/vaults/secrets/"
# The data action each operation needs (names from Azure's Microsoft.KeyVault provider).
DATA_ACTIONS: Mapping[str, str] = {
    "GetSecret": _ACTION + "getSecret/action",
    "ListSecrets": _ACTION + "readMetadata/action",
    "ListSecretVersions": _ACTION + "readMetadata/action",
    "ListDeletedSecrets": _ACTION + "readMetadata/action",
    "GetDeletedSecret": _ACTION + "readMetadata/action",
    "SetSecret": _ACTION + "setSecret/action",
    "UpdateSecret": _ACTION + "update/action",
    "DeleteSecret": _ACTION + "delete",
    "PurgeDeletedSecret": _ACTION + "purge/action",
    "RecoverDeletedSecret": _ACTION + "recover/action",
    "BackupSecret": _ACTION + "backup/action",
    "RestoreSecret": _ACTION + "restore/action",
}

_READ_METADATA = _ACTION + "readMetadata/action"
GRANTS: Mapping[Role, frozenset[str]] = {
    Role.READER: frozenset({_READ_METADATA}),
    Role.SECRETS_USER: frozenset({_READ_METADATA, _ACTION + "getSecret/action"}),
    Role.SECRETS_OFFICER: frozenset(DATA_ACTIONS.values()),
}


def challenge(tenant_id: str) -> str:
    return f'Bearer authorization="{AUTHORITY}/{tenant_id}", resource="{RESOURCE}"'


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class TokenTable:
    """Which role each configured token carries."""

    def __init__(self, tokens: Mapping[Role, str]) -> None:
        self._entries = [(token.encode(), role) for role, token in tokens.items()]

    def role_for(self, token: str | None) -> Role | None:
        if token is None:
            return None
        given = token.encode()
        found: Role | None = None
        for known, role in self._entries:  # no early exit: timing says nothing of matches
            if hmac.compare_digest(given, known):
                found = role
        return found


def authenticate(table: TokenTable, authorization: str | None, tenant_id: str) -> Role:
    """The caller's role, or the 401 (with challenge) the service would answer."""
    token = bearer_token(authorization)
    if token is None:
        raise errors.missing_token(challenge(tenant_id))
    role = table.role_for(token)
    if role is None:
        raise errors.invalid_token(challenge(tenant_id))
    return role


def authorize(role: Role, operation: str, *, resource: str, vault: str) -> None:
    """Raise the service's 403 ``ForbiddenByRbac`` if ``role`` lacks the operation's action."""
    action = DATA_ACTIONS[operation]
    if action not in GRANTS[role]:
        raise errors.forbidden_by_rbac(
            role=role.value, action=action, resource=resource, vault=vault
        )


__all__ = [
    "AUTHORITY",
    "DATA_ACTIONS",
    "GRANTS",
    "RESOURCE",
    "Role",
    "TokenTable",
    "authenticate",
    "authorize",
    "bearer_token",
    "challenge",
]
