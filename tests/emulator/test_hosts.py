"""Host checking on the real server: a page that reached the emulator under a foreign name
(DNS rebinding) gets Batch's error envelope, from the Batch routes and the controls."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.cli import _key_from_file, main
from batch_emulator.server import EmulatorConfig, EmulatorServer, SharedKeyAuth

API = {"api-version": "2025-06-01"}
# One Batch route and one control route: the check sits in front of both.
PATHS = [("/jobs", API), ("/_emulator/state", {})]


def _get(emu: EmulatorServer, path: str, params: dict[str, str], host: str) -> httpx.Response:
    with httpx.Client(
        base_url=emu.endpoint, auth=SharedKeyAuth(emu.account, emu.key), timeout=30
    ) as client:
        return client.get(path, params=params, headers={"Host": host})


@pytest.mark.parametrize(("path", "params"), PATHS)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "10.9.8.7:{port}"])
def test_a_foreign_host_is_refused_with_the_batch_envelope(
    fresh: EmulatorServer, path: str, params: dict[str, str], host: str
) -> None:
    host = host.format(port=fresh.port)
    response = _get(fresh, path, params, host)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidHeaderValue"
    assert {"key": "HeaderName", "value": "Host"} in body["values"]
    message = body["message"]["value"]
    assert f"The Host header {host!r} does not name this emulator" in message
    assert "--allow-host" in message
    assert "\nRequestId:" in message
    # Our own URLs never carry the foreign name.
    assert body["odata.metadata"].startswith(fresh.endpoint + "/$metadata")
    assert response.headers["request-id"]


def test_a_refused_request_does_nothing(fresh: EmulatorServer) -> None:
    with httpx.Client(
        base_url=fresh.endpoint, auth=SharedKeyAuth(fresh.account, fresh.key), timeout=30
    ) as client:
        refused = client.post(
            "/jobs",
            params=API,
            json={"id": "rebound", "poolInfo": {"poolId": "pool1"}},
            headers={"Host": "evil.example"},
        )
        assert refused.status_code == 400
        assert client.get("/jobs/rebound", params=API).status_code == 404
    assert all(r["path"] != "/jobs" or r["method"] != "POST" for r in fresh.control.requests())


@pytest.mark.parametrize(("path", "params"), PATHS)
@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost"])
def test_loopback_names_with_the_bound_port_are_served(
    fresh: EmulatorServer, path: str, params: dict[str, str], name: str
) -> None:
    response = _get(fresh, path, params, f"{name}:{fresh.port}")
    assert response.status_code == 200, response.text


def test_allowed_hosts_are_served(tmp_path: Path) -> None:
    config = EmulatorConfig(data_dir=tmp_path, allowed_hosts=("batch.internal",))
    with EmulatorServer(config) as emu:
        assert _get(emu, "/jobs", API, "batch.internal:18045").status_code == 200
        assert _get(emu, "/_emulator/state", {}, "batch.internal").status_code == 200
        assert _get(emu, "/jobs", API, "other.internal").status_code == 400


def test_a_bad_allowed_host_fails_at_configuration() -> None:
    with pytest.raises(ValueError, match="allowed_hosts: 'http://x' is not a host name"):
        EmulatorConfig(allowed_hosts=("http://x",))


def _wait_file(path: Path, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"the emulator exited early: {proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            pytest.fail("the emulator did not write its ready file")
        time.sleep(0.02)


def test_serve_with_allow_host_and_a_generated_key_file(tmp_path: Path, h: Any) -> None:
    ready = tmp_path / "ready.json"
    key_file = tmp_path / "keys" / "emulator.key"
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "batch_emulator", "serve",
            "--pool", "p=1x1",
            "--data-dir", str(tmp_path / "data"),
            "--ready-file", str(ready),
            "--key-file", str(key_file),
            "--allow-host", "batch.internal",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "BATCH_EMULATOR_KEY"},
    )  # fmt: skip
    try:
        _wait_file(ready, proc)
        info = json.loads(ready.read_text())
        key = key_file.read_text().strip()
        # A fresh random 64-byte key, readable by its owner only, never in the ready file.
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert len(key) == 88
        assert key != DEFAULT_KEY
        assert info["key_source"] == "file"
        assert info["key_file"] == str(key_file)
        assert "key" not in info
        assert key not in ready.read_text()
        endpoint = info["endpoint"]
        with BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT, key)) as client:
            assert client.get_pool("p").id == "p"
        with BatchClient(endpoint, AzureNamedKeyCredential(DEFAULT_ACCOUNT, DEFAULT_KEY)) as bad:
            with pytest.raises(HttpResponseError) as refused:
                bad.get_pool("p")
            assert refused.value.status_code == 403
        with httpx.Client(
            base_url=endpoint, auth=SharedKeyAuth(DEFAULT_ACCOUNT, key), timeout=30
        ) as raw:
            assert raw.get("/jobs", params=API, headers={"Host": "batch.internal"}).is_success
            assert raw.get("/jobs", params=API, headers={"Host": "evil.example"}).status_code == 400
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    # Started again with the same file, it keeps the key (clients configured with it work).
    assert _key_from_file(key_file) == key


@pytest.mark.parametrize(
    ("content", "message"),
    [("not base64!", "does not hold a base64 key"), (None, "cannot be used")],
)
def test_serve_refuses_an_unusable_key_file(
    tmp_path: Path, content: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "emulator.key"
    if content is None:
        key_file.mkdir()  # a directory cannot be read as a key
    else:
        key_file.write_text(content)
    with pytest.raises(SystemExit) as info:
        main(["serve", "--key-file", str(key_file)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_serve_refuses_a_bad_allow_host(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--allow-host", "http://emulator"])
    assert info.value.code == 2
    assert "--allow-host 'http://emulator' is not a host name" in capsys.readouterr().err
