"""Tests for batch_emulator.protocol.auth (NOTES.md §3)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from azure.batch import BatchClient, models
from azure.core import MatchConditions
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline.transport import HttpTransport

from batch_emulator.protocol.auth import (
    DEFAULT_MAX_SKEW,
    check_request_auth,
    sign,
    string_to_sign,
    verify_bearer,
    verify_shared_key,
)
from batch_emulator.protocol.errors import BatchError

KEY = "c2VjcmV0LWtleS1ieXRlcy0xMjM0NTY3ODkwYWJjZGVm"  # base64("secret-key-bytes-1234567890abcdef")
ACCOUNT = "myaccount"
DATE = "Tue, 24 Nov 2026 19:37:01 GMT"
NOW = datetime(2026, 11, 24, 19, 40, tzinfo=UTC)


# --------------------------------------------------------------------- SDK test vectors (§3.2)

VECTORS = [
    (
        "GET",
        "/jobs",
        "api-version=2025-06-01&maxresults=10",
        {"ocp-date": DATE},
        "0iMp5KCAiI6SLGAYo66zWJUIV+ShzUzflGTS20w51TQ=",
    ),
    (
        "POST",
        "/jobs",
        "api-version=2025-06-01",
        {
            "ocp-date": DATE,
            "Content-Type": "application/json; odata=minimalmetadata",
            "Content-Length": "49",
        },
        "qSXYPFpGq837Pflp4uxtqnePGwX2X2Lr5RxUGWwp4+8=",
    ),
    (
        "POST",
        "/jobs/myjob/tasks/t1/terminate",
        "api-version=2025-06-01",
        {"ocp-date": DATE},
        "Q2sxy5a9TtjG8mUcjPuQneUFGS9AwhyiONDFUGxsbs0=",
    ),
]


@pytest.mark.parametrize(("method", "path", "query", "headers", "sig"), VECTORS)
def test_sdk_vectors_reproduce(
    method: str, path: str, query: str, headers: dict[str, str], sig: str
) -> None:
    sts = string_to_sign(method, path, query, headers, account=ACCOUNT, lowercase_query_names=False)
    assert sign(KEY, sts) == sig
    signed = {**headers, "Authorization": f"SharedKey {ACCOUNT}:{sig}"}
    assert verify_shared_key(method, path, query, signed, account=ACCOUNT, key_b64=KEY)
    # A transport that adds "Content-Length: 0" to a body-less request must still verify.
    if "Content-Length" not in headers:
        with_len = {**signed, "content-length": "0"}
        assert verify_shared_key(method, path, query, with_len, account=ACCOUNT, key_b64=KEY)
    check_request_auth(method, path, query, signed, account=ACCOUNT, key_b64=KEY)


def test_documented_example_string() -> None:
    sts = string_to_sign(
        "GET",
        "/jobs",
        "api-version=2014-01-01.1.0&timeout=20",
        {"ocp-date": "Tue, 29 Jul 2014 21:49:13 GMT"},
        account=ACCOUNT,
        lowercase_query_names=True,
    )
    assert sts == (
        "GET\n\n\n\n\n\n\n\n\n\n\n\nocp-date:Tue, 29 Jul 2014 21:49:13 GMT\n"
        "/myaccount/jobs\napi-version:2014-01-01.1.0\ntimeout:20"
    )


@pytest.mark.parametrize(
    ("query", "as_sent", "lowered"),
    [
        ("api-version=1&timeOut=20", "\napi-version:1\ntimeOut:20", "\napi-version:1\ntimeout:20"),
        ("b=2&a=1&b=1", "\na:1\nb:2", "\na:1\nb:1,2"),
        ("$skiptoken=tok%2B1&x=", "\n$skiptoken:tok+1", "\n$skiptoken:tok+1"),
        ("$filter=id+eq+%27a%27", "\n$filter:id eq 'a'", "\n$filter:id eq 'a'"),
    ],
)
def test_query_canonicalisation_variants(query: str, as_sent: str, lowered: str) -> None:
    head = "GET\n" + "\n" * 11 + "/acct/jobs"
    assert (
        string_to_sign("GET", "/jobs", query, {}, account="acct", lowercase_query_names=False)
        == head + as_sent
    )
    assert (
        string_to_sign("GET", "/jobs", query, {}, account="acct", lowercase_query_names=True)
        == head + lowered
    )


def test_ocp_headers_sorted_and_lowercased() -> None:
    sts = string_to_sign(
        "DELETE",
        "/jobs/j",
        "",
        {"Ocp-Date": DATE, "ocp-aaa": "x", "client-request-id": "c", "If-Match": '"0x1"'},
        account="a",
        lowercase_query_names=False,
    )
    assert sts == (f'DELETE\n\n\n0\n\n\n\n\n"0x1"\n\n\n\nocp-aaa:x\nocp-date:{DATE}\n/a/jobs/j')


def test_documented_variant_signature_accepted() -> None:
    query = "api-version=2025-06-01&timeOut=20"
    sts = string_to_sign(
        "GET", "/jobs", query, {"ocp-date": DATE}, account=ACCOUNT, lowercase_query_names=True
    )
    headers = {"ocp-date": DATE, "authorization": f"SharedKey {ACCOUNT}:{sign(KEY, sts)}"}
    assert verify_shared_key("GET", "/jobs", query, headers, account=ACCOUNT, key_b64=KEY)


@pytest.mark.parametrize(
    "auth",
    [
        f"SharedKey other:{VECTORS[0][4]}",
        f"SharedKey {ACCOUNT}:AAAA{VECTORS[0][4][4:]}",
        f"Bearer {VECTORS[0][4]}",
        f"SharedKey {ACCOUNT}",
        "SharedKey",
        "",
    ],
)
def test_verify_shared_key_rejects(auth: str) -> None:
    headers = {"ocp-date": DATE, "Authorization": auth}
    assert not verify_shared_key(
        "GET", "/jobs", VECTORS[0][2], headers, account=ACCOUNT, key_b64=KEY
    )


# --------------------------------------------------------------------- check_request_auth


def _signed(method: str, path: str, query: str, headers: dict[str, str]) -> dict[str, str]:
    sts = string_to_sign(method, path, query, headers, account=ACCOUNT, lowercase_query_names=False)
    return {**headers, "Authorization": f"SharedKey {ACCOUNT}:{sign(KEY, sts)}"}


@pytest.mark.parametrize(
    ("headers", "code", "status"),
    [
        ({"ocp-date": DATE}, "AuthenticationFailed", 403),
        ({"Authorization": "SharedKey"}, "InvalidAuthenticationInfo", 400),
        ({"Authorization": "SharedKey myaccount"}, "InvalidAuthenticationInfo", 400),
        ({"Authorization": "SharedKey myaccount:!!not-base64!!"}, "InvalidAuthenticationInfo", 400),
        ({"Authorization": "Basic dXNlcjpwdw=="}, "AuthenticationFailed", 403),
        ({"Authorization": "SharedKey other:" + VECTORS[0][4]}, "AuthenticationFailed", 403),
        ({"Authorization": "SharedKey myaccount:AAAA"}, "AuthenticationFailed", 403),
        ({"Authorization": "Bearer tok"}, "AuthenticationFailed", 403),
    ],
)
def test_check_request_auth_errors(headers: dict[str, str], code: str, status: int) -> None:
    with pytest.raises(BatchError) as info:
        check_request_auth("GET", "/jobs", "api-version=1", headers, account=ACCOUNT, key_b64=KEY)
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.values
    assert info.value.values[0][0] == "AuthenticationErrorDetail"
    assert KEY not in repr(info.value.values)


def test_bad_signature_detail_shows_string_to_sign_not_secret() -> None:
    good = _signed("GET", "/jobs", "api-version=1", {"ocp-date": DATE})
    tampered = {**good, "ocp-date": "Tue, 24 Nov 2026 19:37:02 GMT"}
    with pytest.raises(BatchError) as info:
        check_request_auth("GET", "/jobs", "api-version=1", tampered, account=ACCOUNT, key_b64=KEY)
    detail = info.value.values[0][1]
    assert "19:37:02" in detail
    assert good["Authorization"].split(":")[1] not in detail


def test_shared_key_can_be_disabled() -> None:
    headers = _signed("GET", "/jobs", "api-version=1", {"ocp-date": DATE})
    with pytest.raises(BatchError, match="AuthenticationFailed"):
        check_request_auth(
            "GET",
            "/jobs",
            "api-version=1",
            headers,
            account=ACCOUNT,
            key_b64=KEY,
            allow_shared_key=False,
        )


@pytest.mark.parametrize(
    ("date_header", "now", "code"),
    [
        ({"ocp-date": DATE}, NOW, None),
        ({"Date": DATE}, NOW - timedelta(minutes=14), None),
        ({"ocp-date": DATE}, NOW + timedelta(minutes=15), "AuthenticationFailed"),
        ({"ocp-date": DATE}, NOW - timedelta(minutes=20), "AuthenticationFailed"),
        ({}, NOW, "AuthenticationFailed"),
        ({"ocp-date": "yesterday"}, NOW, "InvalidHeaderValue"),
    ],
)
def test_date_skew(date_header: dict[str, str], now: datetime, code: str | None) -> None:
    headers = _signed("GET", "/jobs", "api-version=1", date_header)
    if code is None:
        check_request_auth(
            "GET",
            "/jobs",
            "api-version=1",
            headers,
            account=ACCOUNT,
            key_b64=KEY,
            max_skew=DEFAULT_MAX_SKEW,
            now=now,
        )
        return
    with pytest.raises(BatchError) as info:
        check_request_auth(
            "GET",
            "/jobs",
            "api-version=1",
            headers,
            account=ACCOUNT,
            key_b64=KEY,
            max_skew=DEFAULT_MAX_SKEW,
            now=now,
        )
    assert info.value.code == code


@pytest.mark.parametrize(
    ("auth", "tokens", "ok"),
    [
        ("Bearer abc", ["abc"], True),
        ("bearer  abc ", ["x", "abc"], True),
        ("Bearer abd", ["abc"], False),
        ("Bearer ", ["abc"], False),
        ("SharedKey a:b", ["abc"], False),
        ("Bearer abc", [], False),
    ],
)
def test_verify_bearer(auth: str, tokens: list[str], ok: bool) -> None:
    assert verify_bearer({"authorization": auth}, tokens) is ok


def test_check_request_auth_bearer() -> None:
    check_request_auth(
        "GET",
        "/jobs",
        "",
        {"Authorization": "Bearer t1"},
        account=ACCOUNT,
        key_b64=KEY,
        bearer_tokens=("t1",),
    )
    with pytest.raises(BatchError) as info:
        check_request_auth(
            "GET",
            "/jobs",
            "",
            {"Authorization": "Bearer t2"},
            account=ACCOUNT,
            key_b64=KEY,
            bearer_tokens=("t1",),
        )
    assert info.value.status == 403


# --------------------------------------------------------------------- the real SDK policy


class _Captured(Exception):
    """Raised by the capturing transport so the SDK call stops after signing."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


class _CaptureTransport(HttpTransport):  # type: ignore[type-arg]  # generic base, any request type
    def send(self, request: Any, **kwargs: Any) -> NoReturn:
        raise _Captured(request)

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def __enter__(self) -> _CaptureTransport:
        return self

    def __exit__(self, *args: object) -> None:
        return None


@pytest.fixture
def client() -> Iterator[BatchClient]:
    cred = AzureNamedKeyCredential(ACCOUNT, KEY)
    with BatchClient("http://127.0.0.1:9/", cred, transport=_CaptureTransport()) as c:
        yield c


def _capture(call: Any) -> tuple[str, str, str, dict[str, str]]:
    with pytest.raises(_Captured) as info:
        call()
    req = info.value.request
    url = urlsplit(req.url)
    return req.method, url.path, url.query, dict(req.headers)


def _sdk_requests(client: Any) -> list[tuple[str, str, str, dict[str, str]]]:
    job = models.BatchJobCreateOptions(id="myjob", pool_info=models.BatchPoolInfo(pool_id="p1"))
    return [
        _capture(
            lambda: next(
                iter(
                    client.list_jobs(
                        filter="state eq 'active' and startswith(id,'a b')",
                        select=["id", "state"],
                        max_results=1,
                        service_timeout=20,
                    )
                )
            )
        ),
        _capture(lambda: client.create_job(job, service_timeout=20)),
        _capture(lambda: client.terminate_task("myjob", "t1")),
        _capture(
            lambda: client.get_job("j x", etag="0x8D1", match_condition=MatchConditions.IfModified)
        ),
        _capture(lambda: client.delete_task("myjob", "t1")),
    ]


def test_sdk_signed_requests_verify(client: Any) -> None:
    requests = _sdk_requests(client)
    assert "timeOut=20" in requests[0][2]
    assert "$filter=" in requests[0][2]
    assert requests[3][1] == "/jobs/j%20x"
    for method, path, query, headers in requests:
        assert verify_shared_key(method, path, query, headers, account=ACCOUNT, key_b64=KEY), (
            method,
            path,
            query,
        )
        check_request_auth(
            method, path, query, headers, account=ACCOUNT, key_b64=KEY, max_skew=DEFAULT_MAX_SKEW
        )


def test_sdk_signed_requests_tampered(client: Any) -> None:
    (m0, p0, q0, h0), (m1, p1, q1, h1), *_ = _sdk_requests(client)
    tampered = [
        (m0, p0, q0.replace("maxresults=1", "maxresults=2"), h0),
        (m0, p0, q0.replace("timeOut=20", "timeOut=25"), h0),
        (m0, "/jobs/x", q0, h0),
        ("POST", p0, q0, h0),
        (m1, p1, q1, {**h1, "Content-Length": str(int(h1["Content-Length"]) + 1)}),
        (m1, p1, q1, {**h1, "ocp-date": "Mon, 01 Jan 2024 00:00:00 GMT"}),
    ]
    for method, path, query, headers in tampered:
        assert not verify_shared_key(method, path, query, headers, account=ACCOUNT, key_b64=KEY)
    assert not verify_shared_key(m0, p0, q0, h0, account="otheraccount", key_b64=KEY)
