"""Schema and migrations: empty → head, idempotent re-open, concurrent first starts,
the hand-written migration matching ``schema.py``, and database errors."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from polysync.errors import ConfigError, StoreError
from polysync.store.migrations import alembic_config, head_revision
from polysync.store.schema import metadata
from polysync.store.sql import SqlStore, normalise_url, safe_url
from tests.store.conftest import make_platform, new_run, seed

TABLES = {
    "meta",
    "platforms",
    "jobs",
    "tasks",
    "task_runs",
    "run_attempts",
    "run_history",
    "api_tokens",
    "secret_vaults",
    "console_sessions",
}


def test_empty_database_is_migrated_to_head(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        assert store.current_revision() == head_revision() == "0005"
        names = set(inspect(store.engine).get_table_names())
        assert names >= TABLES | {"alembic_version"}
    finally:
        store.close()


def test_reopen_is_idempotent_and_keeps_data(db_url: str) -> None:
    first = SqlStore.open(db_url)
    objs = seed(first)
    run = new_run(first, objs)
    installation = first.installation_id()
    first.close()
    second = SqlStore.open(db_url)
    try:
        assert second.current_revision() == head_revision()
        assert second.get_run(run.id) == run
        assert second.installation_id() == installation
    finally:
        second.close()


def test_migrations_match_schema(db_url: str) -> None:
    """schema.py and versions/*.py describe the same database (autogenerate finds nothing)."""
    store = SqlStore.open(db_url)
    try:
        with store.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, metadata) == []
    finally:
        store.close()


def test_downgrade_to_base_and_back(db_url: str) -> None:
    store = SqlStore.open(db_url)
    try:
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        store.upgrade()
        assert store.current_revision() == head_revision()
        assert store.list_platforms() == []
    finally:
        store.close()


def test_unknown_schema_version_is_a_clear_error(db_url: str) -> None:
    store = SqlStore.open(db_url)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(StoreError, match=r"schema version 9999.*upgrade Polysync"):
        SqlStore.open(db_url)


def test_installation_id_is_stable_and_well_formed(db_url: str) -> None:
    a, b = SqlStore.open(db_url), SqlStore.open(db_url)
    try:
        value = a.installation_id()
        assert len(value) == 8
        assert value.isalnum()
        assert value == value.lower()
        assert b.installation_id() == value
    finally:
        a.close()
        b.close()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    store = SqlStore.open(f"sqlite:///{tmp_path / 'p.db'}")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    finally:
        store.close()


def test_in_memory_sqlite_works_across_threads() -> None:
    import threading

    store = SqlStore.open("sqlite://")
    try:
        store.add_platform(make_platform())
        seen: list[str] = []
        t = threading.Thread(target=lambda: seen.extend(p.name for p in store.list_platforms()))
        t.start()
        t.join(timeout=10)
        assert seen == ["local"]
    finally:
        store.close()


def _opener(url: str, start: mp.synchronize.Barrier, out: mp.Queue[object]) -> None:
    try:
        start.wait(timeout=60)
        store = SqlStore.open(url)
        try:
            out.put(("ok", store.current_revision(), store.installation_id()))
        finally:
            store.close()
    except BaseException as exc:  # noqa: BLE001 - sent back to the test process
        out.put(("error", repr(exc), ""))


@pytest.mark.slow
def test_concurrent_first_starts_migrate_once(db_url: str) -> None:
    """Several processes opening a brand-new database at the same moment all succeed."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(3)
    out: mp.Queue[object] = ctx.Queue()
    procs = [ctx.Process(target=_opener, args=(db_url, start, out)) for _ in range(3)]
    for p in procs:
        p.start()
    results = [out.get(timeout=90) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [r[0] for r in results] == ["ok"] * 3, results  # type: ignore[index]  # tuples
    assert {r[1] for r in results} == {head_revision()}  # type: ignore[index]  # tuples
    assert len({r[2] for r in results}) == 1  # type: ignore[index]  # one installation id


# --- errors ---------------------------------------------------------------------------


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"directory .*nowhere does not exist; create it"):
        SqlStore.open(f"sqlite:///{tmp_path / 'nowhere' / 'p.db'}")


def test_unreachable_postgres_error_hides_the_password() -> None:
    url = "postgresql://polysync:s3cr3t-pw@127.0.0.1:1/polysync?connect_timeout=2"
    with pytest.raises(StoreError) as info:
        SqlStore.open(url)
    message = str(info.value)
    assert "s3cr3t-pw" not in message
    assert "polysync:***@127.0.0.1:1/polysync" in message
    assert "check that the server is running" in message


def test_database_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bad = tmp_path / "p.db"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=rf"the database sqlite:///{bad} failed while"):
        SqlStore.open(f"sqlite:///{bad}")


def test_store_errors_name_the_database_and_the_action(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = SqlStore.open(f"sqlite:///{path}")
    try:
        store.add_platform(make_platform())
        raw = sqlite3.connect(path)
        raw.execute("DROP TABLE run_history")
        raw.execute("DROP TABLE run_attempts")
        raw.execute("DROP TABLE task_runs")
        raw.commit()
        raw.close()
        with pytest.raises(StoreError, match=r"failed while listing runs: .*task_runs.*reopen"):
            store.list_runs()
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:pw@h/db", "postgresql+psycopg://u:***@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
        ("postgresql+psycopg://u:pw@h:5/db", "postgresql+psycopg://u:***@h:5/db"),
    ],
)
def test_urls_are_normalised_and_shown_without_password(url: str, expected: str) -> None:
    assert safe_url(normalise_url(url)) == expected


def test_invalid_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="is not valid"):
        SqlStore.open("not a url at all")


def test_upgrade_from_0002_keeps_runs_without_a_pool(db_url: str) -> None:
    """0003 adds ``batch_pool_id``: runs made before it read back with no pool."""
    store = SqlStore.open(db_url)
    objs = seed(store)
    run = new_run(store, objs)
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0002")
        assert "batch_pool_id" not in {c["name"] for c in inspect(conn).get_columns("task_runs")}
    store.upgrade()
    try:
        again = store.get_run(run.id)
        assert again.batch_pool_id is None
        assert (again.id, again.state, again.task) == (run.id, run.state, run.task)
    finally:
        store.close()
