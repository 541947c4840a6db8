"""Only requests addressed to this emulator's loopback host and port are served."""

from __future__ import annotations

import ssl

import httpx
import pytest

from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.keyvault.helpers import bearer


@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost", "10.1.2.3:{port}"]
)
def test_forged_host_is_refused_with_one_sentence(
    fresh: KeyVaultServer, raw: httpx.Client, host: str
) -> None:
    fresh.set_secret("s", "value-behind-the-host-check")
    response = raw.get(
        "/secrets/s",
        params={"api-version": "7.5"},
        headers={"host": host.format(port=fresh.port), **bearer(fresh, "secrets-officer")},
    )
    assert response.status_code == 421
    error = response.json()["error"]
    assert error["code"] == "MisdirectedRequest"
    assert error["message"].count(".") == 1
    assert error["message"].endswith(".")
    assert "value-behind-the-host-check" not in response.text
    assert fresh.control.requests() == []  # refused before routing: not an API request


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}"])
def test_loopback_hosts_on_the_bound_port_are_served(
    fresh: KeyVaultServer, raw: httpx.Client, host: str
) -> None:
    response = raw.get(
        "/secrets",
        params={"api-version": "7.5"},
        headers={"host": host.format(port=fresh.port), **bearer(fresh, "reader")},
    )
    assert response.status_code == 200


def test_the_controls_check_the_host_too(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    response = raw.get(
        "/_emulator/requests",
        headers={"host": "evil.example", "authorization": f"Bearer {fresh.admin_token}"},
    )
    assert response.status_code == 421


def test_configured_extra_hosts_are_served() -> None:
    config = KeyVaultConfig(extra_hosts=("myvault.test",))
    with KeyVaultServer(config) as kv:
        context = ssl.create_default_context(cafile=str(kv.cert_path))
        with httpx.Client(base_url=kv.url, verify=context) as client:
            ok = client.get(
                "/secrets",
                params={"api-version": "7.5"},
                headers={"host": f"myvault.test:{kv.port}", **bearer(kv, "reader")},
            )
            other_port = client.get(
                "/secrets",
                params={"api-version": "7.5"},
                headers={"host": "myvault.test:1", **bearer(kv, "reader")},
            )
    assert ok.status_code == 200
    assert other_port.status_code == 421
