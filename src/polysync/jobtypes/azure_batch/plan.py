"""Template + overrides + resolved parameters → the Batch job and task bodies. Pure.

Everything here works on wire-shaped JSON (REST property names, NOTES.md §4), so it is
testable with the spec's own examples and needs neither the SDK nor the network.

D2 — where the per-run task comes from, by precedence:
  1. the Polysync Job's overrides (command line, image, run options, task constraints);
  2. the template job's ``jobManagerTask``, if it has one;
  3. otherwise the template's first task (``GET /jobs/{id}/tasks?maxresults=1``);
  4. otherwise a TemplateError naming the template and what is missing.
The new Batch job copies the template's ``poolInfo``, ``constraints``, ``priority``,
``commonEnvironmentSettings`` and ``metadata`` (plus our fingerprint); never its job
manager, preparation/release tasks or ``onTaskFailure``.

D3 — the job is created with ``onAllTasksComplete: noaction`` and switched to
``terminatejob`` by a PATCH once its task exists: a job with zero tasks and
``terminatejob`` completes at once (NOTES.md §10.9).

D11 — Input and Input&Output values travel as ``environmentSettings`` strings; Output
parameters are never sent, not even as a copy of the template's value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from polysync.domain.durations import to_iso8601
from polysync.domain.models import (
    ClonedDefault,
    DataType,
    Direction,
    Job,
    JobOverrides,
    Parameter,
    ParamOrigin,
)
from polysync.errors import TemplateError
from polysync.jobtypes.base import ResolvedParam

JSON = dict[str, Any]

# D3: the body PATCHed onto the job once its single task exists.
TERMINATE_WHEN_DONE: Mapping[str, str] = {"onAllTasksComplete": "terminatejob"}

# What import and submit read of the template job and its first task (NOTES.md §8).
TEMPLATE_JOB_SELECT: tuple[str, ...] = (
    "id",
    "displayName",
    "state",
    "poolInfo",
    "constraints",
    "priority",
    "jobManagerTask",
    "commonEnvironmentSettings",
    "metadata",
)

# Task fields the per-run task inherits from its source (jobManagerTask or first task):
# what it takes to run the same work. Ids, display names, dependencies, exit conditions
# (they drive job actions we do not copy) and multi-instance settings stay behind.
COPIED_TASK_FIELDS: tuple[str, ...] = (
    "commandLine",
    "containerSettings",
    "resourceFiles",
    "outputFiles",
    "environmentSettings",
    "constraints",
    "userIdentity",
    "requiredSlots",
    "applicationPackageReferences",
)

# .NET TimeSpan.MaxValue, Batch's spelling of "no limit" (NOTES.md §5): anything this
# long (10,675,199 days) is unlimited.
_UNLIMITED_DAYS = 10_675_199
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DISPLAY_NAME_MAX = 1024


# --------------------------------------------------------------------------- durations


def parse_duration_s(text: object) -> float | None:
    """ISO 8601 duration → seconds; None for absent, unparseable or Batch's "unlimited"."""
    if not isinstance(text, str):
        return None
    match = _DURATION.match(text.strip())
    if match is None or text.strip() in ("P", "PT"):
        return None
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    days = parts["w"] * 7 + parts["d"]
    if days >= _UNLIMITED_DAYS:
        return None
    return days * 86400 + parts["h"] * 3600 + parts["m"] * 60 + parts["s"]


def format_duration(seconds: float) -> str:
    """Seconds → ISO 8601 as Batch writes it (``PT1H30M``, ``P2DT3H``, ``PT0S``)."""
    return to_iso8601(max(0, round(seconds)))


def is_bounded(duration: object) -> bool:
    return parse_duration_s(duration) is not None


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True, slots=True)
class TaskSource:
    """Where the per-run task's defaults come from (D2 precedence 2 and 3)."""

    kind: str  # "jobManagerTask" | "task"
    label: str  # shown to users, e.g. "jobManagerTask 'jm'" or "first task 'prep'"
    body: Mapping[str, Any]

    @property
    def origin(self) -> ParamOrigin:
        if self.kind == "jobManagerTask":
            return ParamOrigin.TEMPLATE_JOB_MANAGER
        return ParamOrigin.TEMPLATE_TASK_ENV


def choose_source(
    template_job: Mapping[str, Any], first_task: Mapping[str, Any] | None
) -> TaskSource | None:
    """D2: the jobManagerTask if the template has one, else its first task, else None."""
    manager = template_job.get("jobManagerTask")
    if isinstance(manager, Mapping) and manager:
        return TaskSource("jobManagerTask", f"jobManagerTask {manager.get('id', '')!r}", manager)
    if first_task:
        return TaskSource("task", f"first task {first_task.get('id', '')!r}", first_task)
    return None


def needs_first_task(template_job: Mapping[str, Any]) -> bool:
    """Whether the template's first task must be read (no jobManagerTask to clone)."""
    manager = template_job.get("jobManagerTask")
    return not (isinstance(manager, Mapping) and manager)


def missing_command_line(template_id: str, source: TaskSource | None, *, job: str | None) -> str:
    """The TemplateError sentence for a template that yields no command line."""
    if source is None:
        what = "it has no jobManagerTask and no task"
    else:
        what = f"its {source.label} has an empty commandLine"
    fix = "add a task (or a jobManagerTask) with a commandLine to the template Batch job"
    if job is not None:
        fix += f", or set one with `polysync job set {job} --command-line ...`"
    return f"template Batch job {template_id!r} has no command line to run: {what}; {fix}."


def pool_of(template_job: Mapping[str, Any]) -> str | None:
    """The template's ``poolInfo.poolId`` (None for an auto pool or no poolInfo)."""
    info = template_job.get("poolInfo")
    if isinstance(info, Mapping):
        pool_id = info.get("poolId")
        if isinstance(pool_id, str) and pool_id:
            return pool_id
    return None


# --------------------------------------------------------------------------- import (D2)


def valid_env_name(name: str) -> bool:
    """D11: a portable environment-variable name that Batch does not reserve."""
    return bool(_ENV_NAME.match(name)) and not name.upper().startswith("AZ_BATCH_")


def _settings(value: object) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    if isinstance(value, Sequence) and not isinstance(value, str):
        for item in value:
            if isinstance(item, Mapping) and isinstance(item.get("name"), str):
                raw = item.get("value")
                out.append((item["name"], None if raw is None else str(raw)))
    return out


def seed_parameters(
    template_id: str, template_job: Mapping[str, Any], source: TaskSource | None
) -> tuple[tuple[Parameter, ...], tuple[str, ...]]:
    """D2: one Input/String parameter per template environment variable, default = value.

    The source task's settings override the job's ``commonEnvironmentSettings`` of the same
    name, as Batch itself does (NOTES.md §10.3). Returns (parameters, warnings).
    """
    seeded: dict[str, Parameter] = {}
    skipped: list[str] = []
    layers: list[tuple[ParamOrigin, object]] = [
        (ParamOrigin.TEMPLATE_JOB_ENV, template_job.get("commonEnvironmentSettings"))
    ]
    if source is not None:
        layers.append((source.origin, source.body.get("environmentSettings")))
    for origin, settings in layers:
        for name, value in _settings(settings):
            if not valid_env_name(name):
                skipped.append(name)
                continue
            seeded.pop(name, None)  # re-insert so the order follows the winning layer
            seeded[name] = Parameter(
                name=name,
                data_type=DataType.STRING,
                direction=Direction.INPUT,
                default=value,
                origin=origin,
            )
    warnings: tuple[str, ...] = ()
    if skipped:
        names = ", ".join(sorted(set(skipped)))
        warnings = (
            f"template Batch job {template_id!r}: environment variable(s) {names} were not "
            "made parameters (names must be letters, digits and '_' and must not start with "
            "AZ_BATCH_); they are still sent as the template has them.",
        )
    return tuple(seeded.values()), warnings


def template_warnings(template_id: str, template_job: Mapping[str, Any]) -> tuple[str, ...]:
    """Troubleshooting from the seed made into a warning: no maxWallClockTime on the job."""
    constraints = template_job.get("constraints")
    limit = constraints.get("maxWallClockTime") if isinstance(constraints, Mapping) else None
    if is_bounded(limit):
        return ()
    return (
        f"template Batch job {template_id!r} has no constraints.maxWallClockTime (unlimited): "
        "set one on the template to bound run time and avoid stuck polls when the pool has "
        "no compute nodes.",
    )


def cloned_defaults(
    template_job: Mapping[str, Any],
    source: TaskSource | None,
    overrides: JobOverrides | None = None,
) -> tuple[ClonedDefault, ...]:
    """What the per-run job and task would take, each with where it comes from."""
    ov = overrides or JobOverrides()
    rows: list[ClonedDefault] = []
    info = template_job.get("poolInfo")
    if isinstance(info, Mapping):
        if info.get("poolId"):
            rows.append(ClonedDefault("poolInfo.poolId", str(info["poolId"]), "template job"))
        auto = info.get("autoPoolSpecification")
        if isinstance(auto, Mapping):
            prefix = str(auto.get("autoPoolIdPrefix") or "")
            rows.append(
                ClonedDefault(
                    "poolInfo.autoPoolSpecification",
                    f"auto pool{f' {prefix!r}' if prefix else ''}",
                    "template job",
                )
            )
    constraints = template_job.get("constraints")
    if isinstance(constraints, Mapping):
        limit = constraints.get("maxWallClockTime")
        if is_bounded(limit):
            rows.append(
                ClonedDefault("job.constraints.maxWallClockTime", str(limit), "template job")
            )
        if constraints.get("maxTaskRetryCount") not in (None, 0):
            rows.append(
                ClonedDefault(
                    "job.constraints.maxTaskRetryCount",
                    str(constraints["maxTaskRetryCount"]),
                    "template job",
                )
            )
    if template_job.get("priority") not in (None, 0):
        rows.append(ClonedDefault("job.priority", str(template_job["priority"]), "template job"))

    body = source.body if source is not None else {}
    label = source.label if source is not None else ""

    def pick(field: str, override: object, template: object) -> None:
        if override is not None:
            rows.append(ClonedDefault(field, str(override), "override"))
        elif template not in (None, ""):
            rows.append(ClonedDefault(field, str(template), label))

    pick("commandLine", ov.command_line, body.get("commandLine"))
    container = body.get("containerSettings")
    container = container if isinstance(container, Mapping) else {}
    pick("containerSettings.imageName", ov.image, container.get("imageName"))
    pick(
        "containerSettings.containerRunOptions",
        ov.container_run_options,
        container.get("containerRunOptions"),
    )
    task_constraints = body.get("constraints")
    task_constraints = task_constraints if isinstance(task_constraints, Mapping) else {}
    wall = task_constraints.get("maxWallClockTime")
    pick(
        "constraints.maxWallClockTime",
        format_duration(ov.max_wall_clock_s) if ov.max_wall_clock_s is not None else None,
        wall if is_bounded(wall) else None,
    )
    keep = task_constraints.get("retentionTime")
    pick(
        "constraints.retentionTime",
        format_duration(ov.retention_s) if ov.retention_s is not None else None,
        keep if is_bounded(keep) else None,
    )
    retries = task_constraints.get("maxTaskRetryCount")
    pick("constraints.maxTaskRetryCount", ov.max_task_retries, retries if retries else None)
    return tuple(rows)


# --------------------------------------------------------------------------- submit (D2/D3/D11)


@dataclass(frozen=True, slots=True)
class RunPlan:
    """The bodies of ``POST /jobs``, ``POST /jobs/{id}/tasks`` and the D3 PATCH."""

    job_body: JSON
    task_body: JSON
    patch_body: JSON
    pool_id: str | None  # for the D4 pre-flight; None for an auto pool
    warnings: tuple[str, ...] = ()


def _env_list(pairs: Iterable[tuple[str, str | None]]) -> list[JSON]:
    out: list[JSON] = []
    for name, value in pairs:
        out.append({"name": name} if value is None else {"name": name, "value": value})
    return out


def _without(
    pairs: Iterable[tuple[str, str | None]], names: frozenset[str]
) -> list[tuple[str, str | None]]:
    return [(n, v) for n, v in pairs if n not in names]


def _task_constraints(
    source: Mapping[str, Any], overrides: JobOverrides, execution_timeout_s: int | None
) -> JSON:
    base = source.get("constraints")
    base = base if isinstance(base, Mapping) else {}
    out: JSON = {}
    wall: float | None
    if overrides.max_wall_clock_s is not None:
        wall = float(overrides.max_wall_clock_s)
    else:
        wall = parse_duration_s(base.get("maxWallClockTime"))
        # The Task's execution timeout bounds the run when it is tighter (SubmitRequest).
        if execution_timeout_s is not None and (wall is None or execution_timeout_s < wall):
            wall = float(execution_timeout_s)
    if wall is not None:
        out["maxWallClockTime"] = format_duration(wall)
    keep = (
        float(overrides.retention_s)
        if overrides.retention_s is not None
        else parse_duration_s(base.get("retentionTime"))
    )
    if keep is not None:
        out["retentionTime"] = format_duration(keep)
    retries = overrides.max_task_retries
    if retries is None and isinstance(base.get("maxTaskRetryCount"), int):
        retries = base["maxTaskRetryCount"]
    if retries is not None:
        out["maxTaskRetryCount"] = retries
    return out


def _job_constraints(template_job: Mapping[str, Any]) -> JSON:
    base = template_job.get("constraints")
    out: JSON = {}
    if isinstance(base, Mapping):
        limit = base.get("maxWallClockTime")
        if is_bounded(limit):
            out["maxWallClockTime"] = limit
        if isinstance(base.get("maxTaskRetryCount"), int):
            out["maxTaskRetryCount"] = base["maxTaskRetryCount"]
    return out


def _metadata(template_job: Mapping[str, Any], fingerprint: Mapping[str, str]) -> list[JSON]:
    pairs = [(n, v or "") for n, v in _settings(template_job.get("metadata"))]
    kept = [(n, v) for n, v in pairs if n not in fingerprint]
    return [{"name": n, "value": v} for n, v in [*kept, *fingerprint.items()]]


def build_plan(
    *,
    template_id: str,
    template_job: Mapping[str, Any],
    source: TaskSource | None,
    job: Job,
    params: Sequence[ResolvedParam],
    batch_job_id: str,
    batch_task_id: str,
    display_name: str,
    fingerprint: Mapping[str, str],
    execution_timeout_s: int | None = None,
) -> RunPlan:
    """D2 + D3 + D11: the exact bodies for one run. Raises TemplateError (D2 step 4)."""
    overrides = job.overrides
    body: Mapping[str, Any] = source.body if source is not None else {}
    command_line = overrides.command_line or body.get("commandLine")
    if not command_line:
        raise TemplateError(missing_command_line(template_id, source, job=job.name))
    pool_info = template_job.get("poolInfo")
    if not isinstance(pool_info, Mapping) or not pool_info:
        raise TemplateError(
            f"template Batch job {template_id!r} has no poolInfo: give the template job a pool "
            "(poolInfo.poolId) in Azure Batch, then run again."
        )
    warnings: list[str] = []
    # D11: Output parameters are never sent; parameters are governed by the schema.
    outputs = frozenset(p.name for p in job.parameters if p.direction is Direction.OUTPUT)

    job_body: JSON = {
        "id": batch_job_id,
        "displayName": display_name[:_DISPLAY_NAME_MAX],
        "poolInfo": dict(pool_info),
    }
    constraints = _job_constraints(template_job)
    if constraints:
        job_body["constraints"] = constraints
    if isinstance(template_job.get("priority"), int):
        job_body["priority"] = template_job["priority"]
    common = _without(_settings(template_job.get("commonEnvironmentSettings")), outputs)
    if common:
        job_body["commonEnvironmentSettings"] = _env_list(common)
    job_body["onAllTasksComplete"] = "noaction"  # D3: PATCHed to terminatejob afterwards
    job_body["metadata"] = _metadata(template_job, fingerprint)

    task_body: JSON = {"id": batch_task_id, "commandLine": command_line}
    sent = {p.name for p in params}
    env = [
        (n, v)
        for n, v in _without(_settings(body.get("environmentSettings")), outputs)
        if n not in sent
    ]
    env.extend((p.name, p.value) for p in params if p.name not in outputs)
    if env:
        task_body["environmentSettings"] = _env_list(env)

    container = body.get("containerSettings")
    container = dict(container) if isinstance(container, Mapping) else {}
    image = overrides.image or container.get("imageName")
    if image:
        container["imageName"] = image
        if overrides.container_run_options is not None:
            container["containerRunOptions"] = overrides.container_run_options
        if not container.get("containerRunOptions"):
            container.pop("containerRunOptions", None)
        task_body["containerSettings"] = container
    elif overrides.container_run_options:
        warnings.append(
            "the container run options override is ignored: neither the Job's overrides nor "
            f"the template ({template_id!r}) name a container image."
        )

    task_constraints = _task_constraints(body, overrides, execution_timeout_s)
    if task_constraints:
        task_body["constraints"] = task_constraints
    for name in COPIED_TASK_FIELDS:
        if name in ("commandLine", "containerSettings", "environmentSettings", "constraints"):
            continue
        value = body.get(name)
        if value not in (None, [], {}):
            task_body[name] = value
    return RunPlan(
        job_body=job_body,
        task_body=task_body,
        patch_body=dict(TERMINATE_WHEN_DONE),
        pool_id=pool_of(template_job),
        warnings=tuple(warnings),
    )
