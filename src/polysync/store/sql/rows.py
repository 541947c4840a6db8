"""Rows ↔ domain objects, the checks that keep secrets out, and shared messages."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    or_,
)

from polysync.domain import limits, secrets
from polysync.domain.models import (
    AuthMode,
    BackoffStrategy,
    ClonedDefault,
    DataType,
    Direction,
    Failure,
    HistoryEntry,
    Job,
    JobOverrides,
    Parameter,
    ParamOrigin,
    Platform,
    PlatformAuth,
    RetryPolicy,
    RunState,
    SecretRef,
    SecretVault,
    Task,
    TaskRun,
    Trigger,
)
from polysync.errors import (
    AlreadyExistsError,
    InputError,
    ParameterError,
)
from polysync.store import schema as s
from polysync.store.base import ApiToken

_IN_CHUNK = 500  # ids per IN (…) list
_NONTERMINAL = tuple(st.value for st in RunState if not st.is_terminal)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _key(name: str) -> str:
    # Every name lookup passes here. Saved names never hold NUL (validate_name), and
    # PostgreSQL refuses it in a query: a lookup with one is the caller's mistake (422,
    # exit 2), not a database failure.
    limits.check_no_nul(name, f"name {name[:80]!r}")
    return name.strip().lower()


# --- secrets: references only ---------------------------------------------------------


def is_secret_ref(value: str) -> bool:
    """True for a reference (``vault://…``, ``env:NAME``, ``file:PATH``), the only form a
    Secret may take at rest (decision 0010).

    One definition of "reference" for the whole product (``polysync.domain.secrets``); a
    malformed one raises ``SecretError`` there, which is the right answer here too.
    """
    return secrets.is_ref(value)


def _refuse_clear_secrets(job: Job, values: Mapping[str, str], where: str) -> None:
    """Defensive: never write a Secret parameter's value in clear, whoever the caller is."""
    secret_names = {p.name for p in job.parameters if p.data_type is DataType.SECRET}
    for name, value in values.items():
        if name in secret_names and not is_secret_ref(value):
            raise ParameterError(
                f"{where}: parameter {name} is a Secret, so its value must be a reference "
                f"({secrets.FORMS}), never the secret itself; the store refused it."
            )


def _check_job_secret_defaults(job: Job) -> None:
    for p in job.parameters:
        if (
            p.data_type is DataType.SECRET
            and p.default is not None
            and not is_secret_ref(p.default)
        ):
            raise ParameterError(
                f"job {job.name}: parameter {p.name} is a Secret, so its default must be a "
                f"reference ({secrets.FORMS}), never the secret itself; the store refused it."
            )


# --- row <-> domain -------------------------------------------------------------------


def _stored_ref(text: str | None) -> SecretRef | None:
    return secrets.parse_ref(text) if text else None


def _auth(row: Row[Any]) -> PlatformAuth:
    """The auth columns shared by ``platforms`` and ``secret_vaults``."""
    return PlatformAuth(
        mode=AuthMode(row.auth_mode),
        secret=_stored_ref(row.auth_secret_ref),
        tenant_id=row.tenant_id,
        client_id=row.client_id,
        certificate_path=row.certificate_path,
    )


def _auth_values(owner: str, auth: PlatformAuth) -> dict[str, Any]:
    secret = auth.secret
    if secret is not None and secrets.parse_ref(str(secret)) != secret:
        raise InputError(f"{owner}: the credential reference {secret} is not well formed.")
    return {
        "auth_mode": AuthMode(auth.mode).value,
        "auth_secret_ref": str(secret) if secret is not None else None,
        "tenant_id": auth.tenant_id,
        "client_id": auth.client_id,
        "certificate_path": auth.certificate_path,
    }


def _platform(row: Row[Any]) -> Platform:
    return Platform(
        name=row.name,
        account_url=row.account_url,
        account_name=row.account_name,
        subscription_id=row.subscription_id,
        resource_group=row.resource_group,
        auth=_auth(row),
        verify_tls=bool(row.verify_tls),
        ca_bundle=row.ca_bundle,
        created_at=row.created_at,
    )


def _vault(row: Row[Any]) -> SecretVault:
    return SecretVault(
        name=row.name,
        url=row.url,
        auth=_auth(row),
        provider=row.provider,
        verify_tls=bool(row.verify_tls),
        ca_bundle=row.ca_bundle,
        task_secrets=tuple(row.task_secrets),
        created_at=row.created_at,
    )


def _vault_values(v: SecretVault) -> dict[str, Any]:
    return {
        "name": v.name.strip(),
        "name_key": _key(v.name),
        "provider": v.provider,
        "url": v.url,
        **_auth_values(f"vault {v.name}", v.auth),
        "verify_tls": v.verify_tls,
        "ca_bundle": v.ca_bundle,
        "task_secrets": list(v.task_secrets),
    }


def _platform_values(p: Platform) -> dict[str, Any]:
    return {
        "name": p.name.strip(),
        "name_key": _key(p.name),
        "account_url": p.account_url,
        "account_name": p.account_name,
        "subscription_id": p.subscription_id,
        "resource_group": p.resource_group,
        **_auth_values(f"platform {p.name}", p.auth),
        "verify_tls": p.verify_tls,
        "ca_bundle": p.ca_bundle,
    }


def _param_to_json(p: Parameter) -> dict[str, Any]:
    return {
        "name": p.name,
        "data_type": DataType(p.data_type).value,
        "direction": Direction(p.direction).value,
        "default": p.default,
        "description": p.description,
        "origin": ParamOrigin(p.origin).value,
        "user_edited": p.user_edited,
    }


def _param_from_json(d: Mapping[str, Any]) -> Parameter:
    return Parameter(
        name=d["name"],
        data_type=DataType(d.get("data_type", DataType.STRING.value)),
        direction=Direction(d.get("direction", Direction.INPUT.value)),
        default=d.get("default"),
        description=d.get("description", ""),
        origin=ParamOrigin(d.get("origin", ParamOrigin.USER.value)),
        user_edited=bool(d.get("user_edited", False)),
    )


def _known(cls: type[Any], d: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the keys a dataclass knows: rows written by a newer version still load."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _job(row: Row[Any], platform_name: str) -> Job:
    return Job(
        name=row.name,
        platform=platform_name,
        external_id=row.external_id,
        job_type=row.job_type,
        parameters=tuple(_param_from_json(d) for d in row.parameters),
        overrides=JobOverrides(**_known(JobOverrides, row.overrides)),
        description=row.description,
        tags=tuple(row.tags),
        cloned_defaults=tuple(
            ClonedDefault(**_known(ClonedDefault, d)) for d in row.cloned_defaults
        ),
        warnings=tuple(row.warnings),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _task(row: Row[Any], job_name: str) -> Task:
    return Task(
        name=row.name,
        job=job_name,
        params=dict(row.params),
        execution_timeout_s=row.execution_timeout_s,
        retry_policy=RetryPolicy(
            enabled=bool(row.retry_enabled),
            max_attempts=row.retry_max_attempts,
            backoff=BackoffStrategy(row.retry_backoff),
            initial_delay_s=row.retry_initial_delay_s,
            max_delay_s=row.retry_max_delay_s,
        ),
        priority=row.priority,
        description=row.description,
        created_at=row.created_at,
    )


def _task_values(t: Task) -> dict[str, Any]:
    rp = t.retry_policy
    return {
        "name": t.name.strip(),
        "name_key": _key(t.name),
        "params": dict(t.params),
        "execution_timeout_s": t.execution_timeout_s,
        "retry_enabled": rp.enabled,
        "retry_max_attempts": rp.max_attempts,
        "retry_backoff": BackoffStrategy(rp.backoff).value,
        "retry_initial_delay_s": float(rp.initial_delay_s),
        "retry_max_delay_s": float(rp.max_delay_s),
        "priority": t.priority,
        "description": t.description,
    }


def _failure_from_json(d: Mapping[str, Any] | None) -> Failure | None:
    if d is None:
        return None
    return Failure(
        category=d["category"],
        code=d["code"],
        message=d["message"],
        details=tuple((str(k), str(v)) for k, v in d.get("details") or ()),
        stderr_tail=d.get("stderr_tail"),
    )


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """A run nobody holds: never claimed, or its holder's lease ran out (a dead worker)."""
    c = s.task_runs.c
    return or_(c.claimed_by.is_(None), c.lease_expires_at.is_(None), c.lease_expires_at <= now)


def _run(row: Row[Any] | Mapping[str, Any], history: Sequence[HistoryEntry] = ()) -> TaskRun:
    m: Mapping[Any, Any] = row._mapping if isinstance(row, Row) else row
    return TaskRun(
        id=m["id"],
        task=m["task_name"],
        job=m["job_name"],
        platform=m["platform_name"],
        state=RunState(m["state"]),
        trigger=Trigger(m["trigger"]),
        attempt=m["attempt"],
        priority=m["priority"],
        batch_job_id=m["batch_job_id"],
        batch_task_id=m["batch_task_id"],
        batch_pool_id=m["batch_pool_id"],
        monitor_url=m["monitor_url"],
        exit_code=m["exit_code"],
        failure=_failure_from_json(m["failure"]),
        params_sent=dict(m["params_sent"]),
        param_overrides=dict(m["param_overrides"]),
        diagnosis=m["diagnosis"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        cancel_requested=bool(m["cancel_requested"]),
        waiting_reason=m["waiting_reason"],
        not_before=m["not_before"],
        claimed_by=m["claimed_by"],
        lease_expires_at=m["lease_expires_at"],
        history=tuple(history),
    )


def _history_entry(row: Row[Any]) -> HistoryEntry:
    return HistoryEntry(
        at=row.at,
        from_state=RunState(row.from_state) if row.from_state is not None else None,
        to_state=RunState(row.to_state),
        reason=row.reason,
    )


def _states(state: RunState | None, states: Collection[RunState] | None) -> tuple[str, ...] | None:
    wanted = {RunState(x).value for x in states or ()}
    if state is not None:
        wanted.add(RunState(state).value)
    return tuple(sorted(wanted)) if (state is not None or states is not None) else None


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]


def _api_token(row: Row[Any]) -> ApiToken:
    return ApiToken(id=row.id, name=row.name, role=row.role, created_at=row.created_at)


# --- messages -------------------------------------------------------------------------


def _require_name(kind: str, name: str) -> None:
    if not name or not name.strip():
        raise InputError(f"a {kind} name must not be empty.")


def _names(names: Iterable[str]) -> str:
    items = list(names)
    shown = ", ".join(items[:10])
    return shown + (f" and {len(items) - 10} more" if len(items) > 10 else "")


def _platform_exists(name: str, existing: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"a platform named {existing!r} already exists (names ignore case); choose another "
        f"name for {name!r}, or remove it first with `polysync platform remove {existing}`."
    )


def _task_exists(name: str, existing: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"a task named {existing!r} already exists (names ignore case); choose another name "
        f"for {name!r}, or change it with `polysync task set {existing}`."
    )
