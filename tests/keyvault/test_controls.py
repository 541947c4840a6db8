"""The ``/_emulator`` controls: admin token only, request log filters, reset, start speed."""

from __future__ import annotations

import time

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer, resolve_tokens
from tests.keyvault.helpers import bearer, secret_client


@pytest.mark.parametrize("role", ["secrets-officer", "secrets-user", "reader", None])
def test_controls_need_the_admin_token(
    fresh: KeyVaultServer, raw: httpx.Client, role: str | None
) -> None:
    headers = bearer(fresh, role) if role else {}
    for method, path in [("GET", "requests"), ("POST", "reset"), ("POST", "faults")]:
        response = raw.request(method, f"/_emulator/{path}", headers=headers, json={})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "Unauthorized"


def test_unknown_control_is_404(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    response = raw.get("/_emulator/nope", headers={"authorization": f"Bearer {fresh.admin_token}"})
    assert response.status_code == 404


def test_request_log_records_and_filters(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    fresh.set_secret("t", "v")
    with secret_client(fresh, "secrets-user") as client:
        client.get_secret("s")
        client.get_secret("t")
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("u")
        list(client.list_properties_of_secrets())
    reads = fresh.control.requests("GetSecret", status=200)
    assert [r["path"] for r in reads] == ["/secrets/s/", "/secrets/t/"]
    record = reads[0]
    assert set(record) == {"method", "path", "operation", "status", "role", "time"}
    assert (record["method"], record["role"]) == ("GET", "secrets-user")
    assert record["time"] == 1_700_000_000  # the vault clock, a ManualClock here
    assert fresh.control.count("GetSecret") == 4  # challenge 401 + 2 reads + the 404
    assert fresh.control.count("GetSecret", status=404) == 1
    assert fresh.control.count("ListSecrets") == 1
    assert fresh.control.count() == 5
    fresh.control.clear_requests()
    assert fresh.control.requests() == []


def test_unknown_paths_are_logged_without_an_operation(
    fresh: KeyVaultServer, raw: httpx.Client
) -> None:
    response = raw.get("/keys/k", params={"api-version": "7.5"})
    assert response.status_code == 404
    assert fresh.control.requests() == [
        {
            "method": "GET",
            "path": "/keys/k",
            "operation": None,
            "status": 404,
            "role": None,
            "time": 1_700_000_000,
        }
    ]


def test_reset_forgets_secrets_faults_and_log(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    fresh.control.add_fault(503, count=3)
    with (
        secret_client(fresh, "secrets-user", retry_total=0) as client,
        pytest.raises(HttpResponseError),
    ):
        client.get_secret("s")  # uses one of the three faults
    assert fresh.control.faults()[0]["count"] == 2
    assert fresh.control.count("GetSecret", status=503) == 1
    fresh.control.reset()
    assert fresh.control.faults() == []
    assert fresh.control.requests() == []
    with secret_client(fresh, "secrets-officer", retry_total=0) as client:
        assert list(client.list_properties_of_secrets()) == []


def test_configured_tokens_and_generated_ones() -> None:
    tokens = {
        role.value: token for role, token in resolve_tokens({"reader": "my-reader-token"}).items()
    }
    assert tokens["reader"] == "my-reader-token"
    assert len(set(tokens.values())) == 3
    with pytest.raises(ValueError, match="Unknown role"):
        resolve_tokens({"owner": "x"})
    with pytest.raises(ValueError, match="own"):
        resolve_tokens({"reader": "same", "secrets-user": "same"})
    with pytest.raises(ValueError, match="printable"):
        resolve_tokens({"reader": "has space"})


def test_server_starts_fast_and_serves_configured_tokens() -> None:
    config = KeyVaultConfig(tokens={"secrets-user": "user-token-1"}, admin_token="admin-token-1")
    began = time.perf_counter()
    with KeyVaultServer(config) as kv:
        elapsed = time.perf_counter() - began
        assert kv.tokens["secrets-user"] == "user-token-1"
        assert kv.admin_token == "admin-token-1"
        assert kv.url == f"https://127.0.0.1:{kv.port}/"
        assert kv.control.requests() == []
    # Budget 0.3 s on an idle machine; generous here because the machine is shared.
    assert elapsed < 2.0
