"""Credentials that hand the SDK an emulator token (sync and async).

The SDK asks its credential for a token for the scope the challenge named
(``https://vault.azure.net/.default``) and the challenge's tenant; these hand back a fixed
token and remember what was asked, so a test can check the challenge round-trip.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions

TOKEN_LIFETIME_S = 3600


class StaticTokenCredential:
    """A ``TokenCredential`` (and ``SupportsTokenInfo``) that always returns ``token``."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.requests: list[tuple[tuple[str, ...], str | None]] = []  # (scopes, tenant)

    def __repr__(self) -> str:  # never show the token
        return "StaticTokenCredential(<token>)"

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME_S)

    def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        tenant = options.get("tenant_id") if options else None
        self.requests.append((scopes, tenant))
        return AccessTokenInfo(self._token, int(time.time()) + TOKEN_LIFETIME_S)


class AsyncStaticTokenCredential:
    """The ``AsyncTokenCredential`` twin of :class:`StaticTokenCredential`."""

    def __init__(self, token: str) -> None:
        self._token = token
        self.requests: list[tuple[tuple[str, ...], str | None]] = []

    def __repr__(self) -> str:
        return "AsyncStaticTokenCredential(<token>)"

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        self.requests.append((scopes, tenant_id))
        return AccessToken(self._token, int(time.time()) + TOKEN_LIFETIME_S)

    async def get_token_info(
        self, *scopes: str, options: TokenRequestOptions | None = None
    ) -> AccessTokenInfo:
        tenant = options.get("tenant_id") if options else None
        self.requests.append((scopes, tenant))
        return AccessTokenInfo(self._token, int(time.time()) + TOKEN_LIFETIME_S)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> AsyncStaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None


__all__ = ["AsyncStaticTokenCredential", "StaticTokenCredential"]
