"""Exactly two client options differ from a real vault's — and both are needed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.keyvault.secrets import SecretClient

from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer


@pytest.fixture
def new_vault() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


def test_the_two_options_are_all_a_client_needs(new_vault: KeyVaultServer) -> None:
    options = new_vault.client_options()
    assert options == {
        "verify_challenge_resource": False,
        "connection_verify": str(new_vault.cert_path),
    }
    client = SecretClient(
        vault_url=new_vault.url,
        credential=new_vault.credential("secrets-officer"),
        verify_challenge_resource=False,
        connection_verify=str(new_vault.cert_path),
    )
    with client:
        client.set_secret("s", "v")
        assert client.get_secret("s").value == "v"
        assert [p.name for p in client.list_properties_of_secrets()] == ["s"]


def test_without_verify_challenge_resource_the_sdk_refuses_the_loopback_vault(
    new_vault: KeyVaultServer,
) -> None:
    client = SecretClient(
        new_vault.url,
        new_vault.credential("secrets-officer"),
        connection_verify=str(new_vault.cert_path),
        retry_total=0,
    )
    with client, pytest.raises(ValueError, match="verify_challenge_resource=False"):
        client.get_secret("s")


def test_without_the_certificate_tls_verification_fails(new_vault: KeyVaultServer) -> None:
    client = SecretClient(
        new_vault.url,
        new_vault.credential("secrets-officer"),
        verify_challenge_resource=False,
        retry_total=0,
    )
    with client, pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get_secret("s")


def test_plain_http_is_refused_by_the_sdk_itself(new_vault: KeyVaultServer) -> None:
    http_url = new_vault.url.replace("https://", "http://")
    client = SecretClient(
        http_url, new_vault.credential(), verify_challenge_resource=False, retry_total=0
    )
    with client, pytest.raises(ServiceRequestError, match="non-TLS"):
        client.get_secret("s")


def test_localhost_url_works_too(new_vault: KeyVaultServer) -> None:
    url = f"https://localhost:{new_vault.port}/"
    with SecretClient(
        url, new_vault.credential("secrets-officer"), **new_vault.client_options()
    ) as c:
        secret = c.set_secret("s", "v")
        assert str(secret.id).startswith(f"https://localhost:{new_vault.port}/secrets/s/")
