"""Error mapping without a server: token failures, transport failures, endpoints."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    DecodeError,
    ServiceRequestError,
    ServiceResponseError,
)

from polysync.domain.models import AuthMode, Platform, PlatformAuth
from polysync.errors import AuthenticationError, PlatformError
from polysync.jobtypes.azure_batch.client import normalize_endpoint, translate

PLATFORM = Platform(
    name="prod",
    account_url="https://acct.westeurope.batch.azure.com/",
    account_name="acct",
    subscription_id="s",
    resource_group="rg",
    auth=PlatformAuth(AuthMode.DEFAULT),
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://a.b.batch.azure.com/", "https://a.b.batch.azure.com"),
        ("a.b.batch.azure.com", "https://a.b.batch.azure.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("  http://127.0.0.1:8080//  ", "http://127.0.0.1:8080"),
    ],
)
def test_normalize_endpoint(given: str, expected: str) -> None:
    assert normalize_endpoint(given) == expected


def test_token_failure_is_an_authentication_error() -> None:
    error = translate(
        ClientAuthenticationError(message="AADSTS7000215: Invalid client secret provided.\nTrace"),
        PLATFORM,
        "listing jobs",
    )
    assert isinstance(error, AuthenticationError)
    assert "platform 'prod'" in str(error)
    assert "AADSTS7000215" in str(error)
    assert "Trace" not in str(error)  # one line of detail


@pytest.mark.parametrize("exc_type", [ServiceRequestError, ServiceResponseError])
def test_transport_failure_names_the_url(exc_type: type[Exception]) -> None:
    error = translate(exc_type("Cannot connect to host"), PLATFORM, "reading pool 'p'")
    assert type(error) is PlatformError
    assert error.code == "Unreachable"
    assert "https://acct.westeurope.batch.azure.com" in str(error)
    assert "reading pool 'p'" in str(error)


def test_unexpected_exception_is_still_a_platform_error() -> None:
    error = translate(RuntimeError("boom"), PLATFORM, "doing x")
    assert isinstance(error, PlatformError)
    assert "doing x" in str(error)


@pytest.mark.parametrize(
    "exc",
    [DecodeError("the response body is not JSON"), ValueError("Expecting value: line 1")],
)
def test_a_body_that_is_not_json_names_the_url(exc: Exception) -> None:
    # Decision 0007: without ContentDecodePolicy, BatchApi raises DecodeError itself for a
    # single GET, and a list page's ValueError comes from the SDK's own json parsing.
    error = translate(exc, PLATFORM, "listing jobs")
    assert type(error) is PlatformError
    assert error.code == "BadResponse"
    assert "https://acct.westeurope.batch.azure.com" in str(error)
    assert "listing jobs" in str(error)
