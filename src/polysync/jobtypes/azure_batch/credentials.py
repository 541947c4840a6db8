"""Build the credential a Platform's ``PlatformAuth`` describes.

    shared-key         AzureNamedKeyCredential(account, key)      key from its reference
    (other modes)      the Entra ID credential of ``polysync.identity``

Secrets are read through ``read`` at the last moment (the job type resolves the platform's
references first, decision 0010); a message names a vault reference, never a host one.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

from azure.core.credentials import AzureNamedKeyCredential
from azure.core.credentials_async import AsyncTokenCredential

from polysync.domain.models import AuthMode, Platform, SecretRef
from polysync.domain.secrets import describe
from polysync.errors import SecretError
from polysync.identity import StaticTokenCredential, required_secret, token_credential

__all__ = [
    "BATCH_SCOPE",
    "BuiltCredential",
    "Credential",
    "Resolver",
    "StaticTokenCredential",
    "build_credential",
    "connection_verify",
]

Resolver = Callable[[SecretRef], str]
Credential = AzureNamedKeyCredential | AsyncTokenCredential

# NOTES.md §3.3: the Batch resource, scope with its double slash.
BATCH_SCOPE = "https://batch.core.windows.net//.default"


@dataclass(frozen=True, slots=True)
class BuiltCredential:
    credential: Credential
    # True for Entra ID/bearer credentials: over http they need ``enforce_https=False``.
    is_token: bool

    async def close(self) -> None:
        if not isinstance(self.credential, AzureNamedKeyCredential):
            await self.credential.close()


def _fix(platform: Platform) -> str:
    return (
        f"set it again with `polysync platform add {platform.name} ... --replace` giving "
        "the reference"
    )


def build_credential(platform: Platform, read: Resolver) -> BuiltCredential:
    """The credential for ``platform`` (see the module table). Reads secrets now."""
    auth = platform.auth
    owner = f"platform {platform.name!r}"
    if auth.mode is AuthMode.SHARED_KEY:
        key = required_secret(owner, auth, "account key", read, _fix(platform))
        try:
            base64.b64decode(key, validate=True)
        except (binascii.Error, ValueError):
            # The SDK would echo the key in its own error ("Invalid key value: ..."): stop here.
            assert auth.secret is not None
            raise SecretError(
                f"the account key of {owner} ({describe(auth.secret)}) is not valid base64: "
                "copy the key from the Batch account's Keys blade again."
            ) from None
        return BuiltCredential(AzureNamedKeyCredential(platform.account_name, key), False)
    return BuiltCredential(token_credential(owner, auth, read, _fix(platform)), True)


def connection_verify(platform: Platform) -> bool | str:
    """aiohttp's ``connection_verify``: a CA bundle path, or whether to verify at all."""
    if platform.ca_bundle:
        return platform.ca_bundle
    return platform.verify_tls
