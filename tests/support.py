"""Shared test helpers: an emulator server, an SDK client for arranging, template jobs.

Tests of every layer (CLI, services, API, console) need the same three things from the
emulator; they live here once, and each directory's conftest picks its pools.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from azure.batch import BatchClient, models
from azure.core.credentials import AzureNamedKeyCredential

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import EmulatorConfig, EmulatorServer, PoolSeed
from keyvault_emulator.server import KeyVaultServer
from polysync.domain.models import AuthMode, SecretRef
from polysync.domain.secrets import Writer
from polysync.services import platforms as platform_service
from polysync.services import vaults as vault_service
from polysync.services.context import Services

SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


class StaticSecrets:
    """A secret source answering from a dict keyed by ``str(ref)`` (``default`` for any
    other reference): what the job type reads platform credentials through, in tests."""

    def __init__(self, values: Mapping[str, str] | None = None, default: str | None = None):
        self.values = dict(values or {})
        self.default = default
        self.reads = 0

    async def resolve(self, ref: SecretRef) -> str:
        self.reads += 1
        if str(ref) in self.values:
            return self.values[str(ref)]
        if self.default is None:
            raise KeyError(str(ref))
        return self.default


def emulator_config(data_dir: Path, *pools: PoolSeed, **extra: object) -> EmulatorConfig:
    """A free loopback port, the default account and key; ``extra``: other config fields."""
    return EmulatorConfig(
        host="127.0.0.1",
        port=0,
        account=DEFAULT_ACCOUNT,
        key=DEFAULT_KEY,
        data_dir=data_dir,
        pools=pools,
        **extra,  # type: ignore[arg-type]  # EmulatorConfig fields, checked at run time
    )


@contextmanager
def running_emulator(data_dir: Path, *pools: PoolSeed) -> Iterator[EmulatorServer]:
    """A real emulator server on a free loopback port, with the default account and key."""
    with EmulatorServer(emulator_config(data_dir, *pools)) as emu:
        yield emu


def add_emulator_platform(
    svc: Services, emulator: EmulatorServer, key_env: str, *, resource_group: str = "rg"
) -> None:
    """The emulator as platform ``local``, its key read from the ``key_env`` reference."""
    platform_service.add_platform(
        svc,
        platform_service.PlatformInput(
            name="local",
            account_url=emulator.endpoint,
            account_name=emulator.account,
            subscription_id=SUBSCRIPTION,
            resource_group=resource_group,
            key_env=key_env,
        ),
        writer=Writer.HOST,
    )


def add_local_vault(
    svc: Services,
    kv: KeyVaultServer,
    token_dir: Path,
    *,
    name: str = "kv",
    role: str = "secrets-user",
    url: str | None = None,
    task_secrets: tuple[str, ...] = ("*",),
) -> None:
    """The local Key Vault as Secret Vault ``name``: bearer token of ``role`` in a 0600 file
    (a host reference, as an admin would keep it), the emulator's certificate trusted."""
    token_file = token_dir / f"{name}-{role}.token"
    token_file.write_text(kv.tokens[role] + "\n")
    token_file.chmod(0o600)
    vault_service.add_vault(
        svc,
        vault_service.VaultInput(
            name=name,
            url=url or kv.url,
            auth=AuthMode.BEARER_TOKEN,
            token_file=str(token_file),
            ca_bundle=str(kv.cert_path),
            task_secrets=task_secrets,
        ),
        writer=Writer.HOST,
        replace_existing=True,
    )


@contextmanager
def sdk_client(emulator: EmulatorServer) -> Iterator[BatchClient]:
    """The official sync SDK, for arranging templates and checking what Batch holds."""
    client = BatchClient(emulator.endpoint, AzureNamedKeyCredential(emulator.account, emulator.key))
    try:
        yield client
    finally:
        client.close()


def create_template(
    batch: BatchClient,
    command_line: str,
    *,
    job_id: str | None = None,
    prefix: str = "tpl",
    env: Mapping[str, str] | None = None,
    pool_id: str = "pool1",
    max_wall_clock: timedelta | None = timedelta(minutes=10),
    display_name: str | None = None,
    task_id: str = "template-task",
) -> str:
    """A template Batch Job as users keep them: pool, constraints, env and a first task."""
    job_id = job_id or f"{prefix}-{uuid.uuid4().hex[:8]}"
    batch.create_job(
        models.BatchJobCreateOptions(
            id=job_id,
            display_name=display_name or f"template {job_id}",
            pool_info=models.BatchPoolInfo(pool_id=pool_id),
            constraints=models.BatchJobConstraints(max_wall_clock_time=max_wall_clock)
            if max_wall_clock
            else None,
            common_environment_settings=[
                models.EnvironmentSetting(name=k, value=v) for k, v in (env or {}).items()
            ],
        )
    )
    batch.create_task(job_id, models.BatchTaskCreateOptions(id=task_id, command_line=command_line))
    return job_id


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, *, interval_s: float = 0.05
) -> None:
    """Poll ``condition`` with a deadline (for other processes' progress); fail naming it."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
