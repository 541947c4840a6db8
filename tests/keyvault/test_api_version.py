"""``api-version`` is required and must be one the service knows."""

from __future__ import annotations

import httpx
import pytest
from azure.keyvault.secrets import ApiVersion

from keyvault_emulator.routes import API_VERSIONS
from keyvault_emulator.server import KeyVaultServer
from tests.keyvault.helpers import bearer, secret_client


def test_missing_api_version_is_400(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    response = raw.get("/secrets", headers=bearer(fresh, "reader"))
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "BadParameter",
        "message": "The 'api-version' query parameter is required.",
    }
    assert fresh.control.requests()[-1]["status"] == 400


def test_unknown_api_version_is_400_naming_the_latest(
    fresh: KeyVaultServer, raw: httpx.Client
) -> None:
    response = raw.get("/secrets", params={"api-version": "7.9"}, headers=bearer(fresh, "reader"))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == (
        "The specified version (7.9) is not recognized. "
        "Consider using the latest supported version (2026-04-01)."
    )


def test_every_version_the_sdk_knows_is_accepted() -> None:
    assert {v.value for v in ApiVersion} == set(API_VERSIONS)


@pytest.mark.parametrize("version", ["7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"])
def test_sdk_clients_pinned_to_recent_versions_work(fresh: KeyVaultServer, version: str) -> None:
    fresh.set_secret("s", "v")
    with secret_client(fresh, "secrets-user", api_version=version) as client:
        assert client.get_secret("s").value == "v"
        assert [p.name for p in client.list_properties_of_secrets(max_page_size=1)] == ["s"]


def test_next_links_carry_the_request_api_version(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    for name in ("a", "b"):
        fresh.set_secret(name, "v")
    response = raw.get(
        "/secrets",
        params={"api-version": "7.4", "maxresults": "1"},
        headers=bearer(fresh, "reader"),
    )
    body = response.json()
    assert [item["id"] for item in body["value"]] == [f"{fresh.url}secrets/a"]
    assert body["nextLink"].startswith(f"{fresh.url}secrets?api-version=7.4&$skiptoken=")
    assert body["nextLink"].endswith("&maxresults=1")
    follow = raw.get(body["nextLink"], headers=bearer(fresh, "reader")).json()
    assert [item["id"] for item in follow["value"]] == [f"{fresh.url}secrets/b"]
    assert follow["nextLink"] is None
