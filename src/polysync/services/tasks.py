"""Task use cases: pin parameter values and run settings on a Job."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from polysync.domain import limits, parameters, retry
from polysync.domain.models import DataType, Job, RetryPolicy, Task
from polysync.domain.secrets import Slot, Writer, looks_like_ref, require_ref, unescape_literal
from polysync.errors import InputError, ParameterError
from polysync.services.context import Services
from polysync.services.platforms import validate_name
from polysync.services.secrets import check_writable


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """`K=V` flags into a dict; the value may itself contain '='."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"--param {pair!r} is not NAME=VALUE: write it like --param COUNT=3.")
        if name in out:
            raise InputError(f"--param {name} is given twice: keep one.")
        out[name] = value
    return out


def check_values(svc: Services, job: Job, values: Mapping[str, str], *, writer: Writer) -> None:
    """Validate names and values against the Job's schema (D11, at save time).

    A Secret parameter takes only a reference ``writer`` may write (decision 0010); its
    value is read at run time. Any other value is a literal, checked against its type.
    """
    known = {p.name: p for p in job.parameters}
    unknown = [n for n in values if n not in known]
    if unknown:
        names = ", ".join(sorted(known)) or "none yet"
        raise ParameterError(
            f"job {job.name!r} has no parameter {', '.join(unknown)} (it has: {names}); add it "
            f"with `polysync job param set {job.name} NAME` or fix the name."
        )
    for name, raw in values.items():
        param = known[name]
        if param.data_type is DataType.SECRET:
            ref = require_ref(raw, f"parameter {name}")
            check_writable(svc, ref, writer=writer, slot=Slot.PARAMETER, what=f"parameter {name}")
            continue
        parameters.validate_value(param, unescape_literal(raw))


def literal_notices(job: Job, values: Mapping[str, str]) -> list[str]:
    """Hints for literals that look like references: only Secret parameters read those."""
    notes: list[str] = []
    for name, raw in values.items():
        param = job.parameter(name)
        if param is not None and param.data_type is not DataType.SECRET and looks_like_ref(raw):
            notes.append(
                f"parameter {name} is a {param.data_type.value}, so {raw.split(':', 1)[0]}:... "
                f"is sent as that text; to read a secret, make it a Secret parameter "
                f"(`polysync job param set {job.name} {name} --type Secret`)."
            )
    return notes


def create_task(
    svc: Services,
    name: str,
    job_name: str,
    params: Mapping[str, str],
    *,
    execution_timeout_s: int | None = None,
    retry_policy: RetryPolicy | None = None,
    priority: int = 0,
    description: str = "",
    writer: Writer,
) -> Task:
    validate_name("task", name)
    _check_settings(params, execution_timeout_s, priority, description)
    job = svc.store.get_job(job_name)
    check_values(svc, job, params, writer=writer)
    policy = retry_policy or RetryPolicy()
    retry.validate_policy(policy)
    task = Task(
        name=name,
        job=job.name,
        params=dict(params),
        execution_timeout_s=execution_timeout_s,
        retry_policy=policy,
        priority=priority,
        description=description,
    )
    return svc.store.add_task(task)


def update_task(
    svc: Services,
    name: str,
    *,
    set_params: Mapping[str, str] | None = None,
    unset_params: Sequence[str] = (),
    execution_timeout_s: int | None = None,
    clear_timeout: bool = False,
    retry_policy: RetryPolicy | None = None,
    priority: int | None = None,
    description: str | None = None,
    writer: Writer,
) -> Task:
    _check_settings(set_params or {}, execution_timeout_s, priority, description)
    if len(unset_params) > limits.PARAMS_MAX_COUNT:
        raise InputError(
            f"{len(unset_params)} parameters to unset: keep it to {limits.PARAMS_MAX_COUNT} "
            "or fewer per request."
        )
    task = svc.store.get_task(name)
    job = svc.store.get_job(task.job)
    params = dict(task.params)
    for key in unset_params:
        if key not in params:
            raise InputError(f"task {name!r} does not set parameter {key!r}; nothing to unset.")
        del params[key]
    if set_params:
        check_values(svc, job, set_params, writer=writer)
        params.update(set_params)
    new = replace(task, params=params)
    if clear_timeout:
        new = replace(new, execution_timeout_s=None)
    elif execution_timeout_s is not None:
        new = replace(new, execution_timeout_s=execution_timeout_s)
    if retry_policy is not None:
        retry.validate_policy(retry_policy)
        new = replace(new, retry_policy=retry_policy)
    if priority is not None:
        new = replace(new, priority=priority)
    if description is not None:
        new = replace(new, description=description)
    return svc.store.update_task(new)


def _check_settings(
    params: Mapping[str, str],
    execution_timeout_s: int | None,
    priority: int | None,
    description: str | None,
) -> None:
    """The input limits of a Task's fields, checked before anything is read or written."""
    limits.check_params(params)
    if execution_timeout_s is not None:
        limits.EXECUTION_TIMEOUT_S.check(execution_timeout_s)
    if priority is not None:
        limits.PRIORITY.check(priority)
    if description is not None:
        limits.DESCRIPTION.check(description)
