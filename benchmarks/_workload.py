"""Shared harness for the engine benchmark and the engine crash tests.

Pieces, each usable on its own:

* :class:`EmulatorProcess` — ``python -m batch_emulator serve`` in a subprocess (so its CPU
  is never charged to the strategy under test), with a :class:`ControlClient`.
* :func:`setup_polysync` — a fresh Polysync home wired to that emulator: platform, an
  imported template job and Tasks; :func:`queue_runs` creates Queued runs through
  ``start_run`` exactly as users do.
* :class:`Child` — a strategy process (``polysync worker`` or a reference strategy) whose
  CPU seconds and peak RSS come from ``wait4`` on its pid, i.e. that process alone.
* :func:`reference_strategy` — the two reference pollers (Airflow's "list the tasks of each
  job every 15 s", Nextflow's "GET each task every 10 s") on the official async SDK.
* Invariant checks over the emulator's request log and job list (no job created twice).

Import it as ``_workload`` with ``benchmarks/`` on ``sys.path`` (the benchmark script has it
there; the crash tests add it in ``tests/engine_crash/__init__.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from azure.batch import BatchClient, models
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential
from sqlalchemy import create_engine, select

from batch_emulator import DEFAULT_ACCOUNT, DEFAULT_KEY
from batch_emulator.server import ControlClient
from polysync.config import load_settings
from polysync.domain.models import AuthMode, RetryPolicy, RunState
from polysync.domain.secrets import Writer
from polysync.services.context import Services, open_services
from polysync.services.jobs import import_jobs
from polysync.services.platforms import PlatformInput, add_platform
from polysync.services.runs import start_run
from polysync.services.tasks import create_task
from polysync.store import schema
from polysync.store.sql import normalise_url

# The platform reads the account key from this variable (a reference, never the value).
KEY_ENV = "POLYSYNC_BENCH_BATCH_KEY"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
PLATFORM = "bench"
TERMINAL = frozenset({RunState.SUCCEEDED.value, RunState.FAILED.value, RunState.CANCELLED.value})
NONTERMINAL = frozenset({RunState.QUEUED.value, RunState.STARTING.value, RunState.RUNNING.value})

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


# --- processes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Usage:
    """One finished child: its own CPU (``wait4``) and peak RSS (sampled ``VmHWM``)."""

    returncode: int
    cpu_s: float
    rss_mb: float


class Child:
    """A subprocess in its own session, reaped with ``wait4`` for exact per-process usage."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        graceful: bool = False,
    ) -> None:
        self.argv = list(argv)
        # Graceful children (the emulator) get SIGTERM and time at cleanup, so they can
        # stop the task processes they started; the others are killed outright.
        self.graceful = graceful
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("ab")
        # Own session: a Ctrl-C in the terminal reaches the harness only, which then stops
        # its children in order (the emulator must outlive the strategies it serves).
        self.proc = subprocess.Popen(
            self.argv,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.usage: Usage | None = None
        self._hwm_kib = 0
        _LIVE.add(self)

    def _sample_peak_rss(self) -> None:
        # wait4's ru_maxrss is no good here: Linux carries the parent's high-water mark
        # over fork+exec, so every child would report at least the harness's own RSS.
        # VmHWM is the peak of the process's current image; sampled while we wait.
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self._hwm_kib = max(self._hwm_kib, int(line.split()[1]))

    def poll(self) -> Usage | None:
        """The usage once the child has exited (reaping it), else None. Never blocks."""
        if self.usage is not None:
            return self.usage
        self._sample_peak_rss()
        try:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:  # already reaped elsewhere: nothing more to learn
            self._finish(Usage(self.proc.returncode or 0, 0.0, 0.0))
            return self.usage
        if pid == 0:
            return None
        code = os.waitstatus_to_exitcode(status)
        usage = Usage(code, rusage.ru_utime + rusage.ru_stime, self._hwm_kib / 1024.0)
        self._finish(usage)
        return usage

    def _finish(self, usage: Usage) -> None:
        self.usage = usage
        self.proc.returncode = usage.returncode  # so Popen never tries to reap it again
        _LIVE.discard(self)
        with contextlib.suppress(OSError):
            self._log.close()

    def wait(self, timeout_s: float, *, interval_s: float = 0.05) -> Usage | None:
        """Wait up to ``timeout_s`` for the child to exit; None if it is still running."""
        deadline = time.monotonic() + timeout_s
        while True:
            usage = self.poll()
            if usage is not None or time.monotonic() >= deadline:
                return usage
            time.sleep(interval_s)

    def signal(self, sig: signal.Signals) -> None:
        if self.usage is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> Usage:
        """SIGKILL and reap."""
        self.signal(signal.SIGKILL)
        usage = self.wait(STOP_TIMEOUT_S)
        if usage is None:  # pragma: no cover - SIGKILL cannot be ignored
            raise RuntimeError(f"process {self.pid} ({self.argv[:4]}) survived SIGKILL")
        return usage

    def stop(self, grace_s: float = STOP_TIMEOUT_S) -> Usage:
        """SIGTERM, then SIGKILL after ``grace_s``."""
        self.signal(signal.SIGTERM)
        usage = self.wait(grace_s)
        return usage if usage is not None else self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


_LIVE: set[Child] = set()


def stop_all_children() -> None:
    """Stop every child still running: strategies first (killed), then the emulator
    (SIGTERM, so it stops its task processes), which must outlive its clients."""
    for child in sorted(_LIVE, key=lambda c: c.graceful):
        with contextlib.suppress(Exception):  # best effort on the way out
            if child.graceful:
                child.stop()
            else:
                child.kill()


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The harness's environment without any POLYSYNC_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYSYNC_")}
    env.update(extra or {})
    return env


class EmulatorProcess:
    """``python -m batch_emulator serve`` on a free loopback port, in a subprocess."""

    def __init__(self, workdir: Path, pools: Sequence[str], *, key: str = DEFAULT_KEY) -> None:
        self.workdir = workdir
        self.pools = list(pools)
        self.key = key
        self.account = DEFAULT_ACCOUNT
        self.endpoint = ""
        self._child: Child | None = None
        self._child_log = workdir / "emulator.log"
        self._control: ControlClient | None = None

    @property
    def control(self) -> ControlClient:
        if self._control is None:
            raise RuntimeError("The emulator process is not running; call start() first.")
        return self._control

    @property
    def pid(self) -> int:
        if self._child is None:
            raise RuntimeError("The emulator process is not running; call start() first.")
        return self._child.pid

    def start(self) -> EmulatorProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "emulator-ready.json"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "batch_emulator", "serve", "--host", "127.0.0.1"]
        argv += ["--port", "0", "--ready-file", str(ready), "--log-level", "warning"]
        argv += ["--data-dir", str(self.workdir / "emulator-data")]
        for pool in self.pools:
            argv += ["--pool", pool]
        env = clean_env({"BATCH_EMULATOR_KEY": self.key})
        self._child = Child(argv, env=env, log_path=self._child_log, graceful=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready.exists():
            exited = self._child.poll() is not None
            if exited or time.monotonic() > deadline:
                tail = self._child.log_tail()
                self.stop()
                why = "exited" if exited else f"did not answer within {START_TIMEOUT_S:g}s"
                raise RuntimeError(f"The emulator {why} (log {self._child_log}):\n{tail}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        self.endpoint = str(info["endpoint"])
        self._control = ControlClient(self.endpoint, self.account, self.key, timeout=300)
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._child is not None:
            self._child.stop()
            self._child = None

    def __enter__(self) -> EmulatorProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- Batch side -----------------------------------------------------------------------


def make_template(
    endpoint: str,
    job_id: str,
    command_line: str,
    *,
    pool_id: str,
    env: Mapping[str, str],
    account: str = DEFAULT_ACCOUNT,
    key: str = DEFAULT_KEY,
) -> None:
    """A template Batch Job (pool, environment, one task) as users keep them."""
    client = BatchClient(endpoint, AzureNamedKeyCredential(account, key))
    try:
        client.create_job(
            models.BatchJobCreateOptions(
                id=job_id,
                display_name=f"benchmark template {job_id}",
                pool_info=models.BatchPoolInfo(pool_id=pool_id),
                common_environment_settings=[
                    models.EnvironmentSetting(name=k, value=v) for k, v in env.items()
                ],
            )
        )
        client.create_task(
            job_id, models.BatchTaskCreateOptions(id="template-task", command_line=command_line)
        )
    finally:
        client.close()


def created_jobs(entries: Iterable[Mapping[str, Any]]) -> int:
    """Successful job creations (``POST /jobs`` answered 201) in a request log."""
    return sum(
        1 for e in entries if e["method"] == "POST" and e["path"] == "/jobs" and e["status"] == 201
    )


def created_tasks_by_job(entries: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Successful task creations per job id (``POST /jobs/{id}/tasks`` answered 201)."""
    counts: dict[str, int] = {}
    for e in entries:
        parts = str(e["path"]).strip("/").split("/")
        if e["method"] == "POST" and e["status"] == 201 and len(parts) == 3 and parts[2] == "tasks":
            counts[parts[1]] = counts.get(parts[1], 0) + 1
    return counts


def _async_client(endpoint: str, account: str, key: str) -> AsyncBatchClient:
    return AsyncBatchClient(endpoint, AzureNamedKeyCredential(account, key))


async def list_job_ids(
    endpoint: str, prefix: str, *, account: str = DEFAULT_ACCOUNT, key: str = DEFAULT_KEY
) -> list[str]:
    """Every Batch job whose id starts with ``prefix`` (case-insensitive, as Batch ids are)."""
    async with _async_client(endpoint, account, key) as client:
        ids = [j.id async for j in client.list_jobs(select=["id"])]
    return [i for i in ids if i is not None and i.lower().startswith(prefix.lower())]


async def fetch_end_times(
    endpoint: str,
    pairs: Sequence[tuple[str, str]],
    *,
    account: str = DEFAULT_ACCOUNT,
    key: str = DEFAULT_KEY,
    concurrency: int = 16,
) -> dict[tuple[str, str], float | None]:
    """Batch's ``executionInfo.endTime`` (epoch seconds) of each (job, task); None if absent."""
    gate = asyncio.Semaphore(concurrency)
    out: dict[tuple[str, str], float | None] = {}
    async with _async_client(endpoint, account, key) as client:

        async def one(job_id: str, task_id: str) -> None:
            async with gate:
                task = await client.get_task(job_id, task_id, select=["id", "executionInfo"])
            info = task.execution_info
            end = info.end_time if info is not None else None
            out[(job_id, task_id)] = end.timestamp() if end is not None else None

        await asyncio.gather(*(one(j, t) for j, t in pairs))
    return out


# --- Polysync side --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskSetup:
    name: str
    retry: RetryPolicy | None = None


def open_home(home: Path, database_url: str) -> Services:
    settings = load_settings({"home": str(home), "database_url": database_url}, environ={})
    return open_services(settings)


def setup_polysync(
    home: Path,
    database_url: str,
    endpoint: str,
    template_id: str,
    tasks: Sequence[TaskSetup],
    *,
    account: str = DEFAULT_ACCOUNT,
    key: str = DEFAULT_KEY,
) -> Services:
    """A Polysync home on ``database_url`` with the platform, the imported template and Tasks.

    The caller closes the returned services (``svc.close()``).
    """
    svc = open_home(home, database_url)
    add_platform(
        svc,
        PlatformInput(
            name=PLATFORM,
            account_url=endpoint,
            account_name=account,
            subscription_id=SUBSCRIPTION,
            resource_group="rg-bench",
            auth=AuthMode.SHARED_KEY,
            key_env=KEY_ENV,
        ),
        writer=Writer.HOST,
    )
    previous = os.environ.get(KEY_ENV)
    os.environ[KEY_ENV] = key  # the import reads the key through the platform's reference

    async def _import() -> None:
        try:
            await import_jobs(svc, PLATFORM, [template_id])
        finally:
            await svc.aclose()

    try:
        asyncio.run(_import())
    finally:
        if previous is None:
            os.environ.pop(KEY_ENV, None)
        else:
            os.environ[KEY_ENV] = previous
    for task in tasks:
        create_task(svc, task.name, template_id, {}, retry_policy=task.retry, writer=Writer.HOST)
    return svc


def use_vault_key(svc: Services, endpoint: str, kv: Any, home: Path, vault: str) -> str:
    """Move the platform's key into the local Key Vault ``kv`` (decision 0010): declare the
    vault (its bearer token in a 0600 file of ``home``) and point the platform's key at
    ``vault://VAULT/batch-key``. Returns that reference."""
    from polysync.services.vaults import VaultInput, add_vault

    token_file = home / f"{vault}.token"
    token_file.write_text(kv.tokens["secrets-user"])
    token_file.chmod(0o600)
    kv.set_secret("batch-key", DEFAULT_KEY)
    add_vault(
        svc,
        VaultInput(
            name=vault,
            url=kv.url,
            auth=AuthMode.BEARER_TOKEN,
            token_file=str(token_file),
            ca_bundle=str(kv.cert_path),
        ),
        writer=Writer.HOST,
    )
    ref = f"vault://{vault}/batch-key"
    add_platform(
        svc,
        PlatformInput(
            name=PLATFORM,
            account_url=endpoint,
            account_name=DEFAULT_ACCOUNT,
            subscription_id=SUBSCRIPTION,
            resource_group="rg-bench",
            auth=AuthMode.SHARED_KEY,
            key_ref=ref,
        ),
        writer=Writer.HOST,
        replace_existing=True,
    )
    return ref


def queue_runs(svc: Services, plans: Sequence[tuple[str, Mapping[str, str]]]) -> list[int]:
    """One Queued run per (task name, parameter overrides), through ``start_run``."""
    return [
        start_run(svc, task, dict(overrides), writer=Writer.HOST).id for task, overrides in plans
    ]


def worker_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "polysync", "worker", *args]


def start_worker(
    home: Path,
    database_url: str,
    log_path: Path,
    *args: str,
    key: str = DEFAULT_KEY,
    log_level: str = "INFO",
) -> Child:
    env = clean_env(
        {
            "POLYSYNC_HOME": str(home),
            "POLYSYNC_DATABASE_URL": database_url,
            "POLYSYNC_LOG_LEVEL": log_level,
            KEY_ENV: key,
        }
    )
    return Child(worker_argv(*args), env=env, log_path=log_path)


def worker_available() -> bool:
    """True when this checkout has the ``polysync worker`` command."""
    proc = subprocess.run(
        [*worker_argv(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(),
    )
    return proc.returncode == 0


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the store has it, read straight from the table (no domain mapping)."""

    id: int
    task: str
    state: str
    attempt: int
    batch_job_id: str | None
    batch_task_id: str | None
    exit_code: int | None
    claimed_by: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AttemptRow:
    run_id: int
    attempt: int
    batch_job_id: str
    batch_task_id: str
    state: str | None
    exit_code: int | None


def read_runs(database_url: str) -> list[RunRow]:
    engine = create_engine(normalise_url(database_url))
    c = schema.task_runs.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    c.id,
                    c.task_name,
                    c.state,
                    c.attempt,
                    c.batch_job_id,
                    c.batch_task_id,
                    c.exit_code,
                    c.claimed_by,
                    c.updated_at,
                ).order_by(c.id)
            ).all()
    finally:
        engine.dispose()
    return [RunRow(*row) for row in rows]


def read_attempts(database_url: str) -> list[AttemptRow]:
    engine = create_engine(normalise_url(database_url))
    a = schema.run_attempts.c
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(
                    a.run_id, a.attempt, a.batch_job_id, a.batch_task_id, a.state, a.exit_code
                ).order_by(a.run_id, a.attempt)
            ).all()
    finally:
        engine.dispose()
    return [AttemptRow(*row) for row in rows]


def installation_prefix(svc: Services) -> str:
    from polysync.domain.ids import job_id_prefix

    return job_id_prefix(svc.store.installation_id())


# --- reference strategies -------------------------------------------------------------

LIST_TASKS = "list-tasks-15s"
GET_TASK = "get-task-10s"
REFERENCE_INTERVALS_S = {LIST_TASKS: 15.0, GET_TASK: 10.0}


@dataclass(frozen=True, slots=True)
class RefRun:
    job_id: str
    task_id: str
    seconds: float


@dataclass
class RefResult:
    # job id -> epoch seconds at which the strategy recorded the run terminal
    detected: dict[str, float] = field(default_factory=dict)
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    submit_errors: dict[str, str] = field(default_factory=dict)


async def reference_strategy(
    endpoint: str,
    pool_id: str,
    runs: Sequence[RefRun],
    *,
    mode: str,
    interval_s: float,
    deadline_s: float,
    concurrency: int = 16,
    account: str = DEFAULT_ACCOUNT,
    key: str = DEFAULT_KEY,
) -> RefResult:
    """Submit every run (create job, add task), then poll each on a fixed interval.

    ``list-tasks-15s``: each run's own loop lists the tasks of its job (one page), as
    Airflow's Batch operator does; ``get-task-10s``: each run's own loop GETs its task, as
    Nextflow does. A run is recorded terminal the moment a poll sees ``completed``.
    Minimal and fair: the SDK's default retry policy, no work besides what the strategy
    needs, and ``concurrency`` calls in flight for submissions and as many for polls — two
    separate pools, as the real tools have (Nextflow's submitter and poller are separate
    threads; each Airflow operator polls on its own), so a poll never queues behind
    thousands of pending submissions.
    """
    if mode not in REFERENCE_INTERVALS_S:
        raise ValueError(f"unknown reference strategy {mode!r}")
    submit_gate = asyncio.Semaphore(concurrency)
    poll_gate = asyncio.Semaphore(concurrency)
    result = RefResult()
    stop_at = time.monotonic() + deadline_s
    async with _async_client(endpoint, account, key) as client:

        async def poll_once(run: RefRun) -> tuple[bool, int | None]:
            async with poll_gate:
                if mode == LIST_TASKS:
                    tasks = [t async for t in client.list_tasks(run.job_id)]
                    task = next((t for t in tasks if t.id == run.task_id), None)
                else:
                    task = await client.get_task(run.job_id, run.task_id)
            if task is None or task.state != models.BatchTaskState.COMPLETED:
                return False, None
            info = task.execution_info
            return True, info.exit_code if info is not None else None

        async def one(run: RefRun) -> None:
            try:
                async with submit_gate:  # one run's two calls back to back, like the tools
                    await client.create_job(
                        models.BatchJobCreateOptions(
                            id=run.job_id, pool_info=models.BatchPoolInfo(pool_id=pool_id)
                        )
                    )
                    await client.create_task(
                        run.job_id,
                        models.BatchTaskCreateOptions(
                            id=run.task_id,
                            command_line=f"/bin/sh -c 'sleep {run.seconds:g}'",
                        ),
                    )
            except Exception as exc:  # noqa: BLE001 - recorded and reported as a lost run
                result.submit_errors[run.job_id] = f"{type(exc).__name__}: {exc}"
                return
            while time.monotonic() < stop_at:
                await asyncio.sleep(min(interval_s, max(stop_at - time.monotonic(), 0.0)))
                try:
                    done, code = await poll_once(run)
                except Exception:  # noqa: BLE001, S112 - a failed poll is retried next interval
                    continue
                if done:
                    result.detected[run.job_id] = time.time()
                    result.exit_codes[run.job_id] = code
                    return

        await asyncio.gather(*(one(r) for r in runs))
    return result


# --- figures --------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def epoch(value: datetime) -> float:
    if value.tzinfo is None:  # SQLite hands back naive UTC if a column lost its zone
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


@contextlib.contextmanager
def cleanup_on_exit() -> Iterator[None]:
    """Stop every child on normal exit, exceptions, Ctrl-C and SIGTERM."""

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop_all_children()
