"""Shared fixtures of the Key Vault emulator tests.

``kv`` is one real server (uvicorn on a thread, TLS on 127.0.0.1) per module, driven by a
:class:`ManualClock`; ``fresh`` resets it before a test. Clients are the real
``azure.keyvault.secrets`` ``SecretClient`` built exactly as Polysync will build them:
the vault URL, a credential carrying a role's token, and ``kv.client_options()`` (the
two loopback options, nothing else). ``raw`` is an httpx client trusting the emulator's
certificate, for wire details the SDK hides.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from azure.keyvault.secrets import SecretClient

from keyvault_emulator.clock import ManualClock
from keyvault_emulator.server import KeyVaultConfig, KeyVaultServer
from tests.keyvault.helpers import START, raw_client, secret_client


@pytest.fixture(scope="module")
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture(scope="module")
def kv(clock: ManualClock) -> Iterator[KeyVaultServer]:
    with KeyVaultServer(KeyVaultConfig(clock=clock)) as server:
        yield server


@pytest.fixture
def fresh(kv: KeyVaultServer, clock: ManualClock) -> KeyVaultServer:
    kv.control.reset()
    clock.set(START)
    return kv


@pytest.fixture
def officer(fresh: KeyVaultServer) -> Iterator[SecretClient]:
    with secret_client(fresh, "secrets-officer") as client:
        yield client


@pytest.fixture
def user(fresh: KeyVaultServer) -> Iterator[SecretClient]:
    with secret_client(fresh, "secrets-user") as client:
        yield client


@pytest.fixture
def reader(fresh: KeyVaultServer) -> Iterator[SecretClient]:
    with secret_client(fresh, "reader", retry_total=0) as client:
        yield client


@pytest.fixture
def raw(fresh: KeyVaultServer) -> Iterator[httpx.Client]:
    with raw_client(fresh) as client:
        yield client
