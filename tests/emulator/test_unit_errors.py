"""Tests for batch_emulator.protocol.errors (NOTES.md §9)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from azure.batch._patch import BatchErrorFormat

from batch_emulator.protocol.errors import (
    CATALOGUE,
    BatchError,
    condition_not_met,
    error_body,
    invalid_query_parameter,
    missing_required_query_parameter,
)

NOW = datetime(2023, 3, 9, 11, 47, 41, 992674, tzinfo=UTC)
RID = "c4f5fc32-356d-47c2-a2c2-789081828db5"


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("JobExists", 409),
        ("TaskExists", 409),
        ("JobNotFound", 404),
        ("TaskNotFound", 404),
        ("PoolNotFound", 404),
        ("PoolExists", 409),
        ("PoolBeingDeleted", 409),
        ("JobCompleted", 409),
        ("JobBeingTerminated", 409),
        ("JobBeingDeleted", 409),
        ("TaskCompleted", 409),
        ("InvalidPropertyValue", 400),
        ("MissingRequiredProperty", 400),
        ("InvalidRequestBody", 400),
        ("UnsupportedProperty", 400),
        ("InvalidQueryParameterValue", 400),
        ("OutOfRangeQueryParameterValue", 400),
        ("MissingRequiredQueryParameter", 400),
        ("UnsupportedRequestVersion", 400),
        ("ActiveJobAndScheduleQuotaReached", 409),
        ("RequestBodyTooLarge", 413),
        ("AuthenticationFailed", 403),
        ("InvalidAuthenticationInfo", 400),
        ("ConditionNotMet", 412),
        ("MultipleConditionHeadersNotSupported", 400),
        ("InvalidUri", 400),
        ("ResourceNotFound", 404),
        ("FileNotFound", 404),
        ("InvalidRange", 416),
        ("OperationInvalidForCurrentState", 409),
        ("ServerBusy", 503),
        ("InternalError", 500),
        ("OperationTimedOut", 500),
        ("TooManyRequests", 429),
        ("InvalidHeaderValue", 400),
    ],
)
def test_catalogue_statuses(code: str, status: int) -> None:
    err = BatchError.of(code)
    assert (err.code, err.status) == (code, status)
    assert err.message.endswith(".")
    assert "RequestId" not in err.message


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("JobExists", "The specified job already exists."),
        ("JobNotFound", "The specified job does not exist."),
        ("TaskNotFound", "The specified task does not exist."),
        ("TaskExists", "The specified task already exists."),
        ("PoolNotFound", "The specified pool does not exist."),
        ("JobCompleted", "The specified job is already in a completed state."),
        ("TaskCompleted", "The specified task is already in a completed state."),
        (
            "ActiveJobAndScheduleQuotaReached",
            "Active job and schedule quota for the account has been reached.",
        ),
        (
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
        ),
        ("OperationTimedOut", "The operation could not be completed within the permitted time."),
        (
            "InvalidPropertyValue",
            "The value provided for one of the properties in the request body is invalid.",
        ),
        ("MissingRequiredProperty", "A required property was not specified in the request body."),
        ("UnsupportedRequestVersion", "The specified request version is not supported."),
        (
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization "
            "header is formed correctly including the signature.",
        ),
    ],
)
def test_verbatim_service_messages(code: str, message: str) -> None:
    assert CATALOGUE[code][1] == message


def test_condition_not_met_read_vs_write() -> None:
    assert condition_not_met(read=True).status == 304
    assert condition_not_met(read=False).status == 412
    assert condition_not_met(read=True).code == "ConditionNotMet"


def test_overrides_and_unknown_code() -> None:
    err = BatchError.of("ServerBusy", retry_after_s=2.5, message="Slow down.", status=429)
    assert (err.status, err.message, err.retry_after_s) == (429, "Slow down.", 2.5)
    assert BatchError.of("JobNotFound").retry_after_s is None
    with pytest.raises(KeyError):
        BatchError.of("NoSuchCode")


def test_error_body_without_values_matches_real_shape() -> None:
    body = error_body(
        BatchError.of("TaskCompleted"),
        base_url="https://alethiomics.uksouth.batch.azure.com/",
        request_id=RID,
        now=NOW,
    )
    assert body == {
        "odata.metadata": "https://alethiomics.uksouth.batch.azure.com/$metadata#"
        "Microsoft.Azure.Batch.Protocol.Entities.Container.errors/@Element",
        "code": "TaskCompleted",
        "message": {
            "lang": "en-US",
            "value": "The specified task is already in a completed state.\nRequestId:"
            f"{RID}\nTime:2023-03-09T11:47:41.9926740Z",
        },
    }


def test_error_body_with_values_and_helpers() -> None:
    err = invalid_query_parameter("$filter", "id eq", "Unexpected end of filter.")
    body = error_body(err, base_url="http://127.0.0.1:1", request_id=RID, now=NOW)
    assert body["values"] == [
        {"key": "QueryParameterName", "value": "$filter"},
        {"key": "QueryParameterValue", "value": "id eq"},
        {"key": "Reason", "value": "Unexpected end of filter."},
    ]
    missing = missing_required_query_parameter("api-version")
    assert (missing.status, missing.values) == (400, [("QueryParameterName", "api-version")])


def test_sdk_error_format_reads_our_body() -> None:
    err = BatchError.of("InvalidPropertyValue", values=[("PropertyName", "id")])
    body = json.loads(json.dumps(error_body(err, base_url="http://h", request_id=RID, now=NOW)))
    parsed = BatchErrorFormat(body)  # type: ignore[no-untyped-call]  # SDK class is untyped
    assert parsed.code == "InvalidPropertyValue"
    assert parsed.message is not None
    assert parsed.message.startswith(CATALOGUE["InvalidPropertyValue"][1] + "\nRequestId:")
    assert [(d.code, d.message) for d in parsed.details] == [("PropertyName", "id")]
