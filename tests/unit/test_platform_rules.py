"""Account URLs, names and platform fields: the pure checks of services/platforms.py."""

from __future__ import annotations

import pytest

from polysync.domain.models import AuthMode
from polysync.errors import InputError
from polysync.services.platforms import (
    PlatformInput,
    build_platform,
    normalise_account_url,
    validate_name,
)

SHAPE = "https://<account>.<region>.batch.azure.com"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://acct.westeurope.batch.azure.com", "https://acct.westeurope.batch.azure.com"),
        ("https://acct.westeurope.batch.azure.com/", "https://acct.westeurope.batch.azure.com"),
        (" https://acct.westeurope.batch.azure.com\n", "https://acct.westeurope.batch.azure.com"),
        (
            "https://acct.westeurope.batch.azure.com:443",
            "https://acct.westeurope.batch.azure.com:443",
        ),
        ("http://127.0.0.1:8045", "http://127.0.0.1:8045"),
        ("http://localhost:8045/", "http://localhost:8045"),
        ("http://[::1]:8045", "http://[::1]:8045"),
        ("https://10.0.0.5:65535", "https://10.0.0.5:65535"),
    ],
)
def test_account_urls_accepted(url: str, expected: str) -> None:
    assert normalise_account_url(url) == expected


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("https://user:pass@acct.westeurope.batch.azure.com", "carries a user name or password"),
        ("https://user@acct.westeurope.batch.azure.com", "carries a user name or password"),
        ("https://:secret@acct.westeurope.batch.azure.com", "carries a user name or password"),
        ("https://acct.west europe.batch.azure.com", "contains a space or control character"),
        ("https://acct.westeurope.batch.azure.com/ x", "contains a space or control character"),
        ("https://acct\t.batch.azure.com", "contains a space or control character"),
        ("https://acct\x00.batch.azure.com", "contains a NUL character"),
        ("https://acct.westeurope.batch.azure.com:99999", "has an invalid port"),
        ("https://acct.westeurope.batch.azure.com:0", "has an invalid port"),
        ("https://acct.westeurope.batch.azure.com:https", "has an invalid port"),
        ("https://acct.westeurope.batch.azure.com:", "has an invalid port"),
        ("https://acct.westeurope.batch.azure.com:-1", "has an invalid port"),
        ("https://acct.westeurope.batch.azure.com/jobs", "has a path (/jobs)"),
        ("https://acct.westeurope.batch.azure.com//", "has a path (//)"),
        ("https://acct.westeurope.batch.azure.com/?api-version=1", "carries a query or fragment"),
        ("https://acct.westeurope.batch.azure.com?", "carries a query or fragment"),
        ("https://acct.westeurope.batch.azure.com#top", "carries a query or fragment"),
        ("ftp://acct.westeurope.batch.azure.com", "is not valid"),
        ("acct.westeurope.batch.azure.com", "is not valid"),
        ("https://", "is not valid"),
        ("http://acct.westeurope.batch.azure.com", "uses plain http to a non-local host"),
    ],
)
def test_account_urls_refused_with_one_sentence_and_the_shape(url: str, fragment: str) -> None:
    with pytest.raises(InputError) as info:
        normalise_account_url(url)
    message = str(info.value)
    assert fragment in message
    assert message.count(". ") == 0, message  # one sentence
    if "http to a non-local" not in fragment and "NUL" not in fragment:
        assert SHAPE in message


@pytest.mark.parametrize("name", ["prod", "a", "x" * 64, "prod-westeu_1.2", "0abc"])
def test_names_accepted(name: str) -> None:
    assert validate_name("platform", name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * 65, "-lead", "has space", "prod\n", "pr\x00od", "ümlaut"]
)
def test_names_refused(name: str) -> None:
    with pytest.raises(InputError, match="use 1-64 letters, digits"):
        validate_name("platform", name)


def _input(**kw: str | None) -> PlatformInput:
    values: dict[str, object] = {
        "name": "p",
        "account_url": "https://acct.westeurope.batch.azure.com",
        "account_name": "acct",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": "rg",
        "auth": AuthMode.MANAGED_IDENTITY,
    }
    values.update(kw)
    return PlatformInput(**values)  # type: ignore[arg-type]  # test helper: keyword overrides


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("client_id", "abc\x00", "client id contains a NUL character"),
        ("tenant_id", "t" * 2001, "tenant id is 2001 characters long: keep it to 2000"),
        ("resource_group", "rg\x00", "resource group contains a NUL character"),
    ],
)
def test_platform_text_fields_are_bounded(field: str, value: str, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        build_platform(_input(**{field: value}))
