"""The job-type contract: what services need from a job type, with typed results.

The Polysync product speaks of five verbs per job type (POLYSYNC-CONCEPTS.md §2.1):
discover, submit, poll, cancel, monitor URL. Import, files, pool diagnosis and the
connectivity test complete the set for `Batch Job`.

Services call these with already-resolved parameter values; a job type reads only its
platform's credential, through the secret source it was given (decision 0010).
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from polysync.domain.models import ClonedDefault, Failure, Job, Parameter, Platform, TaskRun


class ProviderStatus(enum.StrEnum):
    """The seed's status vocabulary, decoded per poll (D6)."""

    STARTING = "Starting"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True, slots=True)
class DiscoveredJob:
    id: str
    display_name: str | None
    state: str


@dataclass(frozen=True, slots=True)
class ImportedTemplate:
    """What import learns from a template job (D2)."""

    external_id: str
    display_name: str | None
    parameters: tuple[Parameter, ...]
    cloned_defaults: tuple[ClonedDefault, ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResolvedParam:
    """A parameter value ready to send; ``secret`` decides whether it is redacted."""

    name: str
    value: str
    secret: bool = False


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    platform: Platform
    job: Job
    run: TaskRun  # batch_job_id / batch_task_id already persisted (D5)
    params: tuple[ResolvedParam, ...]  # Input and Input&Output only (D11)
    # Task-level execution timeout, applied as the Batch task maxWallClockTime when the
    # Job has no override and it is tighter than the template's.
    execution_timeout_s: int | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    batch_job_id: str
    batch_task_id: str
    # True when JobExists/TaskExists was answered by an object carrying our fingerprint
    # (a retry after a lost response, or a restart between calls) and we adopted it.
    adopted: bool = False
    warnings: tuple[str, ...] = ()
    # The template's poolInfo.poolId the job was created in; None for an auto pool.
    pool_id: str | None = None


@dataclass(frozen=True, slots=True)
class PollResult:
    status: ProviderStatus
    batch_state: str | None  # the raw Batch task state, for Unknown diagnostics
    exit_code: int | None = None
    failure: Failure | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    node_id: str | None = None
    retry_count: int = 0
    # The run's Batch job or task is gone (deleted outside Polysync).
    missing: bool = False


@dataclass(frozen=True, slots=True)
class CompletedJob:
    """A run's Batch job found completed by a sweep (issue 4)."""

    id: str
    end_time: datetime | None


@dataclass(frozen=True, slots=True)
class NodeTask:
    """A task seen in a compute node's ``recentTasks`` by a node sweep (decision 0009).

    ``decode()`` gives what a ``GET task`` would (D6), from the state and execution info
    the node lists, so a Running or Success seen there needs no poll. It is left to the
    caller: most sightings are tasks already known to run, which need no decoding.
    """

    batch_job_id: str
    batch_task_id: str
    state: str | None  # the Batch task state as listed
    node_id: str | None
    execution: Mapping[str, Any] | None
    decoder: Callable[[NodeTask], PollResult]

    def decode(self) -> PollResult:
        return self.decoder(self)


@dataclass(frozen=True, slots=True)
class NodeSweep:
    """One node sweep: our tasks seen on the nodes, and how many nodes each pool listed."""

    tasks: list[NodeTask]
    nodes: dict[str, int]  # pool id (as asked) -> nodes listed


class CancelOutcome(enum.StrEnum):
    TERMINATED = "terminated"  # we terminated a live task
    ALREADY_DONE = "already-done"  # TaskCompleted / JobCompleted / JobNotFound: nothing to do


@dataclass(frozen=True, slots=True)
class FileChunk:
    data: bytes
    offset: int
    total_size: int | None  # None when the service does not say


@dataclass(frozen=True, slots=True)
class ConnectivityReport:
    ok: bool
    checks: tuple[tuple[str, bool, str], ...] = field(default_factory=tuple)  # (name, ok, detail)


class JobType(Protocol):
    """Implemented by ``polysync.jobtypes.azure_batch.jobtype.BatchJobType``."""

    name: str

    def discover(
        self, platform: Platform, *, id_prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[DiscoveredJob]:
        """Every job of the account (all pages), optionally only ids starting with a prefix.

        ``page_size`` is the ``maxresults`` of each ``GET /jobs`` (default: the service's 1000).
        """
        ...

    async def import_template(self, platform: Platform, external_id: str) -> ImportedTemplate: ...

    async def prepare(self, platform: Platform) -> None:
        """Resolve the platform's credential now (fails before anything is created)."""
        ...

    async def submit(self, request: SubmitRequest) -> SubmitResult: ...

    async def poll(self, platform: Platform, run: TaskRun) -> PollResult: ...

    async def cancel(self, platform: Platform, run: TaskRun) -> CancelOutcome: ...

    async def sweep_completed(
        self, platform: Platform, id_prefix: str, since: datetime
    ) -> list[CompletedJob]:
        """Jobs whose id starts with ``id_prefix`` that completed at or after ``since``."""
        ...

    async def sweep_nodes(
        self, platform: Platform, pool_ids: Collection[str], id_prefix: str
    ) -> NodeSweep:
        """The recent tasks of every node of ``pool_ids`` whose job id starts with the prefix."""
        ...

    def monitor_url(self, platform: Platform, batch_job_id: str) -> str: ...

    async def read_file(
        self,
        platform: Platform,
        run: TaskRun,
        path: str,
        *,
        offset: int = 0,
        length: int | None = None,
    ) -> FileChunk: ...

    async def diagnose_pool(self, platform: Platform, job: Job) -> str | None: ...

    async def test_connectivity(self, platform: Platform) -> ConnectivityReport: ...

    async def aclose(self) -> None: ...
