"""The emulator's entities (pools, nodes, jobs, tasks) and their wire shapes.

Entities are plain mutable dataclasses owned by :mod:`batch_emulator.backend`; every change
goes through the backend (or the scheduler it drives) so that ``lastModified``/``eTag`` follow
the service's rules (NOTES.md §13.6: a job's ETag moves on every change including state
changes, a task's ETag does not move when only its state changes).

``to_wire(base_url)`` renders exactly the JSON object the service returns for GET (without
``odata.metadata``, which the HTTP layer adds), with the defaults the service fills in
(NOTES.md §13.11). Values the emulator does not interpret (job manager task, metadata,
container settings, ...) are stored as the JSON the client sent and echoed back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from batch_emulator.protocol.formats import etag_for, format_duration, format_timestamp

JSON = dict[str, Any]

# Job states (NOTES.md §5): only the ones the emulator can reach.
JOB_ACTIVE = "active"
JOB_TERMINATING = "terminating"
JOB_COMPLETED = "completed"
JOB_DELETING = "deleting"

# Task states.
TASK_ACTIVE = "active"
TASK_PREPARING = "preparing"
TASK_RUNNING = "running"
TASK_COMPLETED = "completed"

# Node states: the ones the emulator can reach (a node needs no start-up here).
NODE_IDLE = "idle"
NODE_RUNNING = "running"
NODE_LEAVING = "leavingpool"

# recentTasks lists every running task plus at most this many that ended, newest first.
# The service does not document its bound; 20 keeps a node's body small whatever the
# task throughput.
RECENT_ENDED_TASKS = 20

POOL_ACTIVE = "active"
POOL_DELETING = "deleting"
ALLOC_STEADY = "steady"
ALLOC_RESIZING = "resizing"

# Default task retention (NOTES.md §10.5): the service returns P7D when none was given.
DEFAULT_RETENTION = dt.timedelta(days=7)

# The directory name the service uses for a job on a node (NOTES.md §2.4: "job-1").
NODE_JOB_DIR = "job-1"


def _duration(value: dt.timedelta | None) -> str:
    """Wire form of an optional duration: ``None`` means unlimited (TimeSpan.MaxValue)."""
    return format_duration(value)


def _put(out: JSON, key: str, value: Any) -> None:
    """Add ``key`` only when it has a value: the service omits absent optional properties."""
    if value is not None:
        out[key] = value


def _task_info(base_url: str, job_id: str, task_id: str, state: str, execution: JSON) -> JSON:
    """One ``recentTasks`` entry (``BatchTaskInfo``; ``subtaskId`` only for multi-instance)."""
    return {
        "taskUrl": f"{base_url}/jobs/{job_id}/tasks/{task_id}",
        "jobId": job_id,
        "taskId": task_id,
        "taskState": state,
        "executionInfo": execution,
    }


@dataclass(frozen=True, slots=True)
class EndedTask:
    """A task attempt that ended on a node, as the task stood right then.

    A snapshot rather than the task itself: the task may since have been retried on
    another node or deleted, and the node must still say what it ran.
    """

    job_id: str
    task_id: str
    state: str
    execution: JSON


def _started(task: Task) -> dt.datetime:
    return task.start_time or task.creation_time


@dataclass(eq=False, slots=True)
class Node:
    """One compute node of a pool: a group of task slots on this machine."""

    id: str
    slots: int
    allocation_time: dt.datetime
    ip_address: str
    low_priority: bool = False
    used: int = 0
    running: set[Task] = field(default_factory=set)
    # Being removed by a resize with taskcompletion/retaineddata: takes no new tasks and
    # disappears once idle.
    draining: bool = False
    # What GET shows, kept up to date by changed()/task_ended() so that rendering a node
    # never looks at other tasks than its own running ones.
    state: str = NODE_IDLE
    state_time: dt.datetime = field(init=False)
    last_modified: dt.datetime = field(init=False)
    tasks_run: int = 0
    tasks_succeeded: int = 0
    ended: deque[EndedTask] = field(default_factory=lambda: deque(maxlen=RECENT_ENDED_TASKS))

    def __post_init__(self) -> None:
        self.state_time = self.allocation_time
        self.last_modified = self.allocation_time

    @property
    def free(self) -> int:
        return self.slots - self.used

    @property
    def etag(self) -> str:
        return etag_for(self.last_modified)

    def changed(self, now: dt.datetime) -> None:
        """Its running tasks or draining flag changed: a new state gets a new
        ``stateTransitionTime``, and the ETag moves whatever changed."""
        state = NODE_LEAVING if self.draining else NODE_RUNNING if self.running else NODE_IDLE
        if state != self.state:
            self.state = state
            self.state_time = now
        self.last_modified = now

    def task_ended(self, task: Task, now: dt.datetime) -> None:
        """An attempt of ``task`` ended here with an outcome (completed or to be retried)."""
        self.tasks_run += 1
        if task.result == "success":
            self.tasks_succeeded += 1
        self.ended.append(EndedTask(task.job.id, task.id, task.state, task.execution_wire()))
        self.changed(now)

    def to_wire(self, base_url: str, pool: Pool) -> JSON:
        out: JSON = {
            "id": self.id,
            "url": f"{base_url}/pools/{pool.id}/nodes/{self.id}",
            "state": self.state,
            # A draining node takes no new tasks, which is what "disabled" means.
            "schedulingState": "disabled" if self.draining else "enabled",
            "stateTransitionTime": format_timestamp(self.state_time),
            # Emulated nodes never reboot: they boot once, when allocated.
            "lastBootTime": format_timestamp(self.allocation_time),
            "allocationTime": format_timestamp(self.allocation_time),
            "ipAddress": self.ip_address,
            "affinityId": f"TVM:{self.id}",
            "vmSize": pool.vm_size,
            "totalTasksRun": self.tasks_run,
            "totalTasksSucceeded": self.tasks_succeeded,
            "runningTasksCount": len(self.running),
            "runningTaskSlotsCount": self.used,
        }
        # Only present once a task has run here, as the service does.
        if self.running or self.ended:
            out["recentTasks"] = self.recent_tasks(base_url)
        out["isDedicated"] = not self.low_priority
        return out

    def recent_tasks(self, base_url: str) -> list[JSON]:
        """Running tasks (latest started first), then the ended ones, newest first."""
        out = [
            _task_info(base_url, t.job.id, t.id, t.state, t.execution_wire())
            for t in sorted(self.running, key=_started, reverse=True)
        ]
        out.extend(
            _task_info(base_url, e.job_id, e.task_id, e.state, e.execution)
            for e in reversed(self.ended)
        )
        return out


@dataclass(eq=False, slots=True)
class Pool:
    """A pool: nodes with slots. Only what scheduling needs is interpreted."""

    id: str
    vm_size: str
    target_dedicated: int
    target_low_priority: int
    slots_per_node: int
    creation_time: dt.datetime
    last_modified: dt.datetime
    state_transition_time: dt.datetime
    allocation_state_transition_time: dt.datetime
    enable_auto_scale: bool = False
    auto_scale_formula: str | None = None
    auto_scale_evaluation_interval: dt.timedelta | None = None
    resize_timeout: dt.timedelta = dt.timedelta(minutes=15)
    # Properties stored verbatim and echoed back (displayName, virtualMachineConfiguration, ...).
    extra: JSON = field(default_factory=dict)
    state: str = POOL_ACTIVE
    allocation_state: str = ALLOC_STEADY
    nodes: list[Node] = field(default_factory=list)
    node_serial: int = 0

    @property
    def etag(self) -> str:
        return etag_for(self.last_modified)

    def to_wire(self, base_url: str) -> JSON:
        out: JSON = {"id": self.id}
        _put(out, "displayName", self.extra.get("displayName"))
        out.update(
            {
                "url": f"{base_url}/pools/{self.id}",
                "eTag": self.etag,
                "lastModified": format_timestamp(self.last_modified),
                "creationTime": format_timestamp(self.creation_time),
                "state": self.state,
                "stateTransitionTime": format_timestamp(self.state_transition_time),
                "allocationState": self.allocation_state,
                "allocationStateTransitionTime": format_timestamp(
                    self.allocation_state_transition_time
                ),
                "vmSize": self.vm_size,
            }
        )
        for key in ("virtualMachineConfiguration",):
            _put(out, key, self.extra.get(key))
        out["resizeTimeout"] = format_duration(self.resize_timeout)
        low = sum(1 for node in self.nodes if node.low_priority)
        out["currentDedicatedNodes"] = len(self.nodes) - low
        out["currentLowPriorityNodes"] = low
        out["targetDedicatedNodes"] = self.target_dedicated
        out["targetLowPriorityNodes"] = self.target_low_priority
        out["enableAutoScale"] = self.enable_auto_scale
        if self.enable_auto_scale:
            _put(out, "autoScaleFormula", self.auto_scale_formula)
            out["autoScaleEvaluationInterval"] = format_duration(
                self.auto_scale_evaluation_interval or dt.timedelta(minutes=15)
            )
        out["enableInterNodeCommunication"] = bool(
            self.extra.get("enableInterNodeCommunication", False)
        )
        for key in (
            "networkConfiguration",
            "startTask",
            "applicationPackageReferences",
        ):
            _put(out, key, self.extra.get(key))
        out["taskSlotsPerNode"] = self.slots_per_node
        out["taskSchedulingPolicy"] = self.extra.get(
            "taskSchedulingPolicy", {"nodeFillType": "spread"}
        )
        for key in ("userAccounts", "metadata", "mountConfiguration", "upgradePolicy"):
            _put(out, key, self.extra.get(key))
        return out


@dataclass(eq=False, slots=True)
class Job:
    """A job. ``tasks`` is keyed by the lower-cased task id (ids are case-insensitive)."""

    id: str
    pool_info: JSON
    pool_id: str
    creation_time: dt.datetime
    last_modified: dt.datetime
    state_transition_time: dt.datetime
    display_name: str | None = None
    uses_task_dependencies: bool = False
    priority: int = 0
    allow_task_preemption: bool = False
    max_parallel_tasks: int = -1
    max_wall_clock_time: dt.timedelta | None = None
    max_task_retry_count: int = 0
    on_all_tasks_complete: str = "noaction"
    on_task_failure: str = "noaction"
    # Stored verbatim: jobManagerTask, jobPreparationTask, jobReleaseTask,
    # commonEnvironmentSettings, networkConfiguration, metadata.
    extra: JSON = field(default_factory=dict)
    state: str = JOB_ACTIVE
    previous_state: str | None = None
    previous_state_transition_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    terminate_reason: str | None = None
    # Runtime bookkeeping (not on the wire).
    tasks: dict[str, Task] = field(default_factory=dict)
    task_keys: list[str] = field(default_factory=list)  # sorted lower-cased ids, for paging
    incomplete: int = 0  # tasks not in the completed state
    running: set[Task] = field(default_factory=set)  # tasks holding slots on a node
    node_dirs: set[str] = field(default_factory=set)  # node roots that hold job directories
    auto_pool_id: str | None = None
    created_mono: float = 0.0  # emulator-clock monotonic time of creation (wall-clock limit)

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def etag(self) -> str:
        return etag_for(self.last_modified)

    @property
    def common_environment(self) -> list[JSON]:
        value = self.extra.get("commonEnvironmentSettings")
        return list(value) if isinstance(value, list) else []

    def to_wire(self, base_url: str) -> JSON:
        out: JSON = {"id": self.id}
        _put(out, "displayName", self.display_name)
        out["url"] = f"{base_url}/jobs/{self.id}"
        out["eTag"] = self.etag
        out["lastModified"] = format_timestamp(self.last_modified)
        out["creationTime"] = format_timestamp(self.creation_time)
        out["state"] = self.state
        out["stateTransitionTime"] = format_timestamp(self.state_transition_time)
        if self.previous_state is not None and self.previous_state_transition_time is not None:
            out["previousState"] = self.previous_state
            out["previousStateTransitionTime"] = format_timestamp(
                self.previous_state_transition_time
            )
        out["priority"] = self.priority
        out["maxParallelTasks"] = self.max_parallel_tasks
        out["usesTaskDependencies"] = self.uses_task_dependencies
        out["allowTaskPreemption"] = self.allow_task_preemption
        out["constraints"] = {
            "maxWallClockTime": _duration(self.max_wall_clock_time),
            "maxTaskRetryCount": self.max_task_retry_count,
        }
        for key in ("jobManagerTask", "jobPreparationTask", "jobReleaseTask"):
            _put(out, key, self.extra.get(key))
        _put(out, "commonEnvironmentSettings", self.extra.get("commonEnvironmentSettings"))
        out["poolInfo"] = self.pool_info
        execution: JSON = {"startTime": format_timestamp(self.creation_time)}
        if self.end_time is not None:
            execution["endTime"] = format_timestamp(self.end_time)
        execution["poolId"] = self.auto_pool_id or self.pool_id
        _put(execution, "terminateReason", self.terminate_reason)
        out["executionInfo"] = execution
        out["onAllTasksComplete"] = self.on_all_tasks_complete
        out["onTaskFailure"] = self.on_task_failure
        _put(out, "networkConfiguration", self.extra.get("networkConfiguration"))
        _put(out, "metadata", self.extra.get("metadata"))
        return out


@dataclass(slots=True)
class FailureInfo:
    """``executionInfo.failureInfo`` (NOTES.md §10.8)."""

    category: str  # "usererror" | "servererror"
    code: str
    message: str
    details: list[JSON] = field(default_factory=list)

    def to_wire(self) -> JSON:
        return {
            "category": self.category,
            "code": self.code,
            "message": self.message,
            "details": list(self.details),
        }


@dataclass(eq=False, slots=True)
class Task:
    """A task of a job, with its execution state and its runtime handles."""

    id: str
    job: Job
    command_line: str
    creation_time: dt.datetime
    last_modified: dt.datetime
    state_transition_time: dt.datetime
    seq: int  # creation order, for FIFO scheduling
    display_name: str | None = None
    required_slots: int = 1
    max_wall_clock_time: dt.timedelta | None = None
    retention_time: dt.timedelta = DEFAULT_RETENTION
    max_task_retry_count: int = 0
    # Stored verbatim: exitConditions, containerSettings, resourceFiles, outputFiles,
    # environmentSettings, affinityInfo, userIdentity, multiInstanceSettings, dependsOn,
    # applicationPackageReferences.
    extra: JSON = field(default_factory=dict)
    state: str = TASK_ACTIVE
    previous_state: str | None = None
    previous_state_transition_time: dt.datetime | None = None
    # executionInfo
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    exit_code: int | None = None
    result: str | None = None
    failure: FailureInfo | None = None
    retry_count: int = 0
    last_retry_time: dt.datetime | None = None
    requeue_count: int = 0
    last_requeue_time: dt.datetime | None = None
    container_info: JSON | None = None
    # nodeInfo: set once the task has been assigned to a node.
    pool_id: str | None = None
    node_id: str | None = None
    # Runtime bookkeeping (not on the wire).
    node: Node | None = None
    attempt: int = 0  # bumps on every start; stale process exits are ignored
    process: Any = None  # the runner's handle of the running process
    killing: Any = None  # the runner's kill of the process tree, while it is in progress
    kill_reason: str | None = None  # why the scheduler is killing the current attempt
    kill_detail: str | None = None
    finished: asyncio.Event | None = None  # set when the current attempt has been settled
    hold_exempt: bool = False  # released by the hold control: holds no longer apply
    parked_exit: int | None = None  # exit code kept while a "running" hold pins the task
    parked: bool = False
    deadline: float | None = None  # monotonic emulator-clock deadline of the current run
    queue_token: int = 0  # non-zero while it sits in its pool's pending queue
    held: bool = False  # sits in the scheduler's held set

    @property
    def key(self) -> str:
        return self.id.lower()

    @property
    def etag(self) -> str:
        return etag_for(self.last_modified)

    @property
    def root_dir(self) -> str:
        """The task directory relative to the node root (NOTES.md §4.10 taskRootDirectory)."""
        return f"workitems/{self.job.id}/{NODE_JOB_DIR}/{self.id}"

    def to_wire(self, base_url: str) -> JSON:
        out: JSON = {"id": self.id}
        _put(out, "displayName", self.display_name)
        out["url"] = f"{base_url}/jobs/{self.job.id}/tasks/{self.id}"
        out["eTag"] = self.etag
        out["creationTime"] = format_timestamp(self.creation_time)
        out["lastModified"] = format_timestamp(self.last_modified)
        extra = self.extra
        _put(out, "exitConditions", extra.get("exitConditions"))
        out["state"] = self.state
        out["stateTransitionTime"] = format_timestamp(self.state_transition_time)
        if self.previous_state is not None and self.previous_state_transition_time is not None:
            out["previousState"] = self.previous_state
            out["previousStateTransitionTime"] = format_timestamp(
                self.previous_state_transition_time
            )
        out["commandLine"] = self.command_line
        for key in (
            "containerSettings",
            "resourceFiles",
            "outputFiles",
            "environmentSettings",
            "affinityInfo",
        ):
            _put(out, key, extra.get(key))
        out["userIdentity"] = extra.get(
            "userIdentity", {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}}
        )
        _put(out, "multiInstanceSettings", extra.get("multiInstanceSettings"))
        out["constraints"] = {
            "maxWallClockTime": _duration(self.max_wall_clock_time),
            "retentionTime": format_duration(self.retention_time),
            "maxTaskRetryCount": self.max_task_retry_count,
        }
        out["requiredSlots"] = self.required_slots
        out["executionInfo"] = self.execution_wire()
        if self.node_id is not None and self.pool_id is not None:
            out["nodeInfo"] = self.node_wire(base_url)
        _put(out, "dependsOn", extra.get("dependsOn"))
        _put(out, "applicationPackageReferences", extra.get("applicationPackageReferences"))
        return out

    def execution_wire(self) -> JSON:
        execution: JSON = {}
        if self.start_time is not None:
            execution["startTime"] = format_timestamp(self.start_time)
        if self.end_time is not None:
            execution["endTime"] = format_timestamp(self.end_time)
        if self.exit_code is not None:
            execution["exitCode"] = self.exit_code
        _put(execution, "containerInfo", self.container_info)
        if self.failure is not None:
            execution["failureInfo"] = self.failure.to_wire()
        execution["retryCount"] = self.retry_count
        if self.last_retry_time is not None:
            execution["lastRetryTime"] = format_timestamp(self.last_retry_time)
        execution["requeueCount"] = self.requeue_count
        if self.last_requeue_time is not None:
            execution["lastRequeueTime"] = format_timestamp(self.last_requeue_time)
        _put(execution, "result", self.result)
        return execution

    def node_wire(self, base_url: str) -> JSON:
        node_url = f"{base_url}/pools/{self.pool_id}/nodes/{self.node_id}"
        return {
            "affinityId": f"TVM:{self.node_id}",
            "nodeUrl": node_url,
            "poolId": self.pool_id,
            "nodeId": self.node_id,
            "taskRootDirectory": self.root_dir,
            "taskRootDirectoryUrl": f"{node_url}/files/{self.root_dir}",
        }
