"""The secrets operations through the real ``azure.keyvault.secrets.SecretClient``."""

from __future__ import annotations

import datetime as dt

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from keyvault_emulator.clock import ManualClock
from keyvault_emulator.server import KeyVaultServer
from tests.keyvault.helpers import START, error_codes


def _utc(epoch: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def test_set_then_get_latest_and_by_version(officer: SecretClient, clock: ManualClock) -> None:
    first = officer.set_secret("db-pass", "one", content_type="text/plain", tags={"env": "dev"})
    clock.advance(30)
    second = officer.set_secret("db-pass", "two")
    assert first.properties.version != second.properties.version
    assert first.id == f"{officer.vault_url}/secrets/db-pass/{first.properties.version}"
    latest = officer.get_secret("db-pass")
    assert (latest.value, latest.properties.version) == ("two", second.properties.version)
    old = officer.get_secret("db-pass", first.properties.version)
    assert (old.value, old.properties.content_type, old.properties.tags) == (
        "one",
        "text/plain",
        {"env": "dev"},
    )
    props = old.properties
    assert props.created_on == _utc(START)
    assert props.updated_on == _utc(START)
    assert second.properties.created_on == _utc(START + 30)
    assert props.enabled is True
    assert props.recovery_level == "Recoverable+Purgeable"
    assert props.recoverable_days == 90
    assert props.vault_url == officer.vault_url
    assert props.name == "db-pass"


def test_set_with_attributes(officer: SecretClient) -> None:
    nbf, exp = _utc(START + 60), _utc(START + 3600)
    secret = officer.set_secret("s", "v", not_before=nbf, expires_on=exp, enabled=True)
    got = officer.get_secret("s")  # outside nbf..exp still answers, as the service does
    assert (got.properties.not_before, got.properties.expires_on) == (nbf, exp)
    assert got.properties.version == secret.properties.version


def test_missing_secret_and_version_raise_resource_not_found(officer: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        officer.get_secret("nope")
    assert error_codes(missing.value) == (404, "SecretNotFound", None)
    assert "A secret with (name/id) nope was not found" in str(missing.value.message)
    officer.set_secret("s", "v")
    with pytest.raises(ResourceNotFoundError):
        officer.get_secret("s", "f" * 32)


def test_update_to_disabled_then_get_is_forbidden(
    officer: SecretClient, clock: ManualClock
) -> None:
    secret = officer.set_secret("s", "v")
    clock.advance(5)
    props = officer.update_secret_properties("s", enabled=False, tags={"why": "rotated"})
    assert props.enabled is False
    assert props.tags == {"why": "rotated"}
    assert props.updated_on == _utc(START + 5)
    assert props.version == secret.properties.version
    with pytest.raises(HttpResponseError) as info:
        officer.get_secret("s")
    assert error_codes(info.value) == (403, "Forbidden", "SecretDisabled")
    assert "Operation get is not allowed on a disabled secret." in str(info.value)
    with pytest.raises(HttpResponseError) as by_version:
        officer.get_secret("s", secret.properties.version)
    assert by_version.value.status_code == 403
    listed = list(officer.list_properties_of_secrets())
    assert [(p.name, p.enabled) for p in listed] == [("s", False)]
    officer.update_secret_properties("s", secret.properties.version, enabled=True)
    assert officer.get_secret("s").value == "v"


def test_update_of_a_missing_secret_is_not_found(officer: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        officer.update_secret_properties("ghost", enabled=False)


def test_list_secrets_follows_next_links_across_pages(
    fresh: KeyVaultServer, officer: SecretClient
) -> None:
    names = [f"secret-{i:02d}" for i in range(5)]
    for name in names:
        officer.set_secret(name, f"value-of-{name}", content_type="ct")
    fresh.control.clear_requests()
    listed = list(officer.list_properties_of_secrets(max_page_size=2))
    assert [p.name for p in listed] == names
    assert all(p.version is None for p in listed)  # list items name the secret, not a version
    assert all(p.content_type == "ct" for p in listed)
    pages = fresh.control.requests("ListSecrets", status=200)
    assert len(pages) == 3  # 2 + 2 + 1


def test_list_versions_pages_too(fresh: KeyVaultServer, officer: SecretClient) -> None:
    versions = {officer.set_secret("s", f"v{i}").properties.version for i in range(3)}
    officer.set_secret("other", "x")
    fresh.control.clear_requests()
    listed = list(officer.list_properties_of_secret_versions("s", max_page_size=2))
    assert {p.version for p in listed} == versions
    assert [p.version for p in listed] == sorted(str(v) for v in versions)  # by id, as the service
    assert fresh.control.count("ListSecretVersions", status=200) == 2


def test_list_versions_of_unknown_secret_is_empty(officer: SecretClient) -> None:
    assert list(officer.list_properties_of_secret_versions("ghost")) == []


def test_invalid_name_is_bad_parameter(officer: SecretClient) -> None:
    with pytest.raises(HttpResponseError) as info:
        officer.set_secret("bad_name", "v")
    assert error_codes(info.value) == (400, "BadParameter", None)


def test_delete_then_get_is_not_found_and_recover_brings_it_back(
    officer: SecretClient, clock: ManualClock
) -> None:
    officer.set_secret("s", "v", tags={"k": "1"})
    clock.advance(7)
    deleted = officer.begin_delete_secret("s").result()
    assert deleted.deleted_date == _utc(START + 7)
    assert deleted.scheduled_purge_date == _utc(START + 7 + 90 * 86_400)
    assert deleted.recovery_id == f"{officer.vault_url}/deletedsecrets/s"
    with pytest.raises(ResourceNotFoundError):
        officer.get_secret("s")
    assert officer.get_deleted_secret("s").properties.tags == {"k": "1"}
    assert [d.name for d in officer.list_deleted_secrets()] == ["s"]
    with pytest.raises(ResourceExistsError):
        officer.set_secret("s", "again")  # a deleted name is reserved until purged
    recovered = officer.begin_recover_deleted_secret("s").result()
    assert recovered.name == "s"
    assert officer.get_secret("s").value == "v"


def test_delete_poller_wait_returns_at_once(officer: SecretClient) -> None:
    officer.set_secret("s", "v")
    poller = officer.begin_delete_secret("s")
    poller.wait(timeout=10)  # the first status poll finds the deleted secret
    assert poller.done()


def test_purge_frees_the_name(officer: SecretClient) -> None:
    officer.set_secret("s", "v")
    officer.begin_delete_secret("s").wait()
    officer.purge_deleted_secret("s")
    with pytest.raises(ResourceNotFoundError):
        officer.get_deleted_secret("s")
    assert officer.set_secret("s", "new").value == "new"


def test_backup_is_not_implemented(officer: SecretClient) -> None:
    officer.set_secret("s", "v")
    with pytest.raises(HttpResponseError) as info:
        officer.backup_secret("s")
    assert error_codes(info.value) == (501, "NotImplemented", None)


def test_in_process_helpers_arrange_state_without_requests(
    fresh: KeyVaultServer, user: SecretClient
) -> None:
    version = fresh.set_secret("seeded", "from-the-test", content_type="text/plain")
    assert user.get_secret("seeded").properties.version == version
    fresh.disable("seeded")
    with pytest.raises(HttpResponseError) as info:
        user.get_secret("seeded")
    assert error_codes(info.value) == (403, "Forbidden", "SecretDisabled")
    fresh.enable("seeded", version)
    assert user.get_secret("seeded").value == "from-the-test"
    assert fresh.control.count("SetSecret") == 0  # arranged in-process, not over HTTP
    assert fresh.control.count("GetSecret", status=200) == 2
