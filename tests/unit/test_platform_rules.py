"""Names and platform fields: the pure checks of services/platforms.py."""

from __future__ import annotations

import pytest

from polysync.domain.models import AuthMode
from polysync.errors import InputError
from polysync.services.platforms import PlatformInput, build_platform, validate_name


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
