"""``SqlBase``: what every part of the SQL store shares."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Self

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    Table,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from polysync.domain.ids import new_installation_id
from polysync.domain.models import (
    HistoryEntry,
    RunState,
    TaskRun,
)
from polysync.errors import (
    NotFoundError,
    PolysyncError,
    StoreError,
)
from polysync.store import schema as s
from polysync.store.migrations import alembic_config, head_revision
from polysync.store.sql.engine import (
    _BEGIN_OPTION,
    _create_engine,
    normalise_url,
    safe_url,
)
from polysync.store.sql.rows import (
    _chunks,
    _history_entry,
    _key,
    _run,
)

log = logging.getLogger(__name__)

_MIGRATION_LOCK_KEY = 0x706F6C7973796E63  # "polysync" as a PostgreSQL advisory lock key

# --- the store base -------------------------------------------------------------------


class SqlBase:
    """Engine, transactions, schema upgrades and the row lookups every part of the store uses.

    ``SqlStore`` is this plus one mixin per concern (catalog, runs, access, vaults); each
    mixin owns the queries of its tables.
    """

    def __init__(self, engine: Engine, *, display_url: str) -> None:
        self._engine = engine
        self.display_url = display_url
        self._installation_id: str | None = None

    # --- lifecycle ------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> Self:
        """Connect and bring the schema to head (safe when several processes start at once)."""
        parsed = normalise_url(url)
        engine = _create_engine(parsed)
        store = cls(engine, display_url=safe_url(parsed))
        try:
            if migrate:
                store.upgrade()
        except BaseException:
            engine.dispose()
            raise
        return store

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    def close(self) -> None:
        self._engine.dispose()

    def current_revision(self) -> str | None:
        with self._read("reading the schema version") as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self) -> None:
        """Migrate to head. A fast read first; the lock only when there is work to do.

        Concurrent first starts: SQLite serialises on ``BEGIN IMMEDIATE`` (the second
        process waits up to the busy timeout, then sees head and does nothing); PostgreSQL
        on a transaction-scoped advisory lock. DDL runs inside that transaction on both.
        """
        head = head_revision()
        if self.current_revision() == head:
            return
        with self._write("upgrading the schema") as conn:
            if self.dialect == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            current = MigrationContext.configure(conn).get_current_revision()
            if current == head:
                return
            log.info("upgrading %s from schema %s to %s", self.display_url, current, head)
            try:
                command.upgrade(alembic_config(conn), "head")
            except CommandError as exc:
                raise StoreError(
                    f"the database {self.display_url} is at schema version {current}, which "
                    f"this Polysync does not know ({exc}); upgrade Polysync, or point "
                    "POLYSYNC_DATABASE_URL at another database."
                ) from None

    # --- transactions ---------------------------------------------------------------

    @contextmanager
    def _tx(self, doing: str, *, write: bool) -> Iterator[Connection]:
        try:
            with self._engine.connect() as conn:
                if write:
                    conn.execution_options(**{_BEGIN_OPTION: "IMMEDIATE"})
                with conn.begin():
                    yield conn
        except PolysyncError:
            raise
        except SQLAlchemyError as exc:
            raise self._error(exc, doing) from exc

    def _read(self, doing: str) -> AbstractContextManager[Connection]:
        return self._tx(doing, write=False)

    def _write(self, doing: str) -> AbstractContextManager[Connection]:
        return self._tx(doing, write=True)

    def _error(self, exc: SQLAlchemyError, doing: str) -> StoreError:
        orig = getattr(exc, "orig", None) or exc
        detail = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
        low = detail.lower()
        if "locked" in low or "busy" in low:
            hint = "another Polysync process held the database too long; try again"
        elif "unable to open" in low or "readonly" in low or "read-only" in low:
            hint = "check that the file and its directory exist and are writable"
        elif "no such table" in low or "no such column" in low or "does not exist" in low:
            hint = "the schema is not what this Polysync expects; reopen it to migrate"
        elif self.dialect == "postgresql":
            hint = "check that the server is running and the URL, user and password are right"
        else:
            hint = "check the database file and the free disk space"
        return StoreError(
            f"the database {self.display_url} failed while {doing}: {detail}; {hint}."
        )

    # --- meta -----------------------------------------------------------------------

    def installation_id(self) -> str:
        if self._installation_id is not None:
            return self._installation_id
        key = s.meta.c.key == "installation_id"
        with self._read("reading the installation id") as conn:
            value = conn.execute(select(s.meta.c.value).where(key)).scalar_one_or_none()
        if value is None:
            with self._write("creating the installation id") as conn:
                # Two first starts may race: insert-if-absent, then read whichever won.
                conn.execute(
                    self._insert_ignore(s.meta).values(
                        key="installation_id", value=new_installation_id()
                    )
                )
                value = conn.execute(select(s.meta.c.value).where(key)).scalar_one()
        self._installation_id = str(value)
        return self._installation_id

    def _insert_ignore(self, table: Any) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    @staticmethod
    def _insert_named(
        conn: Connection,
        table: Table,
        values: Mapping[str, Any],
        taken: Callable[[str], PolysyncError],
    ) -> None:
        """Insert a row whose name is unique ignoring case (its ``name_key`` column).

        A name already there raises ``taken(its stored spelling)``; so does losing a race
        to a concurrent insert of the same name (the unique index's IntegrityError).
        """
        existing = conn.execute(
            select(table.c.name).where(table.c.name_key == values["name_key"])
        ).scalar_one_or_none()
        if existing is not None:
            raise taken(existing)
        try:
            conn.execute(insert(table).values(**values))
        except IntegrityError:
            raise taken(str(values["name"])) from None

    # --- lookups shared by the mixins ------------------------------------------

    @staticmethod
    def _platform_row(conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(s.platforms).where(s.platforms.c.name_key == _key(name))).first()
        if row is None:
            raise NotFoundError(
                f"platform {name!r} does not exist; run `polysync platform list` to see the "
                "platforms, or `polysync platform add` to register one."
            )
        return row

    @staticmethod
    def _job_select() -> Select[Any]:
        return select(s.jobs, s.platforms.c.name.label("platform_name")).select_from(
            s.jobs.join(s.platforms, s.jobs.c.platform_id == s.platforms.c.id)
        )

    def _job_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(self._job_select().where(s.jobs.c.name_key == _key(name))).first()
        if row is None:
            raise NotFoundError(
                f"job {name!r} does not exist; run `polysync job list` to see the jobs, or "
                "`polysync job import` to import a template."
            )
        return row

    @staticmethod
    def _task_select() -> Select[Any]:
        return select(s.tasks, s.jobs.c.name.label("job_name")).select_from(
            s.tasks.join(s.jobs, s.tasks.c.job_id == s.jobs.c.id)
        )

    def _task_row(self, conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(self._task_select().where(s.tasks.c.name_key == _key(name))).first()
        if row is None:
            raise NotFoundError(
                f"task {name!r} does not exist; run `polysync task list` to see the tasks, or "
                "`polysync task create` to make one."
            )
        return row

    @staticmethod
    def _add_history(
        conn: Connection,
        run_id: int,
        attempt: int,
        at: datetime,
        from_state: RunState | None,
        to_state: RunState,
        reason: str,
    ) -> None:
        conn.execute(
            insert(s.run_history).values(
                run_id=run_id,
                attempt=attempt,
                at=at,
                from_state=from_state.value if from_state is not None else None,
                to_state=to_state.value,
                reason=reason,
            )
        )

    @staticmethod
    def _run_row(conn: Connection, run_id: int, *, for_update: bool = False) -> Row[Any]:
        query = select(s.task_runs).where(s.task_runs.c.id == run_id)
        if for_update:
            query = query.with_for_update()  # row lock on PostgreSQL; SQLite holds the db lock
        row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(
                f"run {run_id} does not exist; run `polysync run list` to see the runs."
            )
        return row

    @staticmethod
    def _histories(conn: Connection, run_ids: Sequence[int]) -> dict[int, list[HistoryEntry]]:
        out: dict[int, list[HistoryEntry]] = {i: [] for i in run_ids}
        for chunk in _chunks(run_ids):
            rows = conn.execute(
                select(s.run_history)
                .where(s.run_history.c.run_id.in_(chunk))
                .order_by(s.run_history.c.id)
            ).all()
            for r in rows:
                out[r.run_id].append(_history_entry(r))
        return out

    def _load_run(self, conn: Connection, run_id: int) -> TaskRun:
        row = self._run_row(conn, run_id)
        return _run(row, self._histories(conn, [run_id])[run_id])

    def _runs(
        self, conn: Connection, rows: Sequence[Row[Any]], with_history: bool
    ) -> list[TaskRun]:
        if not with_history:
            return [_run(r) for r in rows]
        hist = self._histories(conn, [r.id for r in rows])
        return [_run(r, hist[r.id]) for r in rows]
