"""Platforms, Jobs and Tasks."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from sqlalchemy import (
    delete,
    insert,
    select,
    update,
)

from polysync.domain.models import (
    Job,
    Platform,
    Task,
)
from polysync.errors import (
    AlreadyExistsError,
    InputError,
)
from polysync.store import schema as s
from polysync.store.sql.base import SqlBase
from polysync.store.sql.rows import (
    _NONTERMINAL,
    _check_job_secret_defaults,
    _job,
    _key,
    _names,
    _param_to_json,
    _platform,
    _platform_exists,
    _platform_values,
    _refuse_clear_secrets,
    _require_name,
    _task,
    _task_exists,
    _task_values,
    utc_now,
)


class CatalogQueries(SqlBase):
    """Platforms, Jobs and Tasks."""

    # --- platforms ------------------------------------------------------------------

    def add_platform(self, platform: Platform) -> Platform:
        _require_name("platform", platform.name)
        values = _platform_values(platform)
        now = utc_now()
        with self._write(f"adding platform {platform.name}") as conn:
            self._insert_named(
                conn,
                s.platforms,
                {**values, "created_at": platform.created_at or now, "updated_at": now},
                lambda existing: _platform_exists(platform.name, existing),
            )
            return _platform(self._platform_row(conn, platform.name))

    def get_platform(self, name: str) -> Platform:
        with self._read(f"reading platform {name}") as conn:
            return _platform(self._platform_row(conn, name))

    def list_platforms(self) -> list[Platform]:
        with self._read("listing platforms") as conn:
            rows = conn.execute(select(s.platforms).order_by(s.platforms.c.name_key)).all()
        return [_platform(r) for r in rows]

    def update_platform(self, platform: Platform) -> Platform:
        values = _platform_values(platform)
        with self._write(f"updating platform {platform.name}") as conn:
            row = self._platform_row(conn, platform.name)
            values.pop("name_key")
            values["name"] = row.name  # the key is the name: keep its stored spelling
            conn.execute(
                update(s.platforms)
                .where(s.platforms.c.id == row.id)
                .values(**values, updated_at=utc_now())
            )
            return _platform(self._platform_row(conn, platform.name))

    def remove_platform(self, name: str, *, force: bool = False) -> None:
        with self._write(f"removing platform {name}") as conn:
            row = self._platform_row(conn, name)
            users = (
                conn.execute(
                    select(s.jobs.c.name)
                    .where(s.jobs.c.platform_id == row.id)
                    .order_by(s.jobs.c.id)
                )
                .scalars()
                .all()
            )
            if users and not force:
                raise InputError(
                    f"platform {row.name} is used by job(s) {_names(users)}; remove them first "
                    "(`polysync job remove NAME`), or force the removal, which deletes them "
                    "with their tasks and runs."
                )
            # ON DELETE CASCADE removes the jobs, tasks, runs, attempts and history.
            conn.execute(delete(s.platforms).where(s.platforms.c.id == row.id))

    # --- jobs -----------------------------------------------------------------------

    def upsert_job(self, job: Job) -> Job:
        _require_name("job", job.name)
        _check_job_secret_defaults(job)
        now = utc_now()
        values: dict[str, Any] = {
            "name": job.name.strip(),
            "name_key": _key(job.name),
            "external_id": job.external_id,
            "external_key": job.external_id.lower(),
            "job_type": job.job_type,
            "parameters": [_param_to_json(p) for p in job.parameters],
            "overrides": asdict(job.overrides),
            "description": job.description,
            "tags": list(job.tags),
            "cloned_defaults": [asdict(c) for c in job.cloned_defaults],
            "warnings": list(job.warnings),
            "updated_at": now,
        }
        with self._write(f"saving job {job.name}") as conn:
            platform = self._platform_row(conn, job.platform)
            values["platform_id"] = platform.id
            other = conn.execute(
                select(s.jobs.c.name).where(
                    s.jobs.c.platform_id == platform.id,
                    s.jobs.c.external_key == values["external_key"],
                    s.jobs.c.name_key != values["name_key"],
                )
            ).scalar_one_or_none()
            if other is not None:
                raise AlreadyExistsError(
                    f"template {job.external_id} on platform {platform.name} is already "
                    f"imported as job {other}; use `polysync job sync {other}` to refresh it."
                )
            current = conn.execute(
                select(s.jobs.c.id, s.jobs.c.name).where(s.jobs.c.name_key == values["name_key"])
            ).first()
            if current is None:
                conn.execute(insert(s.jobs).values(**values, created_at=job.created_at or now))
            else:
                values["name"] = current.name
                conn.execute(update(s.jobs).where(s.jobs.c.id == current.id).values(**values))
            row = self._job_row(conn, job.name)
            return _job(row, row.platform_name)

    def get_job(self, name: str) -> Job:
        with self._read(f"reading job {name}") as conn:
            row = self._job_row(conn, name)
        return _job(row, row.platform_name)

    def find_job(self, platform: str, external_id: str) -> Job | None:
        with self._read(f"looking up template {external_id}") as conn:
            row = conn.execute(
                self._job_select().where(
                    s.platforms.c.name_key == _key(platform),
                    s.jobs.c.external_key == external_id.lower(),
                )
            ).first()
        return None if row is None else _job(row, row.platform_name)

    def list_jobs(self, platform: str | None = None) -> list[Job]:
        with self._read("listing jobs") as conn:
            query = self._job_select().order_by(s.jobs.c.name_key)
            if platform is not None:
                query = query.where(s.jobs.c.platform_id == self._platform_row(conn, platform).id)
            rows = conn.execute(query).all()
        return [_job(r, r.platform_name) for r in rows]

    def remove_job(self, name: str, *, force: bool = False) -> None:
        with self._write(f"removing job {name}") as conn:
            row = self._job_row(conn, name)
            users = (
                conn.execute(
                    select(s.tasks.c.name).where(s.tasks.c.job_id == row.id).order_by(s.tasks.c.id)
                )
                .scalars()
                .all()
            )
            if users and not force:
                raise InputError(
                    f"job {row.name} is used by task(s) {_names(users)}; remove them first "
                    "(`polysync task remove NAME`), or force the removal, which deletes them "
                    "with their runs."
                )
            conn.execute(delete(s.jobs).where(s.jobs.c.id == row.id))

    # --- tasks ----------------------------------------------------------------------

    def add_task(self, task: Task) -> Task:
        _require_name("task", task.name)
        values = _task_values(task)
        now = utc_now()
        with self._write(f"adding task {task.name}") as conn:
            job_row = self._job_row(conn, task.job)
            _refuse_clear_secrets(
                _job(job_row, job_row.platform_name), task.params, f"task {task.name}"
            )
            self._insert_named(
                conn,
                s.tasks,
                {
                    **values,
                    "job_id": job_row.id,
                    "created_at": task.created_at or now,
                    "updated_at": now,
                },
                lambda existing: _task_exists(task.name, existing),
            )
            row = self._task_row(conn, task.name)
            return _task(row, row.job_name)

    def update_task(self, task: Task) -> Task:
        values = _task_values(task)
        with self._write(f"updating task {task.name}") as conn:
            current = self._task_row(conn, task.name)
            job_row = self._job_row(conn, task.job)
            _refuse_clear_secrets(
                _job(job_row, job_row.platform_name), task.params, f"task {task.name}"
            )
            values.pop("name_key")
            values["name"] = current.name
            conn.execute(
                update(s.tasks)
                .where(s.tasks.c.id == current.id)
                .values(**values, job_id=job_row.id, updated_at=utc_now())
            )
            row = self._task_row(conn, task.name)
            return _task(row, row.job_name)

    def get_task(self, name: str) -> Task:
        with self._read(f"reading task {name}") as conn:
            row = self._task_row(conn, name)
        return _task(row, row.job_name)

    def list_tasks(self, job: str | None = None) -> list[Task]:
        with self._read("listing tasks") as conn:
            query = self._task_select().order_by(s.tasks.c.name_key)
            if job is not None:
                query = query.where(s.tasks.c.job_id == self._job_row(conn, job).id)
            rows = conn.execute(query).all()
        return [_task(r, r.job_name) for r in rows]

    def remove_task(self, name: str, *, force: bool = False) -> None:
        with self._write(f"removing task {name}") as conn:
            row = self._task_row(conn, name)
            active = (
                conn.execute(
                    select(s.task_runs.c.id)
                    .where(s.task_runs.c.task_id == row.id, s.task_runs.c.state.in_(_NONTERMINAL))
                    .order_by(s.task_runs.c.id)
                )
                .scalars()
                .all()
            )
            if active and not force:
                raise InputError(
                    f"task {row.name} has run(s) still in progress: {_names(map(str, active))}; "
                    "cancel them first (`polysync run cancel ID`) or wait for them to end, or "
                    "force the removal."
                )
            # Its finished runs (and their history) go with it (ON DELETE CASCADE).
            conn.execute(delete(s.tasks).where(s.tasks.c.id == row.id))
