"""The pure vault: names, versions, enable/disable, updates, soft delete, snapshots."""

from __future__ import annotations

import itertools

import pytest

from keyvault_emulator import errors
from keyvault_emulator.backend import (
    MAX_TAGS,
    MAX_VALUE_BYTES,
    RECOVERABLE_DAYS,
    SecretChanges,
    Vault,
)
from keyvault_emulator.clock import ManualClock

T0 = 1_700_000_000


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def vault(clock: ManualClock) -> Vault:
    counter = itertools.count(1)
    # Predictable ids whose sort order differs from creation order (the service sorts
    # versions by id, not by age).
    return Vault(clock, new_version_id=lambda: f"{(97 - next(counter)):032x}")


def _code(exc: pytest.ExceptionInfo[errors.VaultError]) -> tuple[int, str, str | None]:
    return exc.value.status, exc.value.code, exc.value.inner_code


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a", True),
        ("db-password", True),
        ("ABC-123-xyz", True),
        ("x" * 127, True),
        ("x" * 128, False),
        ("", False),
        ("under_score", False),
        ("dot.name", False),
        ("space name", False),
        ("slash/name", False),
        ("ünïcode", False),
    ],
)
def test_secret_names_follow_the_service_rule(vault: Vault, name: str, valid: bool) -> None:
    if valid:
        secret, _ = vault.set_secret(name, "v")
        assert secret.name == name
    else:
        with pytest.raises(errors.VaultError) as exc:
            vault.set_secret(name, "v")
        assert _code(exc) == (400, "BadParameter", None)
        assert exc.value.message == f"The request URI contains an invalid name: {name}"


def test_each_set_is_a_new_32_hex_version_and_the_newest_is_latest(clock: ManualClock) -> None:
    vault = Vault(clock)  # the real id generator
    _, first = vault.set_secret("s", "one")
    clock.advance(5)
    _, second = vault.set_secret("s", "two")
    for v in (first, second):
        assert len(v.version) == 32
        assert v.version == v.version.lower()
        int(v.version, 16)
    assert first.version != second.version
    assert vault.get_secret("s")[1].value == "two"
    assert vault.get_secret("s", first.version)[1].value == "one"
    assert (second.created, second.updated) == (T0 + 5, T0 + 5)


def test_latest_is_the_newest_even_when_its_id_sorts_first(vault: Vault) -> None:
    _, first = vault.set_secret("s", "one")
    _, second = vault.set_secret("s", "two")
    assert second.version < first.version  # ids count down in this fixture
    assert vault.get_secret("s")[1].version == second.version
    page = vault.list_versions("s", None, 25)
    assert [v.version for v in page.items] == sorted([first.version, second.version])


def test_names_are_case_insensitive_and_keep_their_first_spelling(vault: Vault) -> None:
    vault.set_secret("Db-Pass", "one")
    secret, _ = vault.set_secret("db-pass", "two")
    assert secret.name == "Db-Pass"
    assert len(secret.versions) == 2
    assert vault.get_secret("DB-PASS")[1].value == "two"
    assert len(vault) == 1


@pytest.mark.parametrize(
    ("name", "version", "message_ident"),
    [("nope", None, "nope"), ("s", "0" * 32, "s/" + "0" * 32)],
)
def test_unknown_secret_or_version_is_secret_not_found(
    vault: Vault, name: str, version: str | None, message_ident: str
) -> None:
    vault.set_secret("s", "v")
    with pytest.raises(errors.VaultError) as exc:
        vault.get_secret(name, version)
    assert _code(exc) == (404, "SecretNotFound", None)
    assert exc.value.message.startswith(f"A secret with (name/id) {message_ident} was not found")


@pytest.mark.parametrize("which", ["latest", "older"])
def test_disabled_version_refuses_get_but_not_find(vault: Vault, which: str) -> None:
    _, old = vault.set_secret("s", "one")
    _, new = vault.set_secret("s", "two")
    target = new if which == "latest" else old
    vault.update("s", target.version, SecretChanges(enabled=False))
    with pytest.raises(errors.VaultError) as exc:
        vault.get_secret("s", target.version)
    assert _code(exc) == (403, "Forbidden", "SecretDisabled")
    assert exc.value.message == "Operation get is not allowed on a disabled secret."
    assert vault.find("s", target.version)[1].enabled is False
    other = old if which == "latest" else new
    assert vault.get_secret("s", other.version)[1].enabled is True
    vault.update("s", target.version, SecretChanges(enabled=True))
    assert vault.get_secret("s", target.version)[1].value == target.value


def test_set_can_create_a_disabled_version(vault: Vault) -> None:
    vault.set_secret("s", "v", enabled=False)
    with pytest.raises(errors.VaultError) as exc:
        vault.get_secret("s")
    assert exc.value.inner_code == "SecretDisabled"


def test_nbf_and_exp_are_informational_for_get(vault: Vault, clock: ManualClock) -> None:
    vault.set_secret("s", "v", not_before=T0 + 100, expires=T0 + 200)
    assert vault.get_secret("s")[1].value == "v"  # not yet valid: still served
    clock.advance(1000)
    assert vault.get_secret("s")[1].value == "v"  # expired: still served


def test_update_changes_only_what_is_given(vault: Vault, clock: ManualClock) -> None:
    vault.set_secret("s", "v", content_type="text/plain", tags={"a": "1"}, expires=T0 + 9)
    clock.advance(60)
    _, v = vault.update("s", None, SecretChanges(tags={"b": "2"}))
    assert (v.tags, v.content_type, v.expires, v.enabled) == (
        {"b": "2"},
        "text/plain",
        T0 + 9,
        True,
    )
    assert (v.created, v.updated) == (T0, T0 + 60)
    _, v = vault.update("s", "", SecretChanges(content_type="json", not_before=T0 + 1))
    assert (v.tags, v.content_type, v.not_before) == ({"b": "2"}, "json", T0 + 1)


def test_value_and_tag_limits(vault: Vault) -> None:
    vault.set_secret("ok", "x" * MAX_VALUE_BYTES)
    with pytest.raises(errors.VaultError) as exc:
        vault.set_secret("big", "x" * (MAX_VALUE_BYTES + 1))
    assert _code(exc) == (400, "BadParameter", None)
    with pytest.raises(errors.VaultError):
        vault.set_secret("tags", "v", tags={str(i): "t" for i in range(MAX_TAGS + 1)})
    with pytest.raises(errors.VaultError) as exc:
        vault.find("big")  # the refused set left nothing behind
    assert exc.value.code == "SecretNotFound"


def test_soft_delete_hides_blocks_reuse_and_recovers(vault: Vault, clock: ManualClock) -> None:
    _, v = vault.set_secret("s", "v", tags={"k": "x"})
    clock.advance(10)
    deleted = vault.delete("s")
    assert deleted.deleted_date == T0 + 10
    assert deleted.scheduled_purge_date == T0 + 10 + RECOVERABLE_DAYS * 86_400
    with pytest.raises(errors.VaultError) as exc:
        vault.get_secret("s")
    assert exc.value.code == "SecretNotFound"
    with pytest.raises(errors.VaultError) as exc:
        vault.set_secret("s", "again")
    assert _code(exc) == (409, "Conflict", "ObjectIsDeletedButRecoverable")
    assert vault.get_deleted("S").secret.current.version == v.version
    vault.recover("s")
    assert vault.get_secret("s")[1].value == "v"
    with pytest.raises(errors.VaultError):
        vault.get_deleted("s")


def test_purge_frees_the_name(vault: Vault) -> None:
    vault.set_secret("s", "v")
    vault.delete("s")
    vault.purge("s")
    with pytest.raises(errors.VaultError) as exc:
        vault.get_deleted("s")
    assert exc.value.status == 404
    assert vault.set_secret("s", "new")[1].value == "new"


def test_deleted_secrets_are_purged_when_their_date_passes(
    vault: Vault, clock: ManualClock
) -> None:
    vault.set_secret("s", "v")
    vault.delete("s")
    clock.advance(RECOVERABLE_DAYS * 86_400 - 1)
    assert vault.list_deleted(None, 25).items
    clock.advance(1)
    assert vault.list_deleted(None, 25).items == []
    assert vault.set_secret("s", "reborn")[1].value == "reborn"


def test_delete_of_unknown_secret_is_not_found(vault: Vault) -> None:
    with pytest.raises(errors.VaultError) as exc:
        vault.delete("ghost")
    assert exc.value.code == "SecretNotFound"


def test_lists_are_sorted_and_paged_by_marker(vault: Vault) -> None:
    for name in ["charlie", "Alpha", "bravo", "delta", "echo"]:
        vault.set_secret(name, "v")
    first = vault.list_secrets(None, 2)
    assert [s.name for s in first.items] == ["Alpha", "bravo"]
    assert first.next_marker == "bravo"
    vault.set_secret("aardvark", "v")  # sorts before the marker: not on later pages
    second = vault.list_secrets(first.next_marker, 2)
    assert [s.name for s in second.items] == ["charlie", "delta"]
    third = vault.list_secrets(second.next_marker, 2)
    assert [s.name for s in third.items] == ["echo"]
    assert third.next_marker is None


def test_versions_of_unknown_secret_is_an_empty_list(vault: Vault) -> None:
    page = vault.list_versions("ghost", None, 25)
    assert (page.items, page.next_marker) == ([], None)


def test_snapshot_round_trip_keeps_everything(vault: Vault, clock: ManualClock) -> None:
    _, old = vault.set_secret("s", "one", content_type="t", tags={"a": "b"}, expires=T0 + 5)
    vault.set_secret("s", "two")
    vault.update("s", old.version, SecretChanges(enabled=False))
    vault.set_secret("gone", "x")
    vault.delete("gone")
    copy = Vault(clock)
    copy.load_snapshot(vault.snapshot())
    assert copy.snapshot() == vault.snapshot()
    assert copy.get_secret("s")[1].value == "two"
    assert copy.find("s", old.version)[1].enabled is False
    assert copy.get_deleted("gone").secret.current.value == "x"


@pytest.mark.parametrize(
    "snapshot",
    [
        {"format": 99, "secrets": [], "deleted": []},
        {"format": 1, "secrets": [{"name": "s"}], "deleted": []},
        {"format": 1, "secrets": [{"name": "s", "latest": "x", "versions": []}], "deleted": []},
    ],
)
def test_a_malformed_snapshot_is_refused(vault: Vault, snapshot: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="vault file"):
        vault.load_snapshot(snapshot)


def test_reset_forgets_live_and_deleted(vault: Vault) -> None:
    vault.set_secret("a", "v")
    vault.set_secret("b", "v")
    vault.delete("b")
    vault.reset()
    assert len(vault) == 0
    assert vault.list_deleted(None, 25).items == []
