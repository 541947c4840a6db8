"""Helpers the Key Vault emulator tests share (imported, unlike conftest fixtures)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
from azure.core.exceptions import HttpResponseError
from azure.keyvault.secrets import SecretClient

from keyvault_emulator.server import KeyVaultServer

START = 1_700_000_000  # the ManualClock's epoch second at the start of each test


def secret_client(kv: KeyVaultServer, role: str, **kwargs: object) -> SecretClient:
    return SecretClient(kv.url, kv.credential(role), **kv.client_options(), **kwargs)


def raw_client(kv: KeyVaultServer) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(kv.cert_path))
    return httpx.Client(base_url=kv.url.rstrip("/"), verify=context, timeout=30)


def bearer(kv: KeyVaultServer, role: str) -> dict[str, str]:
    return {"authorization": f"Bearer {kv.tokens[role]}"}


def error_codes(exc: HttpResponseError) -> tuple[int | None, str | None, str | None]:
    """(status, error.code, innererror.code) as azure-core parsed them from the envelope
    (``exc.error`` is an ``ODataV4Format``; its ``innererror`` is the raw mapping)."""
    error: Any = exc.error
    assert error is not None, f"no parsed error body on {exc!r}"
    return exc.status_code, error.code, error.innererror.get("code")
