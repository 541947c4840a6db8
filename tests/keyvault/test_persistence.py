"""With a data directory, the vault survives a restart (written atomically, mode 0600)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.keyvault.helpers import error_codes, secret_client


def test_secrets_survive_a_restart(tmp_path: Path) -> None:
    config = KeyVaultConfig(data_dir=tmp_path)
    with KeyVaultServer(config) as kv, secret_client(kv, "secrets-officer") as client:
        old = client.set_secret("db-pass", "one", tags={"a": "b"}).properties.version
        new = client.set_secret("db-pass", "two").properties.version
        client.update_secret_properties("db-pass", old, enabled=False)
        client.set_secret("gone", "x")
        client.begin_delete_secret("gone").wait()
    vault_file = tmp_path / "vault.json"
    assert stat.S_IMODE(vault_file.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temporary
    with KeyVaultServer(config) as kv, secret_client(kv, "secrets-officer") as client:
        latest = client.get_secret("db-pass")
        assert (latest.value, latest.properties.version) == ("two", new)
        assert latest.id == f"{client.vault_url}/secrets/db-pass/{new}"
        with pytest.raises(HttpResponseError) as info:
            client.get_secret("db-pass", old)
        assert error_codes(info.value) == (403, "Forbidden", "SecretDisabled")
        assert client.get_deleted_secret("gone").name == "gone"
        assert {p.version for p in client.list_properties_of_secret_versions("db-pass")} == {
            old,
            new,
        }


def test_the_file_holds_values_because_it_is_a_local_test_vault(tmp_path: Path) -> None:
    with KeyVaultServer(KeyVaultConfig(data_dir=tmp_path)) as kv:
        kv.set_secret("s", "stored-in-clear")
    data = json.loads((tmp_path / "vault.json").read_text())
    assert data["secrets"][0]["versions"][0]["value"] == "stored-in-clear"


def test_reset_is_persisted(tmp_path: Path) -> None:
    config = KeyVaultConfig(data_dir=tmp_path)
    with KeyVaultServer(config) as kv:
        kv.set_secret("s", "v")
        kv.control.reset()
    with (
        KeyVaultServer(config) as kv,
        secret_client(kv, "secrets-user") as client,
        pytest.raises(ResourceNotFoundError),
    ):
        client.get_secret("s")


def test_without_a_data_dir_nothing_is_kept(tmp_path: Path) -> None:
    with KeyVaultServer(KeyVaultConfig()) as kv:
        kv.set_secret("s", "v")
        assert kv.data_dir is None
        cert = kv.cert_path
        assert cert.exists()
    assert not cert.exists()  # the temporary certificate directory is gone
    with (
        KeyVaultServer(KeyVaultConfig()) as kv,
        secret_client(kv, "secrets-user") as client,
        pytest.raises(ResourceNotFoundError),
    ):
        client.get_secret("s")


def test_a_corrupt_vault_file_stops_the_start(tmp_path: Path) -> None:
    (tmp_path / "vault.json").write_text('{"format": 99}')
    with pytest.raises(ValueError, match="format"):
        KeyVaultServer(KeyVaultConfig(data_dir=tmp_path)).start()
