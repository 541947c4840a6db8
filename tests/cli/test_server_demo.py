"""`polysync server` start-up: the demo's emulator never takes the published key; a bad
`code_overrides_role` stops the start."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import EmulatorConfig, EmulatorServer
from polysync.cli import demo
from polysync.cli.runtime import session
from polysync.cli.server import _demo_setup
from polysync.errors import InputError
from tests.cli.conftest import Cli


@pytest.fixture
def home_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("POLYSYNC_DATABASE_URL", "POLYSYNC_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _demo_key(home_env: pytest.MonkeyPatch, home: Path) -> tuple[str, str]:
    """Run the set-up in ``home``; (endpoint, key) checked while its emulator runs."""
    home_env.setenv("POLYSYNC_HOME", str(home))
    with _demo_setup(_free_port()):
        key_file = home / "local-emulator.key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        with session() as s:
            endpoint = s.services.store.get_platform("local").account_url
        with BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT, key)) as client:
            assert client.get_job(demo.TEMPLATE_ID).id == demo.TEMPLATE_ID
        # The published development key is refused by the demo's own emulator.
        published = AzureNamedKeyCredential(DEFAULT_ACCOUNT, DEFAULT_KEY)
        with BatchClient(endpoint, published) as bad, pytest.raises(HttpResponseError) as refused:
            bad.get_job(demo.TEMPLATE_ID)
        assert refused.value.status_code == 403
        assert refused.value.error is not None
        assert refused.value.error.code == "AuthenticationFailed"
    return endpoint, key


def test_each_demo_set_up_gets_its_own_random_key(
    tmp_path: Path, home_env: pytest.MonkeyPatch
) -> None:
    _, first = _demo_key(home_env, tmp_path / "a")
    _, second = _demo_key(home_env, tmp_path / "b")
    assert first != second
    assert DEFAULT_KEY not in (first, second)
    assert len(first) == len(second) == 88  # 64 random bytes, base64, like a Batch key


def test_a_port_taken_by_an_emulator_with_another_key_is_an_error(
    tmp_path: Path, home_env: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home_env.setenv("POLYSYNC_HOME", str(home))
    other = EmulatorConfig(key=DEFAULT_KEY, data_dir=tmp_path / "other")
    with EmulatorServer(other) as emu:
        port = emu.port
        with pytest.raises(InputError) as refused, _demo_setup(port):
            pytest.fail("the set-up used an emulator whose key it does not know")
    message = str(refused.value)
    assert f"something already listens on 127.0.0.1:{port}" in message
    assert f"--key-file {home / 'local-emulator.key'}" in message
    assert "--emulator-port" in message
    # Nothing half-made: no key written, no platform registered.
    assert not (home / "local-emulator.key").exists()
    with session() as s:
        assert s.services.store.list_platforms() == []


def test_an_emulator_holding_the_home_key_is_used(
    tmp_path: Path, home_env: pytest.MonkeyPatch
) -> None:
    """`batch-emulator serve --key-file {home}/local-emulator.key` then `server --demo`."""
    from batch_emulator.keys import generate_key, write_key_file

    home = tmp_path / "home"
    home_env.setenv("POLYSYNC_HOME", str(home))
    key = generate_key()
    write_key_file(home / "local-emulator.key", key)
    emu = EmulatorServer(EmulatorConfig(key=key, data_dir=tmp_path / "emu"))
    with emu, _demo_setup(emu.port), session() as s:
        assert s.services.store.get_platform("local").account_url == emu.endpoint
        assert s.services.store.get_task(demo.TASK).job == demo.TEMPLATE_ID
    assert (home / "local-emulator.key").read_text().strip() == key  # not replaced


def test_server_refuses_to_start_with_a_bad_code_overrides_role(cli: Cli) -> None:
    home = Path(cli.env["POLYSYNC_HOME"])
    home.mkdir(parents=True)
    (home / "config.toml").write_text('[server]\ncode_overrides_role = "viewer"\n')
    result = cli("server", "--port", str(_free_port()), timeout=60)
    assert result.code == 2
    said = " ".join(result.stderr.split())
    assert "[server] code_overrides_role = 'viewer' is not valid" in said
    assert 'use "admin" (the default) or "operator".' in said
