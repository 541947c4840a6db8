"""Wire details over raw HTTP: status codes, headers, bodies, envelopes, authentication."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest

from batch_emulator import DEFAULT_KEY
from batch_emulator.protocol.formats import etag_for, format_http_date, parse_timestamp
from batch_emulator.server import EmulatorServer, SharedKeyAuth

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")


def _create_job(raw: httpx.Client, h: Any, job_id: str = "j") -> httpx.Response:
    return raw.post(
        "/jobs",
        params=h.API,
        json={"id": job_id, "poolInfo": {"poolId": h.POOL}},
        headers={"content-type": "application/json; odata=minimalmetadata"},
    )


def test_create_job_201_headers_and_empty_body(raw: httpx.Client, h: Any) -> None:
    response = _create_job(raw, h)
    assert response.status_code == 201
    assert response.content == b""
    base = str(raw.base_url).rstrip("/")
    # The service names the job "job-1" in DataServiceId/Location (NOTES.md §2.4).
    assert response.headers["location"] == f"{base}/jobs/job-1"
    assert response.headers["dataserviceid"] == f"{base}/jobs/job-1"
    assert GUID.match(response.headers["request-id"])
    assert response.headers["dataserviceversion"] == "3.0"
    assert re.match(r"^0x[0-9A-F]+$", response.headers["etag"])
    assert "client-request-id" not in response.headers


def test_get_job_body_and_entity_headers(raw: httpx.Client, h: Any) -> None:
    _create_job(raw, h)
    response = raw.get("/jobs/j", params=h.API)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; odata=minimalmetadata"
    body = response.json()
    base = str(raw.base_url).rstrip("/")
    assert body["odata.metadata"] == f"{base}/$metadata#jobs/@Element"
    assert body["state"] == "active"
    assert body["onAllTasksComplete"] == "noaction"
    assert body["constraints"] == {
        "maxWallClockTime": "P10675199DT2H48M5.4775807S",
        "maxTaskRetryCount": 0,
    }
    assert TIMESTAMP.match(body["lastModified"])
    # ETag = ticks of lastModified (NOTES.md §5); the header carries the same value.
    assert body["eTag"] == etag_for(parse_timestamp(body["lastModified"]))
    assert response.headers["etag"] == body["eTag"]
    assert response.headers["last-modified"] == format_http_date(
        parse_timestamp(body["lastModified"])
    )
    selected = raw.get("/jobs/j", params={**h.API, "$select": "id,state"}).json()
    assert set(selected) == {"odata.metadata", "id", "state"}


def test_status_codes_of_each_operation(raw: httpx.Client, h: Any, fresh: EmulatorServer) -> None:
    fresh.control.hold("*", "*", "active")
    assert _create_job(raw, h).status_code == 201
    task = {"id": "t", "commandLine": "/bin/true"}
    response = raw.post("/jobs/j/tasks", params=h.API, json=task)
    assert response.status_code == 201
    assert response.headers["location"].endswith("/jobs/j/tasks/t")
    assert raw.get("/jobs/j/tasks/t", params=h.API).status_code == 200
    patch = raw.patch("/jobs/j", params=h.API, json={"priority": 3})
    assert (patch.status_code, patch.content) == (200, b"")
    assert patch.headers["dataserviceid"].endswith("/jobs/j")
    term = raw.post("/jobs/j/tasks/t/terminate", params=h.API)
    assert (term.status_code, term.content) == (204, b"")
    assert "etag" in term.headers
    assert raw.delete("/jobs/j/tasks/t", params=h.API).status_code == 200
    counts = raw.get("/jobs/j/taskcounts", params=h.API)
    assert counts.status_code == 200
    assert counts.json()["taskCounts"]["active"] == 0
    terminate = raw.post("/jobs/j/terminate", params=h.API, json={"terminateReason": "r"})
    assert (terminate.status_code, terminate.content) == (202, b"")
    assert terminate.headers["dataserviceid"].endswith("/jobs/j/terminate")
    deleted = raw.delete("/jobs/j", params=h.API)
    assert (deleted.status_code, deleted.content) == (202, b"")
    head = raw.head(f"/pools/{h.POOL}", params=h.API)
    assert (head.status_code, head.content) == (200, b"")
    assert raw.head("/pools/none", params=h.API).status_code == 404


def test_error_envelope(raw: httpx.Client, h: Any) -> None:
    response = raw.get("/jobs/missing", params=h.API)
    assert response.status_code == 404
    body = response.json()
    base = str(raw.base_url).rstrip("/")
    assert body["odata.metadata"] == (
        f"{base}/$metadata#Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element"
    )
    assert body["code"] == "JobNotFound"
    assert body["message"]["lang"] == "en-US"
    text, request_id, when = body["message"]["value"].split("\n")
    assert text == "The specified job does not exist."
    assert request_id == f"RequestId:{response.headers['request-id']}"
    assert TIMESTAMP.match(when.removeprefix("Time:"))
    assert "values" not in body
    assert "retry-after" not in response.headers


def test_file_not_found_envelope(raw: httpx.Client, h: Any, fresh: EmulatorServer) -> None:
    _create_job(raw, h)
    raw.post("/jobs/j/tasks", params=h.API, json={"id": "t", "commandLine": "/bin/true"})
    response = raw.get("/jobs/j/tasks/t/files/nothing.txt", params=h.API)
    assert response.status_code == 404
    assert response.json()["code"] == "FileNotFound"


def test_missing_api_version(raw: httpx.Client) -> None:
    response = raw.get("/jobs")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "MissingRequiredQueryParameter"
    assert body["values"] == [{"key": "QueryParameterName", "value": "api-version"}]


@pytest.mark.parametrize("version", ["2025-06-01", "2025-06-01.21.0"])
def test_both_api_versions_are_accepted(raw: httpx.Client, version: str) -> None:
    assert raw.get("/jobs", params={"api-version": version}).status_code == 200


def test_client_request_id_is_echoed_only_when_asked(raw: httpx.Client, h: Any) -> None:
    crid = "9c4d50ee-2d56-4cd3-8152-34347dc9f2b0"
    plain = raw.get("/jobs", params=h.API, headers={"client-request-id": crid})
    assert "client-request-id" not in plain.headers
    asked = raw.get(
        "/jobs",
        params=h.API,
        headers={"client-request-id": crid, "return-client-request-id": "true"},
    )
    assert asked.headers["client-request-id"] == crid


def test_charset_in_content_type_is_rejected(raw: httpx.Client, h: Any) -> None:
    response = raw.post(
        "/jobs",
        params=h.API,
        content=b'{"id": "j", "poolInfo": {"poolId": "p"}}',
        headers={"content-type": "application/json; odata=minimalmetadata; charset=utf-8"},
    )
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidHeaderValue"


def test_bad_bodies(raw: httpx.Client, h: Any) -> None:
    response = raw.post(
        "/jobs", params=h.API, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (response.status_code, response.json()["code"]) == (400, "InvalidRequestBody")
    response = raw.post("/jobs", params=h.API, json={"id": "j"})
    assert response.json()["values"] == [{"key": "PropertyName", "value": "poolInfo"}]
    response = raw.post(
        "/jobs", params=h.API, json={"id": "j", "poolInfo": {"poolId": "p"}, "priority": 5000}
    )
    assert response.json()["code"] == "InvalidPropertyValue"


def test_unknown_route_and_verb(raw: httpx.Client, h: Any) -> None:
    assert raw.get("/nothing", params=h.API).json()["code"] == "InvalidUri"
    response = raw.put("/jobs", params=h.API, json={})
    assert (response.status_code, response.json()["code"]) == (405, "UnsupportedHttpVerb")


def test_conditional_headers_raw(raw: httpx.Client, h: Any) -> None:
    _create_job(raw, h)
    etag = raw.get("/jobs/j", params=h.API).headers["etag"]
    not_modified = raw.get("/jobs/j", params=h.API, headers={"if-none-match": f'"{etag}"'})
    assert (not_modified.status_code, not_modified.content) == (304, b"")
    failed = raw.patch("/jobs/j", params=h.API, json={"priority": 1}, headers={"if-match": '"0x1"'})
    assert (failed.status_code, failed.json()["code"]) == (412, "ConditionNotMet")
    ok = raw.patch("/jobs/j", params=h.API, json={"priority": 1}, headers={"if-match": etag})
    assert ok.status_code == 200
    both = raw.get(
        "/jobs/j",
        params=h.API,
        headers={"if-match": "*", "if-modified-since": format_http_date(dt.datetime.now(dt.UTC))},
    )
    assert both.json()["code"] == "MultipleConditionHeadersNotSupported"


# --------------------------------------------------------------------------- authentication


def _signed(
    fresh: EmulatorServer, key: str = DEFAULT_KEY, account: str | None = None
) -> httpx.Client:
    return httpx.Client(
        base_url=fresh.endpoint, auth=SharedKeyAuth(account or fresh.account, key), timeout=10
    )


def test_wrong_key_is_403(fresh: EmulatorServer, h: Any) -> None:
    wrong = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXk="
    with _signed(fresh, key=wrong) as c:
        response = c.get("/jobs", params=h.API)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "AuthenticationFailed"
    assert body["values"][0]["key"] == "AuthenticationErrorDetail"
    assert DEFAULT_KEY not in response.text


def test_wrong_account_is_403(fresh: EmulatorServer, h: Any) -> None:
    with _signed(fresh, account="someoneelse") as c:
        assert c.get("/jobs", params=h.API).status_code == 403


def test_tampered_signature_is_403(fresh: EmulatorServer, h: Any) -> None:
    def tamper(request: httpx.Request) -> None:
        # Change the query after signing: the signature no longer matches.
        request.url = request.url.copy_merge_params({"maxresults": "5"})

    with httpx.Client(
        base_url=fresh.endpoint,
        auth=SharedKeyAuth(fresh.account, fresh.key),
        event_hooks={"request": [tamper]},
    ) as c:
        response = c.get("/jobs", params=h.API)
    assert response.status_code == 403
    assert response.json()["code"] == "AuthenticationFailed"


def test_missing_or_malformed_authorization(fresh: EmulatorServer, h: Any) -> None:
    with httpx.Client(base_url=fresh.endpoint) as c:
        missing = c.get("/jobs", params=h.API)
        malformed = c.get("/jobs", params=h.API, headers={"authorization": "SharedKey nocolon"})
        bearer = c.get("/jobs", params=h.API, headers={"authorization": "Bearer abc"})
        controls = c.post("/_emulator/reset")
    assert missing.status_code == 403
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "InvalidAuthenticationInfo"
    # Bearer tokens are refused when none are configured.
    assert bearer.status_code == 403
    assert controls.status_code == 403
