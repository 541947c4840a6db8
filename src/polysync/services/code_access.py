"""Who may change which code a run executes (decision 0011): one check for API and console.

Each function takes the caller's role and raises :class:`PermissionDeniedError` (403)
when the change is code-bearing (``polysync.domain.code_bearing``) and the role is below
``[server] code_overrides_role`` (config.toml; ``admin`` by default, ``operator``
allowed). The API routes and the console's form handlers call them before the use case,
so the two cannot diverge; the CLI does not, because whoever runs it owns the host.

Only changes count: a form that posts a field back unchanged asks for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from polysync.config import Settings
from polysync.domain.code_bearing import changed_code_overrides, is_code_bearing_name
from polysync.domain.roles import Role
from polysync.errors import ConfigError, PermissionDeniedError
from polysync.services.context import Services

__all__ = [
    "check_job_overrides",
    "check_run_params",
    "check_schema_edit",
    "check_task_params",
    "code_role",
    "may_change_code",
]

SETTING = "code_overrides_role"
_CHOICES = (Role.ADMIN, Role.OPERATOR)


def code_role(settings: Settings) -> Role:
    """The role code-bearing changes need: ``[server] code_overrides_role``, else admin."""
    raw = settings.section("server").get(SETTING, Role.ADMIN.value)
    value = raw.strip().lower() if isinstance(raw, str) else raw
    for role in _CHOICES:
        if value == role.value:
            return role
    raise ConfigError(
        f"config file {settings.config_path}: [server] {SETTING} = {raw!r} is not valid; "
        'use "admin" (the default) or "operator".'
    )


def may_change_code(settings: Settings, role: Role) -> bool:
    """Whether ``role`` may make code-bearing changes (the console greys fields out)."""
    return role.allows(code_role(settings))


def _require(settings: Settings, role: Role, change: str) -> None:
    needed = code_role(settings)
    if not role.allows(needed):
        raise PermissionDeniedError(
            f"{change} decides what code runs on the pool (with the emulator: on the "
            f"server's host), so it needs the {needed.value} role and this token is "
            f"{role.value}: ask an admin to make the change."
        )


def check_job_overrides(
    svc: Services, role: Role, job_name: str, updates: Mapping[str, object]
) -> None:
    """``updates``: override field → new value (None drops the override)."""
    job = svc.store.get_job(job_name)
    changed = changed_code_overrides(job.overrides, updates)
    if changed:
        _require(svc.settings, role, f"changing {', '.join(changed)} of job {job.name!r}")


def check_schema_edit(svc: Services, role: Role, job_name: str, param: str) -> None:
    """Adding, changing or removing a parameter whose name programs load code from."""
    if is_code_bearing_name(param):
        _require(svc.settings, role, f"editing parameter {param} of job {job_name!r}")


def _check_names(svc: Services, role: Role, names: Iterable[str], where: str) -> None:
    code = sorted({n for n in names if is_code_bearing_name(n)})
    if code:
        _require(svc.settings, role, f"setting {', '.join(code)} {where}")


def check_task_params(
    svc: Services,
    role: Role,
    task_name: str,
    set_params: Mapping[str, str],
    unset_params: Iterable[str] = (),
    *,
    new: bool = False,
) -> None:
    """A task's pinned values: on create (``new``) every name, on update the changes."""
    current: Mapping[str, str] = {} if new else svc.store.get_task(task_name).params
    changed = [n for n, v in set_params.items() if current.get(n) != v]
    changed += [n for n in unset_params if n in current]
    _check_names(svc, role, changed, f"on task {task_name!r}")


def check_run_params(svc: Services, role: Role, task_name: str, params: Mapping[str, str]) -> None:
    """A run's parameter overrides: every name given."""
    _check_names(svc, role, params, f"for a run of task {task_name!r}")
