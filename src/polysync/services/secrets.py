"""The secret model at the service layer (docs/decisions/0010-secret-model.md).

* :func:`rules` — what the deployment declared (vaults and their task secrets, the host
  allow-list, the secrets credentials use), re-read every few seconds;
* :func:`check_writable` — may this writer put this reference in this slot;
* :func:`run_secrets` / :func:`masker` — the values to mask in a run's task output.
"""

from __future__ import annotations

import logging
import time

from polysync.domain import parameters
from polysync.domain.models import DataType, Job, SecretRef, Task, TaskRun
from polysync.domain.secrets import (
    REDACTOR,
    Redactor,
    RefRules,
    Slot,
    Writer,
    check_ref,
    parse_ref,
)
from polysync.errors import PolysyncError
from polysync.services.context import Services

log = logging.getLogger(__name__)

RULES_MAX_AGE_S = 2.0
"""How long a process reuses the declared rules: a vault narrowed by an admin is obeyed
by every worker within this time."""


def rules(svc: Services, *, fresh: bool = False) -> RefRules:
    """The deployment's reference rules (cached for :data:`RULES_MAX_AGE_S`)."""
    now = time.monotonic()
    cached = svc.rules_cache
    if not fresh and cached is not None and now - cached[0] < RULES_MAX_AGE_S:
        found: RefRules = cached[1]
        return found
    credential = set()
    for text in svc.store.credential_references():
        ref = _quiet_parse(text)
        if ref is not None and ref.kind == "vault":
            credential.add(((ref.vault or "").lower(), (ref.secret or "").lower()))
    built = RefRules(
        vaults={v.name.lower(): v.task_secrets for v in svc.store.list_vaults()},
        host_allow=svc.settings.host_references,
        credential_secrets=frozenset(credential),
    )
    svc.rules_cache = (now, built)
    return built


def forget_rules(svc: Services) -> None:
    """After a vault change in this process: the next check reads the rules again."""
    svc.rules_cache = None


def _quiet_parse(text: str) -> SecretRef | None:
    try:
        return parse_ref(text)
    except PolysyncError:
        return None  # a certificate path on the host, or a row from an older version


def check_writable(svc: Services, ref: SecretRef, *, writer: Writer, slot: Slot, what: str) -> None:
    """Refuse a reference ``writer`` may not put in ``slot`` (decision 0010 §3)."""
    if writer is Writer.HOST and ref.is_host:
        return  # the host owns its environment; no rules to read
    check_ref(ref, writer=writer, slot=slot, rules=rules(svc, fresh=True), what=what)


def secret_refs(job: Job, task: Task, run: TaskRun) -> list[SecretRef]:
    """The references of the Secret parameters a run sends (for masking its output)."""
    refs: list[SecretRef] = []
    try:
        values = parameters.effective_values(job, task.params, run.param_overrides)
    except PolysyncError:
        return refs
    for value in values:
        if value.data_type is DataType.SECRET:
            ref = _quiet_parse(value.raw)
            if ref is not None:
                refs.append(ref)
    return refs


async def run_secrets(svc: Services, run: TaskRun) -> list[str]:
    """The run's secret values this process can read (best effort; for masking only)."""
    try:
        job = svc.catalog.get_job(run.job)
        task = svc.catalog.get_task(run.task)
        platform = svc.catalog.get_platform(run.platform)
    except PolysyncError:
        return []
    refs = secret_refs(job, task, run)
    if platform.auth.secret is not None:
        refs.append(platform.auth.secret)
    values: list[str] = []
    for ref in refs:
        try:
            values.append(await svc.secrets.resolve(ref))
        except PolysyncError as exc:
            log.debug("run %s: cannot read %s to mask its output: %s", run.id, ref, exc)
    return values


async def masker(svc: Services, run: TaskRun) -> Redactor:
    """Masks every secret this process knows plus the run's own (decision 0010 §6)."""
    return REDACTOR.extended(await run_secrets(svc, run))
