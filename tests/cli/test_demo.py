"""`polysync demo`, the embedded default, as the README's first command runs it."""

from __future__ import annotations

import socket
from pathlib import Path

from batch_emulator import DEFAULT_KEY
from batch_emulator.keys import generate_key, write_key_file
from batch_emulator.server import EmulatorConfig, EmulatorServer
from tests.cli.conftest import Cli


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_demo_shows_success_failure_and_cancel_and_is_rerunnable(cli: Cli) -> None:
    port = str(_free_port())
    first = cli("demo", "--port", port, timeout=120)
    assert first.code == 0, first.stderr
    out = first.stdout
    assert "Hello, Polysync!" in out  # the task's stdout, printed by the demo
    assert "FailureExitCode" in out
    assert "demo: failing on purpose with exit code 3" in out  # stderr tail of the failure
    assert "ended Succeeded, Failed, Cancelled, Succeeded" in out
    assert "portal.azure.com/#resource/subscriptions/" in out
    # Step 9: a Secret parameter from the local Key Vault reached the task (its hash
    # matched the vault's value) and was recorded only as ***.
    assert "Vault local-kv is reachable and may list secret names" in out
    assert "API_TOKEN │ vault://local-kv/demo-api-token" in out
    assert "That is the start of the SHA-256 of the value in the vault" in out
    assert "API_TOKEN=***" in out

    again = cli("demo", "--port", port, timeout=120)
    assert again.code == 0, again.stderr
    assert "Updated job demo-template" in again.stdout
    runs = cli("run", "list", "--no-refresh", "-o", "json").json()
    assert [r["state"] for r in runs] == ["Succeeded", "Cancelled", "Failed", "Succeeded"] * 2


def test_keep_exploring_with_an_emulator_holding_the_demo_key(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """The README's flow: `batch-emulator serve --key-file {home}/local-emulator.key` in
    another terminal, then the demo and commands on `local` use that emulator."""
    key_file = Path(cli_env["POLYSYNC_HOME"]) / "local-emulator.key"
    key = generate_key()
    write_key_file(key_file, key)
    with EmulatorServer(EmulatorConfig(key=key, data_dir=tmp_path / "emu")) as emu:
        result = cli("demo", "--port", str(emu.port), timeout=120)
        assert result.code == 0, result.stderr
        assert f"Using the emulator already listening on {emu.endpoint}" in result.stdout
        assert "ended Succeeded, Failed, Cancelled, Succeeded" in result.stdout
        assert f"--key-file {key_file}" in result.stdout  # the hint names the same file
        run = cli("task", "run", "hello", "--param", "NAME=you", timeout=60)
        assert run.code == 0, run.stderr
        assert emu.app.backend.jobs  # the runs went to this emulator
    assert key_file.read_text().strip() == key


def test_the_demo_refuses_an_emulator_whose_key_it_does_not_know(
    cli: Cli, cli_env: dict[str, str], tmp_path: Path
) -> None:
    with EmulatorServer(EmulatorConfig(key=DEFAULT_KEY, data_dir=tmp_path / "emu")) as emu:
        port = emu.port
        result = cli("demo", "--port", str(port), timeout=60)
    assert result.code == 2
    key_file = Path(cli_env["POLYSYNC_HOME"]) / "local-emulator.key"
    said = " ".join(result.stderr.split())  # the terminal may wrap the sentence
    assert f"something already listens on 127.0.0.1:{port}" in said
    assert f"`batch-emulator serve --port {port} --key-file {key_file}`" in said
    assert "choose another port with --port" in said
    assert not key_file.exists()
