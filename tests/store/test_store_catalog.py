"""Platforms, jobs and tasks: CRUD and every error path, on a real database."""

from __future__ import annotations

from dataclasses import replace

import pytest

from polysync.domain.models import (
    AuthMode,
    BackoffStrategy,
    ClonedDefault,
    Direction,
    JobOverrides,
    Parameter,
    ParamOrigin,
    PlatformAuth,
    RetryPolicy,
    RunState,
    SecretRef,
)
from polysync.errors import AlreadyExistsError, InputError, NotFoundError
from polysync.store.sql import SqlStore
from tests.store.conftest import make_job, make_platform, make_task, new_run, seed

# --- platforms ------------------------------------------------------------------------


def test_platform_round_trip_keeps_every_field(store: SqlStore) -> None:
    p = make_platform(
        "Prod",
        auth=PlatformAuth(
            AuthMode.CERTIFICATE,
            secret=SecretRef("file", "/secrets/cert-pass"),
            tenant_id="tenant",
            client_id="client",
            certificate_path="/certs/sp.pem",
        ),
        verify_tls=False,
        ca_bundle="/certs/ca.pem",
    )
    added = store.add_platform(p)
    got = store.get_platform("prod")
    assert got == added
    assert replace(got, created_at=None) == p
    assert got.created_at is not None
    assert got.created_at.utcoffset() is not None


def test_platform_without_secret_reference(store: SqlStore) -> None:
    store.add_platform(make_platform(auth=PlatformAuth(AuthMode.MANAGED_IDENTITY)))
    assert store.get_platform("local").auth == PlatformAuth(AuthMode.MANAGED_IDENTITY)


@pytest.mark.parametrize("second", ["local", "LOCAL", " Local "])
def test_platform_names_are_unique_ignoring_case(store: SqlStore, second: str) -> None:
    store.add_platform(make_platform("local"))
    with pytest.raises(AlreadyExistsError, match="'local' already exists"):
        store.add_platform(make_platform(second))


def test_platform_empty_name_refused(store: SqlStore) -> None:
    with pytest.raises(InputError, match="must not be empty"):
        store.add_platform(make_platform("  "))


def test_unknown_platform_says_how_to_list(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match=r"'nope' does not exist.*polysync platform list"):
        store.get_platform("nope")


def test_list_and_update_platforms(store: SqlStore) -> None:
    store.add_platform(make_platform("b"))
    a = store.add_platform(make_platform("a"))
    assert [p.name for p in store.list_platforms()] == ["a", "b"]
    updated = store.update_platform(replace(a, name="A", account_url="https://new"))
    assert updated.name == "a"  # the stored spelling of the key stays
    assert updated.account_url == "https://new"
    assert updated.created_at == a.created_at
    with pytest.raises(NotFoundError):
        store.update_platform(make_platform("ghost"))


def test_remove_platform_refused_while_jobs_use_it(store: SqlStore) -> None:
    seed(store)
    store.upsert_job(make_job("job2", external_id="tmpl-2"))
    with pytest.raises(InputError, match=r"used by job\(s\) job1, job2; remove them first"):
        store.remove_platform("local")
    assert store.get_platform("local").name == "local"


def test_remove_platform_force_cascades(store: SqlStore) -> None:
    objs = seed(store)
    run = new_run(store, objs)
    store.remove_platform("LOCAL", force=True)
    assert store.list_platforms() == []
    assert store.list_jobs() == []
    assert store.list_tasks() == []
    with pytest.raises(NotFoundError):
        store.get_run(run.id)


def test_remove_unused_platform(store: SqlStore) -> None:
    store.add_platform(make_platform())
    store.remove_platform("local")
    with pytest.raises(NotFoundError):
        store.remove_platform("local")


# --- jobs -----------------------------------------------------------------------------


def test_job_round_trip_keeps_every_field(store: SqlStore) -> None:
    store.add_platform(make_platform())
    job = replace(
        make_job(),
        parameters=(
            Parameter("A", direction=Direction.INPUT_OUTPUT, description="d", user_edited=True),
            Parameter("OUT", direction=Direction.OUTPUT, origin=ParamOrigin.TEMPLATE_TASK_ENV),
        ),
        overrides=JobOverrides(command_line="echo hi", image="busybox", max_wall_clock_s=60),
        description="desc",
        tags=("a", "b"),
        cloned_defaults=(ClonedDefault("commandLine", "echo", "jobManagerTask"),),
        warnings=("no maxWallClockTime",),
    )
    saved = store.upsert_job(job)
    assert replace(saved, created_at=None, updated_at=None) == job
    assert store.get_job("JOB1") == saved


def test_upsert_updates_by_name_and_keeps_created_at(store: SqlStore) -> None:
    store.add_platform(make_platform())
    first = store.upsert_job(make_job())
    second = store.upsert_job(replace(make_job(), description="changed", created_at=None))
    assert second.description == "changed"
    assert second.created_at == first.created_at
    assert second.updated_at is not None
    assert first.updated_at is not None
    assert second.updated_at >= first.updated_at
    assert len(store.list_jobs()) == 1


def test_job_needs_an_existing_platform(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="platform 'local' does not exist"):
        store.upsert_job(make_job())


def test_find_job_by_template_ignores_case(store: SqlStore) -> None:
    store.add_platform(make_platform())
    job = store.upsert_job(make_job(external_id="Tmpl-ABC"))
    assert store.find_job("LOCAL", "tmpl-abc") == job
    assert store.find_job("local", "other") is None
    assert store.find_job("ghost", "Tmpl-ABC") is None


def test_one_job_per_template(store: SqlStore) -> None:
    store.add_platform(make_platform())
    store.upsert_job(make_job("first", external_id="tmpl"))
    with pytest.raises(AlreadyExistsError, match=r"already imported as job first.*job sync"):
        store.upsert_job(make_job("second", external_id="TMPL"))


def test_list_jobs_by_platform(store: SqlStore) -> None:
    store.add_platform(make_platform("p1"))
    store.add_platform(make_platform("p2"))
    store.upsert_job(make_job("b", platform="p1", external_id="x"))
    store.upsert_job(make_job("a", platform="p2", external_id="x"))
    store.upsert_job(make_job("c", platform="p1", external_id="y"))
    assert [j.name for j in store.list_jobs()] == ["a", "b", "c"]
    assert [j.name for j in store.list_jobs("P1")] == ["b", "c"]
    with pytest.raises(NotFoundError):
        store.list_jobs("ghost")


def test_unknown_job_says_how_to_list(store: SqlStore) -> None:
    with pytest.raises(NotFoundError, match="polysync job list"):
        store.get_job("ghost")


def test_remove_job_refused_while_tasks_use_it(store: SqlStore) -> None:
    seed(store)
    with pytest.raises(InputError, match=r"used by task\(s\) task1; remove them first"):
        store.remove_job("job1")
    store.remove_job("job1", force=True)
    assert store.list_tasks() == []
    with pytest.raises(NotFoundError):
        store.get_job("job1")


# --- tasks ----------------------------------------------------------------------------


def test_task_round_trip(store: SqlStore) -> None:
    store.add_platform(make_platform())
    store.upsert_job(make_job())
    task = replace(
        make_task(GREETING="hi", TOKEN="env:MY_TOKEN"),
        execution_timeout_s=600,
        retry_policy=RetryPolicy(True, 3, BackoffStrategy.EXPONENTIAL, 1.5, 60.0),
        priority=7,
        description="nightly",
    )
    saved = store.add_task(task)
    assert replace(saved, created_at=None) == task
    assert store.get_task("TASK1") == saved


def test_task_errors(store: SqlStore) -> None:
    seed(store)
    with pytest.raises(AlreadyExistsError, match="'task1' already exists"):
        store.add_task(make_task("Task1"))
    with pytest.raises(NotFoundError, match="job 'ghost'"):
        store.add_task(make_task("t2", job="ghost"))
    with pytest.raises(NotFoundError, match="polysync task list"):
        store.get_task("ghost")
    with pytest.raises(NotFoundError):
        store.update_task(make_task("ghost"))
    with pytest.raises(NotFoundError):
        store.list_tasks(job="ghost")


def test_update_and_list_tasks(store: SqlStore) -> None:
    seed(store)
    store.upsert_job(make_job("job2", external_id="tmpl-2"))
    store.add_task(make_task("other", job="job2"))
    updated = store.update_task(replace(make_task(), params={"GREETING": "yo"}, priority=3))
    assert updated.params == {"GREETING": "yo"}
    assert updated.priority == 3
    assert [t.name for t in store.list_tasks()] == ["other", "task1"]
    assert [t.name for t in store.list_tasks(job="job2")] == ["other"]


def test_remove_task_refused_while_runs_are_in_progress(store: SqlStore) -> None:
    objs = seed(store)
    run = new_run(store, objs)
    with pytest.raises(InputError, match=rf"still in progress: {run.id}; cancel them first"):
        store.remove_task("task1")
    store.transition(run.id, RunState.CANCELLED, reason="cancelled")
    store.remove_task("task1")  # finished runs do not block; they go with the task
    with pytest.raises(NotFoundError):
        store.get_run(run.id)


def test_remove_task_force(store: SqlStore) -> None:
    objs = seed(store)
    new_run(store, objs)
    store.remove_task("task1", force=True)
    assert store.list_tasks() == []
    assert store.count_runs() == 0
