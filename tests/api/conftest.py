"""API test fixtures: the real emulator, a real SQLite store, the app in a TestClient."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from azure.batch import BatchClient
from fastapi import FastAPI
from fastapi.testclient import TestClient

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import EmulatorServer, PoolSeed
from polysync.api import tokens
from polysync.api.app import create_app
from polysync.config import Settings, load_settings
from polysync.dispatcher.worker import WorkerOptions
from tests.support import SUBSCRIPTION, create_template, running_emulator, sdk_client

KEY_ENV = "POLYSYNC_API_TEST_KEY"

# The template reads its parameters from the environment, like the demo's.
COMMAND = (
    '/bin/sh -c \'echo "hello $NAME"; sleep "$SLEEP_S"; '
    'if [ "$EXIT_CODE" != 0 ]; then echo "failing with $EXIT_CODE" >&2; fi; '
    'exit "$EXIT_CODE"\''
)
ENV = {"NAME": "world", "SLEEP_S": "0", "EXIT_CODE": "0"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with running_emulator(tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 2, 4)) as emu:
        yield emu


@pytest.fixture(scope="module")
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


def make_template(batch: BatchClient, prefix: str = "tpl") -> str:
    return create_template(batch, COMMAND, prefix=prefix, env=ENV, task_id="t")


def server_settings(home: Path) -> Settings:
    """A server home whose host lets API admins name the emulator key's variable (0010 §3)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'[server]\nhost_references = ["env:{KEY_ENV}"]\n')
    return load_settings({"home": home}, environ={})


@dataclass
class Api:
    app: FastAPI
    client: TestClient
    tokens: dict[str, str]  # role -> token
    endpoint: str

    def headers(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, url: str, role: str = "admin", **kw: Any) -> httpx.Response:
        response: httpx.Response = self.client.get(url, headers=self.headers(role), **kw)
        return response

    def post(self, url: str, role: str = "admin", **kw: Any) -> httpx.Response:
        response: httpx.Response = self.client.post(url, headers=self.headers(role), **kw)
        return response

    def put(self, url: str, role: str = "admin", **kw: Any) -> httpx.Response:
        response: httpx.Response = self.client.put(url, headers=self.headers(role), **kw)
        return response

    def patch(self, url: str, role: str = "admin", **kw: Any) -> httpx.Response:
        response: httpx.Response = self.client.patch(url, headers=self.headers(role), **kw)
        return response

    def delete(self, url: str, role: str = "admin", **kw: Any) -> httpx.Response:
        response: httpx.Response = self.client.delete(url, headers=self.headers(role), **kw)
        return response

    def add_platform(self, name: str = "local") -> dict[str, Any]:
        r = self.post(
            "/api/platforms",
            json={
                "name": name,
                "account_url": self.endpoint,
                "account_name": DEFAULT_ACCOUNT,
                "subscription_id": SUBSCRIPTION,
                "resource_group": "rg-test",
                "key_env": KEY_ENV,
            },
        )
        assert r.status_code == 201, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait_run(
        self, run_id: int, until: Callable[[dict[str, Any]], bool], timeout_s: float = 30
    ) -> dict[str, Any]:
        """Poll GET /api/runs/{id} until ``until(run)`` (bounded by a deadline)."""
        deadline = time.monotonic() + timeout_s
        while True:
            run: dict[str, Any] = self.get(f"/api/runs/{run_id}").json()
            if until(run):
                return run
            assert time.monotonic() < deadline, f"run {run_id} stuck: {run}"
            time.sleep(0.1)


@pytest.fixture
def api(tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Api]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    settings = server_settings(tmp_path / "home")
    app = create_app(settings, start_worker=False, events_interval_s=0.1)
    svc = app.state.services
    made = {role.value: tokens.create_token(svc, role.value, role)[1] for role in tokens.Role}
    with TestClient(app) as client:
        yield Api(app, client, made, emulator.endpoint)


def is_terminal(run: dict[str, Any]) -> bool:
    return run["state"] in ("Succeeded", "Failed", "Cancelled")


@pytest.fixture
def live_server(
    tmp_path: Path, emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    monkeypatch.setenv(KEY_ENV, DEFAULT_KEY)
    settings = server_settings(tmp_path / "home")
    app = create_app(
        settings,
        worker_options=WorkerOptions(sweep_interval_s=0.2, claim_idle_interval_s=0.1),
        events_interval_s=0.1,
    )
    _, token = tokens.create_token(app.state.services, "admin", tokens.Role.ADMIN)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", token
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        assert not thread.is_alive()
