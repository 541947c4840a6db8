"""Pure value objects of Polysync for Azure Batch.

No I/O here: the store persists these, services and the job type pass them around, the
CLI renders them. Datetimes are aware UTC; durations carry their unit in the name.

Names follow the Polysync product (POLYSYNC-CONCEPTS.md): Platform → Job → Task → TaskRun.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

JOB_TYPE_BATCH_JOB = "Batch Job"
"""The one job type of this product; set automatically on import (seed)."""


class AuthMode(enum.StrEnum):
    """How a Platform authenticates to its Batch account."""

    SHARED_KEY = "shared-key"
    SERVICE_PRINCIPAL = "service-principal"
    CERTIFICATE = "certificate"
    MANAGED_IDENTITY = "managed-identity"
    DEFAULT = "default"
    # Accept a fixed bearer token (from env or file). Used with the emulator's
    # `--bearer-token`, and by users who mint tokens outside Polysync.
    BEARER_TOKEN = "bearer-token"  # noqa: S105 — a mode name, not a credential


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives, never the secret itself (docs/decisions/0010-secret-model.md).

    ``env``/``file`` are *host* references (the environment or a file of the process that
    resolves them); ``vault`` names a secret of a declared Secret Vault, its target being
    ``VAULT/SECRET`` or ``VAULT/SECRET/VERSION``.
    """

    kind: str  # "env" | "file" | "vault"
    target: str

    def __str__(self) -> str:
        if self.kind == "vault":
            return f"vault://{self.target}"
        return f"{self.kind}:{self.target}"

    @property
    def is_host(self) -> bool:
        return self.kind in ("env", "file")

    def _vault_part(self, index: int) -> str | None:
        if self.kind != "vault":
            return None
        parts = self.target.split("/")
        return parts[index] if index < len(parts) else None

    @property
    def vault(self) -> str | None:
        """The vault name of a ``vault://`` reference."""
        return self._vault_part(0)

    @property
    def secret(self) -> str | None:
        """The secret name of a ``vault://`` reference."""
        return self._vault_part(1)

    @property
    def version(self) -> str | None:
        """The pinned version of a ``vault://`` reference (None: the current one)."""
        return self._vault_part(2)


@dataclass(frozen=True, slots=True)
class PlatformAuth:
    """How to authenticate: a Platform to its Batch account, or a Secret Vault to its vault."""

    mode: AuthMode
    # shared-key: the account key; service-principal: the client secret;
    # certificate: the certificate password (optional); bearer-token: the token.
    secret: SecretRef | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    # A file of the host, or a vault:// reference whose value is the certificate itself.
    certificate_path: str | None = None


@dataclass(frozen=True, slots=True)
class Platform:
    """A connection to one Azure Batch account."""

    name: str
    account_url: str
    account_name: str
    subscription_id: str
    resource_group: str
    auth: PlatformAuth
    # Verify TLS certificates (off only for the emulator's self-signed --tls mode).
    verify_tls: bool = True
    ca_bundle: str | None = None
    created_at: datetime | None = None


VAULT_PROVIDER_AZURE = "azure-key-vault"


@dataclass(frozen=True, slots=True)
class SecretVault:
    """A pointer to an external secret manager (POLYSYNC-CONCEPTS.md, Secret Vault).

    It holds where the vault is and how to reach it; never a secret. ``vault://NAME/SECRET``
    references resolve through it. ``task_secrets`` are glob patterns of the secret names
    Task and run parameters may refer to (decision 0010).
    """

    name: str
    url: str
    auth: PlatformAuth
    provider: str = VAULT_PROVIDER_AZURE
    verify_tls: bool = True
    ca_bundle: str | None = None
    task_secrets: tuple[str, ...] = ("*",)
    created_at: datetime | None = None


class DataType(enum.StrEnum):
    STRING = "String"
    INT = "Int"
    FLOAT = "Float"
    BOOL = "Bool"
    JSON = "JSON"
    SECRET = "Secret"  # noqa: S105 — a data type name, not a credential


class Direction(enum.StrEnum):
    INPUT = "Input"
    OUTPUT = "Output"
    INPUT_OUTPUT = "Input&Output"


class ParamOrigin(enum.StrEnum):
    """Where a parameter (or a cloned default) came from; shown to the user."""

    TEMPLATE_JOB_ENV = "template job commonEnvironmentSettings"
    TEMPLATE_JOB_MANAGER = "template jobManagerTask environmentSettings"
    TEMPLATE_TASK_ENV = "template first task environmentSettings"
    USER = "user"


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    data_type: DataType = DataType.STRING
    direction: Direction = Direction.INPUT
    default: str | None = None
    description: str = ""
    origin: ParamOrigin = ParamOrigin.USER
    # True once a user changed it: a sync ("re-import") never overwrites it.
    user_edited: bool = False


@dataclass(frozen=True, slots=True)
class JobOverrides:
    """User overrides on top of the template (D2 precedence 1). None = take the template's."""

    command_line: str | None = None
    image: str | None = None
    container_run_options: str | None = None
    max_wall_clock_s: int | None = None
    retention_s: int | None = None
    max_task_retries: int | None = None


@dataclass(frozen=True, slots=True)
class ClonedDefault:
    """One value the per-run task would take from the template, and where it came from."""

    field: str  # e.g. "commandLine", "containerSettings.imageName", "poolInfo.poolId"
    value: str
    source: str  # e.g. "jobManagerTask", "first task 'prep'", "template job", "override"


@dataclass(frozen=True, slots=True)
class Job:
    """A template Batch Job imported into Polysync."""

    name: str
    platform: str  # Platform.name
    external_id: str  # the template Batch job id
    job_type: str = JOB_TYPE_BATCH_JOB
    parameters: tuple[Parameter, ...] = ()
    overrides: JobOverrides = field(default_factory=JobOverrides)
    description: str = ""
    tags: tuple[str, ...] = ()
    cloned_defaults: tuple[ClonedDefault, ...] = ()
    warnings: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)


class BackoffStrategy(enum.StrEnum):
    FIXED = "Fixed"
    LINEAR = "Linear"
    EXPONENTIAL = "Exponential"


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    enabled: bool = False
    max_attempts: int = 1
    backoff: BackoffStrategy = BackoffStrategy.FIXED
    initial_delay_s: float = 30.0
    max_delay_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Task:
    """A configured instance of a Job: pinned parameter values and run settings."""

    name: str
    job: str  # Job.name
    # Literal values; Secret parameters hold references (vault://, env:, file:) resolved
    # at run time (decision 0010).
    params: dict[str, str] = field(default_factory=dict)
    execution_timeout_s: int | None = None
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    priority: int = 0
    description: str = ""
    created_at: datetime | None = None


class RunState(enum.StrEnum):
    """What users see (D7). Terminal: Succeeded, Failed, Cancelled."""

    QUEUED = "Queued"
    STARTING = "Starting"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED)


class Trigger(enum.StrEnum):
    MANUAL = "Manual"


@dataclass(frozen=True, slots=True)
class Failure:
    """Why a run failed: Batch's failureInfo, or Polysync's own reason."""

    category: str  # "usererror" | "servererror" | "polysync"
    code: str  # e.g. "FailureExitCode", "TaskEnded", "PoolNotFound", "TimedOut"
    message: str
    details: tuple[tuple[str, str], ...] = ()
    stderr_tail: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    at: datetime
    from_state: RunState | None
    to_state: RunState
    reason: str = ""


@dataclass(frozen=True, slots=True)
class TaskRun:
    """One execution of a Task (one attempt = one Batch job)."""

    id: int
    task: str  # Task.name
    job: str  # Job.name
    platform: str  # Platform.name
    state: RunState
    trigger: Trigger = Trigger.MANUAL
    attempt: int = 1
    priority: int = 0
    batch_job_id: str | None = None
    batch_task_id: str | None = None
    # The pool the current attempt's job went to; None for an auto pool or before submit.
    batch_pool_id: str | None = None
    monitor_url: str | None = None
    exit_code: int | None = None
    failure: Failure | None = None
    # The parameter values sent as environmentSettings, secrets replaced by "***".
    params_sent: dict[str, str] = field(default_factory=dict)
    # Overrides given to `task run --param` (literals, or references for Secret
    # parameters; stored unresolved).
    param_overrides: dict[str, str] = field(default_factory=dict)
    diagnosis: str | None = None  # e.g. the stuck-Starting pool diagnosis (D9)
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    cancel_requested: bool = False
    # Why a Queued run is not submitted yet (e.g. "waiting for quota"); None when it is not held.
    waiting_reason: str | None = None
    # A retry's attempt is not submitted before this time.
    not_before: datetime | None = None
    # The process that may submit and track this run (a worker, or the `task run` /
    # server that started it) and until when, unless it renews (docs/engine.md).
    claimed_by: str | None = None
    lease_expires_at: datetime | None = None
    history: tuple[HistoryEntry, ...] = ()

    @property
    def run_id(self) -> str | None:
        """The seed's composite RunId ``"{jobId}/{taskId}"``."""
        if self.batch_job_id is None or self.batch_task_id is None:
            return None
        return f"{self.batch_job_id}/{self.batch_task_id}"
