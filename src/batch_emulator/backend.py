"""Pure Azure Batch semantics: validation, ids, state machines, quota and paging.

The backend owns every pool, job and task and applies the service's rules to them. It does
no I/O and never awaits: the HTTP layer (:mod:`batch_emulator.routes`) calls it with parsed
JSON bodies and renders what it returns, and the scheduler
(:mod:`batch_emulator.scheduler`) drives executions through the transition methods at the
bottom (``start_task``, ``settle_task``, ``finish_job``...). Anything that needs time to pass
or a process to die is handed to the :class:`Engine` (the scheduler) through its hooks.

All lookups are dicts keyed by the lower-cased id: ids are case-preserving but unique
ignoring case (NOTES.md §10.1), and GET must not slow down with the number of jobs.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from batch_emulator.model import (
    ALLOC_RESIZING,
    ALLOC_STEADY,
    JOB_ACTIVE,
    JOB_COMPLETED,
    JOB_DELETING,
    JOB_TERMINATING,
    JSON,
    POOL_DELETING,
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
from batch_emulator.protocol.errors import BatchError
from batch_emulator.protocol.formats import is_unlimited, parse_duration

T = TypeVar("T")

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DISPLAY_NAME = 1024
MAX_TASKS_PER_COLLECTION = 100
# Exit code the service reports for a task killed at its maxWallClockTime: 0xC000013A
# (NOTES.md §0.17, §10.8).
WALL_CLOCK_EXIT_CODE = -1073741510
# Slots a node gets when a pool does not say (the service default taskSlotsPerNode).
DEFAULT_SLOTS_PER_NODE = 1
MAX_SLOTS_PER_NODE = 256

# Termination reasons (NOTES.md §10.10).
REASON_USER = "UserTerminate"
REASON_ALL_COMPLETE = "AllTasksComplete"
REASON_WALL_CLOCK = "MaxWallClockTimeExpiry"
REASON_TASK_FAILED = "TaskFailed"

# Why the scheduler kills a running attempt; decides the outcome the task ends with.
KILL_USER = "user"  # terminate task API
KILL_TIMEOUT = "timeout"  # task maxWallClockTime
KILL_JOB = "job"  # its job is terminating (detail = terminate reason)
KILL_DELETE = "delete"  # the task or its job is being deleted: no outcome at all
KILL_REQUEUE = "requeue"  # its node went away: back to active

MSG_FAILURE_EXIT = "The task exited with an exit code representing a failure"
MSG_USER_ENDED = "Task was ended by user request."
MSG_TIMEOUT_ENDED = "The task was ended because it exceeded its maximum wall clock time."
MSG_JOB_ENDED = "The task was ended because its job was terminated."


def error(
    code: str, values: Iterable[tuple[str, str]] = (), message: str | None = None
) -> BatchError:
    """One place that builds the catalogued errors this module raises."""
    return BatchError.of(code, values=values, message=message)


def invalid_value(name: str, value: Any, reason: str | None = None) -> BatchError:
    values = [("PropertyName", name), ("PropertyValue", "" if value is None else str(value))]
    if reason:
        values.append(("Reason", reason))
    return error("InvalidPropertyValue", values)


def missing_property(name: str) -> BatchError:
    return error("MissingRequiredProperty", [("PropertyName", name)])


# --------------------------------------------------------------------------- clock


class Clock:
    """The emulator's clock: real time plus an offset the ``/_emulator/clock`` control moves.

    Wall-clock limits and every timestamp the emulator writes come from here, so a test can
    jump past a ``maxWallClockTime`` instead of sleeping through it.
    """

    def __init__(self) -> None:
        self._offset = 0.0
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)

    @property
    def offset_s(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("The emulator clock only moves forward; pass a positive number.")
        self._offset += seconds

    def reset(self) -> None:
        """Back to real time (everything stamped before is forgotten by the caller)."""
        self._offset = 0.0
        self._last = dt.datetime.min.replace(tzinfo=dt.UTC)

    def monotonic(self) -> float:
        """Seconds on a monotonic scale that includes the offset (for deadlines)."""
        return time.monotonic() + self._offset

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._offset)

    def stamp(self) -> dt.datetime:
        """``now()``, but strictly later than any earlier stamp, so every change gets a new
        ``lastModified`` and therefore a new ETag even within one clock tick."""
        now = self.now()
        if now <= self._last:
            now = self._last + dt.timedelta(microseconds=1)
        self._last = now
        return now


# --------------------------------------------------------------------------- engine hooks


class Engine(Protocol):
    """What the backend asks of the scheduler (all calls return at once)."""

    def task_ready(self, task: Task) -> None:
        """``task`` is active and may be scheduled (new, retried or requeued)."""

    def task_removed(self, task: Task) -> None:
        """``task`` was deleted: forget it, kill its process if it has one."""

    def job_changed(self, job: Job) -> None:
        """The job's constraints may have changed (re-arm its wall-clock timer)."""

    def job_terminating(self, job: Job, reason: str) -> None:
        """The job entered ``terminating``: kill its running tasks, then ``finish_job``."""

    def job_deleting(self, job: Job) -> None:
        """The job entered ``deleting``: kill its running tasks, then ``remove_job``."""

    def pool_changed(self, pool_key: str) -> None:
        """Nodes or slots of a pool changed, or the pool appeared: try to schedule."""

    def pool_resized(self, pool: Pool, removed: list[Node], deallocation: str) -> None:
        """Nodes left a pool; ``deallocation`` says what happens to their running tasks."""

    def pool_deleting(self, pool: Pool) -> None:
        """The pool entered ``deleting``: requeue its running tasks, then ``remove_pool``."""


class NullEngine:
    """An engine that runs nothing (pure-backend tests)."""

    def task_ready(self, task: Task) -> None:
        pass

    def task_removed(self, task: Task) -> None:
        pass

    def job_changed(self, job: Job) -> None:
        pass

    def job_terminating(self, job: Job, reason: str) -> None:
        pass

    def job_deleting(self, job: Job) -> None:
        pass

    def pool_changed(self, pool_key: str) -> None:
        pass

    def pool_resized(self, pool: Pool, removed: list[Node], deallocation: str) -> None:
        pass

    def pool_deleting(self, pool: Pool) -> None:
        pass


# --------------------------------------------------------------------------- body readers


def require_object(body: Any, what: str = "request body") -> JSON:
    if not isinstance(body, dict):
        raise error(
            "InvalidRequestBody",
            [("Reason", f"The {what} must be a JSON object.")],
        )
    return body


def read_id(body: JSON, name: str = "id") -> str:
    value = body.get(name)
    if value is None:
        raise missing_property(name)
    if not isinstance(value, str) or not ID_RE.match(value):
        raise invalid_value(
            name,
            value,
            "An id can contain any combination of alphanumeric characters including hyphens "
            "and underscores, and cannot contain more than 64 characters.",
        )
    return value


def read_str(
    body: JSON, name: str, *, required: bool = False, max_len: int | None = None
) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise missing_property(name)
        return None
    if not isinstance(value, str):
        raise invalid_value(name, value, f"{name} must be a string.")
    if required and not value.strip():
        raise invalid_value(name, value, f"{name} must not be empty.")
    if max_len is not None and len(value) > max_len:
        raise invalid_value(name, value[:64], f"{name} cannot exceed {max_len} characters.")
    return value


def read_int(
    body: JSON,
    name: str,
    default: int,
    *,
    lo: int | None = None,
    hi: int | None = None,
    path: str | None = None,
) -> int:
    value = body.get(name, None)
    label = path or name
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_value(label, value, f"{label} must be an integer.")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise invalid_value(label, value, f"{label} must be between {lo} and {hi}.")
    return value


def read_bool(body: JSON, name: str, default: bool) -> bool:
    value = body.get(name, None)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid_value(name, value, f"{name} must be true or false.")
    return value


def read_enum(body: JSON, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = body.get(name, None)
    if value is None:
        return default
    if not isinstance(value, str) or value.lower() not in {a.lower() for a in allowed}:
        raise invalid_value(name, value, f"{name} must be one of: {', '.join(allowed)}.")
    # The service answers with its own (lower-case) spelling (NOTES.md §5).
    return next(a for a in allowed if a.lower() == value.lower())


def read_duration(body: JSON, name: str, path: str) -> dt.timedelta | None:
    """An optional ISO 8601 duration; ``None`` for absent or "unlimited"."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid_value(path, value, f"{path} must be an ISO 8601 duration.")
    try:
        td = parse_duration(value)
    except ValueError as exc:
        raise invalid_value(path, value, str(exc)) from None
    if td < dt.timedelta(0):
        raise invalid_value(path, value, f"{path} must not be negative.")
    return None if is_unlimited(td) else td


def read_object(body: JSON, name: str) -> JSON | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid_value(name, value, f"{name} must be a JSON object.")
    return value


def read_name_values(body: JSON, name: str, *, value_required: bool) -> list[JSON] | None:
    """``[{name, value}]`` lists (environment settings, metadata)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        raise invalid_value(name, value, f"{name} must be a list of name/value pairs.")
    out: list[JSON] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise missing_property(f"{name}.name")
        if not item["name"]:
            raise invalid_value(f"{name}.name", "", "The name must not be empty.")
        v = item.get("value")
        if v is None and value_required:
            raise missing_property(f"{name}.value")
        if v is not None and not isinstance(v, str):
            raise invalid_value(f"{name}.value", v, "The value must be a string.")
        out.append({"name": item["name"]} if v is None else {"name": item["name"], "value": v})
    return out


# --------------------------------------------------------------------------- paging


def page_over(
    keys: list[str],
    items: Mapping[str, T],
    after: str | None,
    limit: int,
    accept: Callable[[T], bool],
) -> tuple[list[T], bool]:
    """One page over ``keys`` (sorted lower-cased ids) after ``after``.

    Returns the accepted items (at most ``limit``) and whether another accepted item
    exists after them, so a ``nextLink`` never leads to an empty page. Linear in the
    number of keys scanned, never in the size of the account beyond that.
    """
    start = 0 if after is None else bisect.bisect_right(keys, after)
    out: list[T] = []
    for i in range(start, len(keys)):
        item = items.get(keys[i])
        if item is None or not accept(item):
            continue
        if len(out) == limit:
            return out, True
        out.append(item)
    return out, False


def _insort(keys: list[str], key: str) -> None:
    bisect.insort(keys, key)


def _remove_sorted(keys: list[str], key: str) -> None:
    i = bisect.bisect_left(keys, key)
    if i < len(keys) and keys[i] == key:
        del keys[i]


# --------------------------------------------------------------------------- results


@dataclass(slots=True)
class AddTaskResult:
    """One entry of an ``addtaskcollection`` answer (NOTES.md §4.8)."""

    task_id: str
    task: Task | None = None
    error: BatchError | None = None


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """A pool to pre-create (the CLI's ``--pool ID=NODES[xSLOTS]``)."""

    id: str
    nodes: int = 1
    slots: int = 1


# --------------------------------------------------------------------------- backend


class Backend:
    """The account's state and the operations of the Batch data plane on it."""

    def __init__(
        self,
        *,
        account: str,
        clock: Clock | None = None,
        active_job_quota: int | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.account = account
        self.clock = clock or Clock()
        self.active_job_quota = active_job_quota
        self.engine: Engine = engine or NullEngine()
        self.pools: dict[str, Pool] = {}
        self.pool_keys: list[str] = []
        self.jobs: dict[str, Job] = {}
        self.job_keys: list[str] = []
        self._active_jobs = 0  # jobs not completed (they count against the quota)
        self._task_seq = 0
        self._auto_pool_seq = 0

    def reset(self) -> None:
        """Forget every pool, job and task (the engine is reset separately)."""
        self.pools.clear()
        self.pool_keys.clear()
        self.jobs.clear()
        self.job_keys.clear()
        self._active_jobs = 0

    # ------------------------------------------------------------------ pools

    def get_pool(self, pool_id: str) -> Pool:
        pool = self.pools.get(pool_id.lower())
        if pool is None:
            raise error("PoolNotFound")
        return pool

    def add_pool(self, spec: PoolSpec) -> Pool:
        """Create a pool directly (seeded pools)."""
        body: JSON = {
            "id": spec.id,
            "vmSize": "standard_d2s_v3",
            "targetDedicatedNodes": spec.nodes,
            "taskSlotsPerNode": spec.slots,
        }
        return self.create_pool(body)

    def create_pool(self, body: Any) -> Pool:
        body = require_object(body)
        pool_id = read_id(body)
        if pool_id.lower() in self.pools:
            raise error("PoolExists")
        vm_size = read_str(body, "vmSize", required=True)
        assert vm_size is not None
        read_str(body, "displayName", max_len=MAX_DISPLAY_NAME)
        auto = read_bool(body, "enableAutoScale", False)
        formula = read_str(body, "autoScaleFormula")
        interval = read_duration(body, "autoScaleEvaluationInterval", "autoScaleEvaluationInterval")
        dedicated = read_int(body, "targetDedicatedNodes", 0, lo=0, hi=10_000)
        low = read_int(body, "targetLowPriorityNodes", 0, lo=0, hi=10_000)
        if auto:
            if formula is None:
                raise missing_property("autoScaleFormula")
            if "targetDedicatedNodes" in body or "targetLowPriorityNodes" in body:
                raise invalid_value(
                    "targetDedicatedNodes",
                    body.get("targetDedicatedNodes"),
                    "targetDedicatedNodes and targetLowPriorityNodes must not be specified "
                    "when enableAutoScale is true.",
                )
            # The emulator does not evaluate autoscale formulas; it honours a literal
            # "$TargetDedicatedNodes = N" assignment and otherwise keeps the pool empty.
            dedicated = _formula_target(formula)
        slots = read_int(
            body, "taskSlotsPerNode", DEFAULT_SLOTS_PER_NODE, lo=1, hi=MAX_SLOTS_PER_NODE
        )
        resize_timeout = read_duration(body, "resizeTimeout", "resizeTimeout")
        now = self.clock.stamp()
        extra = {
            k: v
            for k, v in body.items()
            if k
            not in {
                "id",
                "vmSize",
                "targetDedicatedNodes",
                "targetLowPriorityNodes",
                "taskSlotsPerNode",
                "enableAutoScale",
                "autoScaleFormula",
                "autoScaleEvaluationInterval",
                "resizeTimeout",
            }
        }
        pool = Pool(
            id=pool_id,
            vm_size=vm_size.lower(),
            target_dedicated=dedicated,
            target_low_priority=low,
            slots_per_node=slots,
            creation_time=now,
            last_modified=now,
            state_transition_time=now,
            allocation_state_transition_time=now,
            enable_auto_scale=auto,
            auto_scale_formula=formula,
            auto_scale_evaluation_interval=interval,
            extra=extra,
        )
        if resize_timeout is not None:
            pool.resize_timeout = resize_timeout
        self._grow(pool, dedicated, low, now)
        self.pools[pool.id.lower()] = pool
        _insort(self.pool_keys, pool.id.lower())
        self.engine.pool_changed(pool.id.lower())
        return pool

    def _grow(self, pool: Pool, dedicated: int, low: int, now: dt.datetime) -> None:
        have_low = sum(1 for n in pool.nodes if n.low_priority and not n.draining)
        have_dedicated = sum(1 for n in pool.nodes if not n.low_priority and not n.draining)
        for count, is_low in ((dedicated - have_dedicated, False), (low - have_low, True)):
            for _ in range(max(0, count)):
                pool.node_serial += 1
                serial = pool.node_serial
                node = Node(
                    id=f"tvmps_{pool.id.lower()}_{serial:04d}",
                    slots=pool.slots_per_node,
                    allocation_time=now,
                    # Unique within the pool, like the addresses of a pool's subnet.
                    ip_address=f"10.0.{serial >> 8}.{serial & 0xFF}",
                    low_priority=is_low,
                )
                pool.nodes.append(node)

    def resize_pool(self, pool_id: str, body: Any) -> Pool:
        pool = self.get_pool(pool_id)
        body = require_object(body)
        if pool.state == POOL_DELETING:
            raise error("PoolBeingDeleted")
        if pool.enable_auto_scale:
            raise error(
                "OperationInvalidForCurrentState",
                [("Reason", "The pool has automatic scaling enabled; it cannot be resized.")],
            )
        dedicated = read_int(body, "targetDedicatedNodes", pool.target_dedicated, lo=0, hi=10_000)
        low = read_int(body, "targetLowPriorityNodes", pool.target_low_priority, lo=0, hi=10_000)
        timeout = read_duration(body, "resizeTimeout", "resizeTimeout")
        deallocation = read_enum(
            body,
            "nodeDeallocationOption",
            ("requeue", "terminate", "taskcompletion", "retaineddata"),
            "requeue",
        )
        now = self.clock.stamp()
        pool.target_dedicated = dedicated
        pool.target_low_priority = low
        if timeout is not None:
            pool.resize_timeout = timeout
        removed: list[Node] = []
        for is_low, target in ((False, dedicated), (True, low)):
            live = [n for n in pool.nodes if n.low_priority == is_low and not n.draining]
            excess = len(live) - target
            if excess > 0:
                # Idle nodes go first, like the service picks nodes to remove.
                victims = sorted(live, key=lambda n: n.used)[:excess]
                removed.extend(victims)
        self._grow(pool, dedicated, low, now)
        pool.last_modified = now
        pool.allocation_state = ALLOC_RESIZING
        pool.allocation_state_transition_time = now
        self.engine.pool_resized(pool, removed, deallocation)
        self.engine.pool_changed(pool.id.lower())
        return pool

    def drain_node(self, node: Node) -> None:
        """A resize removes ``node``: it takes no new tasks and leaves once idle."""
        node.draining = True
        node.changed(self.clock.stamp())

    def finish_resize(self, pool: Pool) -> None:
        if pool.allocation_state != ALLOC_STEADY:
            pool.allocation_state = ALLOC_STEADY
            pool.allocation_state_transition_time = self.clock.stamp()

    def delete_pool(self, pool_id: str) -> Pool:
        pool = self.get_pool(pool_id)
        if pool.state == POOL_DELETING:
            raise error("PoolBeingDeleted")
        now = self.clock.stamp()
        pool.state = POOL_DELETING
        pool.state_transition_time = now
        pool.last_modified = now
        self.engine.pool_deleting(pool)
        return pool

    def remove_pool(self, pool: Pool) -> None:
        key = pool.id.lower()
        if self.pools.get(key) is pool:
            del self.pools[key]
            _remove_sorted(self.pool_keys, key)

    # ------------------------------------------------------------------ jobs

    def get_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise error("JobNotFound")
        return job

    def create_job(self, body: Any) -> Job:
        body = require_object(body)
        job_id = read_id(body)
        if job_id.lower() in self.jobs:
            raise error("JobExists")
        if self.active_job_quota is not None and self._active_jobs >= self.active_job_quota:
            raise error("ActiveJobAndScheduleQuotaReached")
        pool_info = read_object(body, "poolInfo")
        if pool_info is None:
            raise missing_property("poolInfo")
        pool_id, auto_spec = _read_pool_info(pool_info)
        display_name = read_str(body, "displayName", max_len=MAX_DISPLAY_NAME)
        constraints = read_object(body, "constraints") or {}
        max_wall = read_duration(constraints, "maxWallClockTime", "constraints.maxWallClockTime")
        max_retry = read_int(
            constraints, "maxTaskRetryCount", 0, lo=-1, path="constraints.maxTaskRetryCount"
        )
        on_all = read_enum(body, "onAllTasksComplete", ("noaction", "terminatejob"), "noaction")
        on_failure = read_enum(
            body, "onTaskFailure", ("noaction", "performexitoptionsjobaction"), "noaction"
        )
        extra: JSON = {}
        for key in ("jobManagerTask", "jobPreparationTask", "jobReleaseTask"):
            value = read_object(body, key)
            if value is not None:
                extra[key] = value
        env = read_name_values(body, "commonEnvironmentSettings", value_required=False)
        if env is not None:
            extra["commonEnvironmentSettings"] = env
        metadata = read_name_values(body, "metadata", value_required=True)
        if metadata is not None:
            extra["metadata"] = metadata
        network = read_object(body, "networkConfiguration")
        if network is not None:
            extra["networkConfiguration"] = network
        now = self.clock.stamp()
        job = Job(
            id=job_id,
            pool_info=pool_info,
            pool_id=pool_id or "",
            creation_time=now,
            last_modified=now,
            state_transition_time=now,
            display_name=display_name,
            uses_task_dependencies=read_bool(body, "usesTaskDependencies", False),
            priority=read_int(body, "priority", 0, lo=-1000, hi=1000),
            allow_task_preemption=read_bool(body, "allowTaskPreemption", False),
            max_parallel_tasks=_read_max_parallel(body),
            max_wall_clock_time=max_wall,
            max_task_retry_count=max_retry,
            on_all_tasks_complete=on_all,
            on_task_failure=on_failure,
            extra=extra,
            created_mono=self.clock.monotonic(),
        )
        manager = extra.get("jobManagerTask")
        manager_task: Task | None = None
        if manager is not None:
            # The job manager runs as an ordinary task of the job (NOTES.md §4.2).
            manager_task = self._new_task(job, manager, now)
        if auto_spec is not None:
            job.auto_pool_id = self._create_auto_pool(auto_spec)
            job.pool_id = job.auto_pool_id
        self.jobs[job.key] = job
        _insort(self.job_keys, job.key)
        self._active_jobs += 1
        self.engine.job_changed(job)
        if manager_task is not None:
            self._attach_task(job, manager_task)
        self._check_all_complete(job)
        return job

    def _create_auto_pool(self, spec: JSON) -> str:
        pool_body = spec.get("pool")
        prefix = spec.get("autoPoolIdPrefix") or "autopool"
        self._auto_pool_seq += 1
        pool_id = f"{prefix}_{self._auto_pool_seq:08d}"[:64]
        body: JSON = dict(pool_body) if isinstance(pool_body, dict) else {}
        body["id"] = pool_id
        body.setdefault("vmSize", "standard_d2s_v3")
        try:
            self.create_pool(body)
        except BatchError:
            # An auto-pool spec the emulator cannot honour leaves the job without nodes,
            # as a failed auto-pool allocation would.
            self.create_pool({"id": pool_id, "vmSize": "standard_d2s_v3"})
        return pool_id

    def _check_job_writable(self, job: Job) -> None:
        if job.state == JOB_COMPLETED:
            raise error("JobCompleted")
        if job.state == JOB_TERMINATING:
            raise error("JobBeingTerminated")
        if job.state == JOB_DELETING:
            raise error("JobBeingDeleted")

    def update_job(self, job_id: str, body: Any, *, replace: bool) -> Job:
        """PATCH (only given properties change) or PUT (all updatable ones replaced)."""
        job = self.get_job(job_id)
        body = require_object(body)
        self._check_job_writable(job)
        if replace and "poolInfo" not in body:
            raise missing_property("poolInfo")
        changes: dict[str, Any] = {}
        if replace or "priority" in body:
            changes["priority"] = read_int(body, "priority", 0, lo=-1000, hi=1000)
        if replace or "allowTaskPreemption" in body:
            changes["allow_task_preemption"] = read_bool(body, "allowTaskPreemption", False)
        if replace or "maxParallelTasks" in body:
            changes["max_parallel_tasks"] = _read_max_parallel(body)
        if replace or "constraints" in body:
            constraints = read_object(body, "constraints") or {}
            changes["max_wall_clock_time"] = read_duration(
                constraints, "maxWallClockTime", "constraints.maxWallClockTime"
            )
            changes["max_task_retry_count"] = read_int(
                constraints, "maxTaskRetryCount", 0, lo=-1, path="constraints.maxTaskRetryCount"
            )
        if "poolInfo" in body:
            pool_info = read_object(body, "poolInfo")
            if pool_info is None:
                raise missing_property("poolInfo")
            pool_id, auto_spec = _read_pool_info(pool_info)
            if auto_spec is not None or (pool_id or "").lower() != job.pool_id.lower():
                # The service only lets a job change pools while it is disabled (NOTES.md
                # §4.4), and the emulator has no disabled state.
                raise error(
                    "OperationInvalidForCurrentState",
                    [("Reason", "The pool of a job can only be changed while it is disabled.")],
                )
        if replace or "onAllTasksComplete" in body:
            on_all = read_enum(body, "onAllTasksComplete", ("noaction", "terminatejob"), "noaction")
            if job.on_all_tasks_complete == "terminatejob" and on_all == "noaction":
                # NOTES.md §10.9: the completion behaviour cannot go back to noaction.
                raise invalid_value(
                    "onAllTasksComplete",
                    body.get("onAllTasksComplete", "noaction"),
                    "A job's onAllTasksComplete cannot be changed from terminatejob to noaction.",
                )
            changes["on_all_tasks_complete"] = on_all
        if replace or "metadata" in body:
            changes["metadata"] = read_name_values(body, "metadata", value_required=True)
        if "networkConfiguration" in body:
            changes["networkConfiguration"] = read_object(body, "networkConfiguration")
        # Validated everything: apply.
        for attr in (
            "priority",
            "allow_task_preemption",
            "max_parallel_tasks",
            "max_wall_clock_time",
            "max_task_retry_count",
            "on_all_tasks_complete",
        ):
            if attr in changes:
                setattr(job, attr, changes[attr])
        for key in ("metadata", "networkConfiguration"):
            if key in changes:
                if changes[key] is None:
                    job.extra.pop(key, None)
                else:
                    job.extra[key] = changes[key]
        job.last_modified = self.clock.stamp()
        self.engine.job_changed(job)
        self._check_all_complete(job)
        return job

    def terminate_job(self, job_id: str, body: Any) -> Job:
        job = self.get_job(job_id)
        reason = REASON_USER
        if body is not None:
            body = require_object(body)
            given = read_str(body, "terminateReason", max_len=64)
            if given:
                reason = given
        self._check_job_writable(job)
        self.begin_termination(job, reason)
        return job

    def delete_job(self, job_id: str) -> Job:
        job = self.get_job(job_id)
        if job.state == JOB_DELETING:
            raise error("JobBeingDeleted")
        self._set_job_state(job, JOB_DELETING)
        self.engine.job_deleting(job)
        return job

    def remove_job(self, job: Job) -> None:
        """The end of a delete: the job and its tasks are gone (404 from now on)."""
        if self.jobs.get(job.key) is not job:
            return
        del self.jobs[job.key]
        _remove_sorted(self.job_keys, job.key)
        if job.state != JOB_COMPLETED and job.previous_state != JOB_COMPLETED:
            self._active_jobs -= 1
        if job.auto_pool_id is not None:
            self._drop_auto_pool(job)

    def _drop_auto_pool(self, job: Job) -> None:
        pool = self.pools.get((job.auto_pool_id or "").lower())
        if pool is not None and pool.state != POOL_DELETING:
            self.delete_pool(pool.id)

    def task_counts(self, job_id: str) -> JSON:
        job = self.get_job(job_id)
        counts = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
        slots = dict(counts)
        for task in job.tasks.values():
            state = "active" if task.state == TASK_ACTIVE else task.state
            if state == TASK_PREPARING:
                state = "running"
            counts[state] += 1
            slots[state] += task.required_slots
            if task.state == TASK_COMPLETED:
                outcome = "succeeded" if task.result == "success" else "failed"
                counts[outcome] += 1
                slots[outcome] += task.required_slots
        return {"taskCounts": counts, "taskSlotCounts": slots}

    # ------------------------------------------------------------------ tasks

    def get_task(self, job_id: str, task_id: str) -> Task:
        job = self.get_job(job_id)
        task = job.tasks.get(task_id.lower())
        if task is None:
            raise error("TaskNotFound")
        return task

    def add_task(self, job_id: str, body: Any) -> Task:
        job = self.get_job(job_id)
        self._check_job_writable(job)
        task = self._new_task(job, require_object(body), self.clock.stamp())
        if task.key in job.tasks:
            raise error("TaskExists")
        self._attach_task(job, task)
        return task

    def add_tasks(self, job_id: str, body: Any) -> list[AddTaskResult]:
        """``addtaskcollection``: every task gets its own result (NOTES.md §4.8)."""
        job = self.get_job(job_id)
        body = require_object(body)
        values = body.get("value")
        if values is None:
            raise missing_property("value")
        if not isinstance(values, list):
            raise invalid_value("value", values, "value must be a list of tasks.")
        if len(values) > MAX_TASKS_PER_COLLECTION:
            raise error(
                "RequestBodyTooLarge",
                [
                    (
                        "Reason",
                        f"A task collection can hold at most {MAX_TASKS_PER_COLLECTION} tasks; "
                        f"this one has {len(values)}.",
                    )
                ],
            )
        self._check_job_writable(job)
        results: list[AddTaskResult] = []
        for raw in values:
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            shown_id = raw_id if isinstance(raw_id, str) else ""
            try:
                task = self._new_task(job, require_object(raw, "task"), self.clock.stamp())
                if task.key in job.tasks:
                    raise error("TaskExists")
            except BatchError as exc:
                results.append(AddTaskResult(task_id=shown_id, error=exc))
                continue
            self._attach_task(job, task)
            results.append(AddTaskResult(task_id=task.id, task=task))
        return results

    def _new_task(self, job: Job, body: JSON, now: dt.datetime) -> Task:
        task_id = read_id(body)
        command_line = read_str(body, "commandLine", required=True)
        assert command_line is not None
        display_name = read_str(body, "displayName", max_len=MAX_DISPLAY_NAME)
        constraints = read_object(body, "constraints")
        if constraints is None:
            max_wall = None
            retention = None
            max_retry = job.max_task_retry_count
        else:
            max_wall = read_duration(
                constraints, "maxWallClockTime", "constraints.maxWallClockTime"
            )
            retention = read_duration(constraints, "retentionTime", "constraints.retentionTime")
            max_retry = read_int(
                constraints,
                "maxTaskRetryCount",
                job.max_task_retry_count,
                lo=-1,
                path="constraints.maxTaskRetryCount",
            )
        required_slots = read_int(body, "requiredSlots", 1, lo=1, hi=MAX_SLOTS_PER_NODE)
        extra: JSON = {}
        env = read_name_values(body, "environmentSettings", value_required=False)
        if env is not None:
            extra["environmentSettings"] = env
        for key in (
            "exitConditions",
            "containerSettings",
            "affinityInfo",
            "userIdentity",
            "multiInstanceSettings",
            "dependsOn",
        ):
            value = read_object(body, key)
            if value is not None:
                extra[key] = value
        for key in ("resourceFiles", "outputFiles", "applicationPackageReferences"):
            value = body.get(key)
            if value is not None:
                if not isinstance(value, list):
                    raise invalid_value(key, value, f"{key} must be a list.")
                extra[key] = value
        container = extra.get("containerSettings")
        if container is not None and not isinstance(container.get("imageName"), str):
            raise missing_property("containerSettings.imageName")
        if "dependsOn" in extra and not job.uses_task_dependencies:
            raise BatchError(
                "TaskDependenciesNotSpecifiedOnJob",
                400,
                "The task specifies dependencies but its job does not allow task dependencies.",
                [("JobId", job.id), ("TaskId", task_id)],
            )
        exit_conditions = extra.get("exitConditions")
        if (
            exit_conditions is not None
            and job.on_task_failure == "noaction"
            and _has_job_action(exit_conditions)
        ):
            # ExitOptions.jobAction needs onTaskFailure=performexitoptionsjobaction.
            raise invalid_value(
                "exitConditions",
                "jobAction",
                "jobAction can only be specified when the job's onTaskFailure is "
                "performexitoptionsjobaction.",
            )
        self._task_seq += 1
        task = Task(
            id=task_id,
            job=job,
            command_line=command_line,
            creation_time=now,
            last_modified=now,
            state_transition_time=now,
            seq=self._task_seq,
            display_name=display_name,
            required_slots=required_slots,
            max_wall_clock_time=max_wall,
            max_task_retry_count=max_retry,
            extra=extra,
        )
        if retention is not None:
            task.retention_time = retention
        return task

    def _attach_task(self, job: Job, task: Task) -> None:
        job.tasks[task.key] = task
        _insort(job.task_keys, task.key)
        job.incomplete += 1
        self.engine.task_ready(task)

    def delete_task(self, job_id: str, task_id: str) -> Task:
        task = self.get_task(job_id, task_id)
        job = task.job
        if job.state == JOB_DELETING:
            raise error("JobBeingDeleted")
        del job.tasks[task.key]
        _remove_sorted(job.task_keys, task.key)
        if task.state != TASK_COMPLETED:
            job.incomplete -= 1
        self.engine.task_removed(task)
        self._check_all_complete(job)
        return task

    def check_terminate_task(self, job_id: str, task_id: str) -> Task:
        task = self.get_task(job_id, task_id)
        if task.job.state == JOB_DELETING:
            raise error("JobBeingDeleted")
        if task.state == TASK_COMPLETED:
            raise error("TaskCompleted")
        return task

    # ------------------------------------------------------------------ transitions
    # Called by the scheduler; every one keeps the bookkeeping (counters, ETags) right.

    def _set_job_state(self, job: Job, state: str) -> None:
        now = self.clock.stamp()
        job.previous_state = job.state
        job.previous_state_transition_time = job.state_transition_time
        job.state = state
        job.state_transition_time = now
        # A job's ETag moves with its state (NOTES.md §5, §13.6).
        job.last_modified = now

    def _set_task_state(self, task: Task, state: str) -> dt.datetime:
        now = self.clock.stamp()
        task.previous_state = task.state
        task.previous_state_transition_time = task.state_transition_time
        task.state = state
        task.state_transition_time = now
        # A task's ETag does not move with its state (NOTES.md §4.10).
        return now

    def begin_termination(self, job: Job, reason: str) -> None:
        """active → terminating; the engine kills running tasks and calls finish_job."""
        if job.state != JOB_ACTIVE:
            return
        self._set_job_state(job, JOB_TERMINATING)
        self.engine.job_terminating(job, reason)

    def finish_job(self, job: Job, reason: str) -> None:
        """terminating → completed with endTime and terminateReason."""
        if job.state != JOB_TERMINATING:
            return
        self._set_job_state(job, JOB_COMPLETED)
        job.end_time = job.state_transition_time
        job.terminate_reason = reason
        self._active_jobs -= 1
        if job.auto_pool_id is not None:
            self._drop_auto_pool(job)

    def assign_task(self, task: Task, pool: Pool, node: Node, *, preparing: bool) -> None:
        """active → preparing (or straight to running when there is no preparation)."""
        task.pool_id = pool.id
        task.node_id = node.id
        task.node = node
        node.used += task.required_slots
        node.running.add(task)
        node.changed(self.clock.stamp())
        task.job.running.add(task)
        if preparing:
            self._set_task_state(task, TASK_PREPARING)

    def start_task(self, task: Task) -> None:
        """→ running: the process has been launched."""
        now = self._set_task_state(task, TASK_RUNNING)
        task.start_time = now

    def release_node(self, task: Task) -> Node | None:
        node = task.node
        if node is not None:
            node.used -= task.required_slots
            node.running.discard(task)
            node.changed(self.clock.stamp())
        task.node = None
        task.job.running.discard(task)
        return node

    def requeue_task(self, task: Task) -> None:
        """running → active after its node went away (requeueCount++)."""
        self.release_node(task)
        self._clear_execution(task)
        now = self._set_task_state(task, TASK_ACTIVE)
        task.requeue_count += 1
        task.last_requeue_time = now

    def _clear_execution(self, task: Task) -> None:
        task.start_time = None
        task.end_time = None
        task.exit_code = None
        task.result = None
        task.failure = None

    def settle_task(
        self,
        task: Task,
        *,
        exit_code: int | None,
        failure: FailureInfo | None,
        retryable: bool,
    ) -> bool:
        """The end of one attempt. Returns True if the task goes back to active for a retry.

        A nonzero exit code is retried while ``retryCount < maxTaskRetryCount`` (-1 means
        forever) and the job still runs tasks (NOTES.md §10.5); everything else completes.
        """
        node = self.release_node(task)
        job = task.job
        limit = task.max_task_retry_count
        if (
            retryable
            and failure is not None
            and job.state == JOB_ACTIVE
            and (limit == -1 or task.retry_count < limit)
        ):
            self._clear_execution(task)
            now = self._set_task_state(task, TASK_ACTIVE)
            task.retry_count += 1
            task.last_retry_time = now
            if node is not None:
                node.task_ended(task, now)
            return True
        now = self._set_task_state(task, TASK_COMPLETED)
        task.end_time = now
        task.exit_code = exit_code
        task.failure = failure
        task.result = "failure" if failure is not None else "success"
        job.incomplete -= 1
        if node is not None:
            node.task_ended(task, now)
        self._after_task_completed(task)
        return False

    def complete_unstarted(self, task: Task, failure: FailureInfo) -> None:
        """active → completed without running (terminate of an active task)."""
        self._set_task_state(task, TASK_COMPLETED)
        task.end_time = task.state_transition_time
        task.exit_code = None
        task.failure = failure
        task.result = "failure"
        task.job.incomplete -= 1
        self._after_task_completed(task, job_action=False)

    def _after_task_completed(self, task: Task, *, job_action: bool = True) -> None:
        job = task.job
        if job.state != JOB_ACTIVE:
            return
        # All-tasks-complete wins over a failure action (NOTES.md §10.9).
        if self._check_all_complete(job):
            return
        # With performexitoptionsjobaction the task's exit options decide (exit code 0 only
        # acts when listed explicitly); "disable" is not emulated and acts like "none".
        if (
            job_action
            and job.on_task_failure == "performexitoptionsjobaction"
            and _job_action_for(task) == "terminate"
        ):
            self.begin_termination(job, REASON_TASK_FAILED)

    def _check_all_complete(self, job: Job) -> bool:
        if (
            job.state == JOB_ACTIVE
            and job.on_all_tasks_complete == "terminatejob"
            and job.incomplete == 0
        ):
            self.begin_termination(job, REASON_ALL_COMPLETE)
            return True
        return False

    def job_wall_clock_expired(self, job: Job) -> None:
        if job.state == JOB_ACTIVE:
            self.begin_termination(job, REASON_WALL_CLOCK)

    # ------------------------------------------------------------------ listing

    def list_jobs(
        self, after: str | None, limit: int, accept: Callable[[Job], bool]
    ) -> tuple[list[Job], bool]:
        return page_over(self.job_keys, self.jobs, after, limit, accept)

    def list_tasks(
        self, job_id: str, after: str | None, limit: int, accept: Callable[[Task], bool]
    ) -> tuple[list[Task], bool]:
        job = self.get_job(job_id)
        return page_over(job.task_keys, job.tasks, after, limit, accept)

    def list_pools(
        self, after: str | None, limit: int, accept: Callable[[Pool], bool]
    ) -> tuple[list[Pool], bool]:
        return page_over(self.pool_keys, self.pools, after, limit, accept)

    def list_nodes(
        self, pool: Pool, after: str | None, limit: int, accept: Callable[[Node], bool]
    ) -> tuple[list[Node], bool]:
        # A pool's nodes are few (no index kept): sorting them per request is cheap.
        nodes = {node.id.lower(): node for node in pool.nodes}
        return page_over(sorted(nodes), nodes, after, limit, accept)

    def get_node(self, pool: Pool, node_id: str) -> Node:
        key = node_id.lower()
        for node in pool.nodes:
            if node.id.lower() == key:
                return node
        raise error("NodeNotFound")


# --------------------------------------------------------------------------- helpers


def _formula_target(formula: str) -> int:
    m = re.search(r"\$TargetDedicated(?:Nodes)?\s*=\s*(\d+)\s*;?\s*$", formula.strip())
    return min(int(m.group(1)), 10_000) if m else 0


def _read_max_parallel(body: JSON) -> int:
    value = read_int(body, "maxParallelTasks", -1, lo=-1)
    if value == 0:
        raise invalid_value("maxParallelTasks", 0, "maxParallelTasks must be -1 or greater than 0.")
    return value


def _read_pool_info(pool_info: JSON) -> tuple[str | None, JSON | None]:
    """``poolInfo`` names exactly one of ``poolId`` and ``autoPoolSpecification``."""
    pool_id = pool_info.get("poolId")
    auto = pool_info.get("autoPoolSpecification")
    if (pool_id is None) == (auto is None):
        raise invalid_value(
            "poolInfo",
            None,
            "Exactly one of poolInfo.poolId and poolInfo.autoPoolSpecification must be given.",
        )
    if pool_id is not None:
        if not isinstance(pool_id, str) or not ID_RE.match(pool_id):
            raise invalid_value("poolInfo.poolId", pool_id)
        return pool_id, None
    if not isinstance(auto, dict):
        raise invalid_value("poolInfo.autoPoolSpecification", auto)
    return None, auto


def _exit_options(exit_conditions: JSON) -> Iterable[JSON]:
    for entry in exit_conditions.get("exitCodes") or []:
        if isinstance(entry, dict) and isinstance(entry.get("exitOptions"), dict):
            yield entry["exitOptions"]
    for entry in exit_conditions.get("exitCodeRanges") or []:
        if isinstance(entry, dict) and isinstance(entry.get("exitOptions"), dict):
            yield entry["exitOptions"]
    for key in ("preProcessingError", "fileUploadError", "default"):
        value = exit_conditions.get(key)
        if isinstance(value, dict):
            yield value


def _has_job_action(exit_conditions: JSON) -> bool:
    return any("jobAction" in options for options in _exit_options(exit_conditions))


def _job_action_for(task: Task) -> str:
    """The ``exitOptions.jobAction`` that applies to how ``task`` ended (ExitConditions)."""
    conditions = task.extra.get("exitConditions") or {}
    code = task.exit_code
    chosen: JSON | None = None
    if code is None:
        chosen = conditions.get("preProcessingError")
    else:
        for entry in conditions.get("exitCodes") or []:
            if isinstance(entry, dict) and entry.get("code") == code:
                chosen = entry.get("exitOptions")
                break
        if chosen is None:
            for entry in conditions.get("exitCodeRanges") or []:
                if (
                    isinstance(entry, dict)
                    and isinstance(entry.get("start"), int)
                    and isinstance(entry.get("end"), int)
                    and entry["start"] <= code <= entry["end"]
                ):
                    chosen = entry.get("exitOptions")
                    break
    if chosen is None and code != 0:
        chosen = conditions.get("default")
    if isinstance(chosen, dict) and isinstance(chosen.get("jobAction"), str):
        return str(chosen["jobAction"]).lower()
    # Default: none for exit code 0, terminate for every other exit condition.
    return "none" if code == 0 else "terminate"
