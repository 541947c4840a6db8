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
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed

KEY_ENV = "POLYSYNC_TEST_BATCH_KEY"
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    config = EmulatorConfig(
        host="127.0.0.1",
        port=0,
        account=DEFAULT_ACCOUNT,
        key=DEFAULT_KEY,
        data_dir=tmp_path_factory.mktemp("emulator"),
        pools=(PoolSeed("pool1", nodes=2, slots=4),),
    )
    with EmulatorServer(config) as emu:
        yield emu


@pytest.fixture
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    client = BatchClient(emulator.endpoint, AzureNamedKeyCredential(emulator.account, emulator.key))
    yield client
    client.close()


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
    """A template Batch Job as users keep them: pool, constraints, env and a first task."""
    constraints = (
        models.BatchJobConstraints(max_wall_clock_time=max_wall_clock) if max_wall_clock else None
    )
    batch.create_job(
        models.BatchJobCreateOptions(
            id=job_id,
            display_name=display_name or f"template {job_id}",
            pool_info=models.BatchPoolInfo(pool_id=pool_id),
            constraints=constraints,
            common_environment_settings=[
                models.EnvironmentSetting(name=k, value=v) for k, v in (env or {}).items()
            ],
        )
    )
    batch.create_task(
        job_id, models.BatchTaskCreateOptions(id="template-task", command_line=command_line)
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
