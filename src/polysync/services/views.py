"""JSON shapes of the public interface (CLI `--output json`, and the API later).

These shapes are part of the interface: add keys freely, never rename or remove one.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from polysync.domain.models import (
    DataType,
    Failure,
    Job,
    Platform,
    PlatformAuth,
    SecretVault,
    Task,
    TaskRun,
)
from polysync.jobtypes.base import DiscoveredJob


def _ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def failure_view(failure: Failure | None) -> dict[str, Any] | None:
    if failure is None:
        return None
    return {
        "category": failure.category,
        "code": failure.code,
        "message": failure.message,
        "details": [{"name": k, "value": v} for k, v in failure.details],
        "stderr_tail": failure.stderr_tail,
    }


def run_view(run: TaskRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "task": run.task,
        "job": run.job,
        "platform": run.platform,
        "state": run.state.value,
        "trigger": run.trigger.value,
        "attempt": run.attempt,
        "run_id": run.run_id,
        "batch_job_id": run.batch_job_id,
        "batch_task_id": run.batch_task_id,
        "batch_pool_id": run.batch_pool_id,
        "monitor_url": run.monitor_url,
        "exit_code": run.exit_code,
        "failure": failure_view(run.failure),
        "diagnosis": run.diagnosis,
        "waiting_reason": run.waiting_reason,
        "params_sent": dict(run.params_sent),
        "created_at": _ts(run.created_at),
        "started_at": _ts(run.started_at),
        "ended_at": _ts(run.ended_at),
        "history": [
            {
                "at": _ts(h.at),
                "from": h.from_state.value if h.from_state else None,
                "to": h.to_state.value,
                "reason": h.reason,
            }
            for h in run.history
        ],
    }


HIDDEN = "***"
"""What a viewer sees in place of a secret reference (decision 0010 §4)."""


def platform_view(p: Platform, *, reveal: bool = True) -> dict[str, Any]:
    """``reveal``: show where its credential is read from (admins and the host only)."""
    return {
        "name": p.name,
        "account_url": p.account_url,
        "account_name": p.account_name,
        "subscription_id": p.subscription_id,
        "resource_group": p.resource_group,
        "auth": _auth_view(p.auth, reveal=reveal),
        "verify_tls": p.verify_tls,
        "ca_bundle": p.ca_bundle if reveal else None,
        "created_at": _ts(p.created_at),
    }


def _auth_view(auth: PlatformAuth, *, reveal: bool) -> dict[str, Any]:
    """Credential settings: references shown as references to admins, else only "set"."""
    secret = str(auth.secret) if auth.secret else None
    cert = auth.certificate_path
    return {
        "mode": auth.mode.value,
        # Where the secret is read from (decision 0010: admins only), never the secret.
        "secret_ref": secret if reveal else None,
        "secret_set": secret is not None,
        "tenant_id": auth.tenant_id,
        "client_id": auth.client_id,
        "certificate_path": cert if reveal else ("(set)" if cert else None),
    }


def vault_view(v: SecretVault, *, reveal: bool = True) -> dict[str, Any]:
    return {
        "name": v.name,
        "provider": v.provider,
        "url": v.url,
        "auth": _auth_view(v.auth, reveal=reveal),
        "verify_tls": v.verify_tls,
        "ca_bundle": v.ca_bundle if reveal else None,
        "task_secrets": list(v.task_secrets),
        "created_at": _ts(v.created_at),
    }


def job_for_viewers(job: Job) -> Job:
    """``job`` as a viewer sees it: Secret parameters' defaults (references) read ``***``.

    Applied to the object, before any view or page renders it, so no page can show a
    reference by forgetting to hide it (decision 0010 §4; the API and the console).
    """
    params = tuple(
        replace(p, default=HIDDEN)
        if p.data_type is DataType.SECRET and p.default is not None
        else p
        for p in job.parameters
    )
    return replace(job, parameters=params)


def task_for_viewers(task: Task, job: Job) -> Task:
    """``task`` as a viewer sees it: the values of ``job``'s Secret parameters read ``***``."""
    secret = {p.name for p in job.parameters if p.data_type is DataType.SECRET}
    return replace(task, params={k: HIDDEN if k in secret else v for k, v in task.params.items()})


def job_view(job: Job) -> dict[str, Any]:
    o = job.overrides
    return {
        "name": job.name,
        "platform": job.platform,
        "job_type": job.job_type,
        "external_id": job.external_id,
        "description": job.description,
        "tags": list(job.tags),
        "parameters": [
            {
                "name": p.name,
                "type": p.data_type.value,
                "direction": p.direction.value,
                "default": p.default,
                "description": p.description,
                "origin": p.origin.value,
                "user_edited": p.user_edited,
            }
            for p in job.parameters
        ],
        "overrides": {
            "command_line": o.command_line,
            "image": o.image,
            "container_run_options": o.container_run_options,
            "max_wall_clock_s": o.max_wall_clock_s,
            "retention_s": o.retention_s,
            "max_task_retries": o.max_task_retries,
        },
        "cloned_defaults": [
            {"field": c.field, "value": c.value, "source": c.source} for c in job.cloned_defaults
        ],
        "warnings": list(job.warnings),
        "created_at": _ts(job.created_at),
        "updated_at": _ts(job.updated_at),
    }


def task_view(task: Task) -> dict[str, Any]:
    r = task.retry_policy
    return {
        "name": task.name,
        "job": task.job,
        # Literals and references as stored; Secret parameters are references only.
        "params": dict(task.params),
        "execution_timeout_s": task.execution_timeout_s,
        "retry_policy": {
            "enabled": r.enabled,
            "max_attempts": r.max_attempts,
            "backoff": r.backoff.value,
            "initial_delay_s": r.initial_delay_s,
            "max_delay_s": r.max_delay_s,
        },
        "priority": task.priority,
        "description": task.description,
        "created_at": _ts(task.created_at),
    }


def discovered_view(d: DiscoveredJob) -> dict[str, Any]:
    return {"id": d.id, "display_name": d.display_name, "state": d.state}
