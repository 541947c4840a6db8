"""``BatchJobType``: the `Batch Job` job type, wiring client, plan, status and links.

One ``BatchApi`` (one SDK client) per Platform, created on first use and closed by
``aclose()``. Template jobs are cached with their ETag and re-read on every run with
``If-None-Match`` (D2): a 304 keeps the cached copy, anything else replaces it — so an
updated template pool (the seed's fix for PoolNotFound) is seen by the very next run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from polysync.domain import ids
from polysync.domain.models import JOB_TYPE_BATCH_JOB, Job, Platform, TaskRun
from polysync.domain.secrets import auth_references
from polysync.errors import (
    FingerprintMismatch,
    NotFoundError,
    PlatformError,
    PolysyncError,
    PoolNotFoundError,
    TemplateError,
)
from polysync.jobtypes.azure_batch import links, plan, status
from polysync.jobtypes.azure_batch.client import (
    DEFAULT_RETRY_BACKOFF_S,
    DEFAULT_RETRY_TOTAL,
    JSON,
    BatchApi,
    CallObserver,
)
from polysync.jobtypes.azure_batch.credentials import build_credential
from polysync.jobtypes.base import (
    CancelOutcome,
    CompletedJob,
    ConnectivityReport,
    DiscoveredJob,
    FileChunk,
    ImportedTemplate,
    NodeSweep,
    NodeTask,
    PollResult,
    ProviderStatus,
    SubmitRequest,
    SubmitResult,
)
from polysync.vaults.resolver import SecretResolver, SecretSource

log = logging.getLogger(__name__)

DISCOVER_SELECT: tuple[str, ...] = ("id", "displayName", "state")
TASK_SOURCE_SELECT: tuple[str, ...] = ("id", *plan.COPIED_TASK_FIELDS)
POOL_SELECT: tuple[str, ...] = (
    "id",
    "state",
    "allocationState",
    "allocationStateTransitionTime",
    "currentDedicatedNodes",
    "currentLowPriorityNodes",
    "targetDedicatedNodes",
    "targetLowPriorityNodes",
    "enableAutoScale",
    "autoScaleFormula",
    "autoScaleRun",
    "resizeErrors",
)
STDERR_TAIL_BYTES = 4096
# Cancel: a 409/404 with these codes means there is nothing left to stop (D8).
_TASK_DONE = frozenset({"TaskCompleted", "TaskNotFound", "JobNotFound", "JobCompleted"})
_JOB_DONE = frozenset({"JobCompleted", "JobBeingTerminated", "JobNotFound", "JobBeingDeleted"})
# read_file: the task has no such file (yet, or any more) — an empty read, not an error.
_NO_FILE = frozenset(
    {"FileNotFound", "TaskFilesUnavailable", "TaskFilesCleanedup", "NodeNotFound", "TaskNotFound"}
)


@dataclass(slots=True)
class _Template:
    """A template job as last read, with the ETags for the next conditional read."""

    job: JSON
    etag: str | None
    task: JSON | None = None
    task_etag: str | None = None
    read_at: float = field(default_factory=time.monotonic)


def _pairs(metadata: object) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if isinstance(metadata, Sequence) and not isinstance(metadata, str):
        for item in metadata:
            if isinstance(item, Mapping) and "name" in item:
                out.append((str(item["name"]), str(item.get("value") or "")))
    return out


def _odata_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _odata_datetime(when: datetime) -> str:
    return "DateTime'" + when.strftime("%Y-%m-%dT%H:%M:%S.%fZ") + "'"


def _parse_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


class _Observers:
    """Fans SDK call events out to whoever asked (the worker's metrics)."""

    def __init__(self) -> None:
        self.items: list[CallObserver] = []

    def request(self, platform: str, operation: str) -> None:
        for obs in self.items:
            obs.request(platform, operation)

    def response(self, platform: str, operation: str, status: int) -> None:
        for obs in self.items:
            obs.response(platform, operation, status)


class BatchJobType:
    """The `Batch Job` job type (``polysync.jobtypes.base.JobType``)."""

    name = JOB_TYPE_BATCH_JOB

    def __init__(
        self,
        *,
        secrets: SecretSource | None = None,
        retry_total: int = DEFAULT_RETRY_TOTAL,
        retry_backoff_factor: float = DEFAULT_RETRY_BACKOFF_S,
        stderr_tail_bytes: int = STDERR_TAIL_BYTES,
        client_kwargs: Mapping[str, Any] | None = None,
        template_max_age_s: float = 0.0,
        pool_check_max_age_s: float = 0.0,
    ) -> None:
        # Where platform credentials are read (decision 0010); without one, host
        # references only.
        self._secrets: SecretSource = secrets if secrets is not None else _host_only()
        # The credential values each cached client was built with: a re-read value that
        # differs (a rotated key) rebuilds the client.
        self._credential_values: dict[str, dict[str, str]] = {}
        self._retry_total = retry_total
        self._retry_backoff = retry_backoff_factor
        self._tail_bytes = stderr_tail_bytes
        self._client_kwargs = dict(client_kwargs or {})
        self._apis: dict[str, BatchApi] = {}
        self._templates: dict[tuple[str, str], _Template] = {}
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Read caches for the engine (docs/decisions/0006): 0 = re-read at every run (D2).
        self.template_max_age_s = template_max_age_s
        self.pool_check_max_age_s = pool_check_max_age_s
        self._pools_ok: dict[tuple[str, str], float] = {}
        self._flights: dict[tuple[str, ...], asyncio.Lock] = {}
        self._observers = _Observers()

    def add_call_observer(self, observer: CallObserver) -> None:
        """Count every HTTP call (retries included) from now on, for all platforms."""
        self._observers.items.append(observer)

    def configure_read_cache(
        self, *, template_max_age_s: float, pool_check_max_age_s: float
    ) -> None:
        """Reuse a template read / a pool pre-flight for this long across runs (the worker)."""
        self.template_max_age_s = template_max_age_s
        self.pool_check_max_age_s = pool_check_max_age_s

    # ------------------------------------------------------------------ plumbing

    async def api(self, platform: Platform) -> BatchApi:
        """The cached client of ``platform``, rebuilt when its settings or its credential's
        values change (a secret rotated in its vault is seen once the resolver's cache
        entry expires)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # aiohttp sessions belong to the loop that made them: a new loop (a second
            # asyncio.run) starts with fresh clients. Call aclose() before leaving a loop.
            if self._apis:
                log.warning("BatchJobType reused on a new event loop without aclose()")
            self._apis = {}
            self._credential_values = {}
            self._lock = asyncio.Lock()
            self._flights = {}
            self._loop = loop
        # Resolved outside the lock: a vault read must not hold up other platforms.
        values = {
            str(ref): await self._secrets.resolve(ref) for ref in auth_references(platform.auth)
        }
        async with self._lock:
            current = self._apis.get(platform.name)
            if (
                current is not None
                and current.platform == platform
                and self._credential_values.get(platform.name) == values
            ):
                return current
            if current is not None:
                del self._apis[platform.name]
                await current.aclose()
            credential = build_credential(platform, lambda ref: values[str(ref)])
            api = BatchApi(
                platform,
                credential,
                retry_total=self._retry_total,
                retry_backoff_factor=self._retry_backoff,
                observer=self._observers,
                **self._client_kwargs,
            )
            self._apis[platform.name] = api
            self._credential_values[platform.name] = values
            return api

    async def prepare(self, platform: Platform) -> None:
        """Resolve the platform's credential and build its client (no Batch call).

        Submission calls this first, so a credential that cannot be read fails the run
        before anything is created on Batch.
        """
        await self.api(platform)

    async def aclose(self) -> None:
        async with self._lock:
            apis = list(self._apis.values())
            self._apis.clear()
        for api in apis:
            try:
                await api.aclose()
            except Exception:  # closing must go on for the other platforms
                log.debug("closing the Batch client of %s failed", api.platform.name, exc_info=True)

    @staticmethod
    def _ids(run: TaskRun) -> tuple[str, str]:
        if run.batch_job_id is None or run.batch_task_id is None:
            raise ValueError(f"run {run.id} has no Batch ids yet; persist them before submit (D5)")
        return run.batch_job_id, run.batch_task_id

    # ------------------------------------------------------------------ discovery

    async def discover(
        self, platform: Platform, *, id_prefix: str | None = None, page_size: int | None = None
    ) -> AsyncIterator[DiscoveredJob]:
        """``GET /jobs?$select=id,displayName,state`` following every nextLink (streams).

        ``page_size`` is each page's ``maxresults`` (the service's default is 1000).
        """
        api = await self.api(platform)
        query = f"startswith(id,{_odata_quote(id_prefix)})" if id_prefix else None
        pages = api.list_jobs(select=DISCOVER_SELECT, filter=query, max_results=page_size)
        async for job in pages:
            yield DiscoveredJob(
                id=str(job.get("id", "")),
                display_name=job.get("displayName"),
                state=str(job.get("state", "")),
            )

    # ------------------------------------------------------------------ templates (D2)

    async def _read_template(
        self, platform: Platform, template_id: str, *, job_name: str | None
    ) -> tuple[JSON, plan.TaskSource | None]:
        key = (platform.name, template_id.lower())
        if job_name is None or self.template_max_age_s <= 0:
            return await self._read_template_now(platform, template_id, key, job_name=job_name)
        # The engine's window (decision 0006): one read per template per window, and
        # concurrent submissions of one Job wait for that read instead of repeating it.
        async with self._single_flight(("template", *key)):
            cached = self._templates.get(key)
            if cached is not None and time.monotonic() - cached.read_at < self.template_max_age_s:
                return cached.job, plan.choose_source(cached.job, cached.task)
            return await self._read_template_now(platform, template_id, key, job_name=job_name)

    def _single_flight(self, key: tuple[str, ...]) -> asyncio.Lock:
        lock = self._flights.get(key)
        if lock is None:
            lock = self._flights[key] = asyncio.Lock()
        return lock

    async def _read_template_now(
        self, platform: Platform, template_id: str, key: tuple[str, str], *, job_name: str | None
    ) -> tuple[JSON, plan.TaskSource | None]:
        api = await self.api(platform)
        cached = self._templates.get(key)
        try:
            got = await api.get_job(
                template_id,
                select=plan.TEMPLATE_JOB_SELECT,
                if_none_match=cached.etag if cached else None,
            )
        except PlatformError as exc:
            if exc.batch_code != "JobNotFound":
                raise
            self._templates.pop(key, None)
            where = f"platform {platform.name!r}"
            if job_name is None:
                raise NotFoundError(
                    f"there is no Batch job {template_id!r} on {where} to import: check the id "
                    f"with `polysync platform discover {platform.name}`."
                ) from exc
            raise TemplateError(
                f"the template Batch job {template_id!r} of job {job_name!r} no longer exists "
                f"on {where}: recreate it, or import another template.",
                status=exc.status,
                batch_code=exc.batch_code,
            ) from exc
        if got is None and cached is not None:
            entry = cached  # 304: the template has not changed since the last read
        else:
            assert got is not None  # no cached ETag was sent, so no 304
            entry = _Template(job=got.body, etag=got.etag)
            if cached is not None:
                entry.task, entry.task_etag = cached.task, cached.task_etag
        if plan.needs_first_task(entry.job):
            await self._refresh_first_task(api, template_id, entry)
        else:
            entry.task, entry.task_etag = None, None
        entry.read_at = time.monotonic()
        self._templates[key] = entry
        return entry.job, plan.choose_source(entry.job, entry.task)

    async def _refresh_first_task(self, api: BatchApi, template_id: str, entry: _Template) -> None:
        if entry.task is not None and entry.task.get("id"):
            try:
                got = await api.get_task(
                    template_id,
                    str(entry.task["id"]),
                    select=TASK_SOURCE_SELECT,
                    if_none_match=entry.task_etag,
                )
            except PlatformError as exc:
                if exc.batch_code != "TaskNotFound":
                    raise
            else:
                if got is not None:
                    entry.task, entry.task_etag = got.body, got.etag
                return
        first = await api.first_task(template_id, select=("id",))
        if first is None:
            entry.task, entry.task_etag = None, None
            return
        got = await api.get_task(template_id, str(first["id"]), select=TASK_SOURCE_SELECT)
        assert got is not None
        entry.task, entry.task_etag = got.body, got.etag

    async def import_template(self, platform: Platform, external_id: str) -> ImportedTemplate:
        template, source = await self._read_template(platform, external_id, job_name=None)
        template_id = str(template.get("id") or external_id)
        if source is None or not source.body.get("commandLine"):
            raise TemplateError(plan.missing_command_line(template_id, source, job=None))
        parameters, seed_warnings = plan.seed_parameters(template_id, template, source)
        warnings = plan.template_warnings(template_id, template) + seed_warnings
        return ImportedTemplate(
            external_id=template_id,
            display_name=template.get("displayName"),
            parameters=parameters,
            cloned_defaults=plan.cloned_defaults(template, source),
            warnings=warnings,
        )

    # ------------------------------------------------------------------ submit (D2–D5)

    async def submit(self, request: SubmitRequest) -> SubmitResult:
        platform, job, run = request.platform, request.job, request.run
        job_id, task_id = self._ids(run)
        parsed = ids.parse_batch_job_id(job_id)
        if parsed is None:
            raise ValueError(f"Batch job id {job_id!r} of run {run.id} is not a Polysync id")
        installation = parsed[0]
        fingerprint = dict(ids.fingerprint(installation, run.id, run.attempt))
        template, source = await self._read_template(platform, job.external_id, job_name=job.name)
        display = f"Polysync {run.task} run {run.id}" + (
            f" attempt {run.attempt}" if run.attempt > 1 else ""
        )
        run_plan = plan.build_plan(
            template_id=job.external_id,
            template_job=template,
            source=source,
            job=job,
            params=request.params,
            batch_job_id=job_id,
            batch_task_id=task_id,
            display_name=display,
            fingerprint=fingerprint,
            execution_timeout_s=request.execution_timeout_s,
        )
        api = await self.api(platform)
        if run_plan.pool_id is not None:
            await self._preflight_pool(api, platform, job, run_plan.pool_id)

        adopted = False
        existing: JSON | None = None
        try:
            await api.create_job(run_plan.job_body)
        except PlatformError as exc:
            if exc.batch_code != "JobExists":
                raise
            existing = await self._adopt_job(api, platform, job_id, installation, run)
            adopted = True

        try:
            await api.create_task(job_id, run_plan.task_body)
        except PlatformError as exc:
            # The job is ours (just created, or fingerprint-checked): a task with our id in
            # it is the one an earlier attempt of this very call created (NOTES.md §9.4).
            if exc.batch_code == "TaskExists":
                adopted = True
            elif (
                adopted
                and exc.batch_code in _JOB_DONE
                and await self._task_exists(api, job_id, task_id)
            ):
                # An adopted job whose task already ran to the end (a worker died after the
                # PATCH to terminatejob but before recording the run): Batch now answers
                # JobCompleted instead of TaskExists. The task is ours; adopt it.
                pass
            else:
                raise

        if existing is None or existing.get("onAllTasksComplete") != "terminatejob":
            try:
                await api.update_job(job_id, run_plan.patch_body)
            except PlatformError as exc:
                # An adopted job may already have run to completion: nothing to switch.
                if not (adopted and exc.batch_code in _JOB_DONE):
                    raise
        return SubmitResult(
            batch_job_id=job_id,
            batch_task_id=task_id,
            adopted=adopted,
            warnings=run_plan.warnings,
            pool_id=run_plan.pool_id,
        )

    @staticmethod
    async def _task_exists(api: BatchApi, job_id: str, task_id: str) -> bool:
        try:
            return await api.get_task(job_id, task_id, select=("id",)) is not None
        except PlatformError as exc:
            if exc.batch_code in ("TaskNotFound", "JobNotFound"):
                return False
            raise

    async def _preflight_pool(
        self, api: BatchApi, platform: Platform, job: Job, pool_id: str
    ) -> None:
        """D4: Batch accepts a job for a missing pool and leaves its task active forever."""
        key = (platform.name, pool_id.lower())
        if self.pool_check_max_age_s <= 0:
            await self._check_pool(api, platform, job, pool_id, key)
            return
        async with self._single_flight(("pool", *key)):
            checked = self._pools_ok.get(key)
            if checked is not None and time.monotonic() - checked < self.pool_check_max_age_s:
                return  # seen to exist seconds ago (decision 0006); a miss is never cached
            await self._check_pool(api, platform, job, pool_id, key)

    async def _check_pool(
        self, api: BatchApi, platform: Platform, job: Job, pool_id: str, key: tuple[str, str]
    ) -> None:
        try:
            await api.get_pool(pool_id, select=("id",))
            self._pools_ok[key] = time.monotonic()
        except PlatformError as exc:
            self._pools_ok.pop(key, None)
            if exc.batch_code != "PoolNotFound" and exc.status != 404:
                raise
            raise PoolNotFoundError(
                f"PoolNotFound — the source Job's poolInfo.poolId {pool_id!r} no longer exists "
                f"(template Batch job {job.external_id!r} on platform {platform.name!r}): update "
                "the template Batch Job's pool, then run again. Nothing was created.",
                status=exc.status,
                batch_code="PoolNotFound",
                request_id=exc.request_id,
            ) from exc

    async def _adopt_job(
        self, api: BatchApi, platform: Platform, job_id: str, installation: str, run: TaskRun
    ) -> JSON:
        got = await api.get_job(job_id, select=("id", "state", "metadata", "onAllTasksComplete"))
        assert got is not None
        if not ids.fingerprint_matches(
            _pairs(got.body.get("metadata")), installation, run.id, run.attempt
        ):
            raise FingerprintMismatch(
                f"Batch job {job_id!r} already exists on platform {platform.name!r} but was not "
                f"created for run {run.id} attempt {run.attempt} (its metadata fingerprint "
                "differs): another Polysync installation or a person made it; delete or rename "
                "it, or run the task again.",
                batch_code="JobExists",
            )
        log.info("run %s: adopting Batch job %s (fingerprint matches)", run.id, job_id)
        return got.body

    # ------------------------------------------------------------------ sweep (issue 4)

    async def sweep_completed(
        self, platform: Platform, id_prefix: str, since: datetime
    ) -> list[CompletedJob]:
        """Every job of ours that completed at or after ``since``: one paged ``GET /jobs``.

        Each run's job terminates itself when its task ends (D3), so a completed job is a
        finished run; only those need a ``GET task`` for the exit code.
        """
        api = await self.api(platform)
        query = (
            f"startswith(id,{_odata_quote(id_prefix)}) and state eq 'completed' and "
            f"executionInfo/endTime ge {_odata_datetime(since)}"
        )
        out: list[CompletedJob] = []
        async for job in api.list_jobs(select=("id", "state", "executionInfo"), filter=query):
            info = job.get("executionInfo")
            end = _parse_time(info.get("endTime")) if isinstance(info, Mapping) else None
            out.append(CompletedJob(id=str(job.get("id", "")), end_time=end))
        return out

    async def sweep_nodes(
        self, platform: Platform, pool_ids: Collection[str], id_prefix: str
    ) -> NodeSweep:
        """Our tasks among the ``recentTasks`` of every node of ``pool_ids`` (decision 0009).

        One paged ``GET /pools/{id}/nodes?$select=id,recentTasks`` per pool shows every
        task that started or ended on a node lately, with its state and execution info —
        what a ``GET task`` per run would say, for all runs of the pool at once. A pool
        that is gone is skipped (its runs' polls report what became of them).
        """
        api = await self.api(platform)
        prefix = id_prefix.lower()
        tasks: list[NodeTask] = []
        nodes: dict[str, int] = {}
        for pool_id in pool_ids:
            count = 0
            try:
                async for node in api.list_nodes(pool_id, select=status.NODE_SELECT):
                    count += 1
                    tasks.extend(status.recent_tasks(node, prefix))
            except PlatformError as exc:
                if exc.batch_code != "PoolNotFound":
                    raise
                log.debug("node sweep: pool %s of platform %s is gone", pool_id, platform.name)
            nodes[pool_id] = count
        return NodeSweep(tasks, nodes)

    # ------------------------------------------------------------------ poll (D6)

    async def poll(self, platform: Platform, run: TaskRun) -> PollResult:
        job_id, task_id = self._ids(run)
        api = await self.api(platform)
        try:
            got = await api.get_task(job_id, task_id, select=status.TASK_SELECT)
        except PlatformError as exc:
            if exc.batch_code in ("TaskNotFound", "JobNotFound"):
                return PollResult(status=ProviderStatus.UNKNOWN, batch_state=None, missing=True)
            raise
        assert got is not None
        result = status.decode_task(got.body)
        if result.status is ProviderStatus.FAILED and result.failure is not None:
            tail = await self._stderr_tail(api, job_id, task_id)
            if tail:
                result = replace(result, failure=replace(result.failure, stderr_tail=tail))
        return result

    async def _stderr_tail(self, api: BatchApi, job_id: str, task_id: str) -> str | None:
        try:
            size = await api.file_size(job_id, task_id, "stderr.txt")
            if size <= 0:
                return None
            start = max(0, size - self._tail_bytes)
            data = await api.read_file(job_id, task_id, "stderr.txt", start=start, end=size - 1)
        except PlatformError as exc:
            log.debug("no stderr tail for %s/%s: %s", job_id, task_id, exc.batch_code)
            return None
        # A task may print anything; a NUL would make PostgreSQL refuse the failure record
        # (text columns cannot hold it), so it is stored as U+FFFD like any undecodable byte.
        text = data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
        if start > 0 and "\n" in text:
            text = text.split("\n", 1)[1]  # drop the partial first line
        return text or None

    # ------------------------------------------------------------------ cancel (D8)

    async def cancel(self, platform: Platform, run: TaskRun) -> CancelOutcome:
        job_id, task_id = self._ids(run)
        api = await self.api(platform)
        outcome = CancelOutcome.TERMINATED
        try:
            await api.terminate_task(job_id, task_id)
        except PlatformError as exc:
            if exc.batch_code not in _TASK_DONE:
                raise
            outcome = CancelOutcome.ALREADY_DONE
        try:
            await api.terminate_job(job_id, f"Cancelled by Polysync (run {run.id})")
        except PlatformError as exc:
            if exc.batch_code not in _JOB_DONE:
                raise
        return outcome

    # ------------------------------------------------------------------ links, files

    def monitor_url(self, platform: Platform, batch_job_id: str) -> str:
        return links.monitor_url(
            platform.subscription_id, platform.resource_group, platform.account_name, batch_job_id
        )

    async def read_file(
        self,
        platform: Platform,
        run: TaskRun,
        path: str,
        *,
        offset: int = 0,
        length: int | None = None,
    ) -> FileChunk:
        """Bytes of a task file from ``offset`` (stdout.txt/stderr.txt for logs --follow)."""
        job_id, task_id = self._ids(run)
        api = await self.api(platform)
        try:
            size = await api.file_size(job_id, task_id, path)
            if offset >= size or length == 0:
                return FileChunk(b"", offset, size)
            end = size - 1 if length is None else min(size - 1, offset + length - 1)
            data = await api.read_file(job_id, task_id, path, start=max(0, offset), end=end)
        except PlatformError as exc:
            if exc.batch_code in _NO_FILE or exc.status == 404:
                return FileChunk(b"", offset, None)
            raise
        return FileChunk(data, offset, size)

    # ------------------------------------------------------------------ diagnosis (D9)

    async def diagnose_pool(self, platform: Platform, job: Job) -> str | None:
        """One sentence on why a run may be stuck Starting, from the template's pool."""
        try:
            template, _ = await self._read_template(platform, job.external_id, job_name=job.name)
        except PolysyncError as exc:
            log.debug("no pool diagnosis for job %s: %s", job.name, exc)
            return None
        advice = ""
        if plan.template_warnings(job.external_id, template):
            advice = (
                f" The template Batch job {job.external_id!r} has no "
                "constraints.maxWallClockTime: set one to bound run time and avoid stuck polls."
            )
        pool_id = plan.pool_of(template)
        if pool_id is None:
            return (
                "preparing forever — the template uses an auto pool; check in the Azure portal "
                "that Batch could create it (quota, VM size) and that it has compute nodes."
                + advice
            )
        api = await self.api(platform)
        try:
            pool = await api.get_pool(pool_id, select=POOL_SELECT)
        except PlatformError as exc:
            if exc.batch_code == "PoolNotFound" or exc.status == 404:
                return (
                    f"PoolNotFound — the source Job's poolInfo.poolId {pool_id!r} no longer "
                    "exists. Update the template Batch Job's pool." + advice
                )
            log.debug("no pool diagnosis for %s: %s", pool_id, exc)
            return None
        return describe_pool(pool_id, pool) + advice

    # ------------------------------------------------------------------ connectivity

    async def test_connectivity(self, platform: Platform) -> ConnectivityReport:
        """List one job and read one pool; report what the credential may do."""
        checks: list[tuple[str, bool, str]] = []
        try:
            api = await self.api(platform)
        except PolysyncError as exc:
            return ConnectivityReport(ok=False, checks=(("credential", False, str(exc)),))
        pool_id: str | None = None
        try:
            first: JSON | None = None
            async for item in api.list_jobs(select=("id", "poolInfo"), max_results=1):
                first = item
                break
        except PolysyncError as exc:
            checks.append(("list jobs", False, str(exc)))
        else:
            if first is None:
                checks.append(("list jobs", True, "may list jobs (the account has none yet)"))
            else:
                checks.append(("list jobs", True, f"may list jobs (first: {first.get('id')!r})"))
                pool_id = plan.pool_of(first)
        try:
            if pool_id is None:
                found = await api.first_pool()
                pool_id = str(found["id"]) if found else None
            if pool_id is None:
                checks.append(("read pool", True, "may list pools (the account has none yet)"))
            else:
                pool = await api.get_pool(pool_id, select=POOL_SELECT)
                nodes = int(pool.get("currentDedicatedNodes") or 0) + int(
                    pool.get("currentLowPriorityNodes") or 0
                )
                checks.append(
                    ("read pool", True, f"may read pool {pool_id!r} ({nodes} compute node(s))")
                )
        except PolysyncError as exc:
            checks.append(("read pool", False, str(exc)))
        return ConnectivityReport(ok=all(ok for _, ok, _ in checks), checks=tuple(checks))


def _no_vault(name: str) -> Any:
    raise NotFoundError(f"no Secret Vault {name!r} is known to this job type.")


def _host_only() -> SecretResolver:
    return SecretResolver(_no_vault)


def describe_pool(pool_id: str, pool: Mapping[str, Any]) -> str:
    """D9: the pool facts that explain a task waiting ``active``, as one sentence. Pure."""
    dedicated = int(pool.get("currentDedicatedNodes") or 0)
    low = int(pool.get("currentLowPriorityNodes") or 0)
    target_d = int(pool.get("targetDedicatedNodes") or 0)
    target_l = int(pool.get("targetLowPriorityNodes") or 0)
    allocation = str(pool.get("allocationState") or "unknown")
    facts = [
        f"allocation state {allocation}",
        f"{dedicated} dedicated and {low} low-priority node(s) of {target_d}+{target_l} targeted",
    ]
    if pool.get("enableAutoScale"):
        formula = str(pool.get("autoScaleFormula") or "").strip().replace("\n", " ")
        facts.append(f"autoscale on ({formula[:120]})" if formula else "autoscale on")
        run = pool.get("autoScaleRun")
        error = run.get("error") if isinstance(run, Mapping) else None
        if isinstance(error, Mapping):
            facts.append(f"autoscale error {error.get('code')}: {error.get('message')}")
    for err in pool.get("resizeErrors") or ():
        if isinstance(err, Mapping):
            facts.append(f"resize error {err.get('code')}: {err.get('message')}")
    if dedicated + low == 0:
        return (
            f"preparing forever — the pool {pool_id!r} has no available compute nodes "
            f"({'; '.join(facts)}): check its autoscale formula or core quota, and inspect the "
            "Pool in the Azure portal."
        )
    return (
        f"still waiting although the pool {pool_id!r} has compute nodes ({'; '.join(facts)}): "
        "their task slots may be taken by other jobs; inspect the Pool in the Azure portal."
    )
