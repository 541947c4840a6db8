"""Every Key Vault failure is one sentence naming the vault and secret and what to check.

The transport errors come from azure-core with the socket or TLS error chained under them,
as aiohttp raises them; the HTTP ones carry the service's error envelope.
"""

from __future__ import annotations

import socket
import ssl

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

from polysync.domain.models import AuthMode, PlatformAuth, SecretVault
from polysync.identity import StaticTokenCredential
from polysync.vaults.keyvault import KeyVaultProvider, is_loopback_url


def _provider() -> KeyVaultProvider:
    vault = SecretVault("kv", "https://kv.vault.azure.net/", PlatformAuth(AuthMode.BEARER_TOKEN))
    return KeyVaultProvider(vault, StaticTokenCredential("t"))


def _transport(cause: BaseException) -> ServiceRequestError:
    error = ServiceRequestError("Cannot connect to host kv.vault.azure.net:443 ssl:default")
    error.__cause__ = cause
    return error


class _Response:
    """The least of an HTTP response azure-core needs to build an HttpResponseError."""

    def __init__(self, status: int, body: str) -> None:
        self.status_code = status
        self.reason = "x"
        self.headers: dict[str, str] = {"content-type": "application/json"}
        self._body = body.encode()
        self.request = None

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def body(self) -> bytes:
        return self._body


def _http(status: int, code: str, inner: str | None = None) -> HttpResponseError:
    inner_part = f', "innererror": {{"code": "{inner}"}}' if inner else ""
    body = f'{{"error": {{"code": "{code}", "message": "m"{inner_part}}}}}'
    return HttpResponseError(response=_Response(status, body))


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (_transport(socket.gaierror(-2, "Name or service not known")), "does not resolve (DNS)"),
        (_transport(ssl.SSLCertVerificationError("certificate verify failed")), "TLS certificate"),
        (_transport(ConnectionRefusedError(111, "refused")), "the network refused or timed out"),
        (_http(403, "Forbidden", "SecretDisabled"), "is disabled: enable it in the vault"),
        (_http(403, "Forbidden", "ForbiddenByRbac"), "Key Vault Secrets User"),
        (_http(401, "Unauthorized"), "did not accept Polysync's token (401)"),
        (_http(429, "Throttled"), "throttling or unavailable (429)"),
        (_http(500, "InternalError"), "answered 500 InternalError"),
        (ClientAuthenticationError("no token"), "could not get a token for vault 'kv'"),
    ],
)
def test_failures_are_one_sentence(error: BaseException, fragment: str) -> None:
    message = str(_provider()._error(error, "secret 's' of vault 'kv'"))
    assert fragment in message
    assert message.startswith("secret 's' of vault 'kv'")
    assert message.endswith(".")


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("https://127.0.0.1:8443/", True),
        ("https://localhost/", True),
        ("https://[::1]:9/", True),
        ("https://kv.vault.azure.net/", False),
        ("https://10.0.0.1/", False),
    ],
)
def test_only_loopback_vaults_skip_the_challenge_resource_check(url: str, loopback: bool) -> None:
    assert is_loopback_url(url) is loopback
