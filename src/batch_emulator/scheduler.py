"""Runs tasks: puts active tasks on free node slots, launches them, settles their outcome.

Event-driven, never a poll over all tasks:

* each pool id has a FIFO of ready tasks; a pool whose slots or queue changed is marked
  dirty and dispatched once on the next loop iteration (``loop.call_soon``);
* a task that a ``hold`` pins in ``active`` leaves the queue for a held set and comes back
  on release; one pinned in ``running`` keeps its exit code ("parked") until released;
* wall-clock limits sit in one heap of deadlines on the emulator clock with a single
  timer armed for the earliest; ``advance_clock`` fires due deadlines at once;
* every launched attempt has one coroutine that awaits the process and settles the task;
  a kill only records *why* (``kill_reason``) and signals the process, so the outcome is
  decided in one place (:meth:`Scheduler._settle`).

The scheduler implements :class:`batch_emulator.backend.Engine`; the backend calls it when
tasks become ready, jobs start terminating or being deleted, pools change.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import heapq
import itertools
import logging
import re
import shutil
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_emulator.backend import (
    KILL_DELETE,
    KILL_JOB,
    KILL_REQUEUE,
    KILL_TIMEOUT,
    KILL_USER,
    MSG_FAILURE_EXIT,
    MSG_JOB_ENDED,
    MSG_TIMEOUT_ENDED,
    MSG_USER_ENDED,
    WALL_CLOCK_EXIT_CODE,
    Backend,
)
from batch_emulator.model import (
    JOB_ACTIVE,
    POOL_ACTIVE,
    TASK_ACTIVE,
    TASK_COMPLETED,
    TASK_PREPARING,
    TASK_RUNNING,
    FailureInfo,
    Job,
    Node,
    Pool,
    Task,
)
from batch_emulator.protocol.cmdline import split_command_line
from batch_emulator.runner import LaunchError, ProcessRunner, ProcessSpec, RunningProcess

log = logging.getLogger(__name__)

HOLD_STATES = ("active", "running")
# How long a terminate/delete waits for killed processes before giving up on them.
KILL_WAIT_S = 15.0
MSG_NODE_REMOVED = "The task was terminated because its compute node was removed from the pool."


@dataclass(frozen=True, slots=True)
class HoldRule:
    """Pin tasks whose job and task ids match the globs in ``state`` (tests only)."""

    job_glob: str
    task_glob: str
    state: str

    def matches(self, task: Task) -> bool:
        return _glob(self.job_glob).match(task.job.id) is not None and (
            _glob(self.task_glob).match(task.id) is not None
        )


_GLOBS: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    compiled = _GLOBS.get(pattern)
    if compiled is None:
        compiled = re.compile(fnmatch.translate(pattern))
        _GLOBS[pattern] = compiled
    return compiled


class Scheduler:
    """Moves tasks through active → running → completed on the pools' node slots."""

    def __init__(
        self,
        backend: Backend,
        runner: ProcessRunner,
        *,
        data_dir: Path,
        account_url: str = "",
        transition_s: float = 0.2,
    ) -> None:
        self.backend = backend
        self.runner = runner
        self.data_dir = data_dir
        self.account_url = account_url
        self.transition_s = transition_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[str, deque[tuple[int, Task]]] = {}
        self._dirty: set[str] = set()
        self._dispatch_scheduled = False
        self._held: set[Task] = set()
        self._running: set[Task] = set()
        self._rules: list[HoldRule] = []
        self._tokens = itertools.count(1)
        self._deadlines: list[tuple[float, int, Any, int]] = []
        self._job_timer_token: dict[Job, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._background: set[asyncio.Task[Any]] = set()
        backend.engine = self

    # ------------------------------------------------------------------ lifecycle

    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Bind to the running loop and catch up on anything queued before it existed."""
        self._loop = loop or asyncio.get_running_loop()
        self._dirty.update(self._pending)
        self._schedule_dispatch()
        self._arm_timer()

    @property
    def started(self) -> bool:
        return self._loop is not None

    async def shutdown(self) -> None:
        """Kill every task process and stop all background work."""
        for task in list(self._running):
            self._kill(task, KILL_DELETE)
        await self.runner.shutdown()
        await self._drain_background(KILL_WAIT_S)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def reset(self) -> None:
        """Kill everything and forget all scheduling state (the control's reset)."""
        waits = [t.finished for t in self._running if t.finished is not None]
        for task in list(self._running):
            self._kill(task, KILL_DELETE)
        await _wait_all(waits, KILL_WAIT_S)
        await self.runner.shutdown()
        for bg in list(self._background):
            bg.cancel()
        await self._drain_background(KILL_WAIT_S)
        self._pending.clear()
        self._dirty.clear()
        self._held.clear()
        self._running.clear()
        self._rules.clear()
        self._deadlines.clear()
        self._job_timer_token.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = None
        nodes_dir = self.data_dir / "nodes"
        await asyncio.to_thread(shutil.rmtree, nodes_dir, True)

    async def _drain_background(self, wait_s: float) -> None:
        if self._background:
            await asyncio.wait(list(self._background), timeout=wait_s)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Emulator background work failed", exc_info=task.exception())

    # ------------------------------------------------------------------ engine hooks

    def task_ready(self, task: Task) -> None:
        key = task.job.pool_id.lower()
        token = next(self._tokens)
        task.queue_token = token
        self._pending.setdefault(key, deque()).append((token, task))
        self._mark_dirty(key)

    def task_removed(self, task: Task) -> None:
        task.queue_token = 0
        self._held.discard(task)
        if task.state in (TASK_RUNNING, TASK_PREPARING) and task.finished is not None:
            self._kill(task, KILL_DELETE)
        else:
            # Synchronous (a task directory is small): a task created next with the same id
            # must not lose its fresh files to a late removal.
            if task.pool_id is not None:
                shutil.rmtree(self._task_dir(task), ignore_errors=True)

    def job_changed(self, job: Job) -> None:
        token = next(self._tokens)
        self._job_timer_token[job] = token
        if job.max_wall_clock_time is not None and job.state == JOB_ACTIVE:
            # Measured from job creation (NOTES.md §10.5).
            deadline = job.created_mono + job.max_wall_clock_time.total_seconds()
            self._push_deadline(deadline, job, token)

    def job_terminating(self, job: Job, reason: str) -> None:
        self._job_timer_token.pop(job, None)
        self._spawn(self._end_job(job, KILL_JOB, reason))

    def job_deleting(self, job: Job) -> None:
        self._job_timer_token.pop(job, None)
        self._spawn(self._end_job(job, KILL_DELETE, None))

    def pool_changed(self, pool_key: str) -> None:
        self._mark_dirty(pool_key)

    def pool_resized(self, pool: Pool, removed: list[Node], deallocation: str) -> None:
        for node in removed:
            self.backend.drain_node(node)
            if deallocation in ("requeue", "terminate"):
                for task in list(node.running):
                    if deallocation == "requeue":
                        self._kill(task, KILL_REQUEUE)
                    else:
                        self._kill(task, KILL_USER, MSG_NODE_REMOVED)
            self._drop_if_idle(pool, node)
        self._after(self.transition_s, lambda: self.backend.finish_resize(pool))

    def pool_deleting(self, pool: Pool) -> None:
        self._spawn(self._end_pool(pool))

    # ------------------------------------------------------------------ holds

    def hold(self, job_glob: str, task_glob: str, state: str) -> None:
        if state not in HOLD_STATES:
            raise ValueError(f"A hold state must be one of {', '.join(HOLD_STATES)}.")
        self._rules.append(HoldRule(job_glob, task_glob, state))

    def release(self, job_glob: str = "*", task_glob: str = "*") -> int:
        """Let matching tasks progress again; returns how many were held or parked."""
        self._rules = [r for r in self._rules if (r.job_glob, r.task_glob) != (job_glob, task_glob)]
        probe = HoldRule(job_glob, task_glob, "active")
        released = 0
        for task in list(self._held):
            if probe.matches(task):
                task.hold_exempt = True
                self._held.discard(task)
                task.held = False
                released += 1
                if task.state == TASK_ACTIVE and self._is_live(task):
                    self.task_ready(task)
        for task in list(self._running):
            if probe.matches(task):
                task.hold_exempt = True
                if task.parked:
                    released += 1
                    self._unpark(task)
        return released

    def release_all(self) -> int:
        self._rules.clear()
        return self.release("*", "*")

    def holds(self) -> list[HoldRule]:
        return list(self._rules)

    def _pinned(self, task: Task, state: str) -> bool:
        if task.hold_exempt or not self._rules:
            return False
        return any(rule.state == state and rule.matches(task) for rule in self._rules)

    def _unpark(self, task: Task) -> None:
        task.parked = False
        exit_code = task.parked_exit
        task.parked_exit = None
        self._settle(task, exit_code, task.kill_reason, task.kill_detail)

    # ------------------------------------------------------------------ clock

    def clock_advanced(self) -> None:
        """The emulator clock jumped: fire every deadline that is now due."""
        self._fire_deadlines()

    def _push_deadline(self, deadline: float, target: Any, token: int) -> None:
        heapq.heappush(self._deadlines, (deadline, next(self._tokens), target, token))
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._loop is None or not self._deadlines:
            return
        at = self._deadlines[0][0]
        if self._timer is not None and self._timer_at is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        delay = max(0.0, at - self.backend.clock.monotonic())
        self._timer_at = at
        self._timer = self._loop.call_later(delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._fire_deadlines()

    def _fire_deadlines(self) -> None:
        now = self.backend.clock.monotonic()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, target, token = heapq.heappop(self._deadlines)
            if isinstance(target, Task):
                if target.attempt == token and target.state in (TASK_RUNNING, TASK_PREPARING):
                    self._kill(target, KILL_TIMEOUT)
            elif isinstance(target, Job) and self._job_timer_token.get(target) == token:
                self._job_timer_token.pop(target, None)
                self.backend.job_wall_clock_expired(target)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None
        self._arm_timer()

    def _after(self, delay: float, callback: Any) -> None:
        if self._loop is None:
            callback()
        else:
            self._loop.call_later(delay, callback)

    # ------------------------------------------------------------------ dispatch

    def _mark_dirty(self, pool_key: str) -> None:
        self._dirty.add(pool_key)
        self._schedule_dispatch()

    def _schedule_dispatch(self) -> None:
        if self._loop is None or self._dispatch_scheduled:
            return
        self._dispatch_scheduled = True
        self._loop.call_soon(self._dispatch)

    def _dispatch(self) -> None:
        self._dispatch_scheduled = False
        dirty, self._dirty = self._dirty, set()
        for key in dirty:
            self._dispatch_pool(key)

    def _is_live(self, task: Task) -> bool:
        """The task still exists (not deleted, job not gone)."""
        job = task.job
        return job.tasks.get(task.key) is task and self.backend.jobs.get(job.key) is job

    def _dispatch_pool(self, key: str) -> None:
        queue = self._pending.get(key)
        if not queue:
            return
        pool = self.backend.pools.get(key)
        if pool is None or pool.state != POOL_ACTIVE:
            return
        nodes = [n for n in pool.nodes if not n.draining]
        free = sum(max(0, n.free) for n in nodes)
        if free <= 0:
            return
        kept: list[tuple[int, Task]] = []
        while queue and free > 0:
            token, task = queue.popleft()
            if task.queue_token != token:
                continue  # stale entry: the task was re-queued, started or removed since
            if task.state != TASK_ACTIVE or task.job.state != JOB_ACTIVE or not self._is_live(task):
                # A terminated job's active tasks stay active but never run (NOTES.md §0.19).
                task.queue_token = 0
                continue
            if self._pinned(task, "active"):
                task.queue_token = 0
                task.held = True
                self._held.add(task)
                continue
            job = task.job
            if 0 < job.max_parallel_tasks <= len(job.running):
                kept.append((token, task))
                continue
            node = _pick_node(nodes, task.required_slots)
            if node is None:
                kept.append((token, task))
                continue
            task.queue_token = 0
            free -= task.required_slots
            self._place(task, pool, node)
        queue.extendleft(reversed(kept))
        if not queue:
            del self._pending[key]

    def _place(self, task: Task, pool: Pool, node: Node) -> None:
        job = task.job
        self.backend.assign_task(task, pool, node, preparing="jobPreparationTask" in job.extra)
        # "running" covers everything on the node, resource files included (NOTES.md
        # §10.6), so the task is running from the moment it holds its slots.
        self.backend.start_task(task)
        task.attempt += 1
        task.finished = asyncio.Event()
        task.kill_reason = None
        task.kill_detail = None
        task.process = None
        task.killing = None
        self._running.add(task)
        if task.max_wall_clock_time is not None:
            deadline = self.backend.clock.monotonic() + task.max_wall_clock_time.total_seconds()
            self._push_deadline(deadline, task, task.attempt)
        self._spawn(self._run_attempt(task, task.attempt, pool, node))

    # ------------------------------------------------------------------ execution

    def node_root(self, pool_id: str, node_id: str) -> Path:
        return self.data_dir / "nodes" / pool_id / node_id

    def _task_dir(self, task: Task) -> Path:
        return self.node_root(task.pool_id or "", task.node_id or "") / task.root_dir

    def task_dir(self, task: Task) -> Path | None:
        """Where the task's files live, once it has been assigned to a node."""
        if task.pool_id is None or task.node_id is None:
            return None
        return self._task_dir(task)

    def _environment(self, task: Task, node_root: Path, task_dir: Path, wd: Path) -> dict[str, str]:
        env: dict[str, str] = {}
        # The job's common settings, overridden by the task's (NOTES.md §10.3).
        for item in task.job.common_environment:
            env[item["name"]] = item.get("value", "")
        for item in task.extra.get("environmentSettings") or []:
            env[item["name"]] = item.get("value", "")
        user = task.extra.get("userIdentity") or {}
        auto = user.get("autoUser") or {}
        scope = str(auto.get("scope", "pool")).capitalize()
        elevation = (
            "Admin" if str(auto.get("elevationLevel", "")).lower() == "admin" else "NonAdmin"
        )
        identity = user.get("username") or f"{scope}{elevation}"
        node = task.node
        env.update(
            {
                "AZ_BATCH_ACCOUNT_NAME": self.backend.account,
                "AZ_BATCH_ACCOUNT_URL": self.account_url,
                "AZ_BATCH_POOL_ID": task.pool_id or "",
                "AZ_BATCH_NODE_ID": task.node_id or "",
                "AZ_BATCH_NODE_IS_DEDICATED": "false" if node and node.low_priority else "true",
                "AZ_BATCH_NODE_ROOT_DIR": str(node_root),
                "AZ_BATCH_NODE_SHARED_DIR": str(node_root / "shared"),
                "AZ_BATCH_NODE_STARTUP_DIR": str(node_root / "startup"),
                "AZ_BATCH_JOB_ID": task.job.id,
                "AZ_BATCH_TASK_ID": task.id,
                "AZ_BATCH_TASK_DIR": str(task_dir),
                "AZ_BATCH_TASK_WORKING_DIR": str(wd),
                "AZ_BATCH_TASK_USER_IDENTITY": identity,
            }
        )
        return env

    async def _run_attempt(self, task: Task, attempt: int, pool: Pool, node: Node) -> None:
        node_root = self.node_root(pool.id, node.id)
        task_dir = node_root / task.root_dir
        wd = task_dir / "wd"
        try:
            for sub in (node_root / "shared", node_root / "startup", wd):
                sub.mkdir(parents=True, exist_ok=True)
            task.job.node_dirs.add(str(node_root))
            argv = split_command_line(task.command_line)
            container = task.extra.get("containerSettings") or {}
            spec = ProcessSpec(
                argv=argv,
                env=self._environment(task, node_root, task_dir, wd),
                cwd=wd,
                stdout_path=task_dir / "stdout.txt",
                stderr_path=task_dir / "stderr.txt",
                image=container.get("imageName"),
                container_run_options=container.get("containerRunOptions"),
                append_output=task.retry_count > 0 or task.requeue_count > 0,
            )
            proc = await self.runner.start(spec)
        except LaunchError as exc:
            self._launch_failed(task, attempt, exc.code, exc.message)
            return
        except (ValueError, OSError) as exc:
            self._launch_failed(task, attempt, "CommandLaunchFailed", str(exc))
            return
        if task.attempt != attempt or task.state not in (TASK_RUNNING, TASK_PREPARING):
            await proc.kill()
            return
        task.process = proc
        if proc.in_container:
            task.container_info = {"containerId": proc.container_name or "", "state": "running"}
        if task.kill_reason is not None:
            self._start_kill(task)
        exit_code = await proc.wait()
        if task.killing is not None:
            # Settle only once the whole tree is gone, not just its leader, so a terminate
            # that returns has really stopped every process of the task.
            with contextlib.suppress(Exception):
                await asyncio.shield(task.killing)
        self._on_exit(task, attempt, proc, exit_code)

    def _launch_failed(self, task: Task, attempt: int, code: str, message: str) -> None:
        if task.attempt != attempt or task.state not in (TASK_RUNNING, TASK_PREPARING):
            return
        reason = task.kill_reason
        if reason is not None:
            self._settle(task, None, reason, task.kill_detail)
            return
        failure = FailureInfo("usererror", code, message)
        self._finish_attempt(task)
        # Pre-processing errors are not retried (NOTES.md §10.5).
        self.backend.settle_task(task, exit_code=None, failure=failure, retryable=False)
        self._after_settle(task)

    def _on_exit(self, task: Task, attempt: int, proc: RunningProcess, exit_code: int) -> None:
        if task.attempt != attempt or task.process is not proc:
            return
        task.process = None
        if task.container_info is not None:
            task.container_info = {**task.container_info, "state": "exited"}
        if task.state not in (TASK_RUNNING, TASK_PREPARING):
            return
        reason = task.kill_reason
        if reason is None and self._pinned(task, "running"):
            # A hold pins the task in "running": keep the outcome until it is released.
            task.parked = True
            task.parked_exit = exit_code
            return
        self._settle(task, exit_code, reason, task.kill_detail)

    def _kill(self, task: Task, reason: str, detail: str | None = None) -> None:
        """Stop the current attempt for ``reason``; the first reason given wins."""
        if task.state not in (TASK_RUNNING, TASK_PREPARING):
            return
        if task.kill_reason is None:
            task.kill_reason = reason
            task.kill_detail = detail
        if task.parked:
            self._unpark(task)
        elif task.process is not None:
            self._start_kill(task)
        # Otherwise the process is still being launched; _run_attempt kills it.

    def _start_kill(self, task: Task) -> None:
        if task.killing is None and task.process is not None:
            killing = asyncio.ensure_future(task.process.kill())
            task.killing = killing
            self._background.add(killing)
            killing.add_done_callback(self._background_done)

    def _finish_attempt(self, task: Task) -> None:
        self._running.discard(task)
        task.kill_reason = None
        task.kill_detail = None
        task.parked = False
        task.parked_exit = None
        task.killing = None

    def _settle(
        self, task: Task, exit_code: int | None, reason: str | None, detail: str | None
    ) -> None:
        """Decide the outcome of an attempt (NOTES.md §10.8) and free its slots."""
        if task.state not in (TASK_RUNNING, TASK_PREPARING):
            return
        self._finish_attempt(task)
        backend = self.backend
        if reason == KILL_DELETE:
            backend.release_node(task)
            if task.job.tasks.get(task.key) is None and task.pool_id is not None:
                shutil.rmtree(self._task_dir(task), ignore_errors=True)
        elif reason == KILL_REQUEUE:
            backend.requeue_task(task)
            if self._is_live(task):
                self.task_ready(task)
        elif reason == KILL_TIMEOUT:
            failure = FailureInfo("servererror", "TaskEnded", MSG_TIMEOUT_ENDED)
            backend.settle_task(
                task, exit_code=WALL_CLOCK_EXIT_CODE, failure=failure, retryable=False
            )
        elif reason == KILL_USER:
            failure = FailureInfo("usererror", "TaskEnded", detail or MSG_USER_ENDED)
            backend.settle_task(task, exit_code=exit_code, failure=failure, retryable=False)
        elif reason == KILL_JOB:
            failure = FailureInfo("usererror", "TaskEnded", MSG_JOB_ENDED)
            backend.settle_task(task, exit_code=exit_code, failure=failure, retryable=False)
        else:
            failure = None
            if exit_code != 0:
                failure = FailureInfo("usererror", "FailureExitCode", MSG_FAILURE_EXIT)
            retried = backend.settle_task(
                task, exit_code=exit_code, failure=failure, retryable=True
            )
            if retried:
                self.task_ready(task)
        self._after_settle(task)

    def _after_settle(self, task: Task) -> None:
        if task.finished is not None:
            task.finished.set()
        pool_key = (task.pool_id or "").lower()
        pool = self.backend.pools.get(pool_key)
        if pool is not None:
            for node in [n for n in pool.nodes if n.draining]:
                self._drop_if_idle(pool, node)
        self._mark_dirty(pool_key)
        if task.job.max_parallel_tasks > 0:
            self._mark_dirty(task.job.pool_id.lower())

    def _drop_if_idle(self, pool: Pool, node: Node) -> None:
        if node.draining and node.used <= 0 and node in pool.nodes:
            pool.nodes.remove(node)

    # ------------------------------------------------------------------ API helpers

    async def terminate_task(self, job_id: str, task_id: str) -> Task:
        """The terminate-task API: completes the task (killing its process) before returning."""
        task = self.backend.check_terminate_task(job_id, task_id)
        if task.state == TASK_ACTIVE:
            task.queue_token = 0
            self._held.discard(task)
            task.held = False
            self.backend.complete_unstarted(
                task, FailureInfo("usererror", "TaskEnded", MSG_USER_ENDED)
            )
            return task
        finished = task.finished
        self._kill(task, KILL_USER)
        if finished is not None:
            await _wait_all([finished], KILL_WAIT_S)
        return task

    async def _end_job(self, job: Job, kill_reason: str, terminate_reason: str | None) -> None:
        """Terminate or delete: kill running tasks, keep the transitional state observable
        for at least ``transition_s``, then complete (or remove) the job."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        waits = [t.finished for t in job.running if t.finished is not None]
        for task in list(job.running):
            self._kill(task, kill_reason)
        # Tasks mid-launch hold slots but may not be in job.running yet; all are covered.
        await _wait_all(waits, KILL_WAIT_S)
        remaining = self.transition_s - (loop.time() - began)
        if remaining > 0:
            await asyncio.sleep(remaining)
        if kill_reason == KILL_DELETE:
            for task in job.tasks.values():
                task.queue_token = 0
                self._held.discard(task)
            # Remove the files before the id becomes free again (NOTES.md §4.6: a deleted
            # job's task directories go regardless of retention).
            dirs = [Path(root) / "workitems" / job.id for root in job.node_dirs]
            await asyncio.to_thread(_remove_all, dirs)
            self.backend.remove_job(job)
        else:
            self.backend.finish_job(job, terminate_reason or "")

    async def _end_pool(self, pool: Pool) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        waits: list[asyncio.Event] = []
        for node in pool.nodes:
            for task in list(node.running):
                if task.finished is not None:
                    waits.append(task.finished)
                # Running tasks are requeued when their pool goes (NOTES.md §4.14 via SDK).
                self._kill(task, KILL_REQUEUE)
        await _wait_all(waits, KILL_WAIT_S)
        remaining = self.transition_s - (loop.time() - began)
        if remaining > 0:
            await asyncio.sleep(remaining)
        self.backend.remove_pool(pool)

    # ------------------------------------------------------------------ introspection

    def stats(self) -> dict[str, int]:
        return {
            "running": len(self._running),
            "held": len(self._held),
            "queued": sum(len(q) for q in self._pending.values()),
            "background": len(self._background),
        }


def _remove_all(dirs: list[Path]) -> None:
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


def _pick_node(nodes: list[Node], slots: int) -> Node | None:
    """Spread (the default nodeFillType): the node with the most free slots that fits."""
    best: Node | None = None
    for node in nodes:
        if node.free >= slots and (best is None or node.free > best.free):
            best = node
    return best


async def _wait_all(events: list[asyncio.Event], wait_s: float) -> None:
    pending = [e for e in events if not e.is_set()]
    if not pending:
        return
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in pending)), wait_s)


__all__ = ["HOLD_STATES", "TASK_COMPLETED", "HoldRule", "Scheduler"]
