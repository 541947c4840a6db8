"""The bundle of collaborators every use case needs: settings, store, job type, clock.

Built once per CLI command (or per server process) and closed at the end, so the
job type's Batch clients and the store's engine live exactly as long as the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from polysync.config import Settings, ensure_home
from polysync.domain.models import Job, Platform, Task
from polysync.jobtypes.base import JobType
from polysync.services.writer import DirectWriter, RunWriter
from polysync.store.base import Store

if TYPE_CHECKING:
    from polysync.vaults.resolver import SecretResolver


class Catalog(Protocol):
    """The reads of Platforms, Jobs and Tasks a run needs (the store, or a cache of it)."""

    def get_platform(self, name: str) -> Platform: ...
    def get_job(self, name: str) -> Job: ...
    def get_task(self, name: str) -> Task: ...


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Callable[[], datetime] = utc_now
    _jobtype: JobType | None = field(default=None, repr=False)
    _writer: RunWriter | None = field(default=None, repr=False)
    _catalog: Catalog | None = field(default=None, repr=False)
    _secrets: SecretResolver | None = field(default=None, repr=False)
    # (monotonic time read, RefRules): the declared vaults etc., re-read every few seconds
    # by ``services.secrets.rules`` (which owns it; ``forget_rules`` drops it).
    rules_cache: tuple[float, Any] | None = field(default=None, repr=False)

    @property
    def writer(self) -> RunWriter:
        """Where run changes go: one transaction each unless a worker groups them."""
        if self._writer is None:
            self._writer = DirectWriter(self.store)
        return self._writer

    @property
    def catalog(self) -> Catalog:
        """Platform/Job/Task reads: the store itself unless a worker caches them."""
        return self._catalog if self._catalog is not None else self.store

    def use_writer(self, writer: RunWriter | None) -> RunWriter | None:
        """Install ``writer`` (None: back to direct writes); returns the previous one."""
        previous, self._writer = self._writer, writer
        return previous

    def use_catalog(self, catalog: Catalog | None) -> Catalog | None:
        previous, self._catalog = self._catalog, catalog
        return previous

    @property
    def secrets(self) -> SecretResolver:
        """This process's secret resolver (vaults and host references, decision 0010)."""
        if self._secrets is None:
            # Imported lazily, like the job type: reads need no Azure SDK.
            from polysync.vaults.resolver import SecretResolver

            self._secrets = SecretResolver(
                self.store.get_vault, ttl_s=self.settings.secret_cache_ttl_s
            )
        return self._secrets

    def use_secrets(self, resolver: SecretResolver) -> None:
        self._secrets = resolver

    @property
    def jobtype(self) -> JobType:
        # Imported lazily: commands that never talk to Batch (list, show) should not pay
        # for importing the Azure SDK.
        if self._jobtype is None:
            from polysync.jobtypes.azure_batch.jobtype import BatchJobType

            self._jobtype = BatchJobType(secrets=self.secrets)
        return self._jobtype

    def use_jobtype(self, jobtype: JobType) -> None:
        self._jobtype = jobtype

    async def aclose(self) -> None:
        if self._jobtype is not None:
            await self._jobtype.aclose()
            self._jobtype = None
        if self._secrets is not None:
            await self._secrets.aclose()

    def close(self) -> None:
        self.store.close()


def open_services(settings: Settings) -> Services:
    from polysync.store.sql import SqlStore

    ensure_home(settings)
    return Services(settings=settings, store=SqlStore.open(settings.database_url))
