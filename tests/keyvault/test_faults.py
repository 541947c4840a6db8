"""Injected faults: 503/429 answers, dropped connections, and the SDK's retries."""

from __future__ import annotations

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError

from keyvault_emulator.control import Fault
from keyvault_emulator.controlclient import ControlError
from keyvault_emulator.server import KeyVaultServer
from tests.keyvault.helpers import bearer, error_codes, secret_client


def test_503_then_success_through_the_sdk_retry(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    with secret_client(fresh, "secrets-user") as client:
        client.get_secret("s")  # challenge done: the next request is authorised
        fresh.control.clear_requests()
        fault = fresh.control.add_fault(503, operation="GetSecret")
        assert fault == {
            "status": 503,
            "drop": False,
            "count": 1,
            "operation": "GetSecret",
            "retry_after_s": None,
        }
        assert client.get_secret("s").value == "v"
    assert [r["status"] for r in fresh.control.requests("GetSecret")] == [503, 200]
    assert fresh.control.faults() == []  # used up


def test_503_without_retries_surfaces_the_envelope(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    fresh.control.add_fault(503, count=2)
    with secret_client(fresh, "secrets-user", retry_total=0) as client:
        with pytest.raises(HttpResponseError) as info:
            client.get_secret("s")
        assert error_codes(info.value) == (503, "ServiceUnavailable", None)
        with pytest.raises(HttpResponseError):
            client.get_secret("s")
        assert client.get_secret("s").value == "v"


def test_429_carries_retry_after(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    fresh.control.add_fault(429, retry_after_s=7, operation="ListSecrets")
    params = {"api-version": "7.5"}
    headers = bearer(fresh, "reader")
    response = raw.get("/secrets", params=params, headers=headers)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json()["error"]["code"] == "Throttled"
    assert raw.get("/secrets", params=params, headers=headers).status_code == 200


def test_429_is_retried_by_the_sdk(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    with secret_client(fresh, "secrets-user") as client:
        client.get_secret("s")
        fresh.control.add_fault(429, retry_after_s=0, operation="GetSecret")
        assert client.get_secret("s").value == "v"
    assert [r["status"] for r in fresh.control.requests("GetSecret")][-2:] == [429, 200]


def test_a_fault_for_one_operation_spares_the_others(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    fresh.control.add_fault(503, operation="GetSecret")
    with secret_client(fresh, "secrets-user", retry_total=0) as client:
        assert [p.name for p in client.list_properties_of_secrets()] == ["s"]
        with pytest.raises(HttpResponseError):
            client.get_secret("s")


def test_challenge_round_trip_does_not_use_up_a_fault(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    fresh.control.add_fault(503)
    # A new client: its first request is the unauthenticated one the challenge answers.
    with (
        secret_client(fresh, "secrets-user", retry_total=0) as client,
        pytest.raises(HttpResponseError) as info,
    ):
        client.get_secret("s")
    assert info.value.status_code == 503


def test_dropped_connection_is_retried(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    with secret_client(fresh, "secrets-user") as client:
        client.get_secret("s")
        fresh.control.clear_requests()
        fresh.control.add_fault(drop=True, operation="GetSecret")
        assert client.get_secret("s").value == "v"
    assert [r["status"] for r in fresh.control.requests()] == [None, 200]


def test_dropped_connection_without_retries_raises(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    with secret_client(fresh, "secrets-user", retry_total=0) as client:
        client.get_secret("s")
        fresh.control.add_fault(drop=True)
        with pytest.raises(ServiceResponseError):
            client.get_secret("s")


def test_clearing_faults(fresh: KeyVaultServer) -> None:
    fresh.set_secret("s", "v")
    fresh.control.add_fault(503, count=5)
    assert fresh.control.faults()[0]["count"] == 5
    fresh.control.clear_faults()
    with secret_client(fresh, "secrets-user", retry_total=0) as client:
        assert client.get_secret("s").value == "v"


@pytest.mark.parametrize(
    "body",
    [
        {"status": 200},
        {"status": 503, "drop": True},
        {"count": 0},
        {"operation": "GetKey"},
        {"retry_after_s": -1},
        {"colour": "red"},
    ],
)
def test_bad_fault_specs_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        Fault.from_json(body)


def test_control_client_reports_a_refused_fault(fresh: KeyVaultServer) -> None:
    with pytest.raises(ControlError, match="400"):
        fresh.control.add_fault(200)
