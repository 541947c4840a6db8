"""Store fixtures: a real SQLite file per test, and PostgreSQL when CI provides one.

Set ``POLYSYNC_TEST_POSTGRES_URL`` (e.g. ``postgresql://postgres@127.0.0.1:5432/polysync_test``)
to run every ``db_url``/``store`` test on PostgreSQL too; its ``public`` schema is wiped
before each test, so point it at a throwaway database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from polysync.domain.models import (
    AuthMode,
    DataType,
    Job,
    Parameter,
    Platform,
    PlatformAuth,
    SecretRef,
    Task,
    TaskRun,
    Trigger,
)
from polysync.store.sql import SqlStore, normalise_url

PG_URL = os.environ.get("POLYSYNC_TEST_POSTGRES_URL", "")

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgres",
        id="postgres",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason="POLYSYNC_TEST_POSTGRES_URL is not set"),
        ],
    ),
]


def reset_postgres(url: str) -> None:
    engine = create_engine(normalise_url(url))
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'polysync.db'}"
    reset_postgres(PG_URL)
    return PG_URL


@pytest.fixture
def store(db_url: str) -> Iterator[SqlStore]:
    st = SqlStore.open(db_url)
    try:
        yield st
    finally:
        st.close()


def make_platform(name: str = "local", **kw: object) -> Platform:
    values: dict[str, object] = {
        "name": name,
        "account_url": "http://127.0.0.1:9999",
        "account_name": "devaccount",
        "subscription_id": "00000000-0000-0000-0000-000000000000",
        "resource_group": "rg",
        "auth": PlatformAuth(AuthMode.SHARED_KEY, SecretRef("env", "BATCH_KEY")),
    }
    values.update(kw)
    return Platform(**values)  # type: ignore[arg-type]  # test helper: keyword overrides


def make_job(name: str = "job1", platform: str = "local", external_id: str = "tmpl-1") -> Job:
    return Job(
        name=name,
        platform=platform,
        external_id=external_id,
        parameters=(
            Parameter("GREETING", default="hello"),
            Parameter("TOKEN", DataType.SECRET, default="env:TOKEN"),
        ),
    )


def make_task(name: str = "task1", job: str = "job1", **params: str) -> Task:
    return Task(name=name, job=job, params=params or {"GREETING": "hi"})


def seed(store: SqlStore) -> tuple[Platform, Job, Task]:
    """A platform, a job and a task, ready to run."""
    p = store.add_platform(make_platform())
    j = store.upsert_job(make_job())
    t = store.add_task(make_task())
    return p, j, t


def new_run(
    store: SqlStore, objs: tuple[Platform, Job, Task], priority: int = 0, **kw: object
) -> TaskRun:
    p, j, t = objs
    return store.create_run(
        t,
        j,
        p,
        trigger=Trigger.MANUAL,
        priority=priority,
        param_overrides={},
        **kw,  # type: ignore[arg-type]  # not_before, claimed_by, lease_expires_at
    )
