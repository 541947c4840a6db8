"""``SecretResolver``: reads every kind of reference, caches values for a short time.

Why a cache: a worker submitting 5,000 runs whose platform key lives in a vault must
not make 5,000 vault reads (decision 0010 §5). Each reference is read at most once per
``ttl_s`` (one read in flight per reference; concurrent callers wait for it), so a
rotated secret is used by the first submission after its entry expires. Values live
only in this process's memory and each is registered with the redactor.

A vault's own credential may be a reference too (a service-principal secret kept in
another vault, or on the host): it is resolved through this same resolver, and a chain
that comes back to a vault already being opened is refused rather than recursed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from polysync.domain.models import SecretRef, SecretVault
from polysync.domain.secrets import REDACTOR, auth_references
from polysync.errors import NotFoundError, SecretError
from polysync.identity import token_credential
from polysync.vaults import host
from polysync.vaults.checks import VaultCheck
from polysync.vaults.keyvault import KeyVaultProvider

log = logging.getLogger(__name__)

DEFAULT_TTL_S = 300.0

VaultLookup = Callable[[str], SecretVault]


class SecretSource(Protocol):
    """What needs secrets (the job type, the services) asks of a resolver."""

    async def resolve(self, ref: SecretRef) -> str: ...


@dataclass(slots=True)
class _Entry:
    value: str
    expires_at: float


@dataclass(slots=True)
class ResolverStats:
    """Reads that reached the source (cache misses), by kind; for metrics and benchmarks."""

    reads: dict[str, int] = field(default_factory=lambda: {"vault": 0, "env": 0, "file": 0})
    hits: int = 0


class SecretResolver:
    """Resolves ``vault://``, ``env:`` and ``file:`` references (see the module doc).

    ``lookup_vault(name)`` returns the declared vault (``NotFoundError`` when there is
    none); ``clock`` is monotonic seconds (tests drive it); ``environ`` replaces
    ``os.environ`` for ``env:`` references; ``client_kwargs`` go to each Key Vault client.
    """

    def __init__(
        self,
        lookup_vault: VaultLookup,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        environ: Mapping[str, str] | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        self._lookup = lookup_vault
        self.ttl_s = ttl_s
        self._clock = clock
        self._environ = environ
        self._client_kwargs = dict(client_kwargs or {})
        self._cache: dict[str, _Entry] = {}
        self._flights: dict[str, asyncio.Lock] = {}
        self._providers: dict[str, tuple[SecretVault, dict[str, str], KeyVaultProvider]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.stats = ResolverStats()

    # -------------------------------------------------------------------- resolving

    async def resolve(self, ref: SecretRef) -> str:
        """The value ``ref`` points at (from the cache while fresh)."""
        return await self._resolve(ref, opening=frozenset())

    async def _resolve(self, ref: SecretRef, *, opening: frozenset[str]) -> str:
        self._check_loop()
        key = str(ref)
        entry = self._cache.get(key)
        if entry is not None and entry.expires_at > self._clock():
            self.stats.hits += 1
            return entry.value
        lock = self._flights.get(key)
        if lock is None:
            lock = self._flights[key] = asyncio.Lock()
        async with lock:
            entry = self._cache.get(key)
            if entry is not None and entry.expires_at > self._clock():
                self.stats.hits += 1
                return entry.value
            value = await self._read(ref, opening)
            REDACTOR.add(value)
            self._cache[key] = _Entry(value, self._clock() + self.ttl_s)
            return value

    async def _read(self, ref: SecretRef, opening: frozenset[str]) -> str:
        self.stats.reads[ref.kind] = self.stats.reads.get(ref.kind, 0) + 1
        if ref.is_host:
            return host.read(ref, environ=self._environ)
        # parse_ref guarantees both parts of a vault reference.
        assert ref.vault is not None
        assert ref.secret is not None
        provider = await self._provider(ref.vault, opening)
        return await provider.get(ref.secret, ref.version)

    def forget(self, ref: SecretRef | None = None) -> None:
        """Drop one cached value (or all): the next use reads the source again."""
        if ref is None:
            self._cache.clear()
        else:
            self._cache.pop(str(ref), None)

    # -------------------------------------------------------------------- vaults

    def _vault(self, name: str) -> SecretVault:
        try:
            return self._lookup(name)
        except NotFoundError:
            raise SecretError(
                f"there is no Secret Vault named {name!r}: add it with `polysync vault add "
                f"{name} --url ...`, or fix the reference."
            ) from None

    async def _provider(self, name: str, opening: frozenset[str]) -> KeyVaultProvider:
        vault = self._vault(name)
        key = vault.name.lower()
        if key in opening:
            raise SecretError(
                f"the credential of vault {vault.name!r} refers back to vault {vault.name!r}: "
                "keep a vault's own credential outside itself."
            )
        # The vault's own credential, through this resolver (cached like any secret).
        inner = opening | {key}
        values = {
            str(r): await self._resolve(r, opening=inner) for r in auth_references(vault.auth)
        }
        current = self._providers.get(key)
        # The same settings and credential values: the client in hand still fits (a
        # rotated credential, once re-read, rebuilds it).
        if current is not None and current[0] == vault and current[1] == values:
            return current[2]
        if current is not None:
            del self._providers[key]
            await current[2].aclose()
        provider = self._new_provider(vault, values)
        self._providers[key] = (vault, values, provider)
        return provider

    def _new_provider(self, vault: SecretVault, values: Mapping[str, str]) -> KeyVaultProvider:
        """A client of ``vault`` whose credential reads its secrets from ``values``."""
        credential = token_credential(
            f"vault {vault.name!r}",
            vault.auth,
            lambda r: values[str(r)],
            f"set it again with `polysync vault add {vault.name} ... --replace`",
        )
        return KeyVaultProvider(vault, credential, client_kwargs=self._client_kwargs)

    async def test_vault(self, vault: SecretVault) -> list[VaultCheck]:
        """Reach ``vault`` and list one secret name; reads no secret value of the vault."""
        checks: list[VaultCheck] = []
        try:
            values = {str(r): await self.resolve(r) for r in auth_references(vault.auth)}
            provider = self._new_provider(vault, values)
        except SecretError as exc:
            return [VaultCheck("credential", False, str(exc))]
        checks.append(VaultCheck("credential", True, f"{vault.auth.mode.value} credential built"))
        try:
            checks.extend(await provider.test())
        finally:
            await provider.aclose()
        return checks

    # -------------------------------------------------------------------- lifecycle

    def _check_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Locks and aiohttp sessions belong to the loop that made them (a CLI command
            # may run several); values stay cached, clients are rebuilt on the new loop.
            if self._providers:
                log.debug("SecretResolver moved to a new event loop: vault clients rebuilt")
            self._providers = {}
            self._flights = {}
            self._loop = loop

    async def aclose(self) -> None:
        providers = [p for _, _, p in self._providers.values()]
        self._providers.clear()
        for provider in providers:
            try:
                await provider.aclose()
            except Exception:  # closing must go on for the other vaults
                log.debug("closing vault %s failed", provider.vault.name, exc_info=True)
