"""No secret value and no token reaches a log, an error body or the request log."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.keyvault.secrets import SecretClient

from keyvault_emulator.credential import StaticTokenCredential
from keyvault_emulator.server import KeyVaultServer
from tests.keyvault.helpers import bearer, secret_client

VALUE = "s3cr3t-value-that-must-not-leak"


def test_values_and_tokens_stay_out_of_logs_and_records(
    fresh: KeyVaultServer, raw: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with secret_client(fresh, "secrets-officer") as officer:
        secret = officer.set_secret("leak-check", VALUE, tags={"t": "x"})
        assert officer.get_secret("leak-check").value == VALUE
        officer.update_secret_properties("leak-check", enabled=False)
        with pytest.raises(HttpResponseError) as disabled:
            officer.get_secret("leak-check")
        officer.update_secret_properties("leak-check", enabled=True)
        list(officer.list_properties_of_secrets(max_page_size=1))
    with (
        secret_client(fresh, "reader", retry_total=0) as reader,
        pytest.raises(HttpResponseError) as forbidden,
    ):
        reader.get_secret("leak-check", secret.properties.version)
    with (
        SecretClient(
            fresh.url,
            StaticTokenCredential("wrong-token-xyz"),
            retry_total=0,
            **fresh.client_options(),
        ) as stranger,
        pytest.raises(ClientAuthenticationError) as unauthenticated,
    ):
        stranger.get_secret("leak-check")
    bad_body = raw.put(
        "/secrets/leak-check",
        params={"api-version": "7.5"},
        headers=bearer(fresh, "secrets-officer"),
        content=b'{"value": 42, "note": "' + VALUE.encode() + b'"}',
    )
    assert bad_body.status_code == 400
    forbidden_text = [str(disabled.value), str(forbidden.value), str(unauthenticated.value)]
    records = json.dumps(fresh.control.requests())
    assert "leak-check" in records  # names are logged, so the check below is meaningful
    emulator_logs = [r for r in caplog.records if r.name.startswith("keyvault_emulator")]
    assert emulator_logs, "the emulator logs one DEBUG line per request"
    everything = "\n".join([caplog.text, records, bad_body.text, *forbidden_text])
    secrets = [VALUE, "wrong-token-xyz", fresh.admin_token, *fresh.tokens.values()]
    for secret_text in secrets:
        assert secret_text not in everything


def test_reprs_hide_tokens(fresh: KeyVaultServer) -> None:
    token = fresh.tokens["secrets-user"]
    texts = [repr(fresh.config), repr(fresh.credential()), repr(fresh.control), repr(fresh)]
    assert all(token not in t and fresh.admin_token not in t for t in texts)
