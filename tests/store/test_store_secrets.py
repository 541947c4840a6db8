"""The store never writes a secret value in clear (issue 3 acceptance 3, D11).

There is no column for one: platform and vault credentials are references, run
parameters arrive redacted, and a Secret parameter's default or value must be a reference
— the store refuses a literal whatever the caller, and a scan of the database files
finds none of the values it was offered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import pytest

from polysync.domain.models import DataType, Parameter, PlatformAuth, Trigger
from polysync.errors import ParameterError, SecretError
from polysync.store.schema import metadata
from polysync.store.sql import SqlStore
from tests.store.conftest import make_job, make_platform, make_task, new_run, seed

MARKER = "pw-9f2c41d7-never-store-me"


def _db_bytes(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_no_column_can_hold_a_secret_value() -> None:
    suspicious = re.compile(r"secret|password|passwd|token|credential", re.IGNORECASE)
    found = {
        f"{table.name}.{column.name}"
        for table in metadata.tables.values()
        for column in table.columns
        if suspicious.search(column.name)
    }
    # References and glob patterns of secret names (decision 0010), and the id of the
    # token a console session acts for: no values.
    assert found == {
        "platforms.auth_secret_ref",
        "secret_vaults.auth_secret_ref",
        "secret_vaults.task_secrets",
        "console_sessions.token_id",
    }
    # …and the domain gives a platform's credential only as a reference.
    assert {f.name for f in fields(PlatformAuth)} == {
        "mode",
        "secret",
        "tenant_id",
        "client_id",
        "certificate_path",
    }


def test_secret_default_must_be_a_reference(store: SqlStore) -> None:
    store.add_platform(make_platform())
    job = replace(make_job(), parameters=(Parameter("TOKEN", DataType.SECRET, default=MARKER),))
    with pytest.raises(ParameterError, match=r"parameter TOKEN is a Secret.*vault://VAULT/SECRET"):
        store.upsert_job(job)
    assert store.list_jobs() == []


@pytest.mark.parametrize("ref", ["env:TOKEN", "file:/run/secrets/token", None])
def test_secret_default_reference_is_accepted(store: SqlStore, ref: str | None) -> None:
    store.add_platform(make_platform())
    job = replace(make_job(), parameters=(Parameter("TOKEN", DataType.SECRET, default=ref),))
    assert store.upsert_job(job).parameters[0].default == ref


def test_secret_task_value_must_be_a_reference(store: SqlStore) -> None:
    seed(store)
    with pytest.raises(ParameterError, match="task t2: parameter TOKEN is a Secret"):
        store.add_task(make_task("t2", TOKEN=MARKER))
    with pytest.raises(ParameterError, match="task task1: parameter TOKEN is a Secret"):
        store.update_task(make_task("task1", TOKEN=f"literal:{MARKER}"))
    assert store.get_task("task1").params == {"GREETING": "hi"}


def test_secret_run_override_must_be_a_reference(store: SqlStore) -> None:
    p, j, t = seed(store)
    with pytest.raises(ParameterError, match="run of task task1: parameter TOKEN is a Secret"):
        store.create_run(
            t, j, p, trigger=Trigger.MANUAL, priority=0, param_overrides={"TOKEN": MARKER}
        )
    assert store.count_runs() == 0


def test_malformed_reference_is_refused(store: SqlStore) -> None:
    seed(store)
    with pytest.raises(SecretError, match="valid environment variable"):
        store.add_task(make_task("t2", TOKEN="env:not a name"))


def test_database_files_never_contain_offered_secret_values(tmp_path: Path) -> None:
    path = tmp_path / "polysync.db"
    store = SqlStore.open(f"sqlite:///{path}")
    try:
        objs = seed(store)
        store.add_task(make_task("t2", TOKEN="env:TOKEN"))
        run = new_run(store, objs)
        store.assign_batch_ids(run.id, "ps-x-r1-a1", "task1", None, {"TOKEN": "***"})
        attempts: list[Callable[[], object]] = [
            lambda: store.upsert_job(
                replace(
                    make_job(), parameters=(Parameter("TOKEN", DataType.SECRET, default=MARKER),)
                )
            ),
            lambda: store.add_task(make_task("t3", TOKEN=MARKER)),
            lambda: store.update_task(make_task("t2", TOKEN=MARKER)),
            lambda: store.create_run(
                objs[2],
                objs[1],
                objs[0],
                trigger=Trigger.MANUAL,
                priority=0,
                param_overrides={"TOKEN": MARKER},
            ),
        ]
        for attempt in attempts:
            with pytest.raises(ParameterError):
                attempt()
        assert b"env:BATCH_KEY" in _db_bytes(path)  # the scan does see what is stored
        assert MARKER.encode() not in _db_bytes(path)
    finally:
        store.close()
    assert MARKER.encode() not in _db_bytes(path)
