"""Build the credential a Platform's ``PlatformAuth`` describes.

    shared-key         AzureNamedKeyCredential(account, key)      key from its SecretRef
    service-principal  azure.identity.aio.ClientSecretCredential  secret from its SecretRef
    certificate        azure.identity.aio.CertificateCredential   optional password ref
    managed-identity   azure.identity.aio.ManagedIdentityCredential(client_id=...)
    default            azure.identity.aio.DefaultAzureCredential
    bearer-token       StaticTokenCredential                       token from its SecretRef

Secrets are read here, at the last moment, through their references; they never appear
in an exception message (only the reference, e.g. ``env:BATCH_KEY``, is named).
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.core.credentials_async import AsyncTokenCredential

from polysync.domain.models import AuthMode, Platform, SecretRef
from polysync.errors import ConfigError, SecretError

Resolver = Callable[[SecretRef], str]
Credential = AzureNamedKeyCredential | AsyncTokenCredential

# NOTES.md §3.3: the Batch resource, scope with its double slash.
BATCH_SCOPE = "https://batch.core.windows.net//.default"


def default_resolver(ref: SecretRef) -> str:
    """Read a SecretRef with the domain's resolver (env:NAME / file:PATH)."""
    from polysync.domain import secrets

    value: str = secrets.resolve(ref)
    return value


class StaticTokenCredential:
    """An AsyncTokenCredential that always answers with one pre-minted bearer token.

    For the emulator's ``--bearer-token`` and for users who mint tokens outside Polysync.
    The expiry is reported an hour ahead so azure-core does not ask again on every call.
    """

    def __init__(self, token: str) -> None:
        self._token = token

    def __repr__(self) -> str:
        return "StaticTokenCredential(<redacted>)"

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None


@dataclass(frozen=True, slots=True)
class BuiltCredential:
    credential: Credential
    # True for Entra ID/bearer credentials: over http they need ``enforce_https=False``.
    is_token: bool

    async def close(self) -> None:
        if not isinstance(self.credential, AzureNamedKeyCredential):
            await self.credential.close()


def _secret(platform: Platform, what: str, resolve: Resolver) -> str:
    ref = platform.auth.secret
    if ref is None:
        raise ConfigError(
            f"platform {platform.name!r} uses {platform.auth.mode.value} authentication but has "
            f"no {what} reference: set it again with `polysync platform add {platform.name} "
            "... --replace` giving the env/file reference."
        )
    value = resolve(ref).strip()
    if not value:
        raise SecretError(
            f"the {what} of platform {platform.name!r} ({ref}) is empty: put the value there "
            "and try again."
        )
    return value


def _need(platform: Platform, **fields: str | None) -> None:
    missing = [name for name, value in fields.items() if not value]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise ConfigError(
            f"platform {platform.name!r} uses {platform.auth.mode.value} authentication but "
            f"lacks {flags}: add the platform again with them."
        )


def build_credential(platform: Platform, resolve: Resolver | None = None) -> BuiltCredential:
    """The credential for ``platform`` (see the module table). Reads secrets now."""
    read = resolve or default_resolver
    auth = platform.auth
    mode = auth.mode
    if mode is AuthMode.SHARED_KEY:
        key = _secret(platform, "account key", read)
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            # The SDK would echo the key in its own error ("Invalid key value: ..."): stop here.
            raise SecretError(
                f"the account key of platform {platform.name!r} ({auth.secret}) is not valid "
                "base64: copy the key from the Batch account's Keys blade again."
            ) from None
        return BuiltCredential(AzureNamedKeyCredential(platform.account_name, key), False)

    # azure-identity is imported only when a mode needs it (shared key is the common case).
    from azure.identity import aio as identity

    if mode is AuthMode.SERVICE_PRINCIPAL:
        _need(platform, tenant_id=auth.tenant_id, client_id=auth.client_id)
        assert auth.tenant_id is not None
        assert auth.client_id is not None
        secret = _secret(platform, "client secret", read)
        return BuiltCredential(
            identity.ClientSecretCredential(auth.tenant_id, auth.client_id, secret), True
        )
    if mode is AuthMode.CERTIFICATE:
        _need(
            platform,
            tenant_id=auth.tenant_id,
            client_id=auth.client_id,
            certificate_path=auth.certificate_path,
        )
        assert auth.tenant_id is not None
        assert auth.client_id is not None
        password = read(auth.secret) if auth.secret is not None else None
        kwargs: dict[str, Any] = {"certificate_path": auth.certificate_path}
        if password:
            kwargs["password"] = password
        return BuiltCredential(
            identity.CertificateCredential(auth.tenant_id, auth.client_id, **kwargs), True
        )
    if mode is AuthMode.MANAGED_IDENTITY:
        return BuiltCredential(identity.ManagedIdentityCredential(client_id=auth.client_id), True)
    if mode is AuthMode.DEFAULT:
        kwargs = {}
        if auth.client_id:
            kwargs["managed_identity_client_id"] = auth.client_id
        return BuiltCredential(identity.DefaultAzureCredential(**kwargs), True)
    if mode is AuthMode.BEARER_TOKEN:
        return BuiltCredential(StaticTokenCredential(_secret(platform, "bearer token", read)), True)
    raise ConfigError(  # pragma: no cover - AuthMode is closed; a new member must land here
        f"platform {platform.name!r}: unsupported authentication mode {mode!r}."
    )


def connection_verify(platform: Platform) -> bool | str:
    """aiohttp's ``connection_verify``: a CA bundle path, or whether to verify at all."""
    if platform.ca_bundle:
        return platform.ca_bundle
    return platform.verify_tls
