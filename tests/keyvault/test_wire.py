"""Wire details the SDK hides: body validation, headers, oversized bodies, internal errors."""

from __future__ import annotations

import httpx
import pytest
from azure.core.exceptions import HttpResponseError

from keyvault_emulator.routes import Call
from keyvault_emulator.server import KeyVaultServer
from tests.keyvault.helpers import bearer, error_codes, secret_client

API = {"api-version": "7.5"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "The request body is required."),
        (b"{not json", "The request body is not valid JSON."),
        (b"[1]", "The request body must be a JSON object."),
        (b'{"value": 5}', "The property 'value' is required and must be a string."),
        (b'{"value": "v", "tags": {"a": 1}}', "The property 'tags' must map strings to strings."),
        (b'{"value": "v", "attributes": {"enabled": "yes"}}', "The attribute 'enabled'"),
        (b'{"value": "v", "attributes": {"exp": "soon"}}', "The attribute 'exp'"),
        (b'{"value": "v", "contentType": 3}', "The property 'contentType' must be a string."),
    ],
)
def test_bad_set_bodies_are_bad_parameter(
    fresh: KeyVaultServer, raw: httpx.Client, body: bytes, message: str
) -> None:
    response = raw.put(
        "/secrets/s", params=API, headers=bearer(fresh, "secrets-officer"), content=body
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadParameter"
    assert error["message"].startswith(message)


def test_answers_carry_the_service_headers(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    fresh.set_secret("s", "v")
    response = raw.get("/secrets/s", params=API, headers=bearer(fresh, "secrets-user"))
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert len(response.headers["x-ms-request-id"]) == 36
    assert response.headers["cache-control"] == "no-cache"
    assert set(response.json()) == {"value", "id", "attributes"}  # no null contentType/tags


def test_purge_answers_204_without_a_body(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    fresh.set_secret("s", "v")
    headers = bearer(fresh, "secrets-officer")
    assert raw.delete("/secrets/s", params=API, headers=headers).status_code == 200
    purged = raw.delete("/deletedsecrets/s", params=API, headers=headers)
    assert (purged.status_code, purged.content) == (204, b"")


def test_an_oversized_body_is_refused(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    response = raw.put(
        "/secrets/s",
        params=API,
        headers=bearer(fresh, "secrets-officer"),
        content=b'{"value": "' + b"x" * (2 * 1024 * 1024) + b'"}',
    )
    assert response.status_code == 413


def test_paging_parameters_are_checked(fresh: KeyVaultServer, raw: httpx.Client) -> None:
    headers = bearer(fresh, "reader")
    for params in ({"maxresults": "26"}, {"$skiptoken": "not-ours"}):
        response = raw.get("/secrets", params={**API, **params}, headers=headers)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "BadParameter"


def test_a_bug_still_answers_in_the_envelope(
    fresh: KeyVaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(call: Call) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(fresh.app.api, "execute", broken)
    with (
        secret_client(fresh, "secrets-user", retry_total=0) as client,
        pytest.raises(HttpResponseError) as info,
    ):
        client.get_secret("s")
    assert error_codes(info.value) == (500, "InternalServerError", None)
    assert fresh.control.requests("GetSecret")[-1]["status"] == 500
