"""`polysync worker`: the async dispatcher that takes runs from Queued to their end.

One loop per process (:meth:`Worker.run`), each pass (:meth:`Worker.step`):

1. heartbeat: renew the leases of every run this worker holds (every lease/3);
2. adopt: runs already in Batch that nobody tracks (a dead worker's, a restart's own,
   a `task run --no-wait`'s) — reconciliation on start is the first adopt;
3. claim Queued runs that are due, highest priority first (``claim_queued``);
4. submit them through ``services.runs.submit_run``, paced by one
   :class:`~polysync.dispatcher.ratelimit.AccountLimiter` per Batch account;
5. sweep, per account: the nodes of the pools its runs use (``recentTasks``, decision
   0009) show which tasks started and which ended with exit code 0 — recorded without a
   poll; then one paged ``GET /jobs`` finds every run job completed since the last sweep
   (docs/engine.md), and the runs not settled yet are polled at once for their outcome;
6. poll the runs whose adaptive per-run poll is due (Starting → Running where no node
   sweep covers the run, the safety poll, execution timeouts) with
   ``services.runs.advance_run`` — the same step `polysync task run` uses.

Everything that survives a crash is in the store: Batch ids before the create calls (D5),
states, leases. In memory there are only each run's latest copy and its poll schedule,
rebuilt from the store on start (the cadence depends only on the attempt's age). Run
changes go through a group-commit writer: the changes of a few milliseconds share one
transaction, and Platform/Job/Task reads come from a short-lived cache (decision 0008).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import os
import socket
from collections.abc import Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from polysync.dispatcher.catalogcache import CatalogCache
from polysync.dispatcher.groupcommit import GroupCommitWriter
from polysync.dispatcher.metrics import Metrics
from polysync.dispatcher.ratelimit import AccountLimiter
from polysync.dispatcher.tracking import SweepWindow
from polysync.domain import ids
from polysync.domain.cadence import WORKER_CADENCE, Cadence
from polysync.domain.models import Platform, RunState, TaskRun
from polysync.errors import NotFoundError, PlatformError, QuotaError, ThrottledError
from polysync.jobtypes.base import PollResult, ProviderStatus
from polysync.services import runs
from polysync.services.context import Catalog, Services
from polysync.services.writer import RunWriter

log = logging.getLogger(__name__)

ACTIVE_STATES = (RunState.QUEUED, RunState.STARTING, RunState.RUNNING)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True)
class WorkerOptions:
    worker_id: str | None = None
    concurrency: int = 10_000  # runs in flight (claimed and not finished) at most
    submit_rate: float = 20.0  # Batch create calls per second per account
    sweep_interval_s: float = 1.0
    lease_s: float = 30.0
    exit_when_idle: bool = False
    metrics_path: Path | None = None  # JSON snapshot for `worker stats`; None = none
    metrics_interval_s: float = 5.0
    cadence: Cadence = WORKER_CADENCE
    # Decision 0006: reuse a template read / pool check across runs for this long.
    template_max_age_s: float = 10.0
    pool_check_max_age_s: float = 10.0
    catalog_max_age_s: float = 10.0  # Platform/Job/Task reads (decision 0008)
    commit_window_s: float = 0.1  # run changes this close together share a transaction
    sweep_margin_s: float = 5.0
    # List the nodes of the runs' pools each sweep (decision 0009); off: polls alone show
    # Starting → Running, and each finished run costs a GET task.
    node_sweep: bool = True
    # A pool's nodes are listed at most at this many nodes per second: every sweep for a
    # small pool, every 10 s for 1,000 nodes, so a big shared pool's pages stay cheap.
    node_sweep_nodes_per_s: float = 100.0
    sweep_lookback_s: float = 60.0  # first sweep: this long before the oldest submission
    max_parallel_submits: int = 32  # per account
    max_parallel_polls: int = 64
    claim_batch: int = 500
    # Claim only what this worker can submit within this horizon at its submit rate, so
    # one worker never hoards the queue while others sit idle (several workers, issue 4).
    claim_horizon_s: float = 2.0
    claim_idle_interval_s: float = 0.5
    adopt_interval_s: float = 1.0
    error_retry_s: float = 5.0
    stop_grace_s: float = 10.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        if self.lease_s <= 0 or self.sweep_interval_s <= 0 or self.submit_rate <= 0:
            raise ValueError("--lease, --sweep-interval and --submit-rate must be positive")


@dataclass(slots=True)
class _Tracked:
    run: TaskRun  # the latest copy: every change this worker makes returns the new one
    submitted_at: datetime
    deadline: datetime | None
    next_poll: datetime

    @property
    def run_id(self) -> int:
        return self.run.id

    @property
    def platform(self) -> str:
        return self.run.platform

    @property
    def attempt(self) -> int:
        return self.run.attempt


@dataclass(slots=True)
class _Account:
    limiter: AccountLimiter
    pending: list[tuple[int, int]] = field(default_factory=list)  # heap of (-priority, run)
    tracked: int = 0  # runs of this account being tracked (sweeps only when > 0)
    submitting: int = 0
    sweeping: bool = False
    next_sweep: datetime | None = None
    window: SweepWindow | None = None
    nodes_off: bool = False  # the credential may not list nodes: polls only (0009)
    nodes_due: dict[str, datetime] = field(default_factory=dict)  # pool -> next listing


class Worker:
    """The engine. ``await Worker(svc, options).run()``; tests drive ``step``/``drain``."""

    def __init__(
        self, svc: Services, options: WorkerOptions | None = None, *, metrics: Metrics | None = None
    ) -> None:
        self.svc = svc
        self.options = options or WorkerOptions()
        self.worker_id = self.options.worker_id or default_worker_id()
        self.metrics = metrics or Metrics(self.worker_id)
        self._tracked: dict[int, _Tracked] = {}
        self._queued: dict[int, TaskRun] = {}  # claimed, waiting in an account's pending heap
        self._adopted_own = False
        self._polls: list[tuple[datetime, int, int]] = []  # heap of (due, seq, run id)
        self._seq = itertools.count()
        self._accounts: dict[str, _Account] = {}
        self._busy: set[int] = set()  # runs with an operation in flight
        self._observing: set[int] = set()  # busy recording what a node sweep saw
        self._tasks: set[asyncio.Task[None]] = set()
        self._polling = 0
        self._stopping = False
        self._stop = asyncio.Event()
        self._waiter: asyncio.Future[None] | None = None  # the loop's sleep, while it sleeps
        self._ready = False
        self._restore: tuple[RunWriter | None, Catalog | None] | None = None
        self._writer: GroupCommitWriter | None = None
        self._prefix = ""
        self._installation = ""
        now = self.clock()
        self._next_heartbeat = now
        self._next_adopt = now
        self._next_claim = now
        self._next_metrics = now

    # ------------------------------------------------------------------ public

    def clock(self) -> datetime:
        return self.svc.clock()

    def stop(self) -> None:
        """Graceful stop: claim nothing more, let submissions finish, release the rest."""
        self._stopping = True
        self._stop.set()
        self._wake_up()

    @property
    def in_flight(self) -> int:
        submitting = sum(a.submitting for a in self._accounts.values())
        return len(self._tracked) + len(self._queued) + submitting

    def tracked_ids(self) -> set[int]:
        return set(self._tracked)

    async def run(self) -> None:
        """Until :meth:`stop` (or, with ``exit_when_idle``, until nothing is left to do)."""
        self._setup()
        next_idle_check = self.clock()
        try:
            while not self._stop.is_set():
                try:
                    await self.step()
                except Exception:  # one bad pass (a database hiccup) must not end the worker
                    log.exception("worker %s: pass failed; trying again", self.worker_id)
                    await asyncio.sleep(1.0)
                    continue
                now = self.clock()
                if self.options.exit_when_idle and now >= next_idle_check:
                    next_idle_check = now + timedelta(seconds=0.5)
                    if self.idle():
                        log.info("worker %s: nothing left to do; exiting", self.worker_id)
                        break
                await self._sleep_until_next()
        finally:
            await self._shutdown()

    async def run_until_idle(self, timeout_s: float | None = None) -> None:
        """Run until no run is Queued/Starting/Running (tests, `--exit-when-idle`)."""
        options = self.options
        self.options = replace(options, exit_when_idle=True)
        try:
            await asyncio.wait_for(self.run(), timeout_s)
        finally:
            self.options = options

    def idle(self) -> bool:
        if self._tracked or self._tasks or self.in_flight:
            return False
        return self.svc.store.count_runs(states=ACTIVE_STATES) == 0

    async def step(self) -> None:
        """One pass of the loop; launches operations without waiting for them."""
        self._setup()
        now = self.clock()
        o = self.options
        if now >= self._next_heartbeat:
            self.svc.store.renew_leases(self.worker_id, now, o.lease_s)
            self._next_heartbeat = now + timedelta(seconds=o.lease_s / 3)
        if not self._stopping:
            if now >= self._next_adopt:
                self._adopt(now)
                self._next_adopt = now + timedelta(seconds=o.adopt_interval_s)
            if now >= self._next_claim:
                self._claim(now)
            self._launch_submissions(now)
        self._launch_sweeps(now)
        self._launch_polls(now)
        if o.metrics_path is not None and now >= self._next_metrics:
            self.write_metrics()
            self._next_metrics = now + timedelta(seconds=o.metrics_interval_s)

    async def drain(self) -> None:
        """Wait for every launched operation (tests: ``step(); drain()`` is one full pass)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def write_metrics(self) -> None:
        path = self.options.metrics_path
        if path is None:
            return
        self.refresh_run_counts()
        try:
            self.metrics.write(path)
        except OSError as exc:
            log.warning("worker %s: cannot write metrics to %s: %s", self.worker_id, path, exc)

    def refresh_run_counts(self) -> None:
        self.metrics.runs_by_state = {
            state.value: self.svc.store.count_runs(state=state) for state in RunState
        }

    # ------------------------------------------------------------------ setup, shutdown

    def _setup(self) -> None:
        if self._ready:
            return
        self._installation = self.svc.store.installation_id()
        self._prefix = ids.job_id_prefix(self._installation)
        jobtype = self.svc.jobtype
        from polysync.jobtypes.azure_batch.jobtype import BatchJobType

        if isinstance(jobtype, BatchJobType):
            jobtype.configure_read_cache(
                template_max_age_s=self.options.template_max_age_s,
                pool_check_max_age_s=self.options.pool_check_max_age_s,
            )
            jobtype.add_call_observer(self.metrics)
        o = self.options
        self._writer = GroupCommitWriter(self.svc.store, window_s=o.commit_window_s)
        previous_writer = self.svc.use_writer(self._writer)
        previous_catalog = self.svc.use_catalog(CatalogCache(self.svc.store, o.catalog_max_age_s))
        self._restore = (previous_writer, previous_catalog)
        self._ready = True
        log.info("worker %s started (installation %s)", self.worker_id, self._installation)

    async def _shutdown(self) -> None:
        self._stopping = True
        submissions = [t for t in self._tasks if t.get_name().startswith("submit")]
        if submissions:
            # A submission cut in half is safe (D5), but finishing it saves a restart the
            # adoption round trip.
            await asyncio.wait(submissions, timeout=self.options.stop_grace_s)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
        if self._writer is not None:
            await self._writer.aclose()  # what the cancelled operations decided is kept
        if self._restore is not None:
            self.svc.use_writer(self._restore[0])
            self.svc.use_catalog(self._restore[1])
            self._restore = None
            self._ready = False
        released = self.svc.store.release_all(self.worker_id)
        log.info("worker %s stopped; released %d run(s)", self.worker_id, released)
        self.write_metrics()

    async def _sleep_until_next(self) -> None:
        now = self.clock()
        candidates = [self._next_heartbeat, self._next_claim, self._next_adopt]
        if self._polls:
            candidates.append(self._polls[0][0])
        for acc in self._accounts.values():
            if acc.next_sweep is not None:
                candidates.append(acc.next_sweep)
            if acc.pending:
                candidates.append(now + timedelta(seconds=acc.limiter.wait_s(now)))
        wait_s = min((c - now).total_seconds() for c in candidates)
        wait_s = min(max(wait_s, 0.005), 0.5)
        # A bare future and a timer: asyncio.wait_for would wrap every sleep in a Task.
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(wait_s, _resolve, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _wake_up(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    def _spawn(self, name: str, coro: Coroutine[Any, Any, None], *, wake: bool = False) -> None:
        """Run ``coro`` in the background; ``wake``: pass the loop as soon as it ends.

        Only a sweep wakes the loop (its hits are due at once). Every other operation's
        follow-up is either timed (polls, the limiter's next token, claims) or picked up
        by the next pass, at most 0.5 s away: waking a full pass per finished Batch call
        cost more than the calls' own bookkeeping at thousands of runs.
        """
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            if wake or self._stopping:
                self._wake_up()
            if not t.cancelled() and t.exception() is not None:
                log.error("worker %s: %s failed", self.worker_id, name, exc_info=t.exception())

        task.add_done_callback(done)

    def _account(self, platform: str) -> _Account:
        acc = self._accounts.get(platform)
        if acc is None:
            acc = _Account(AccountLimiter(self.options.submit_rate, self.clock()))
            self._accounts[platform] = acc
        return acc

    # ------------------------------------------------------------------ claims

    def _room(self) -> int:
        return max(self.options.concurrency - self.in_flight, 0)

    def _adopt(self, now: datetime) -> None:
        room = min(self._room(), self.options.claim_batch)
        if room <= 0:
            return
        # Its own runs (a restart under the same worker id) only on the first pass: after
        # that this worker tracks them itself, and retries go back to the shared queue.
        own, self._adopted_own = not self._adopted_own, True
        lease_s = self.options.lease_s
        adopted = self.svc.store.adopt_runs(self.worker_id, now, room, lease_s, own=own)
        for run in adopted:
            if run.id in self._tracked or run.id in self._busy or run.id in self._queued:
                continue
            if run.state is RunState.QUEUED:
                self._enqueue(run)
            else:
                self.metrics.events["adopted"] += 1
                # Reconciliation: resume the poll cadence where the run's age puts it; the
                # first sweep (its window starts before the oldest submission) finds every
                # run that completed while nobody watched, at one call per page.
                full = self.svc.store.get_run(run.id)  # with history: submission time
                submitted = runs.entered(full, RunState.STARTING) or now
                age_s = (now - submitted).total_seconds()
                delay_s = self.options.cadence.delay_s(full.state, age_s, swept=self._swept(full))
                self._track(full, now + timedelta(seconds=delay_s))

    def _claim_target(self) -> int:
        """How many claimed-but-unsubmitted runs to keep: the submit horizon's worth."""
        o = self.options
        # A run submission is three Batch create calls (POST job, POST task, PATCH job).
        runs_per_s = o.submit_rate / 3
        per_account = max(1, math.ceil(runs_per_s * o.claim_horizon_s))
        return per_account * max(1, len(self._accounts))

    def _claim(self, now: datetime) -> None:
        backlog = sum(len(acc.pending) for acc in self._accounts.values())
        target = self._claim_target()
        limit = min(self._room(), self.options.claim_batch, target - backlog)
        if backlog > target // 2:
            # Top up only once half the backlog is gone: a claim is a write transaction,
            # and one per pass for a handful of runs cost more than the runs' own writes.
            limit = 0
        claimed: list[TaskRun] = []
        if limit > 0:
            claimed = self.svc.store.claim_queued(self.worker_id, now, limit, self.options.lease_s)
        for run in claimed:
            self._enqueue(run)
        if limit > 0 and len(claimed) == limit:
            again = 0.0  # a full batch: more may be waiting, claim again next pass
        elif limit <= 0:
            again = self.options.claim_horizon_s / 4  # backlog full: top it up soon
        else:
            again = self.options.claim_idle_interval_s
        self._next_claim = now + timedelta(seconds=again)

    def _enqueue(self, run: TaskRun) -> None:
        if run.id in self._queued:
            return
        self._queued[run.id] = run
        heapq.heappush(self._account(run.platform).pending, (-run.priority, run.id))

    # ------------------------------------------------------------------ submissions

    def _launch_submissions(self, now: datetime) -> None:
        for platform, acc in self._accounts.items():
            while (
                acc.pending
                and acc.submitting < self.options.max_parallel_submits
                and acc.limiter.try_submit(now)
            ):
                neg_priority, run_id = heapq.heappop(acc.pending)
                queued = self._queued.pop(run_id, None)
                if queued is None or run_id in self._busy:
                    acc.limiter.give_back()  # a stale heap entry: its run is already handled
                    continue
                acc.submitting += 1
                self._busy.add(run_id)
                self._spawn(f"submit-{run_id}", self._submit(queued, platform, -neg_priority))

    def _requeue(self, acc: _Account, run: TaskRun, priority: int) -> None:
        self._queued[run.id] = run
        heapq.heappush(acc.pending, (-priority, run.id))

    async def _submit(self, queued: TaskRun, platform: str, priority: int) -> None:
        acc = self._account(platform)
        run_id = queued.id
        try:
            run = await runs.submit_run(self.svc, queued)
        except PlatformError as exc:
            now = self.clock()
            if isinstance(exc, QuotaError):
                pause = acc.limiter.quota_reached(now)
                self.metrics.quota_holds[platform] += 1
                log.info("run %s held %.0f s: %s", run_id, pause, exc)
            elif isinstance(exc, ThrottledError):
                pause = acc.limiter.throttled(now, exc.retry_after_s)
                self.metrics.throttle_pauses[platform] += 1
                log.info("platform %s paused %.1f s: %s", platform, pause, exc)
            elif runs.is_transient(exc):
                # A 5xx or a lost connection after the SDK's own retries: this run goes
                # back in line; the account is not paused (Batch did not ask for that).
                self.metrics.events["transient_errors"] += 1
                log.info("run %s: submission failed for now: %s", run_id, exc)
            else:
                raise
            self._requeue(acc, queued, priority)
        except NotFoundError as exc:
            # Removed meanwhile (a forced `task remove`): nothing left to submit. Retrying
            # would pause the whole account every few seconds, for good.
            log.info("run %s: no longer submitted: %s", run_id, exc)
        except Exception:
            log.exception("run %s: submission failed; it stays Queued", run_id)
            acc.limiter.throttled(self.clock(), self.options.error_retry_s)
            self._requeue(acc, queued, priority)
        else:
            acc.limiter.succeeded()
            if run.state is RunState.STARTING:
                self.metrics.events["submitted"] += 1
            self._after(run, polled=False)
        finally:
            acc.submitting -= 1
            self._busy.discard(run_id)

    # ------------------------------------------------------------------ tracking

    def _track(self, run: TaskRun, due: datetime) -> None:
        submitted = runs.entered(run, RunState.STARTING) or self.clock()
        tracked = _Tracked(
            run=run,
            submitted_at=submitted,
            deadline=runs.timeout_deadline(self.svc, run),
            next_poll=due,
        )
        if self._tracked.get(run.id) is None:
            self._account(run.platform).tracked += 1
        self._tracked[run.id] = tracked
        self._schedule(tracked, due)
        acc = self._account(run.platform)
        if acc.next_sweep is None:
            acc.next_sweep = self.clock() + timedelta(seconds=self.options.sweep_interval_s)

    def _schedule(self, tracked: _Tracked, due: datetime) -> None:
        deadline = tracked.deadline
        if deadline is not None and self.clock() < deadline < due:
            due = deadline  # the poll that enforces the execution timeout
        tracked.next_poll = due
        heapq.heappush(self._polls, (due, next(self._seq), tracked.run_id))

    def _untrack(self, run_id: int) -> None:
        tracked = self._tracked.pop(run_id, None)
        if tracked is not None:
            self._account(tracked.platform).tracked -= 1

    def _after(self, run: TaskRun, *, polled: bool) -> None:
        """Bookkeeping once an operation returned the run's new state."""
        now = self.clock()
        previous = self._tracked.get(run.id)
        if run.state.is_terminal:
            self._untrack(run.id)
            self.metrics.finished[run.state.value] += 1
            failure = run.failure
            if (
                polled
                and run.ended_at is not None
                and run.state in (RunState.SUCCEEDED, RunState.FAILED)
                and (failure is None or failure.category != "polysync")
            ):
                self.metrics.detected((now - run.ended_at).total_seconds())
            return
        if run.state is RunState.QUEUED:
            # A retry (the Failed attempt was closed and the next one queued, unclaimed):
            # the claim loop takes it when its not_before is due.
            self._untrack(run.id)
            if run.attempt > (previous.attempt if previous is not None else 1):
                self.metrics.events["retried"] += 1
            return
        if previous is None or previous.attempt != run.attempt:
            self._track(run, now)
            tracked = self._tracked[run.id]
        else:
            tracked = previous
            tracked.run = run
        # The schedule is not stored: after a restart it follows from the attempt's age.
        age_s = (now - tracked.submitted_at).total_seconds()
        delay_s = self.options.cadence.delay_s(run.state, age_s, swept=self._swept(run))
        if run.cancel_requested:
            # A cancel is under way (its own command ends the run); look again soon in
            # case that command died before recording the outcome.
            delay_s = min(delay_s, self.options.cadence.starting.first_s)
        self._schedule(tracked, now + timedelta(seconds=delay_s))

    def _swept(self, run: TaskRun) -> bool:
        """True when the node sweep lists the run's pool (it sees the task start)."""
        if not self.options.node_sweep or run.batch_pool_id is None:
            return False
        acc = self._accounts.get(run.platform)
        return acc is None or not acc.nodes_off

    def _launch_polls(self, now: datetime) -> None:
        while self._polls and self._polls[0][0] <= now:
            if self._polling >= self.options.max_parallel_polls:
                return
            due, _, run_id = heapq.heappop(self._polls)
            tracked = self._tracked.get(run_id)
            if tracked is None or tracked.next_poll != due:
                continue  # superseded by a newer schedule
            if run_id in self._busy:
                self._schedule(tracked, now + timedelta(seconds=0.1))
                continue
            limiter = self._account(tracked.platform).limiter
            if limiter.paused(now) and limiter.paused_until is not None:
                self._schedule(tracked, limiter.paused_until)
                continue
            self._busy.add(run_id)
            self._polling += 1
            self._spawn(f"poll-{run_id}", self._poll(tracked))

    async def _poll(self, tracked: _Tracked) -> None:
        try:
            run = await runs.advance_run(self.svc, tracked.run)
        except ThrottledError as exc:
            now = self.clock()
            acc = self._account(tracked.platform)
            acc.limiter.throttled(now, exc.retry_after_s)
            self.metrics.throttle_pauses[tracked.platform] += 1
            self._schedule(tracked, acc.limiter.paused_until or now)
        except NotFoundError as exc:
            # The run (or its task, job or platform) was removed: a forced removal stopped
            # its Batch job first; polling it again would fail for good.
            log.info("run %s: no longer tracked: %s", tracked.run_id, exc)
            self._untrack(tracked.run_id)
        except Exception as exc:  # noqa: BLE001 - any failure: poll again later, keep the loop
            log.warning("run %s: poll failed (%s); trying again", tracked.run_id, exc)
            self.metrics.events["poll_errors"] += 1
            self._schedule(tracked, self.clock() + timedelta(seconds=self.options.error_retry_s))
        else:
            if run.failure is not None and run.failure.code == "TimedOut":
                self.metrics.events["timed_out"] += 1
            self._after(run, polled=True)
        finally:
            self._polling -= 1
            self._busy.discard(tracked.run_id)

    # ------------------------------------------------------------------ sweeps

    def _launch_sweeps(self, now: datetime) -> None:
        for platform, acc in self._accounts.items():
            if acc.tracked <= 0 or acc.sweeping or acc.limiter.paused(now):
                continue
            if acc.next_sweep is not None and now < acc.next_sweep:
                continue
            acc.sweeping = True
            acc.next_sweep = now + timedelta(seconds=self.options.sweep_interval_s)
            self._spawn(f"sweep-{platform}", self._sweep(platform), wake=True)

    async def _sweep(self, platform_name: str) -> None:
        acc = self._account(platform_name)
        try:
            if acc.window is None:
                oldest = min(
                    (t.submitted_at for t in self._tracked.values() if t.platform == platform_name),
                    default=self.clock(),
                )
                start = oldest - timedelta(seconds=self.options.sweep_lookback_s)
                acc.window = SweepWindow(start, self.options.sweep_margin_s)
            platform = self.svc.store.get_platform(platform_name)
            if self.options.node_sweep and not acc.nodes_off:
                await self._sweep_nodes(platform_name, platform)
            found = await self.svc.jobtype.sweep_completed(
                platform, self._prefix, acc.window.since()
            )
            acc.window.observe([job.end_time for job in found])
            now = self.clock()
            hits = 0
            for job in found:
                parsed = ids.parse_batch_job_id(job.id)
                if parsed is None or parsed[0] != self._installation:
                    continue
                tracked = self._tracked.get(parsed[1])
                if tracked is None or tracked.attempt != parsed[2] or tracked.next_poll <= now:
                    continue
                if tracked.run_id in self._observing:
                    continue  # the node sweep saw it end: being recorded already
                hits += 1
                self._schedule(tracked, now)
            self.metrics.events["sweeps"] += 1
            self.metrics.events["sweep_hits"] += hits
        except ThrottledError as exc:
            acc.limiter.throttled(self.clock(), exc.retry_after_s)
            self.metrics.throttle_pauses[platform_name] += 1
        except Exception as exc:  # noqa: BLE001 - a failed sweep is covered by the next one
            log.warning(
                "platform %s: sweep failed (%s); the next one covers it", platform_name, exc
            )
            self.metrics.events["sweep_errors"] += 1
        finally:
            acc.sweeping = False

    async def _sweep_nodes(self, platform_name: str, platform: Platform) -> None:
        """Record what the nodes of this account's pools show (decision 0009).

        A task seen running moves its Starting run to Running, and one seen completed with
        exit code 0 ends its run Succeeded, without a poll. Anything else a node shows
        (a failure, an odd state) is polled at once: the poll reads the task's failure
        details and stderr. A run with a cancel under way or past its execution timeout is
        left to its poll, which owns those outcomes. A refusal to list nodes other than
        throttling does not stop the job sweep that follows.
        """
        try:
            await self._observe_nodes(platform_name, platform)
        except ThrottledError:
            raise  # the sweep pauses the account
        except PlatformError as exc:
            self.metrics.events["node_sweep_errors"] += 1
            if runs.is_transient(exc):
                log.info("platform %s: node sweep failed for now: %s", platform_name, exc)
                return
            # E.g. a role that may read jobs but not nodes: say so once, then work as
            # without the node sweep (a poll per run shows its start).
            self._account(platform_name).nodes_off = True
            log.warning(
                "platform %s: cannot list pool nodes (%s); this worker polls each run "
                "instead (more Batch calls per run)",
                platform_name,
                exc,
            )

    async def _observe_nodes(self, platform_name: str, platform: Platform) -> None:
        pools = {
            t.run.batch_pool_id
            for t in self._tracked.values()
            if t.platform == platform_name and t.run.batch_pool_id is not None
        }
        acc = self._account(platform_name)
        start = self.clock()
        for gone in set(acc.nodes_due) - pools:
            del acc.nodes_due[gone]
        due = sorted(p for p in pools if acc.nodes_due.get(p, start) <= start)
        if not due:
            return
        sweep = await self.svc.jobtype.sweep_nodes(platform, due, self._prefix)
        o = self.options
        for pool_id in due:
            # Bigger pools are listed less often (their pages cost more); the per-run
            # safety polls and the job sweep cover the time between.
            listed = sweep.nodes.get(pool_id, 0)
            every_s = max(o.sweep_interval_s, listed / o.node_sweep_nodes_per_s)
            # Due half a sweep early, so "every sweep" never slips to every other one.
            acc.nodes_due[pool_id] = start + timedelta(seconds=every_s - o.sweep_interval_s / 2)
        seen = sweep.tasks
        now = self.clock()
        observed = polled = 0
        for item in seen:
            parsed = ids.parse_batch_job_id(item.batch_job_id)
            if parsed is None or parsed[0] != self._installation:
                continue
            tracked = self._tracked.get(parsed[1])
            if tracked is None or tracked.attempt != parsed[2] or tracked.run_id in self._busy:
                continue
            run = tracked.run
            if item.state == "running" and run.state is not RunState.STARTING:
                continue  # nothing new: most sightings, so checked before anything else
            if (run.batch_task_id or "").lower() != item.batch_task_id.lower():
                continue
            poll = item.decode()
            status = poll.status
            if status is ProviderStatus.STARTING:
                continue
            settled = status in (ProviderStatus.RUNNING, ProviderStatus.SUCCESS)
            late = tracked.deadline is not None and now >= tracked.deadline
            if settled and not run.cancel_requested and not late:
                observed += 1
                self._busy.add(run.id)
                self._observing.add(run.id)
                self._spawn(f"observe-{run.id}", self._observe(tracked, poll))
            elif tracked.next_poll > now:
                polled += 1
                self._schedule(tracked, now)
        self.metrics.events["node_sweeps"] += 1
        self.metrics.events["node_sweep_observed"] += observed
        self.metrics.events["node_sweep_hits"] += polled

    async def _observe(self, tracked: _Tracked, poll: PollResult) -> None:
        try:
            run = await runs.apply_poll(self.svc, tracked.run, poll)
        except Exception as exc:  # noqa: BLE001 - the run's own poll will see it instead
            log.warning("run %s: recording a node sighting failed (%s)", tracked.run_id, exc)
            self._schedule(tracked, self.clock())
        else:
            self._after(run, polled=True)
        finally:
            self._busy.discard(tracked.run_id)
            self._observing.discard(tracked.run_id)
