"""Bearer challenge, tokens and roles, end to end through the SDK."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets._shared import HttpChallengeCache

from keyvault_emulator import DEFAULT_TENANT
from keyvault_emulator.credential import StaticTokenCredential
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.keyvault.helpers import bearer, error_codes, secret_client

CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{DEFAULT_TENANT}", '
    'resource="https://vault.azure.net"'
)


@pytest.fixture
def new_vault() -> Iterator[KeyVaultServer]:
    """A server whose address the SDK's process-wide challenge cache does not know."""
    with KeyVaultServer(KeyVaultConfig(tenant_id="tenant-for-challenge")) as server:
        # The kernel may hand out a port an earlier server of this process had, and the
        # SDK caches challenges per host:port; forget any such entry.
        HttpChallengeCache.remove_challenge_for_url(server.url)
        yield server


def test_challenge_round_trip_is_in_the_request_log(new_vault: KeyVaultServer) -> None:
    credential = new_vault.credential("secrets-officer")
    with SecretClient(new_vault.url, credential, **new_vault.client_options()) as client:
        client.set_secret("s", "v")
        client.get_secret("s")
    log = new_vault.control.requests()
    assert [(r["operation"], r["status"], r["role"]) for r in log] == [
        ("SetSecret", 401, None),  # sent without body or token, to elicit the challenge
        ("SetSecret", 200, "secrets-officer"),
        ("GetSecret", 200, "secrets-officer"),  # the challenge is cached from then on
    ]
    # The SDK turned the challenge into the vault scope and the challenge's tenant.
    assert credential.requests == [(("https://vault.azure.net/.default",), "tenant-for-challenge")]


def test_unauthenticated_request_gets_the_service_challenge(raw: httpx.Client) -> None:
    response = raw.get("/secrets/s", params={"api-version": "7.5"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE
    assert response.json() == {
        "error": {
            "code": "Unauthorized",
            "message": "AKV10000: Request is missing a Bearer or PoP token.",
        }
    }


@pytest.mark.parametrize("header", ["Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer"])
def test_unaccepted_authorization_gets_the_same_challenge(raw: httpx.Client, header: str) -> None:
    response = raw.get("/secrets", params={"api-version": "7.5"}, headers={"authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == CHALLENGE


def test_wrong_token_raises_client_authentication_error(fresh: KeyVaultServer) -> None:
    with (
        SecretClient(
            fresh.url, StaticTokenCredential("wrong"), retry_total=0, **fresh.client_options()
        ) as client,
        pytest.raises(ClientAuthenticationError) as info,
    ):
        client.get_secret("s")
    assert info.value.status_code == 401


def test_admin_token_is_not_a_data_plane_token(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    response = raw.get(
        "/secrets",
        params={"api-version": "7.5"},
        headers={"authorization": f"Bearer {fresh.admin_token}"},
    )
    assert response.status_code == 401


def test_reader_lists_but_cannot_read_values(fresh: KeyVaultServer, reader: SecretClient) -> None:
    fresh.set_secret("s", "v")
    assert [p.name for p in reader.list_properties_of_secrets()] == ["s"]
    with pytest.raises(HttpResponseError) as info:
        reader.get_secret("s")
    assert error_codes(info.value) == (403, "Forbidden", "ForbiddenByRbac")
    message = str(info.value.message)
    assert "Caller is not authorized to perform action on resource." in message
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'" in message
    assert "Assignment: (not found)" in message
    assert "/secrets/s'" in message
    assert fresh.control.requests("GetSecret")[-1]["status"] == 403


@pytest.mark.parametrize("role", ["reader", "secrets-user"])
def test_only_the_officer_writes(fresh: KeyVaultServer, role: str) -> None:
    fresh.set_secret("s", "v")
    with secret_client(fresh, role, retry_total=0) as client:
        for attempt in (
            lambda: client.set_secret("s", "new"),
            lambda: client.update_secret_properties("s", enabled=False),
            lambda: client.begin_delete_secret("s"),
        ):
            with pytest.raises(HttpResponseError) as info:
                attempt()
            assert error_codes(info.value) == (403, "Forbidden", "ForbiddenByRbac")
    with secret_client(fresh, "secrets-officer") as officer:
        assert officer.get_secret("s").value == "v"


def test_secrets_user_reads_and_lists(fresh: KeyVaultServer, user: SecretClient) -> None:
    fresh.set_secret("s", "v")
    assert user.get_secret("s").value == "v"
    assert [p.name for p in user.list_properties_of_secrets()] == ["s"]


def test_rbac_is_checked_after_authentication(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    # A reader asking for a secret that does not exist still gets 403, not 404: the
    # service authorises before it looks the secret up.
    response = raw.get(
        "/secrets/ghost", params={"api-version": "7.5"}, headers=bearer(fresh, "reader")
    )
    assert response.status_code == 403
    assert response.json()["error"]["innererror"] == {"code": "ForbiddenByRbac"}
