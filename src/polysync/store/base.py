"""The store contract: everything Polysync keeps, behind one Protocol.

``SqlStore`` (``sql.py``) is the only implementation and the only place with queries.
Every method is synchronous and runs one short transaction; the async engine calls them
through a thread. Datetimes are aware UTC in and out.

Errors: unknown names/ids raise ``NotFoundError``, taken names ``AlreadyExistsError``,
refused deletions ``InputError``, a literal value for a Secret parameter
``ParameterError``; anything the database itself fails at becomes ``StoreError``.

Secrets: the store has no field for a secret value. Platform and vault credentials are
stored as references (``vault://…``, ``env:NAME``, ``file:PATH``), run parameters as
already-redacted text, and a Secret parameter's default or value must be a reference —
the store refuses a literal (decision 0010).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from polysync.domain.models import (
    Failure,
    HistoryEntry,
    Job,
    Platform,
    RunState,
    SecretVault,
    Task,
    TaskRun,
    Trigger,
)
from polysync.errors import PolysyncError
from polysync.store.writes import RunOp


@dataclass(frozen=True, slots=True)
class RunAttempt:
    """One attempt of a run that got Batch ids (each attempt is its own Batch job)."""

    run_id: int
    attempt: int
    batch_job_id: str
    batch_task_id: str
    monitor_url: str | None
    params_sent: dict[str, str]
    state: RunState | None  # None while the attempt is in flight
    exit_code: int | None
    failure: Failure | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class ApiToken:
    """An API token of ``polysync server``, without its secret (only a hash is stored)."""

    id: int
    name: str
    role: str  # "viewer" | "operator" | "admin" (polysync.api.tokens.Role)
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in browser of the web console (only a hash of its id is stored).

    It acts with its token's name and role; deleting the token deletes its sessions.
    """

    id: int
    token: ApiToken
    created_at: datetime
    expires_at: datetime  # the absolute end, fixed at sign-in
    last_seen_at: datetime  # the idle timeout counts from here


class Store(Protocol):
    # --- lifecycle --------------------------------------------------------------------
    def close(self) -> None: ...

    def installation_id(self) -> str:
        """8 lower-case alphanumerics, generated once per database (used in Batch ids)."""
        ...

    # --- platforms ---------------------------------------------------------------------
    def add_platform(self, platform: Platform) -> Platform: ...
    def get_platform(self, name: str) -> Platform: ...
    def list_platforms(self) -> list[Platform]: ...
    def update_platform(self, platform: Platform) -> Platform: ...
    def remove_platform(self, name: str, *, force: bool = False) -> None: ...

    # --- jobs --------------------------------------------------------------------------
    def upsert_job(self, job: Job) -> Job: ...
    def get_job(self, name: str) -> Job: ...
    def find_job(self, platform: str, external_id: str) -> Job | None: ...
    def list_jobs(self, platform: str | None = None) -> list[Job]: ...
    def remove_job(self, name: str, *, force: bool = False) -> None: ...

    # --- tasks -------------------------------------------------------------------------
    def add_task(self, task: Task) -> Task: ...
    def update_task(self, task: Task) -> Task: ...
    def get_task(self, name: str) -> Task: ...
    def list_tasks(self, job: str | None = None) -> list[Task]: ...
    def remove_task(self, name: str, *, force: bool = False) -> None: ...

    # --- runs --------------------------------------------------------------------------
    def create_run(
        self,
        task: Task,
        job: Job,
        platform: Platform,
        *,
        trigger: Trigger,
        priority: int,
        param_overrides: dict[str, str],
        not_before: datetime | None = None,
        claimed_by: str | None = None,
        lease_expires_at: datetime | None = None,
    ) -> TaskRun:
        """A Queued run; with ``claimed_by``, created already claimed by that owner until
        ``lease_expires_at`` (atomically: no worker can claim it in between)."""
        ...

    def get_run(self, run_id: int) -> TaskRun: ...
    def find_run_by_batch_ids(self, batch_job_id: str, batch_task_id: str) -> TaskRun | None: ...

    def list_runs(
        self,
        *,
        task: str | None = None,
        state: RunState | None = None,
        states: Collection[RunState] | None = None,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
        with_history: bool = True,
    ) -> list[TaskRun]: ...

    def count_runs(
        self,
        *,
        task: str | None = None,
        state: RunState | None = None,
        states: Collection[RunState] | None = None,
    ) -> int: ...

    def assign_batch_ids(
        self,
        run_id: int,
        batch_job_id: str,
        batch_task_id: str,
        monitor_url: str | None,
        params_sent: dict[str, str],
    ) -> TaskRun: ...

    def transition(
        self,
        run_id: int,
        to_state: RunState,
        *,
        reason: str,
        expected_from: RunState | Collection[RunState] | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> TaskRun: ...

    def update_run(self, run_id: int, **fields: Any) -> TaskRun: ...
    def write_runs(self, ops: Sequence[RunOp]) -> list[TaskRun | PolysyncError]:
        """Apply run ops (``polysync.store.writes``) in order, in one transaction; per op
        the run after it, or that op's error."""
        ...

    def request_cancel(self, run_id: int) -> TaskRun: ...
    def history(self, run_id: int) -> list[HistoryEntry]: ...
    def attempts(self, run_id: int) -> list[RunAttempt]: ...
    def list_nonterminal_runs(
        self,
        platform: str | None = None,
        *,
        job: str | None = None,
        task: str | None = None,
        with_history: bool = False,
    ) -> list[TaskRun]:
        """Queued/Starting/Running runs, oldest first; narrowed to a platform, job or task."""
        ...

    # --- engine (issue 4) ---------------------------------------------------------------
    def claim_queued(
        self, worker_id: str, now: datetime, limit: int, lease_s: float
    ) -> list[TaskRun]: ...
    def renew_leases(self, worker_id: str, now: datetime, lease_s: float) -> int: ...
    def release(self, run_id: int, owner: str | None = None) -> bool:
        """Drop the run's claim (with ``owner``: only that owner's); True if one was dropped."""
        ...

    def adopt_runs(
        self, worker_id: str, now: datetime, limit: int, lease_s: float, *, own: bool = True
    ) -> list[TaskRun]: ...
    def claim_run(self, run_id: int, worker_id: str, now: datetime, lease_s: float) -> bool: ...
    def release_all(self, worker_id: str) -> int: ...
    def fail_and_retry(
        self,
        run_id: int,
        *,
        reason: str,
        retry_reason: str,
        next_attempt: int,
        not_before: datetime,
        expected_from: RunState | Collection[RunState] | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> TaskRun: ...

    # --- server (issue 5) ---------------------------------------------------------------
    def runs_changed_since(
        self, since: datetime, *, limit: int = 1000
    ) -> list[tuple[TaskRun, datetime]]:
        """Runs whose row changed at or after ``since`` (with history), oldest change first,
        each with its ``updated_at``."""
        ...

    def add_api_token(self, name: str, role: str, digest: str) -> ApiToken: ...
    def find_api_token(self, digest: str) -> ApiToken | None: ...
    def list_api_tokens(self) -> list[ApiToken]: ...
    def remove_api_token(self, name: str) -> None: ...
    def existing_api_token_ids(self, ids: Collection[int]) -> set[int]:
        """Which of ``ids`` are still tokens (the open event streams' re-check)."""
        ...

    # --- console sessions (issue 12) ----------------------------------------------------
    def add_console_session(
        self, token_id: int, digest: str, *, now: datetime, expires_at: datetime
    ) -> ConsoleSession:
        """A new session of token ``token_id``; ``NotFoundError`` if the token is gone."""
        ...

    def find_console_session(self, digest: str) -> ConsoleSession | None: ...
    def console_sessions(self, ids: Collection[int]) -> list[ConsoleSession]:
        """The sessions among ``ids`` that still exist (expired or not)."""
        ...

    def touch_console_session(self, session_id: int, at: datetime) -> None: ...
    def remove_console_session(self, digest: str) -> bool:
        """Delete the session; False if there was none (signing out twice is fine)."""
        ...

    def purge_console_sessions(self, *, expired_at: datetime, idle_since: datetime) -> int:
        """Delete sessions past their absolute end or unused since ``idle_since``."""
        ...

    # --- secret vaults (decision 0010) ------------------------------------------------
    def add_vault(self, vault: SecretVault) -> SecretVault: ...
    def get_vault(self, name: str) -> SecretVault: ...
    def list_vaults(self) -> list[SecretVault]: ...
    def update_vault(self, vault: SecretVault) -> SecretVault: ...
    def remove_vault(self, name: str) -> None: ...
    def vault_users(self, name: str) -> list[str]:
        """What refers to the vault, as "platform p1", "task etl (parameter TOKEN)", …"""
        ...

    def credential_references(self) -> list[str]:
        """Every reference a platform or vault credential uses, as stored."""
        ...
