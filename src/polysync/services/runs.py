"""Run use cases: Run Once, submit, refresh from Batch, cancel, wait, logs.

Every step works from the stored record alone ("persist before you wait", DESIGN §4):
the Batch ids are stored before any create call (D5), and each later step reads the run
back from the store, so a crash between steps loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from polysync.domain import ids, limits, parameters, secrets, states
from polysync.domain.cadence import RUN_ONCE_CADENCE, Backoff, Cadence
from polysync.domain.durations import format_duration_s
from polysync.domain.models import Failure, Job, RunState, Task, TaskRun, Trigger
from polysync.domain.secrets import Writer
from polysync.errors import (
    ConfigError,
    FingerprintMismatch,
    InputError,
    NotFoundError,
    PlatformError,
    PoolNotFoundError,
    QuotaError,
    SecretError,
    TemplateError,
    ThrottledError,
)
from polysync.jobtypes.base import (
    CancelOutcome,
    PollResult,
    ProviderStatus,
    ResolvedParam,
    SubmitRequest,
)
from polysync.services.claims import RUN_ONCE_LEASE_S, RunClaim, run_once_owner
from polysync.services.context import Services
from polysync.services.secrets import masker
from polysync.services.secrets import rules as secret_rules
from polysync.services.tasks import check_values
from polysync.store.writes import AssignIds, Retry, Transition, Update

log = logging.getLogger(__name__)

# D9: a run still Starting after this long gets the pool diagnosis.
STUCK_STARTING_AFTER = timedelta(seconds=60)


def start_run(
    svc: Services,
    task_name: str,
    param_overrides: Mapping[str, str] | None = None,
    *,
    writer: Writer,
    trigger: Trigger = Trigger.MANUAL,
    owner: str | None = None,
    lease_s: float = RUN_ONCE_LEASE_S,
) -> TaskRun:
    """Queue a run of a Task (Run Once). Validates everything it can before creating it.

    ``writer`` is who gives the overrides: a Secret parameter's override must be a
    reference they may write (decision 0010). With ``owner`` the run is created already
    claimed by it (decision 0012): the process that starts a run to submit it itself
    (`task run`, the server without a worker) is its only submitter, and no worker claims
    it first. Without, a worker claims it.
    """
    overrides = dict(param_overrides or {})
    limits.check_params(overrides)
    task = svc.store.get_task(task_name)
    job = svc.store.get_job(task.job)
    platform = svc.store.get_platform(job.platform)
    check_values(svc, job, overrides, writer=writer)
    # Names, precedence and missing values are checked now; secrets are read at submit.
    parameters.effective_values(job, task.params, overrides)
    lease_until = svc.clock() + timedelta(seconds=lease_s) if owner is not None else None
    return svc.store.create_run(
        task,
        job,
        platform,
        trigger=trigger,
        priority=task.priority,
        param_overrides=overrides,
        claimed_by=owner,
        lease_expires_at=lease_until,
    )


def _load(svc: Services, run: TaskRun | int) -> TaskRun:
    """The caller's copy of a run (the worker keeps one), or a fresh read by id."""
    return run if isinstance(run, TaskRun) else svc.store.get_run(run)


async def _resolve(
    svc: Services, run: TaskRun, job: Job, task: Task
) -> tuple[list[ResolvedParam], dict[str, str]]:
    """Effective values → resolved strings to send, plus their redacted record.

    Secret parameters are references, read now through the process's resolver (cached
    for a short time, decision 0010 §5); a vault reference is checked again against the
    vault's task secrets and the credential rule, so a narrowed vault is obeyed at once.
    """
    values = parameters.effective_values(job, task.params, run.param_overrides)
    resolved: list[ResolvedParam] = []
    record: dict[str, str] = {}
    for value in parameters.sendable(values):
        param = job.parameter(value.name)
        assert param is not None  # effective_values only yields schema parameters
        what = f"parameter {value.name}"
        if value.secret:
            ref = secrets.require_ref(value.raw, what)
            if not ref.is_host:
                secrets.check_vault_ref(
                    ref, rules=secret_rules(svc), slot=secrets.Slot.PARAMETER, what=what
                )
            try:
                text = await svc.secrets.resolve(ref)
            except SecretError as exc:
                raise SecretError(f"{what}: {exc}") from None
        else:
            text = secrets.unescape_literal(value.raw)
        text = parameters.validate_value(param, text)
        resolved.append(ResolvedParam(value.name, text, secret=value.secret))
        record[value.name] = secrets.MASK if value.secret else text
    return resolved, record


async def submit_run(svc: Services, run: TaskRun | int) -> TaskRun:
    """Create the run's Batch job and task (D2–D5). Returns the run, Starting or Failed.

    Transient refusals (throttling, the active-job quota) leave the run Queued with a
    waiting reason and raise, so the caller decides when to try again. Given a run
    (the worker's copy) rather than an id, no read is made; a copy that is out of date
    is caught by the store's compare-and-set guards.
    """
    run = _load(svc, run)
    if run.state is not RunState.QUEUED:
        return run
    job = svc.catalog.get_job(run.job)
    platform = svc.catalog.get_platform(run.platform)
    task = svc.catalog.get_task(run.task)
    try:
        resolved, record = await _resolve(svc, run, job, task)
        # The platform's credential too: a key that cannot be read fails the run before
        # anything is created on Batch (decision 0010 §5).
        await svc.jobtype.prepare(platform)
    except (SecretError, InputError, ConfigError) as exc:
        return await _fail(svc, run, "polysync", exc.code, str(exc))
    installation = svc.store.installation_id()
    batch_job_id = ids.batch_job_id(installation, run.id, run.attempt)
    batch_task_id = ids.batch_task_id(task.name)
    monitor_url = svc.jobtype.monitor_url(platform, batch_job_id)
    # D5: the RunId is persisted before any create call.
    try:
        run = await svc.writer.write(
            AssignIds(run.id, batch_job_id, batch_task_id, monitor_url, record)
        )
    except InputError:
        # The run ended meanwhile (e.g. cancelled while Queued): nothing to submit.
        return svc.store.get_run(run.id)
    request = SubmitRequest(
        platform=platform,
        job=job,
        run=run,
        params=tuple(resolved),
        execution_timeout_s=task.execution_timeout_s,
    )
    try:
        result = await svc.jobtype.submit(request)
    except QuotaError as exc:
        await svc.writer.write(Update(run.id, {"waiting_reason": f"waiting for quota: {exc}"}))
        raise
    except (PoolNotFoundError, TemplateError, FingerprintMismatch) as exc:
        return await _fail(svc, run, "polysync", exc.code, str(exc))
    except PlatformError as exc:
        if is_transient(exc):
            # Throttled, 5xx, timeout, connection lost: the run stays Queued and is
            # submitted again later with the same Batch ids, so whatever this call may
            # have created is adopted, never duplicated (D5).
            reason = f"waiting to submit again: {exc}"
            await svc.writer.write(Update(run.id, {"waiting_reason": reason}))
            raise
        return await _fail(svc, run, "platform", exc.batch_code or exc.code, str(exc))
    except (SecretError, ConfigError, InputError) as exc:
        # E.g. the platform's key file vanished: fail the run with the reason rather than
        # leave it Queued forever.
        return await _fail(svc, run, "polysync", exc.code, str(exc))
    reason = f"Batch job {result.batch_job_id} and task {result.batch_task_id} created"
    if result.adopted:
        reason += " (adopted: created by an earlier attempt whose answer was lost)"
    try:
        started = await svc.writer.write(
            Transition(
                run.id,
                RunState.STARTING,
                reason,
                expected_from=frozenset({RunState.QUEUED}),
                at=svc.clock(),
                fields={"waiting_reason": None, "batch_pool_id": result.pool_id},
            )
        )
    except NotFoundError:
        # The run was removed (a forced `task remove`) while its create calls were in
        # flight: nothing would ever track the job just made, so stop it.
        await svc.jobtype.cancel(platform, run)
        raise
    if started.state is RunState.CANCELLED:
        # A cancel landed while the create calls were in flight: it found no Batch job
        # to stop, so stop the one just made.
        await svc.jobtype.cancel(platform, started)
    return started


_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def is_transient(exc: PlatformError) -> bool:
    """True for refusals that say "try again later", not "this cannot work"."""
    if isinstance(exc, ThrottledError | QuotaError):
        return True
    if exc.status in _TRANSIENT_STATUS:
        return True
    return exc.status is None and exc.code in ("Unreachable", PlatformError.code)


async def _fail(svc: Services, run: TaskRun, category: str, code: str, message: str) -> TaskRun:
    failure = Failure(category=category, code=code, message=message)
    return await _end_attempt(
        svc, run, RunState.FAILED, reason=message, failure=failure, ended_at=svc.clock()
    )


async def _end_attempt(
    svc: Services,
    run: TaskRun,
    target: RunState,
    *,
    reason: str,
    at: datetime | None = None,
    cancel_seen: bool | None = None,
    **fields: Any,
) -> TaskRun:
    """Move ``run`` (as read) to ``target``; a Failed attempt may be retried (issue 4).

    With attempts left in the Task's retry policy, the attempt ends Failed and the next
    one is Queued after the policy's delay, in one transaction (a crash between the two
    would lose the retry). A cancel request stops retries. Compare-and-set on the state
    read, so two trackers of one run (a worker and `run wait`) never double-apply; with
    ``cancel_seen`` also on the cancel flag the decision was made with, so an outcome
    decided before a cancel request arrived is not recorded (the next poll decides again).
    """
    at = at or svc.clock()
    retry: Retry | None = None
    if target is RunState.FAILED:
        policy = svc.catalog.get_task(run.task).retry_policy
        step = states.retry_transition(
            RunState.FAILED, run.attempt, policy, cancel_requested=run.cancel_requested
        )
        if step is not None:
            not_before = svc.clock() + timedelta(seconds=step.delay_s)
            retry = Retry(step.next_attempt, not_before, step.reason)
    return await svc.writer.write(
        Transition(
            run.id,
            target,
            reason,
            expected_from=frozenset({run.state}),
            cancel_requested=cancel_seen,
            at=at,
            fields=fields,
            retry=retry,
        )
    )


async def _masked(svc: Services, run: TaskRun, failure: Failure) -> Failure:
    """The failure with every known secret masked (it comes from task output: 0010 §6)."""
    redactor = await masker(svc, run)
    if not redactor:
        return failure
    return replace(
        failure,
        message=redactor.redact(failure.message),
        details=tuple((k, redactor.redact(v)) for k, v in failure.details),
        stderr_tail=redactor.redact(failure.stderr_tail) if failure.stderr_tail else None,
    )


def _reason(poll: PollResult, to: RunState) -> str:
    if to is RunState.STARTING:
        return f"Batch task {poll.batch_state or 'active'}: waiting for a compute node"
    if to is RunState.RUNNING:
        return f"running on node {poll.node_id}" if poll.node_id else "running"
    if to is RunState.SUCCEEDED:
        return "exit code 0"
    if to is RunState.CANCELLED:
        return "cancelled by user: Batch task terminated, then its job"
    if poll.failure is not None:
        code = f"exit code {poll.exit_code}: " if poll.exit_code is not None else ""
        return f"{code}{poll.failure.code} — {poll.failure.message}"
    return f"exit code {poll.exit_code}"


async def refresh_run(svc: Services, run: TaskRun | int) -> TaskRun:
    """Poll Batch once for a submitted run and record any state change (D6, D7, D9)."""
    run = _load(svc, run)
    if run.state.is_terminal or run.state is RunState.QUEUED or run.batch_job_id is None:
        return run
    platform = svc.catalog.get_platform(run.platform)
    poll = await svc.jobtype.poll(platform, run)
    return await apply_poll(svc, run, poll)


async def apply_poll(svc: Services, run: TaskRun, poll: PollResult) -> TaskRun:
    """Record what Batch said about ``run``'s task (a poll, or a node sweep's sighting).

    ``run`` is the copy the caller decided with; the store's compare-and-set guards catch
    one that is out of date.
    """
    if run.state.is_terminal or run.state is RunState.QUEUED:
        return run
    if poll.missing:
        return await _fail(
            svc,
            run,
            "polysync",
            "BatchObjectMissing",
            f"Batch job {run.batch_job_id} or its task no longer exists (deleted outside "
            "Polysync); run the task again.",
        )
    if poll.status is ProviderStatus.UNKNOWN:
        log.warning("run %s: Batch task in unexpected state %r", run.id, poll.batch_state)
        diagnosis = f"Batch reported task state {poll.batch_state!r} (Unknown)"
        return await svc.writer.write(Update(run.id, {"diagnosis": diagnosis}))
    if poll.failure is not None:
        # Batch's failure message and the stderr tail come from the task: mask them before
        # they reach the history, the run record or anyone's screen.
        poll = replace(poll, failure=await _masked(svc, run, poll.failure))
    cancel_seen = run.cancel_requested
    target = states.fold(poll.status, run.state, cancel_seen)
    if target is None or target is run.state:
        return await _maybe_diagnose(svc, run)
    if target.is_terminal and run.state is RunState.STARTING and poll.start_time is not None:
        # The task ran between two polls: record Running at the time Batch says it started,
        # so the history shows the real timeline.
        run = await svc.writer.write(
            Transition(
                run.id,
                RunState.RUNNING,
                _reason(poll, RunState.RUNNING),
                expected_from=frozenset({RunState.STARTING}),
                at=poll.start_time,
                fields={"started_at": poll.start_time},
            )
        )
        if run.state is not RunState.RUNNING:
            return run  # someone else moved it first
    fields: dict[str, Any] = {}
    if target is RunState.RUNNING:
        fields["started_at"] = poll.start_time or svc.clock()
    if target.is_terminal:
        fields.update(
            exit_code=poll.exit_code,
            failure=poll.failure if target is not RunState.SUCCEEDED else None,
            ended_at=poll.end_time or svc.clock(),
        )
    return await _end_attempt(
        svc, run, target, reason=_reason(poll, target), cancel_seen=cancel_seen, **fields
    )


async def enforce_timeout(svc: Services, run: TaskRun) -> TaskRun | None:
    """End an attempt that outlived the Task's execution timeout; None when within it.

    The timeout counts from submission (the attempt entering Starting), so a run stuck
    waiting for a node times out too. The Batch work is cancelled (terminate task, then
    job, D8) and the attempt ends Failed with code ``TimedOut``; the retry policy then
    applies like for any failure (docs/engine.md). If the task had already finished by
    itself when the terminate arrived, its real outcome is recorded instead.
    """
    if run.state not in (RunState.STARTING, RunState.RUNNING) or run.batch_job_id is None:
        return None
    deadline = timeout_deadline(svc, run)
    if deadline is None or svc.clock() < deadline:
        return None
    task = svc.catalog.get_task(run.task)
    assert task.execution_timeout_s is not None  # a deadline exists only with a timeout
    platform = svc.catalog.get_platform(run.platform)
    outcome = await svc.jobtype.cancel(platform, run)
    if outcome is CancelOutcome.ALREADY_DONE:
        return await refresh_run(svc, run)
    limit = format_duration_s(task.execution_timeout_s)
    message = (
        f"run {run.id} attempt {run.attempt} exceeded the execution timeout of task "
        f"{task.name!r} ({limit}): Polysync terminated Batch task {run.run_id}, then its job."
    )
    return await _end_attempt(
        svc,
        run,
        RunState.FAILED,
        reason=message,
        failure=Failure(category="polysync", code="TimedOut", message=message),
        ended_at=svc.clock(),
    )


def timeout_deadline(svc: Services, run: TaskRun) -> datetime | None:
    """When the current attempt times out (from its entry into Starting), if ever."""
    timeout_s = svc.catalog.get_task(run.task).execution_timeout_s
    if timeout_s is None:
        return None
    since = entered(run, RunState.STARTING)
    return since + timedelta(seconds=timeout_s) if since is not None else None


async def advance_run(svc: Services, run: TaskRun | int) -> TaskRun:
    """One step of a run's life, shared by the worker and Run Once (`task run`).

    Queued and due → submit; Starting/Running → enforce the timeout, else poll Batch.
    Raises the transient ``PlatformError``s of :func:`submit_run` (the run stays Queued).
    """
    run = _load(svc, run)
    if run.state.is_terminal:
        return run
    if run.state is RunState.QUEUED:
        if run.not_before is not None and run.not_before > svc.clock():
            return run
        return await submit_run(svc, run)
    timed_out = await enforce_timeout(svc, run)
    if timed_out is not None:
        return timed_out
    return await refresh_run(svc, run)


async def _maybe_diagnose(svc: Services, run: TaskRun) -> TaskRun:
    if run.state is not RunState.STARTING or run.diagnosis is not None:
        return run
    since = entered(run, RunState.STARTING)
    if since is None or svc.clock() - since < STUCK_STARTING_AFTER:
        return run
    platform = svc.catalog.get_platform(run.platform)
    job = svc.catalog.get_job(run.job)
    diagnosis = await svc.jobtype.diagnose_pool(platform, job)
    if diagnosis is None:
        return run
    return await svc.writer.write(Update(run.id, {"diagnosis": diagnosis}))


def entered(run: TaskRun, state: RunState) -> datetime | None:
    for entry in reversed(run.history):
        if entry.to_state is state:
            return entry.at
    return None


@dataclass(frozen=True, slots=True)
class CancelResult:
    run: TaskRun
    message: str


async def cancel_run(svc: Services, run_id: int) -> CancelResult:
    """D8: terminate the task, then its job. Idempotent; the run ends Cancelled."""
    run = svc.store.get_run(run_id)
    if run.state is RunState.CANCELLED:
        return CancelResult(run, f"run {run.id} is already cancelled; nothing to do.")
    if run.state.is_terminal:
        raise InputError(
            f"run {run.id} already finished {run.state.value}; there is nothing to cancel "
            f"(see `polysync run show {run.id}`)."
        )
    svc.store.request_cancel(run.id)
    if run.batch_job_id is None:
        run = svc.store.transition(
            run.id,
            RunState.CANCELLED,
            reason="cancelled by user before submission",
            ended_at=svc.clock(),
        )
        return CancelResult(run, f"run {run.id} cancelled before it reached Batch.")
    platform = svc.store.get_platform(run.platform)
    outcome = await svc.jobtype.cancel(platform, run)
    poll = await svc.jobtype.poll(platform, run)
    if outcome is CancelOutcome.ALREADY_DONE and poll.status in (
        ProviderStatus.SUCCESS,
        ProviderStatus.FAILED,
    ):
        # The task finished before the terminate reached it: report what really happened
        # (a failure of its own is not turned into Cancelled).
        # The poll just made says how: record it rather than ask Batch a second time.
        svc.store.update_run(run.id, cancel_requested=False)
        run = await apply_poll(svc, svc.store.get_run(run.id), poll)
        return CancelResult(
            run, f"run {run.id} finished {run.state.value} before the cancel reached Batch."
        )
    run = svc.store.get_run(run.id)
    if run.state.is_terminal:
        return CancelResult(run, f"run {run.id} is already {run.state.value}.")
    run = svc.store.transition(
        run.id,
        RunState.CANCELLED,
        reason=_reason(poll, RunState.CANCELLED),
        exit_code=poll.exit_code,
        ended_at=poll.end_time or svc.clock(),
    )
    return CancelResult(run, f"run {run.id} cancelled: Batch task terminated, then its job.")


OnUpdate = Callable[[TaskRun], None]

WATCH_INTERVAL_S = 1.0
"""How often a follower that does not hold the run reads it back (a store read, no Batch)."""


async def wait_run(
    svc: Services,
    run_id: int,
    *,
    on_update: OnUpdate | None = None,
    timeout_s: float | None = None,
    sleep: Callable[[float], object] = asyncio.sleep,
    cadence: Cadence = RUN_ONCE_CADENCE,
    owner: str | None = None,
    lease_s: float = RUN_ONCE_LEASE_S,
) -> TaskRun:
    """Run Once: follow the run to its end (or the timeout), submitting it if needed.

    The same steps as the worker (:func:`advance_run`: submission, timeout, polling,
    retries) on the same adaptive cadence function, minus the sweep — one run is cheaper
    to poll directly — but only while this process holds the run's claim (decision 0012):
    a run a worker (or another follower) holds is only watched in the store, and taken
    over once its holder's lease runs out. Stopping early gives the claim back, so a
    worker (if any) adopts the run. ``owner`` defaults to this process
    (:func:`~polysync.services.claims.run_once_owner`); a run created claimed by it
    (``start_run(..., owner=...)``) is simply kept.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    claim = RunClaim(svc, run_id, owner or run_once_owner(), lease_s)
    run = svc.store.get_run(run_id)
    last_state: RunState | None = None
    backoff = Backoff(first_s=1.0, cap_s=30.0)
    try:
        while True:
            due = run.not_before is None or run.not_before <= svc.clock()
            # Before a submission the claim is checked in the store itself: submitting is
            # the step two processes must never both take.
            held = claim.keep(run, fresh=run.state is RunState.QUEUED and due)
            if held:
                try:
                    run = await advance_run(svc, run.id)
                    backoff.reset()
                except PlatformError as exc:
                    if run.state is not RunState.QUEUED or not is_transient(exc):
                        raise
                    retry_after = getattr(exc, "retry_after_s", None)
                    delay = retry_after if retry_after is not None else backoff.next_s()
                    log.info("run %s waiting: %s", run.id, exc)
                    await _sleep(sleep, delay)
                    run = svc.store.get_run(run.id)
                    continue
            else:
                run = svc.store.get_run(run.id)  # its holder advances it; watch what it records
            if on_update is not None and run.state is not last_state:
                on_update(run)
            last_state = run.state
            if run.state.is_terminal:
                return run
            elapsed = loop.time() - started
            if timeout_s is not None and elapsed >= timeout_s:
                return run
            delay = cadence.delay_s(run.state, _age_s(svc, run))
            if not held:
                delay = min(delay, WATCH_INTERVAL_S)
            if run.state is RunState.QUEUED and run.not_before is not None:
                delay = min(max((run.not_before - svc.clock()).total_seconds(), 0.0), 5.0)
            await _sleep(sleep, delay)
    finally:
        if claim.held and not run.state.is_terminal:  # an end frees the run by itself
            claim.release()


def _age_s(svc: Services, run: TaskRun) -> float:
    """Seconds since the current attempt was submitted (or queued)."""
    since = entered(run, RunState.STARTING) or run.created_at
    return max((svc.clock() - since).total_seconds(), 0.0) if since is not None else 0.0


async def _sleep(sleep: Callable[[float], object], seconds: float) -> None:
    result = sleep(seconds)
    if asyncio.iscoroutine(result):
        await result


def check_task_file(path: str) -> str:
    """The one check of a task file path, for every edge that reads one (API, CLI).

    Refused paths raise :class:`InputError` (API 422, CLI exit 2) before Batch is asked.
    """
    return limits.check_task_file(path)


async def follow_file(
    svc: Services,
    run_id: int,
    path: str,
    *,
    follow: bool,
    offset: int = 0,
    sleep: Callable[[float], object] = asyncio.sleep,
) -> AsyncIterator[bytes]:
    """Yield a task file's bytes from ``offset``; with ``follow``, until the run ends.

    Every secret this process knows (and the run's own) is masked first (decision 0010
    §6), a secret split across two reads included.
    """
    check_task_file(path)
    run = svc.store.get_run(run_id)
    if run.batch_job_id is None:
        raise InputError(
            f"run {run.id} has not reached Batch yet ({run.state.value}); its logs appear once "
            "it starts."
        )
    platform = svc.store.get_platform(run.platform)
    mask = secrets.StreamMasker(await masker(svc, run))
    while True:
        chunk = await svc.jobtype.read_file(platform, run, path, offset=offset)
        if chunk.data:
            offset += len(chunk.data)
            if out := mask.feed(chunk.data):
                yield out
        if not follow:
            break
        run = await refresh_run(svc, run.id)
        if run.state.is_terminal:
            tail = await svc.jobtype.read_file(platform, run, path, offset=offset)
            if tail.data and (out := mask.feed(tail.data)):
                yield out
            break
        if not chunk.data:
            await _sleep(sleep, 0.5)
    if rest := mask.flush():
        yield rest


@dataclass(frozen=True, slots=True)
class LogChunk:
    """Bytes of a task file from ``offset`` to ``next_offset`` (file positions), masked."""

    data: bytes
    offset: int
    next_offset: int
    size: int | None


async def read_log(
    svc: Services, run: TaskRun, path: str, *, offset: int, max_bytes: int
) -> LogChunk:
    """One window of a task file for the API and console, masked (decision 0010 §6).

    The read takes the longest secret's length of context on both sides, so a secret cut
    by the window's edge is masked whole; the window then ends after it (``next_offset``).
    A window that would end inside a UTF-8 character stops before it.
    """
    if run.batch_job_id is None:
        return LogChunk(b"", offset, offset, None)
    platform = svc.catalog.get_platform(run.platform)
    rule = (await masker(svc, run)).bytes_rule()
    context = rule[1] if rule else 0
    start = max(0, offset - context)
    chunk = await svc.jobtype.read_file(
        platform, run, path, offset=start, length=(offset - start) + max_bytes + context
    )
    lo = offset - start
    if not chunk.data or len(chunk.data) <= lo:
        return LogChunk(b"", offset, offset, chunk.total_size)
    window = chunk.data[lo : lo + max_bytes]
    end = _utf8_end(window)
    # A window cut inside a character stops before it (and sends it whole next time),
    # unless the file really ends there.
    if end == 0 and window and len(window) < 4:
        end = len(window)
    data, hi = secrets.mask_window(rule, chunk.data, lo, lo + end)
    return LogChunk(data, offset, start + hi, chunk.total_size)


def _utf8_end(data: bytes) -> int:
    """Length of ``data`` without a trailing, incomplete UTF-8 sequence (at most 3 bytes)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): is its sequence complete?
            need = (
                1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            )
            return len(data) if back >= need else len(data) - back
    return len(data)
