"""Entra ID credentials from a :class:`~polysync.domain.models.PlatformAuth`.

Platforms (to reach their Batch account) and Secret Vaults (to reach their Key Vault) use
the same authentication modes, so the ``azure-identity`` side lives here once:

    service-principal  ClientSecretCredential   client secret from its reference
    certificate        CertificateCredential    a host file, or a vault:// reference whose
                                                value is the PEM or base64 PKCS#12 itself;
                                                optional password reference
    managed-identity   ManagedIdentityCredential(client_id=...)
    default            DefaultAzureCredential
    bearer-token       StaticTokenCredential    a pre-minted token from its reference

Secrets come from ``read`` (already resolved by the caller, decision 0010) and never
appear in a message: a message names a vault reference, never a host one.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential

from polysync.domain.models import AuthMode, PlatformAuth, SecretRef
from polysync.domain.secrets import describe, parse_ref
from polysync.errors import ConfigError, SecretError

Read = Callable[[SecretRef], str]

TOKEN_MODES = frozenset(
    {
        AuthMode.SERVICE_PRINCIPAL,
        AuthMode.CERTIFICATE,
        AuthMode.MANAGED_IDENTITY,
        AuthMode.DEFAULT,
        AuthMode.BEARER_TOKEN,
    }
)


class StaticTokenCredential:
    """An AsyncTokenCredential that always answers with one pre-minted bearer token.

    For the emulators' bearer tokens and for users who mint tokens outside Polysync.
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


def required_secret(owner: str, auth: PlatformAuth, what: str, read: Read, fix: str) -> str:
    """The secret of ``auth`` (the key, client secret or token), read and checked non-empty."""
    ref = auth.secret
    if ref is None:
        raise ConfigError(
            f"{owner} uses {auth.mode.value} authentication but has no {what} reference: {fix}."
        )
    value = read(ref).strip()
    if not value:
        raise SecretError(
            f"the {what} of {owner} ({describe(ref)}) is empty: put the value there and try again."
        )
    return value


def need(owner: str, auth: PlatformAuth, fix: str, **fields: str | None) -> None:
    missing = [name for name, value in fields.items() if not value]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise ConfigError(
            f"{owner} uses {auth.mode.value} authentication but lacks {flags}: {fix}."
        )


def certificate_kwargs(owner: str, auth: PlatformAuth, read: Read) -> dict[str, Any]:
    """``certificate_path`` or ``certificate_data`` (and ``password``) for CertificateCredential."""
    location = str(auth.certificate_path)
    kwargs: dict[str, Any] = {}
    ref = parse_ref(location) if location.startswith("vault://") else None
    if ref is None:
        kwargs["certificate_path"] = location
    else:
        kwargs["certificate_data"] = _certificate_bytes(owner, ref, read(ref))
    if auth.secret is not None:
        password = read(auth.secret)
        if password:
            kwargs["password"] = password
    return kwargs


def _certificate_bytes(owner: str, ref: SecretRef, value: str) -> bytes:
    # Key Vault keeps a PEM certificate as its text and a PKCS#12 one base64-encoded.
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode("ascii", "replace")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SecretError(
            f"the certificate of {owner} ({ref}) is neither PEM text nor base64 PKCS#12: "
            "store the certificate in the vault again."
        ) from None


def token_credential(owner: str, auth: PlatformAuth, read: Read, fix: str) -> AsyncTokenCredential:
    """The Entra ID credential of a token mode (see the module table). Reads secrets now."""
    mode = auth.mode
    if mode is AuthMode.BEARER_TOKEN:
        return StaticTokenCredential(required_secret(owner, auth, "bearer token", read, fix))
    # azure-identity is imported only when a mode needs it (shared key is the common case).
    from azure.identity import aio as identity

    if mode is AuthMode.SERVICE_PRINCIPAL:
        need(owner, auth, fix, tenant_id=auth.tenant_id, client_id=auth.client_id)
        assert auth.tenant_id is not None
        assert auth.client_id is not None
        secret = required_secret(owner, auth, "client secret", read, fix)
        return identity.ClientSecretCredential(auth.tenant_id, auth.client_id, secret)
    if mode is AuthMode.CERTIFICATE:
        need(
            owner,
            auth,
            fix,
            tenant_id=auth.tenant_id,
            client_id=auth.client_id,
            certificate_path=auth.certificate_path,
        )
        assert auth.tenant_id is not None
        assert auth.client_id is not None
        return identity.CertificateCredential(
            auth.tenant_id, auth.client_id, **certificate_kwargs(owner, auth, read)
        )
    if mode is AuthMode.MANAGED_IDENTITY:
        return identity.ManagedIdentityCredential(client_id=auth.client_id)
    if mode is AuthMode.DEFAULT:
        kwargs: dict[str, Any] = {}
        if auth.client_id:
            kwargs["managed_identity_client_id"] = auth.client_id
        return identity.DefaultAzureCredential(**kwargs)
    raise ConfigError(
        f"{owner} uses {mode.value} authentication, which takes no Entra ID credential: {fix}."
    )
