"""TLS with the self-signed certificate and Entra-style bearer tokens (NOTES.md §3.3, §11.6)."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AccessToken, AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed

TOKEN = "local-test-token"


class StubCredential:
    """A TokenCredential that hands out a fixed token and records the scopes asked for."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


@pytest.fixture(scope="module")
def tls_emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        data_dir=tmp_path_factory.mktemp("tls"),
        pools=(PoolSeed("p", 1, 1),),
        tls=True,
        bearer_tokens=(TOKEN,),
    )
    with EmulatorServer(config) as emu:
        yield emu


def test_tls_endpoint_and_certificate(tls_emu: EmulatorServer) -> None:
    assert tls_emu.endpoint.startswith("https://127.0.0.1:")
    cert = tls_emu.tls_cert_path
    assert isinstance(cert, Path)
    assert cert.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as c:
        response = c.get(f"{tls_emu.endpoint}/jobs", params={"api-version": "2025-06-01"})
    assert response.status_code == 403  # served over TLS, but unauthenticated


def test_sdk_with_token_credential_over_tls(tls_emu: EmulatorServer, h: Any) -> None:
    credential = StubCredential(TOKEN)
    with BatchClient(
        tls_emu.endpoint, credential, connection_verify=str(tls_emu.tls_cert_path)
    ) as client:
        client.create_job(
            models.BatchJobCreateOptions(id="tls-job", pool_info=models.BatchPoolInfo(pool_id="p"))
        )
        client.create_task(
            "tls-job", models.BatchTaskCreateOptions(id="t", command_line="/bin/true")
        )
        assert h.wait_task(client, "tls-job", "t", "completed").execution_info.exit_code == 0
    assert credential.scopes[0] == ("https://batch.core.windows.net//.default",)


def test_shared_key_still_works_over_tls(tls_emu: EmulatorServer) -> None:
    with BatchClient(
        tls_emu.endpoint,
        AzureNamedKeyCredential(tls_emu.account, tls_emu.key),
        connection_verify=str(tls_emu.tls_cert_path),
    ) as client:
        assert client.get_pool("p").id == "p"


def test_wrong_bearer_token_is_403(tls_emu: EmulatorServer, h: Any) -> None:
    with (
        BatchClient(
            tls_emu.endpoint,
            StubCredential("not-the-token"),
            connection_verify=str(tls_emu.tls_cert_path),
            retry_total=0,
        ) as client,
        pytest.raises(HttpResponseError) as info,
    ):
        client.get_pool("p")
    assert info.value.status_code == 403
    assert h.code(info.value) == "AuthenticationFailed"


def test_bearer_over_plain_http_needs_enforce_https_false(tmp_path: Path) -> None:
    config = EmulatorConfig(data_dir=tmp_path, pools=(PoolSeed("p", 0, 1),), bearer_tokens=(TOKEN,))
    with (
        EmulatorServer(config) as emu,
        BatchClient(emu.endpoint, StubCredential(TOKEN), retry_total=0) as client,
    ):
        with pytest.raises(ServiceRequestError):
            client.get_pool("p")
        assert client.get_pool("p", enforce_https=False).id == "p"
