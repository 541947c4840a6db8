"""Job use cases: import templates, sync them, edit the parameter schema and overrides."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, replace

from polysync.domain import ids, limits, parameters
from polysync.domain.models import (
    DataType,
    Direction,
    Job,
    JobOverrides,
    Parameter,
    ParamOrigin,
)
from polysync.domain.secrets import FORMS, Slot, Writer, parse_ref, unescape_literal
from polysync.errors import (
    AlreadyExistsError,
    InputError,
    NotFoundError,
    ParameterError,
    PolysyncError,
)
from polysync.jobtypes.base import ImportedTemplate
from polysync.services.context import Services
from polysync.services.platforms import validate_name
from polysync.services.secrets import check_writable


class ImportAction(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"


@dataclass(frozen=True, slots=True)
class ImportOutcome:
    job: Job
    action: ImportAction
    template: ImportedTemplate
    # Human sentences about what the sync changed or kept (empty on a first import).
    changes: tuple[str, ...] = ()


async def import_jobs(
    svc: Services,
    platform_name: str,
    external_ids: Sequence[str] = (),
    *,
    import_all: bool = False,
    name: str | None = None,
) -> list[ImportOutcome]:
    """Create or update one Job per chosen template (seed: Job Type set automatically)."""
    platform = svc.store.get_platform(platform_name)
    if import_all == bool(external_ids):
        raise InputError("give one or more template job ids, or --all (not both).")
    if name is not None and (import_all or len(external_ids) != 1):
        raise InputError("--name applies to a single imported template; drop it or import one id.")
    if len(external_ids) > limits.IMPORT_IDS_MAX_COUNT:
        raise InputError(
            f"{len(external_ids)} template ids given: import at most "
            f"{limits.IMPORT_IDS_MAX_COUNT} at a time, or use --all."
        )
    for external_id in external_ids:
        if not ids.is_valid_batch_id(external_id):
            raise InputError(
                f"template job id {external_id[:80]!r} is not a Batch job id: Batch ids are "
                f"1-{ids.BATCH_ID_MAX_LEN} letters, digits, '-' or '_' (see `polysync platform "
                f"discover {platform.name}`)."
            )
    chosen = list(dict.fromkeys(external_ids))
    if import_all:
        # Never offer Polysync's own per-run jobs as templates.
        own = ids.job_id_prefix(svc.store.installation_id()).lower()
        chosen = [
            d.id async for d in svc.jobtype.discover(platform) if not d.id.lower().startswith(own)
        ]
    if name is not None:
        validate_name("job", name)
        _refuse_rename(svc, platform.name, chosen[0], name)
    # Read every template first, so a bad id leaves nothing half-imported.
    templates = [await svc.jobtype.import_template(platform, ext) for ext in chosen]
    outcomes: list[ImportOutcome] = []
    for template in templates:
        existing = svc.store.find_job(platform.name, template.external_id)
        if existing is not None:
            merged, changes = merge_template(existing, template)
            outcomes.append(
                ImportOutcome(svc.store.upsert_job(merged), ImportAction.UPDATED, template, changes)
            )
            continue
        job_name = validate_name("job", name or template.external_id)
        if _job_exists(svc, job_name):
            raise AlreadyExistsError(
                f"a job named {job_name!r} already exists (from another platform or template): "
                "import this one with --name NEW_NAME."
            )
        job = Job(
            name=job_name,
            platform=platform.name,
            external_id=template.external_id,
            parameters=template.parameters,
            cloned_defaults=template.cloned_defaults,
            warnings=template.warnings,
            description=template.display_name or "",
        )
        outcomes.append(ImportOutcome(svc.store.upsert_job(job), ImportAction.CREATED, template))
    return outcomes


def _refuse_rename(svc: Services, platform: str, external_id: str, name: str) -> None:
    """Importing an imported template under another name would silently keep the old
    name (one Job per template): say so, and how to get what was meant."""
    existing = svc.store.find_job(platform, external_id)
    if existing is not None and existing.name.lower() != name.lower():
        raise AlreadyExistsError(
            f"template {external_id} of platform {platform} is already imported as job "
            f"{existing.name!r}: refresh it with `polysync job sync {existing.name}`, or remove "
            f"it first (`polysync job remove {existing.name}`) to import it as {name!r}."
        )


async def sync_job(svc: Services, job_name: str) -> ImportOutcome:
    """Re-import a Job's template, keeping the user's schema edits and overrides."""
    job = svc.store.get_job(job_name)
    platform = svc.store.get_platform(job.platform)
    template = await svc.jobtype.import_template(platform, job.external_id)
    merged, changes = merge_template(job, template)
    return ImportOutcome(svc.store.upsert_job(merged), ImportAction.UPDATED, template, changes)


def merge_template(job: Job, template: ImportedTemplate) -> tuple[Job, tuple[str, ...]]:
    """Pure sync rule: template parameters refresh untouched ones; user edits always win."""
    by_name = {p.name: p for p in job.parameters}
    merged: list[Parameter] = []
    changes: list[str] = []
    seen: set[str] = set()
    for fresh in template.parameters:
        seen.add(fresh.name)
        old = by_name.get(fresh.name)
        if old is None:
            merged.append(fresh)
            changes.append(f"added parameter {fresh.name} from the template")
        elif old.user_edited or old.origin is ParamOrigin.USER:
            merged.append(old)
            if old.default != fresh.default and old.data_type is not DataType.SECRET:
                changes.append(
                    f"kept your edit of {old.name} (the template now says {fresh.default!r})"
                )
        else:
            if old.default != fresh.default:
                changes.append(
                    f"{fresh.name}: default {old.default!r} -> {fresh.default!r} "
                    "(from the template)"
                )
            merged.append(fresh)
    for old in job.parameters:
        if old.name in seen:
            continue
        if old.user_edited or old.origin is ParamOrigin.USER:
            merged.append(old)
        else:
            changes.append(f"removed parameter {old.name}: the template no longer has it")
    return (
        replace(
            job,
            parameters=tuple(merged),
            cloned_defaults=template.cloned_defaults,
            warnings=template.warnings,
        ),
        tuple(changes),
    )


def _job_exists(svc: Services, name: str) -> bool:
    try:
        svc.store.get_job(name)
    except NotFoundError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class ParamEdit:
    name: str
    data_type: str | None = None
    direction: str | None = None
    default: str | None = None
    clear_default: bool = False
    description: str | None = None


def set_parameter(
    svc: Services, job_name: str, edit: ParamEdit, *, writer: Writer
) -> tuple[Job, list[str]]:
    """Create or change one parameter; returns the job and notices for the user.

    A type change re-checks every value it would change the meaning of — the default,
    each Task's pinned value and each unfinished run's override — and is refused, naming
    them, when one would not hold (decision 0010: a literal must never become a Secret).
    """
    _check_edit(edit)
    job = svc.store.get_job(job_name)
    parameters.validate_name(edit.name)
    old = job.parameter(edit.name)
    data_type = (
        parameters.parse_data_type(edit.data_type)
        if edit.data_type
        else (old.data_type if old else DataType.STRING)
    )
    direction = (
        parameters.parse_direction(edit.direction)
        if edit.direction
        else (old.direction if old else Direction.INPUT)
    )
    default = None if edit.clear_default else (edit.default if edit.default is not None else None)
    if default is None and not edit.clear_default and old is not None:
        default = old.default
    param = Parameter(
        name=edit.name,
        data_type=data_type,
        direction=direction,
        default=default,
        description=edit.description
        if edit.description is not None
        else (old.description if old else ""),
        origin=old.origin if old else ParamOrigin.USER,
        user_edited=True,
    )
    notices: list[str] = []
    changed_type = old is not None and old.data_type is not data_type
    if changed_type and _secret_involved(old, param) and edit.default is None and default:
        kept = _kept_default(param, default, writer, svc)
        if kept is None:
            # Usually cloned from the template: a literal never becomes a Secret (and a
            # reference is not sent as text), so the default goes and the user is told.
            notices.append(
                f"dropped the default of {edit.name}: a {data_type.value} parameter cannot "
                f"keep it (a Secret default can only be a reference: {FORMS})."
            )
            param = replace(param, default=None)
        default = kept
    if default is not None:
        _check_default(svc, param, default, writer)
    if changed_type:
        assert old is not None
        _recheck_values(svc, job, old, param, writer)
    if direction is Direction.OUTPUT:
        notices.append(parameters.output_parameter_notice(param))
    params = [param if p.name == edit.name else p for p in job.parameters]
    if old is None:
        params.append(param)
    return svc.store.upsert_job(replace(job, parameters=tuple(params))), notices


def _check_edit(edit: ParamEdit) -> None:
    """The input limits of a parameter edit, before anything is read or written."""
    limits.PARAM_NAME.check(edit.name)
    for what, text in (("data type", edit.data_type), ("direction", edit.direction)):
        if text is not None:
            limits.CHOICE.check(text, what)
    if edit.default is not None:
        limits.PARAM_VALUE.check(edit.default, f"the default of parameter {edit.name}")
    if edit.description is not None:
        limits.DESCRIPTION.check(edit.description)


def _secret_involved(old: Parameter | None, new: Parameter) -> bool:
    return DataType.SECRET in (new.data_type, old.data_type if old else None)


def _kept_default(param: Parameter, default: str, writer: Writer, svc: Services) -> str | None:
    """The old default if it still means something under the new type, else None.

    A literal default (usually cloned from the template) never becomes a Secret; a
    reference stays one only when the writer could have written it (decision 0010).
    """
    if param.data_type is not DataType.SECRET:
        return None  # a reference is not sent as its text
    try:
        _check_default(svc, param, default, writer)
    except PolysyncError:
        return None
    return default


def _recheck_values(
    svc: Services, job: Job, old: Parameter, new: Parameter, writer: Writer
) -> None:
    """Every pinned value and pending override must hold under ``new``'s type."""
    holders: list[tuple[str, str]] = [
        (f"task {t.name}", t.params[new.name])
        for t in svc.store.list_tasks(job=job.name)
        if new.name in t.params
    ]
    holders += [
        (f"run {r.id} ({r.state.value})", r.param_overrides[new.name])
        for r in svc.store.list_nonterminal_runs()
        if r.job.lower() == job.name.lower() and new.name in r.param_overrides
    ]
    bad: list[str] = []
    reason = ""
    for who, raw in holders:
        try:
            if new.data_type is DataType.SECRET:
                ref = parse_ref(raw)
                if ref is None:
                    raise ParameterError("holds a literal, and a Secret takes only references")
                check_writable(svc, ref, writer=writer, slot=Slot.PARAMETER, what=who)
            elif old.data_type is DataType.SECRET:
                raise ParameterError(
                    f"holds a reference, which a {new.data_type.value} parameter would send as "
                    "its text"
                )
            else:
                parameters.validate_value(new, unescape_literal(raw))
        except PolysyncError as exc:
            bad.append(who)
            reason = reason or str(exc)
    if bad:
        raise ParameterError(
            f"parameter {new.name} of job {job.name} cannot become {new.data_type.value}: "
            f"{', '.join(bad)} {'holds' if len(bad) == 1 else 'hold'} a value that would not "
            f"fit ({reason.rstrip('.')}); change or unset those values first "
            f"(`polysync task set TASK --unset-param {new.name}`), or cancel those runs."
        )


def _check_default(svc: Services, param: Parameter, default: str, writer: Writer) -> None:
    if param.data_type is DataType.SECRET:
        ref = parse_ref(default)
        if ref is None:
            raise ParameterError(
                f"the default of Secret parameter {param.name} must be a reference ({FORMS}), "
                "never the secret itself."
            )
        check_writable(
            svc,
            ref,
            writer=writer,
            slot=Slot.PARAMETER,
            what=f"the default of parameter {param.name}",
        )
        return
    parameters.validate_value(param, unescape_literal(default))


def remove_parameter(svc: Services, job_name: str, name: str) -> Job:
    job = svc.store.get_job(job_name)
    if job.parameter(name) is None:
        known = ", ".join(p.name for p in job.parameters) or "none"
        raise NotFoundError(f"job {job_name!r} has no parameter {name!r} (it has: {known}).")
    users = [t.name for t in svc.store.list_tasks(job=job_name) if name in t.params]
    if users:
        raise InputError(
            f"parameter {name!r} is set by task(s) {', '.join(users)}: remove it from them first "
            "(polysync task set TASK --unset-param NAME) or remove those tasks."
        )
    return svc.store.upsert_job(
        replace(job, parameters=tuple(p for p in job.parameters if p.name != name))
    )


_OVERRIDE_FIELDS = {
    "command-line": "command_line",
    "image": "image",
    "run-options": "container_run_options",
    "max-wall-clock": "max_wall_clock_s",
    "retention": "retention_s",
    "max-task-retries": "max_task_retries",
}


def set_overrides(
    svc: Services,
    job_name: str,
    *,
    changes: dict[str, object],
    unset: Sequence[str] = (),
    description: str | None = None,
    tags: Sequence[str] | None = None,
) -> Job:
    """Apply override changes (field → value) and unsets (CLI names) to a Job."""
    for key, value in changes.items():
        _check_override(key, value)
    if description is not None:
        limits.DESCRIPTION.check(description)
    if tags is not None:
        limits.check_tags(tags)
    job = svc.store.get_job(job_name)
    updates: dict[str, object] = dict(changes)
    for name in unset:
        field_name = _OVERRIDE_FIELDS.get(name)
        if field_name is None:
            raise InputError(
                f"--unset {name!r} is not an override: use one of {', '.join(_OVERRIDE_FIELDS)}."
            )
        updates[field_name] = None
    overrides: JobOverrides = replace(job.overrides, **updates)  # type: ignore[arg-type]  # keys come from _OVERRIDE_FIELDS
    new = replace(job, overrides=overrides)
    if description is not None:
        new = replace(new, description=description)
    if tags is not None:
        new = replace(new, tags=tuple(dict.fromkeys(tags)))
    return svc.store.upsert_job(new)


_OVERRIDE_LIMITS: dict[str, limits.Text | limits.Bound] = {
    "command_line": limits.COMMAND_LINE,
    "image": limits.IMAGE,
    "container_run_options": limits.RUN_OPTIONS,
    "max_wall_clock_s": limits.MAX_WALL_CLOCK_S,
    "retention_s": limits.RETENTION_S,
    "max_task_retries": limits.MAX_TASK_RETRIES,
}


def _check_override(field_name: str, value: object) -> None:
    """One override's input limit (None drops the override, so it needs none)."""
    bound = _OVERRIDE_LIMITS.get(field_name)
    if bound is None:
        raise InputError(
            f"{field_name!r} is not an override: use one of {', '.join(_OVERRIDE_LIMITS)}."
        )
    if value is None:
        return
    if isinstance(bound, limits.Text):
        if not isinstance(value, str):
            raise InputError(f"the {bound.what} override must be text.")
        bound.check(value)
    elif isinstance(value, int | float):
        bound.check(value)
    else:
        raise InputError(f"the {bound.what} override must be {bound.describe()}.")
