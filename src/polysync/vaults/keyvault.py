"""Azure Key Vault through the official ``azure-keyvault-secrets`` client (its aio flavour).

The only module importing ``azure.keyvault``. One :class:`KeyVaultProvider` per Secret
Vault, holding one ``SecretClient`` and its credential. Every failure becomes one
:class:`~polysync.errors.SecretError` sentence naming the vault and the secret (never a
value) and what to check; ``test()`` proves reachability and the right to list secret
names without reading any value.

Two client options matter for a vault on loopback (our local Key Vault, ``keyvault_emulator``):
the SDK checks that the bearer challenge's resource (``https://vault.azure.net``) is a
parent domain of the vault host, which ``127.0.0.1`` can never be, so that check is
turned off for loopback hosts only; and the emulator's self-signed certificate is
trusted through the vault's CA bundle, like a platform's.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Iterator, Mapping
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from polysync.domain.models import SecretVault
from polysync.errors import SecretError
from polysync.vaults.checks import VaultCheck

log = logging.getLogger(__name__)

# A vault that does not answer should fail a run in seconds, not minutes.
DEFAULT_CLIENT_KWARGS: Mapping[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.5,
    "connection_timeout": 10,
    "read_timeout": 30,
}
GRANT = (
    "grant the vault's identity the Key Vault Secrets User role on the vault (or an access "
    "policy with Get and List)"
)


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (azure-core keeps the transport's error as
    ``inner_exception``; aiohttp chains the socket or TLS error under its own)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = getattr(current, "inner_exception", None)
        todo += [
            current.__cause__,
            current.__context__,
            inner if isinstance(inner, BaseException) else None,
            getattr(current, "os_error", None),
        ]


def _inner_code(exc: HttpResponseError) -> str | None:
    error = getattr(exc, "error", None)
    inner = getattr(error, "innererror", None)
    if isinstance(inner, Mapping):
        code = inner.get("code")
        return str(code) if code else None
    return None


class KeyVaultProvider:
    """Reads secrets of one Azure Key Vault."""

    def __init__(
        self,
        vault: SecretVault,
        credential: AsyncTokenCredential,
        *,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        from azure.keyvault.secrets.aio import SecretClient

        self.vault = vault
        self._credential = credential
        kwargs: dict[str, Any] = {**DEFAULT_CLIENT_KWARGS, **(client_kwargs or {})}
        if vault.ca_bundle:
            kwargs["connection_verify"] = vault.ca_bundle
        elif not vault.verify_tls:
            kwargs["connection_verify"] = False
        if is_loopback_url(vault.url):
            kwargs["verify_challenge_resource"] = False
        self._client = SecretClient(vault.url, credential, **kwargs)

    def _where(self, secret: str, version: str | None) -> str:
        pinned = f" version {version}" if version else ""
        return f"secret {secret!r}{pinned} of vault {self.vault.name!r}"

    async def get(self, secret: str, version: str | None = None) -> str:
        """The value of ``secret`` (its current version, or ``version``)."""
        where = self._where(secret, version)
        try:
            found = await self._client.get_secret(secret, version)
        except ResourceNotFoundError:
            raise SecretError(
                f"{where} does not exist: create it in the vault, or fix the reference."
            ) from None
        except Exception as exc:  # noqa: BLE001 — every failure becomes one sentence below
            raise self._error(exc, where) from None
        if found.value is None:
            raise SecretError(f"{where} has no value: set one in the vault.")
        return found.value

    async def test(self) -> list[VaultCheck]:
        """List one secret name (no value is read): reach, authenticate, may list."""
        where = f"vault {self.vault.name!r}"
        try:
            first = None
            async for item in self._client.list_properties_of_secrets(max_page_size=1):
                first = item
                break
        except Exception as exc:  # noqa: BLE001 — reported as a failed check, one sentence
            return [VaultCheck("list secret names", False, str(self._error(exc, where)))]
        shown = f" (first: {first.name!r})" if first is not None and first.name else ""
        return [
            VaultCheck("reach", True, f"{self.vault.url} answered over TLS"),
            VaultCheck("list secret names", True, f"may list secret names{shown}"),
        ]

    def _error(self, exc: BaseException, where: str) -> SecretError:
        name = self.vault.name
        if isinstance(exc, ClientAuthenticationError) and exc.status_code is None:
            # Raised by azure-identity when no token could be had (no HTTP answer from
            # the vault at all): the credential is the problem, not the vault.
            return SecretError(
                f"{where}: Polysync could not get a token for vault {name!r} "
                f"({type(exc).__name__}); check the vault's credential with "
                f"`polysync vault test {name}`."
            )
        if isinstance(exc, HttpResponseError) and exc.status_code is not None:
            status = exc.status_code
            inner = _inner_code(exc)
            if status == 403 and inner == "SecretDisabled":
                return SecretError(
                    f"{where} is disabled: enable it in the vault, or refer to an enabled version."
                )
            if status == 403:
                return SecretError(f"{where}: the vault refused the request (403): {GRANT}.")
            if status == 401:
                return SecretError(
                    f"{where}: the vault did not accept Polysync's token (401): check the "
                    f"vault's credential and tenant with `polysync vault test {name}`."
                )
            if status in (429, 503):
                return SecretError(
                    f"{where}: the vault is throttling or unavailable ({status}); try again "
                    "shortly."
                )
            code = getattr(getattr(exc, "error", None), "code", None) or "error"
            return SecretError(f"{where}: the vault answered {status} {code}.")
        if isinstance(exc, ServiceRequestError | ServiceResponseError):
            causes = list(_chain(exc))
            if any(isinstance(c, ssl.SSLError) for c in causes):
                why = (
                    "its TLS certificate is not trusted: give the vault a CA bundle "
                    "(--ca-bundle) or fix the URL"
                )
            elif any(isinstance(c, socket.gaierror) for c in causes):
                why = "its host name does not resolve (DNS): check the vault URL"
            else:
                why = "the network refused or timed out: check the URL, firewall and proxy"
            return SecretError(
                f"{where}: vault {name!r} at {self.vault.url} cannot be reached ({why})."
            )
        log.debug("unexpected error reading %s", where, exc_info=exc)
        return SecretError(
            f"{where}: reading it failed ({type(exc).__name__}); see `polysync vault test {name}`."
        )

    async def aclose(self) -> None:
        try:
            await self._client.close()
        finally:
            await self._credential.close()
