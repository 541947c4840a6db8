"""Fixtures for end-to-end CLI tests: a real emulator server and `polysync` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient

from batch_emulator import DEFAULT_KEY
from batch_emulator.server import EmulatorServer, PoolSeed
from tests.support import create_template, running_emulator, sdk_client

KEY_ENV = "POLYSYNC_TEST_BATCH_KEY"
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with running_emulator(tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 2, 4)) as emu:
        yield emu


@pytest.fixture
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


def make_template(
    batch: BatchClient,
    job_id: str,
    command_line: str,
    *,
    env: Mapping[str, str] | None = None,
    pool_id: str = "pool1",
    max_wall_clock: timedelta | None = timedelta(minutes=10),
    display_name: str | None = None,
) -> None:
    """A template Batch Job with the given id (see ``tests.support.create_template``)."""
    create_template(
        batch,
        command_line,
        job_id=job_id,
        env=env,
        pool_id=pool_id,
        max_wall_clock=max_wall_clock,
        display_name=display_name,
    )


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSYNC_")}
    env.update(
        POLYSYNC_HOME=str(tmp_path / "home"),
        POLYSYNC_LOG_LEVEL="DEBUG",
        COLUMNS="200",
        NO_COLOR="1",
        **{KEY_ENV: DEFAULT_KEY},
    )
    return env


class Cli:
    """Runs `python -m polysync` in a subprocess and keeps every result (for the leak scan)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.transcript: list[Result] = []

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, timeout: float = 90
    ) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "polysync", *args],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        self.transcript.append(result)
        return result


@pytest.fixture
def cli(cli_env: dict[str, str]) -> Cli:
    return Cli(cli_env)


@pytest.fixture
def local_platform(cli: Cli, emulator: EmulatorServer) -> str:
    result = cli(
        "platform", "add", "local",
        "--account-url", emulator.endpoint,
        "--account-name", emulator.account,
        "--subscription-id", SUBSCRIPTION,
        "--resource-group", "rg-test",
        "--auth", "shared-key",
        "--key-env", KEY_ENV,
    )  # fmt: skip
    assert result.code == 0, result.stderr
    return "local"
