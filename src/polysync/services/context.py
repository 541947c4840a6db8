"""The bundle of collaborators every use case needs: settings, store, job type, clock.

Built once per CLI command (or per server process) and closed at the end, so the
job type's Batch clients and the store's engine live exactly as long as the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from polysync.config import Settings, ensure_home
from polysync.jobtypes.base import JobType
from polysync.store.base import Store


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    store: Store
    clock: Callable[[], datetime] = utc_now
    _jobtype: JobType | None = field(default=None, repr=False)

    @property
    def jobtype(self) -> JobType:
        # Imported lazily: commands that never talk to Batch (list, show) should not pay
        # for importing the Azure SDK.
        if self._jobtype is None:
            from polysync.jobtypes.azure_batch.jobtype import BatchJobType

            self._jobtype = BatchJobType()
        return self._jobtype

    def use_jobtype(self, jobtype: JobType) -> None:
        self._jobtype = jobtype

    async def aclose(self) -> None:
        if self._jobtype is not None:
            await self._jobtype.aclose()
            self._jobtype = None

    def close(self) -> None:
        self.store.close()


def open_services(settings: Settings) -> Services:
    from polysync.store.sql import SqlStore

    ensure_home(settings)
    return Services(settings=settings, store=SqlStore.open(settings.database_url))
