"""`polysync vault …` in a subprocess, against the local Key Vault (issue 10, acceptance 6)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.cli.conftest import Cli


@pytest.fixture(scope="module")
def kv() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


def one_sentence(stderr: str) -> str:
    """The error line (the CLI of these tests logs at DEBUG, so other lines come first)."""
    said = " ".join(stderr.split())
    assert "error: " in said, said
    assert "Traceback" not in said
    return said[said.index("error: ") :]


def test_vault_lifecycle(cli: Cli, kv: KeyVaultServer, tmp_path: Path) -> None:
    token = tmp_path / "kv.token"
    token.write_text(kv.tokens["secrets-user"])
    token.chmod(0o600)
    added = cli(
        "vault", "add", "kv", "--url", kv.url, "--auth", "bearer-token",
        "--token-file", str(token), "--ca-bundle", str(kv.cert_path), "--task-secrets", "etl-*",
    )  # fmt: skip
    assert added.code == 0, added.stderr
    assert "refer to its secrets as vault://kv/SECRET" in " ".join(added.stdout.split())

    shown = cli("vault", "show", "kv", "-o", "json").json()
    assert shown["auth"]["secret_ref"] == f"file:{token.resolve()}"
    assert shown["task_secrets"] == ["etl-*"]
    assert shown["used_by"] == []
    assert [v["name"] for v in cli("vault", "list", "-o", "json").json()] == ["kv"]

    kv.control.clear_requests()
    tested = cli("vault", "test", "kv")
    assert tested.code == 0, tested.stdout
    assert "Vault kv is reachable and may list secret names" in tested.stdout
    assert kv.control.count("GetSecret") == 0  # `vault test` reads no secret value

    removed = cli("vault", "remove", "kv")
    assert removed.code == 0, removed.stderr
    assert cli("vault", "list", "-o", "json").json() == []
    everything = "".join(r.stdout + r.stderr for r in cli.transcript)
    assert kv.tokens["secrets-user"] not in everything


def test_vault_test_says_what_is_missing_and_exits_3(
    cli: Cli, kv: KeyVaultServer, tmp_path: Path
) -> None:
    token = tmp_path / "reader.token"
    token.write_text("a-token-the-vault-does-not-know")
    assert cli(
        "vault", "add", "wrong", "--url", kv.url, "--auth", "bearer-token",
        "--token-file", str(token), "--ca-bundle", str(kv.cert_path),
    ).code == 0  # fmt: skip
    tested = cli("vault", "test", "wrong", "-o", "json")
    assert tested.code == 3
    report = tested.json()
    assert report["ok"] is False
    assert "did not accept Polysync's token (401)" in report["checks"][-1]["detail"]
    assert "a-token-the-vault" not in tested.stdout + tested.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--url", "http://kv.vault.azure.net/"), "Key Vault needs https"),
        (("--url", "https://kv.vault.azure.net/x"), "no path, query or fragment"),
        (
            ("--url", "https://kv.vault.azure.net/", "--auth", "shared-key"),
            "authenticates with Entra ID",
        ),
        (("--url", "https://kv.vault.azure.net/", "--auth", "bearer-token"), "needs --token"),
        (
            ("--url", "https://kv.vault.azure.net/", "--auth", "bearer-token", "--token", "x1y2z3"),
            "never the value itself",
        ),
        (
            ("--url", "https://kv.vault.azure.net/", "--auth", "bearer-token", "--token", "vault://bad/x"),
            "cannot be kept in vault bad",
        ),
        (("--url", "https://kv.vault.azure.net/", "--task-secrets", "a/b"), "is not valid"),
    ],
)  # fmt: skip
def test_vault_add_refuses_in_one_sentence(cli: Cli, args: tuple[str, ...], fragment: str) -> None:
    result = cli("vault", "add", "bad", *args)
    assert result.code == 2, result.stdout + result.stderr
    assert fragment in one_sentence(result.stderr)
    assert "x1y2z3" not in result.stderr
    assert cli("vault", "list", "-o", "json").json() == []


def test_remove_is_refused_while_a_task_refers_to_the_vault(
    cli: Cli, kv: KeyVaultServer, local_platform: str, tmp_path: Path
) -> None:
    token = tmp_path / "kv.token"
    token.write_text(kv.tokens["secrets-user"])
    assert cli(
        "vault", "add", "kv2", "--url", kv.url, "--auth", "bearer-token",
        "--token-file", str(token), "--ca-bundle", str(kv.cert_path),
    ).code == 0  # fmt: skip
    moved = cli(
        "platform", "add", "local", "--account-url", "http://127.0.0.1:9",
        "--account-name", "devaccount", "--subscription-id",
        "11111111-2222-3333-4444-555555555555", "--resource-group", "rg",
        "--key", "vault://kv2/batch-key", "--replace",
    )  # fmt: skip
    assert moved.code == 0, moved.stderr
    refused = cli("vault", "remove", "kv2")
    assert refused.code == 2
    assert "still referred to by platform local" in one_sentence(refused.stderr)
    assert [v["name"] for v in cli("vault", "list", "-o", "json").json()] == ["kv2"]
