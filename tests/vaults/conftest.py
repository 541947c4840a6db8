"""Secret Vault tests: the real Batch emulator, the local Key Vault, a real SQLite store.

The vault is reached through the official ``azure-keyvault-secrets`` client over TLS with
the bearer challenge (``keyvault_emulator``); its bearer token is a host reference of the
test, as an admin would keep it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from azure.batch import BatchClient

from batch_emulator.server import EmulatorServer, PoolSeed
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from polysync.config import load_settings
from polysync.services.context import Services, open_services
from polysync.vaults.resolver import SecretResolver
from tests.support import running_emulator, sdk_client


class FakeMonotonic:
    """The resolver's clock: monotonic seconds that only move when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    with running_emulator(tmp_path_factory.mktemp("emulator"), PoolSeed("pool1", 1, 8)) as emu:
        yield emu


@pytest.fixture(scope="module")
def kv() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig()) as server:
        yield server


@pytest.fixture
def batch(emulator: EmulatorServer) -> Iterator[BatchClient]:
    with sdk_client(emulator) as client:
        yield client


@pytest.fixture
def clock() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
async def svc(
    tmp_path: Path, emulator: EmulatorServer, kv: KeyVaultServer, clock: FakeMonotonic
) -> AsyncIterator[Services]:
    kv.control.reset()
    emulator.control.clear_requests()
    services = open_services(load_settings({"home": tmp_path / "home"}, environ={}))
    # No retries against the vault: a failure path answers at once.
    services.use_secrets(
        SecretResolver(
            services.store.get_vault, ttl_s=60.0, clock=clock, client_kwargs={"retry_total": 0}
        )
    )
    yield services
    await services.aclose()
    services.close()
