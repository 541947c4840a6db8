"""``SqlStore``: the one implementation of ``Store`` and the only module with queries.

SQLite (the default) and PostgreSQL (several workers, D12) run the same statements.
Each public method is one short transaction. Write transactions on SQLite start with
``BEGIN IMMEDIATE``: the write lock is taken up front, so read-then-write sequences
(compare-and-set transitions, claims) are serialised across processes instead of failing
with "database is locked" on the lock upgrade. On PostgreSQL the same sequences lock rows
with ``SELECT … FOR UPDATE`` (``SKIP LOCKED`` for claims).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Row,
    Select,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from polysync.domain import secrets
from polysync.domain.ids import new_installation_id
from polysync.domain.models import (
    AuthMode,
    BackoffStrategy,
    ClonedDefault,
    DataType,
    Direction,
    Failure,
    HistoryEntry,
    Job,
    JobOverrides,
    Parameter,
    ParamOrigin,
    Platform,
    PlatformAuth,
    RetryPolicy,
    RunState,
    SecretRef,
    Task,
    TaskRun,
    Trigger,
)
from polysync.errors import (
    AlreadyExistsError,
    ConfigError,
    InputError,
    NotFoundError,
    ParameterError,
    PolysyncError,
    StoreError,
)
from polysync.store import schema as s
from polysync.store.base import ApiToken, RunAttempt
from polysync.store.migrations import alembic_config, head_revision
from polysync.store.writes import (
    WRITTEN_COLUMNS,
    AssignIds,
    Retry,
    RunOp,
    Transition,
    Update,
    plan,
)

log = logging.getLogger(__name__)

_BEGIN_OPTION = "polysync_begin"  # execution option read by the SQLite "begin" hook
_SQLITE_BUSY_TIMEOUT_MS = 30_000
_MIGRATION_LOCK_KEY = 0x706F6C7973796E63  # "polysync" as a PostgreSQL advisory lock key
_IN_CHUNK = 500  # ids per IN (…) list
_TERMINAL = tuple(st.value for st in RunState if st.is_terminal)
_NONTERMINAL = tuple(st.value for st in RunState if not st.is_terminal)


def utc_now() -> datetime:
    return datetime.now(UTC)


def _key(name: str) -> str:
    return name.strip().lower()


# --- secrets: references only ---------------------------------------------------------


def is_secret_ref(value: str) -> bool:
    """True for ``env:NAME`` / ``file:PATH``, the only form a Secret may take at rest.

    One definition of "reference" for the whole product (``polysync.domain.secrets``); a
    malformed one raises ``SecretError`` there, which is the right answer here too.
    """
    return secrets.is_ref(value)


def _refuse_clear_secrets(job: Job, values: Mapping[str, str], where: str) -> None:
    """Defensive: never write a Secret parameter's value in clear, whoever the caller is."""
    secret_names = {p.name for p in job.parameters if p.data_type is DataType.SECRET}
    for name, value in values.items():
        if name in secret_names and not is_secret_ref(value):
            raise ParameterError(
                f"{where}: parameter {name} is a Secret, so its value must be a reference "
                f"(env:NAME or file:PATH), never the secret itself; the store refused it."
            )


def _check_job_secret_defaults(job: Job) -> None:
    for p in job.parameters:
        if (
            p.data_type is DataType.SECRET
            and p.default is not None
            and not is_secret_ref(p.default)
        ):
            raise ParameterError(
                f"job {job.name}: parameter {p.name} is a Secret, so its default must be a "
                "reference (env:NAME or file:PATH), never the secret itself; the store "
                "refused it."
            )


# --- engine ---------------------------------------------------------------------------


def normalise_url(url: str) -> URL:
    """Parse a database URL; ``postgresql://`` means psycopg 3 (the driver we ship)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url.split('@')[-1]!r} is not valid ({exc}); use e.g. "
            "sqlite:////path/polysync.db or postgresql://user@host/db."
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def safe_url(url: URL | str) -> str:
    parsed = url if isinstance(url, URL) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def _is_memory(url: URL) -> bool:
    db = url.database or ""
    return db in ("", ":memory:") or "mode=memory" in str(url)


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        if _is_memory(url):
            # One connection shared by every thread, or each would see its own empty db.
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            parent = Path(url.database or "").expanduser().parent
            if not parent.is_dir():
                raise StoreError(
                    f"the database {safe_url(url)} cannot be created: directory {parent} does "
                    "not exist; create it or set POLYSYNC_DATABASE_URL / POLYSYNC_HOME."
                )
            engine = create_engine(url, connect_args={"check_same_thread": False})
        _install_sqlite_hooks(engine, wal=not _is_memory(url))
        return engine
    return create_engine(url, pool_pre_ping=True)


def _enable_wal(cur: Any) -> None:
    """Switch the file to WAL: readers never block the writer (`run list` beside a worker).

    The switch needs an exclusive lock and SQLite does not call the busy handler for it,
    so several processes opening a brand-new file at once get "database is locked" at
    once: retry with a short backoff until the busy timeout. WAL is persistent, so this
    only contends on the very first opens. ``synchronous`` stays FULL on purpose: a
    committed RunId must survive a power cut, or a restart could create a second Batch
    job for one attempt (D5).
    """
    deadline = time.monotonic() + _SQLITE_BUSY_TIMEOUT_MS / 1000
    delay_s = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def _install_sqlite_hooks(engine: Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module, so BEGIN is ours (see _begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            # busy_timeout first: switching to WAL needs a lock another process may hold.
            cur.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            if wal:
                _enable_wal(cur)
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


# --- row <-> domain -------------------------------------------------------------------


def _platform(row: Row[Any]) -> Platform:
    ref: SecretRef | None = None
    if row.auth_secret_ref:
        kind, _, target = row.auth_secret_ref.partition(":")
        ref = SecretRef(kind, target)
    return Platform(
        name=row.name,
        account_url=row.account_url,
        account_name=row.account_name,
        subscription_id=row.subscription_id,
        resource_group=row.resource_group,
        auth=PlatformAuth(
            mode=AuthMode(row.auth_mode),
            secret=ref,
            tenant_id=row.tenant_id,
            client_id=row.client_id,
            certificate_path=row.certificate_path,
        ),
        verify_tls=bool(row.verify_tls),
        ca_bundle=row.ca_bundle,
        created_at=row.created_at,
    )


def _platform_values(p: Platform) -> dict[str, Any]:
    secret = p.auth.secret
    if secret is not None and secret.kind not in ("env", "file"):
        raise InputError(
            f"platform {p.name}: the credential must be an env:NAME or file:PATH reference, "
            f"not {secret.kind!r}."
        )
    return {
        "name": p.name.strip(),
        "name_key": _key(p.name),
        "account_url": p.account_url,
        "account_name": p.account_name,
        "subscription_id": p.subscription_id,
        "resource_group": p.resource_group,
        "auth_mode": AuthMode(p.auth.mode).value,
        "auth_secret_ref": str(secret) if secret is not None else None,
        "tenant_id": p.auth.tenant_id,
        "client_id": p.auth.client_id,
        "certificate_path": p.auth.certificate_path,
        "verify_tls": p.verify_tls,
        "ca_bundle": p.ca_bundle,
    }


def _param_to_json(p: Parameter) -> dict[str, Any]:
    return {
        "name": p.name,
        "data_type": DataType(p.data_type).value,
        "direction": Direction(p.direction).value,
        "default": p.default,
        "description": p.description,
        "origin": ParamOrigin(p.origin).value,
        "user_edited": p.user_edited,
    }


def _param_from_json(d: Mapping[str, Any]) -> Parameter:
    return Parameter(
        name=d["name"],
        data_type=DataType(d.get("data_type", DataType.STRING.value)),
        direction=Direction(d.get("direction", Direction.INPUT.value)),
        default=d.get("default"),
        description=d.get("description", ""),
        origin=ParamOrigin(d.get("origin", ParamOrigin.USER.value)),
        user_edited=bool(d.get("user_edited", False)),
    )


def _known(cls: type[Any], d: Mapping[str, Any]) -> dict[str, Any]:
    """Keep the keys a dataclass knows: rows written by a newer version still load."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in d.items() if k in names}


def _job(row: Row[Any], platform_name: str) -> Job:
    return Job(
        name=row.name,
        platform=platform_name,
        external_id=row.external_id,
        job_type=row.job_type,
        parameters=tuple(_param_from_json(d) for d in row.parameters),
        overrides=JobOverrides(**_known(JobOverrides, row.overrides)),
        description=row.description,
        tags=tuple(row.tags),
        cloned_defaults=tuple(
            ClonedDefault(**_known(ClonedDefault, d)) for d in row.cloned_defaults
        ),
        warnings=tuple(row.warnings),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _task(row: Row[Any], job_name: str) -> Task:
    return Task(
        name=row.name,
        job=job_name,
        params=dict(row.params),
        execution_timeout_s=row.execution_timeout_s,
        retry_policy=RetryPolicy(
            enabled=bool(row.retry_enabled),
            max_attempts=row.retry_max_attempts,
            backoff=BackoffStrategy(row.retry_backoff),
            initial_delay_s=row.retry_initial_delay_s,
            max_delay_s=row.retry_max_delay_s,
        ),
        priority=row.priority,
        description=row.description,
        created_at=row.created_at,
    )


def _task_values(t: Task) -> dict[str, Any]:
    rp = t.retry_policy
    return {
        "name": t.name.strip(),
        "name_key": _key(t.name),
        "params": dict(t.params),
        "execution_timeout_s": t.execution_timeout_s,
        "retry_enabled": rp.enabled,
        "retry_max_attempts": rp.max_attempts,
        "retry_backoff": BackoffStrategy(rp.backoff).value,
        "retry_initial_delay_s": float(rp.initial_delay_s),
        "retry_max_delay_s": float(rp.max_delay_s),
        "priority": t.priority,
        "description": t.description,
    }


def _failure_from_json(d: Mapping[str, Any] | None) -> Failure | None:
    if d is None:
        return None
    return Failure(
        category=d["category"],
        code=d["code"],
        message=d["message"],
        details=tuple((str(k), str(v)) for k, v in d.get("details") or ()),
        stderr_tail=d.get("stderr_tail"),
    )


def _lease_free(now: datetime) -> ColumnElement[bool]:
    """A run nobody holds: never claimed, or its holder's lease ran out (a dead worker)."""
    c = s.task_runs.c
    return or_(c.claimed_by.is_(None), c.lease_expires_at.is_(None), c.lease_expires_at <= now)


def _run(row: Row[Any] | Mapping[str, Any], history: Sequence[HistoryEntry] = ()) -> TaskRun:
    m: Mapping[Any, Any] = row._mapping if isinstance(row, Row) else row
    return TaskRun(
        id=m["id"],
        task=m["task_name"],
        job=m["job_name"],
        platform=m["platform_name"],
        state=RunState(m["state"]),
        trigger=Trigger(m["trigger"]),
        attempt=m["attempt"],
        priority=m["priority"],
        batch_job_id=m["batch_job_id"],
        batch_task_id=m["batch_task_id"],
        batch_pool_id=m["batch_pool_id"],
        monitor_url=m["monitor_url"],
        exit_code=m["exit_code"],
        failure=_failure_from_json(m["failure"]),
        params_sent=dict(m["params_sent"]),
        param_overrides=dict(m["param_overrides"]),
        diagnosis=m["diagnosis"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        ended_at=m["ended_at"],
        cancel_requested=bool(m["cancel_requested"]),
        waiting_reason=m["waiting_reason"],
        not_before=m["not_before"],
        history=tuple(history),
    )


def _history_entry(row: Row[Any]) -> HistoryEntry:
    return HistoryEntry(
        at=row.at,
        from_state=RunState(row.from_state) if row.from_state is not None else None,
        to_state=RunState(row.to_state),
        reason=row.reason,
    )


def _states(state: RunState | None, states: Collection[RunState] | None) -> tuple[str, ...] | None:
    wanted = {RunState(x).value for x in states or ()}
    if state is not None:
        wanted.add(RunState(state).value)
    return tuple(sorted(wanted)) if (state is not None or states is not None) else None


def _chunks(ids: Sequence[int]) -> Iterable[Sequence[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]


# --- the store ------------------------------------------------------------------------


class SqlStore:
    """The SQL implementation of ``polysync.store.base.Store``.

    Open one per process (``SqlStore.open``) and share it: it owns the engine and its
    connection pool. Thread-safe: every method checks a connection out of the pool.
    """

    def __init__(self, engine: Engine, *, display_url: str) -> None:
        self._engine = engine
        self.display_url = display_url
        self._installation_id: str | None = None

    # --- lifecycle ------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, migrate: bool = True) -> SqlStore:
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

    # --- platforms ------------------------------------------------------------------

    @staticmethod
    def _platform_row(conn: Connection, name: str) -> Row[Any]:
        row = conn.execute(select(s.platforms).where(s.platforms.c.name_key == _key(name))).first()
        if row is None:
            raise NotFoundError(
                f"platform {name!r} does not exist; run `polysync platform list` to see the "
                "platforms, or `polysync platform add` to register one."
            )
        return row

    def add_platform(self, platform: Platform) -> Platform:
        _require_name("platform", platform.name)
        values = _platform_values(platform)
        now = utc_now()
        with self._write(f"adding platform {platform.name}") as conn:
            existing = conn.execute(
                select(s.platforms.c.name).where(s.platforms.c.name_key == values["name_key"])
            ).scalar_one_or_none()
            if existing is not None:
                raise _platform_exists(platform.name, existing)
            try:
                conn.execute(
                    insert(s.platforms).values(
                        **values, created_at=platform.created_at or now, updated_at=now
                    )
                )
            except IntegrityError:
                raise _platform_exists(platform.name, platform.name) from None
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

    def add_task(self, task: Task) -> Task:
        _require_name("task", task.name)
        values = _task_values(task)
        now = utc_now()
        with self._write(f"adding task {task.name}") as conn:
            job_row = self._job_row(conn, task.job)
            _refuse_clear_secrets(
                _job(job_row, job_row.platform_name), task.params, f"task {task.name}"
            )
            existing = conn.execute(
                select(s.tasks.c.name).where(s.tasks.c.name_key == values["name_key"])
            ).scalar_one_or_none()
            if existing is not None:
                raise _task_exists(task.name, existing)
            try:
                conn.execute(
                    insert(s.tasks).values(
                        **values,
                        job_id=job_row.id,
                        created_at=task.created_at or now,
                        updated_at=now,
                    )
                )
            except IntegrityError:
                raise _task_exists(task.name, task.name) from None
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

    # --- runs -----------------------------------------------------------------------

    def create_run(
        self,
        task: Task,
        job: Job,
        platform: Platform,
        *,
        trigger: Trigger,
        priority: int,
        param_overrides: dict[str, str],
        not_before: datetime | None = None,
    ) -> TaskRun:
        now = utc_now()
        with self._write(f"creating a run of task {task.name}") as conn:
            task_row = self._task_row(conn, task.name)
            job_row = conn.execute(self._job_select().where(s.jobs.c.id == task_row.job_id)).one()
            # The stored task decides its job and platform; a caller holding stale objects
            # is told rather than silently obeyed.
            if _key(job.name) != job_row.name_key or _key(platform.name) != _key(
                job_row.platform_name
            ):
                raise InputError(
                    f"task {task_row.name} belongs to job {job_row.name} on platform "
                    f"{job_row.platform_name}, not {job.name} on {platform.name}; reload them."
                )
            _refuse_clear_secrets(
                _job(job_row, job_row.platform_name), param_overrides, f"run of task {task.name}"
            )
            run_id = conn.execute(
                insert(s.task_runs)
                .values(
                    task_id=task_row.id,
                    job_id=job_row.id,
                    platform_id=job_row.platform_id,
                    task_name=task_row.name,
                    job_name=job_row.name,
                    platform_name=job_row.platform_name,
                    state=RunState.QUEUED.value,
                    trigger=Trigger(trigger).value,
                    attempt=1,
                    priority=priority,
                    params_sent={},
                    param_overrides=dict(param_overrides),
                    cancel_requested=False,
                    created_at=now,
                    updated_at=now,
                    not_before=not_before,
                )
                .returning(s.task_runs.c.id)
            ).scalar_one()
            self._add_history(conn, run_id, 1, now, None, RunState.QUEUED, "run requested")
            return self._load_run(conn, run_id)

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

    def get_run(self, run_id: int) -> TaskRun:
        with self._read(f"reading run {run_id}") as conn:
            return self._load_run(conn, run_id)

    def find_run_by_batch_ids(self, batch_job_id: str, batch_task_id: str) -> TaskRun | None:
        with self._read(f"looking up Batch job {batch_job_id}") as conn:
            run_id = conn.execute(
                select(s.run_attempts.c.run_id).where(
                    s.run_attempts.c.batch_job_key == batch_job_id.lower(),
                    func.lower(s.run_attempts.c.batch_task_id) == batch_task_id.lower(),
                )
            ).scalar_one_or_none()
            if run_id is None:
                run_id = conn.execute(
                    select(s.task_runs.c.id).where(
                        s.task_runs.c.batch_job_id == batch_job_id,
                        s.task_runs.c.batch_task_id == batch_task_id,
                    )
                ).scalar_one_or_none()
            return None if run_id is None else self._load_run(conn, run_id)

    def _filtered(
        self,
        conn: Connection,
        query: Select[Any],
        task: str | None,
        state: RunState | None,
        states: Collection[RunState] | None,
    ) -> Select[Any]:
        if task is not None:
            query = query.where(s.task_runs.c.task_id == self._task_row(conn, task).id)
        wanted = _states(state, states)
        if wanted is not None:
            query = query.where(s.task_runs.c.state.in_(wanted))
        return query

    def list_runs(
        self,
        *,
        task: str | None = None,
        state: RunState | None = None,
        states: Collection[RunState] | None = None,
        limit: int = 50,
        offset: int = 0,
        newest_first: bool = True,
        with_history: bool = True,
    ) -> list[TaskRun]:
        if limit < 0 or offset < 0:
            raise InputError(f"limit ({limit}) and offset ({offset}) must not be negative.")
        with self._read("listing runs") as conn:
            order = s.task_runs.c.id.desc() if newest_first else s.task_runs.c.id.asc()
            query = self._filtered(conn, select(s.task_runs), task, state, states)
            rows = conn.execute(query.order_by(order).limit(limit).offset(offset)).all()
            return self._runs(conn, rows, with_history)

    def count_runs(
        self,
        *,
        task: str | None = None,
        state: RunState | None = None,
        states: Collection[RunState] | None = None,
    ) -> int:
        with self._read("counting runs") as conn:
            query = self._filtered(
                conn, select(func.count()).select_from(s.task_runs), task, state, states
            )
            return int(conn.execute(query).scalar_one())

    # --- run writes: ops applied in bulk (store/writes.py, decision 0008) -------------

    def write_runs(self, ops: Sequence[RunOp]) -> list[TaskRun | PolysyncError]:
        """Apply ``ops`` in order, in ONE transaction; per op the run after it, or its error.

        The rows the ops touch are read (and locked) once, the ops are applied to them in
        memory (``writes.plan``: compare-and-set guards, the state machine, attempts), and
        each table gets one executemany. An op that cannot apply is that op's error; the
        others still apply. A database failure raises ``StoreError`` and applies nothing.
        """
        if not ops:
            return []
        c = s.task_runs.c
        run_ids = sorted({op.run_id for op in ops})
        keys = sorted({op.batch_job_id.lower() for op in ops if isinstance(op, AssignIds)})
        now = utc_now()
        what = f"writing run {run_ids[0]}" if len(run_ids) == 1 else f"writing {len(ops)} runs"
        with self._write(what) as conn:
            rows: dict[int, dict[str, Any]] = {}
            for chunk in _chunks(run_ids):
                # Ordered by id: workers lock rows in one order and never deadlock (PG).
                query = select(s.task_runs).where(c.id.in_(chunk)).order_by(c.id)
                for r in conn.execute(query.with_for_update()):
                    rows[r.id] = dict(r._mapping)
            taken: dict[str, tuple[int, int]] = {}
            a = s.run_attempts.c
            for i in range(0, len(keys), _IN_CHUNK):
                query = select(a.batch_job_key, a.run_id, a.attempt).where(
                    a.batch_job_key.in_(keys[i : i + _IN_CHUNK])
                )
                taken.update({r.batch_job_key: (r.run_id, r.attempt) for r in conn.execute(query)})
            result = plan(rows, taken, list(ops), now)
            hist = self._histories(conn, [i for i in run_ids if i in rows])
            # Only the columns that changed, one executemany per set of them: binding
            # every column of every row (JSON, times) would cost more than the writes.
            changed: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for run_id, row in result.rows.items():
                before = rows[run_id]
                names = tuple(k for k in WRITTEN_COLUMNS if row[k] != before[k])
                changed.setdefault(names, []).append({"_id": run_id, **{k: row[k] for k in names}})
            for names, params in changed.items():
                if names:
                    conn.execute(update(s.task_runs).where(c.id == bindparam("_id")), params)
            if result.history:
                conn.execute(insert(s.run_history), result.history)
            if result.new_attempts:
                conn.execute(insert(s.run_attempts), list(result.new_attempts.values()))
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for (run_id, attempt), values in result.attempt_updates.items():
                row_params = {"_run": run_id, "_attempt": attempt, **values}
                by_columns.setdefault(tuple(sorted(values)), []).append(row_params)
            for params in by_columns.values():
                conn.execute(
                    update(s.run_attempts).where(
                        a.run_id == bindparam("_run"), a.attempt == bindparam("_attempt")
                    ),
                    params,
                )
        out: list[TaskRun | PolysyncError] = []
        for op, outcome in zip(ops, result.outcomes, strict=True):
            if outcome.error is not None or outcome.row is None:
                out.append(outcome.error or StoreError(f"run {op.run_id}: nothing was written."))
            else:
                out.append(_run(outcome.row, [*hist.get(op.run_id, ()), *outcome.added]))
        return out

    def _write_one(self, op: RunOp) -> TaskRun:
        (result,) = self.write_runs([op])
        if isinstance(result, PolysyncError):
            raise result
        return result

    def assign_batch_ids(
        self,
        run_id: int,
        batch_job_id: str,
        batch_task_id: str,
        monitor_url: str | None,
        params_sent: dict[str, str],
    ) -> TaskRun:
        """D5: record the attempt's Batch ids before anything is created in Batch.

        Calling it again with the same ids (a restart before the create call) is fine;
        different ids for an attempt that already has some are refused.
        """
        return self._write_one(
            AssignIds(run_id, batch_job_id, batch_task_id, monitor_url, params_sent)
        )

    def transition(
        self,
        run_id: int,
        to_state: RunState,
        *,
        reason: str,
        expected_from: RunState | Collection[RunState] | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> TaskRun:
        """Move a run to ``to_state`` atomically, with a history row, and set ``fields``.

        Compare-and-set: with ``expected_from``, a run whose current state is not one of
        those is returned unchanged (someone else moved it first: compare ``.state`` with
        ``to_state`` to know). Without it, the move must still be legal by the run state
        table (``polysync.domain.states.check_transition``), which raises otherwise.

        Giving ``attempt=n`` (a retry, issue 4) starts a clean attempt: the previous
        attempt's Batch ids, exit code, failure and times are cleared on the run (they
        stay in ``attempts()``) unless given too. Reaching a terminal state releases any
        claim and records the attempt's outcome.
        """
        return self._write_one(
            Transition(
                run_id,
                to_state,
                reason,
                expected_from=Transition.states(expected_from),
                at=at,
                fields=fields,
            )
        )

    def fail_and_retry(
        self,
        run_id: int,
        *,
        reason: str,
        retry_reason: str,
        next_attempt: int,
        not_before: datetime,
        expected_from: RunState | Collection[RunState] | None = None,
        at: datetime | None = None,
        **fields: Any,
    ) -> TaskRun:
        """End the current attempt Failed and queue ``next_attempt``, in ONE transaction.

        Two separate transitions would leave a window where a crash loses the retry (the
        run would stay Failed for good). The history gets both rows; the Failed attempt
        keeps its outcome in ``attempts()``.
        """
        return self._write_one(
            Transition(
                run_id,
                RunState.FAILED,
                reason,
                expected_from=Transition.states(expected_from),
                at=at,
                fields=fields,
                retry=Retry(next_attempt, not_before, retry_reason),
            )
        )

    def update_run(self, run_id: int, **fields: Any) -> TaskRun:
        """Set non-state fields (diagnosis, waiting_reason, polling times, …)."""
        return self._write_one(Update(run_id, fields))

    def request_cancel(self, run_id: int) -> TaskRun:
        """Mark a run for cancellation (idempotent; a no-op once it has ended)."""
        with self._write(f"requesting cancel of run {run_id}") as conn:
            self._run_row(conn, run_id)
            conn.execute(
                update(s.task_runs)
                .where(s.task_runs.c.id == run_id, s.task_runs.c.state.in_(_NONTERMINAL))
                .values(cancel_requested=True, updated_at=utc_now())
            )
            return self._load_run(conn, run_id)

    def history(self, run_id: int) -> list[HistoryEntry]:
        with self._read(f"reading the history of run {run_id}") as conn:
            self._run_row(conn, run_id)
            return self._histories(conn, [run_id])[run_id]

    def attempts(self, run_id: int) -> list[RunAttempt]:
        with self._read(f"reading the attempts of run {run_id}") as conn:
            self._run_row(conn, run_id)
            rows = conn.execute(
                select(s.run_attempts)
                .where(s.run_attempts.c.run_id == run_id)
                .order_by(s.run_attempts.c.attempt)
            ).all()
        return [
            RunAttempt(
                run_id=r.run_id,
                attempt=r.attempt,
                batch_job_id=r.batch_job_id,
                batch_task_id=r.batch_task_id,
                monitor_url=r.monitor_url,
                params_sent=dict(r.params_sent),
                state=RunState(r.state) if r.state is not None else None,
                exit_code=r.exit_code,
                failure=_failure_from_json(r.failure),
                created_at=r.created_at,
                started_at=r.started_at,
                ended_at=r.ended_at,
            )
            for r in rows
        ]

    def list_nonterminal_runs(
        self, platform: str | None = None, *, with_history: bool = False
    ) -> list[TaskRun]:
        with self._read("listing runs in progress") as conn:
            query = select(s.task_runs).where(s.task_runs.c.state.in_(_NONTERMINAL))
            if platform is not None:
                pid = self._platform_row(conn, platform).id
                query = query.where(s.task_runs.c.platform_id == pid)
            rows = conn.execute(query.order_by(s.task_runs.c.id)).all()
            return self._runs(conn, rows, with_history)

    # --- engine: claims and leases (issue 4) ----------------------------------------

    def claim_queued(
        self, worker_id: str, now: datetime, limit: int, lease_s: float
    ) -> list[TaskRun]:
        """Claim up to ``limit`` Queued runs that are due, highest priority first.

        A run is claimable when it is not claimed or its lease has expired (a dead
        worker's runs come back). PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent
        workers never wait on or double-claim a row; SQLite: the whole claim runs under
        the database write lock. Returned without history (``get_run`` has it).
        """
        if limit <= 0:
            return []
        c = s.task_runs.c
        return self._claim_where(
            f"claiming runs for worker {worker_id}",
            and_(
                c.state == RunState.QUEUED.value,
                or_(c.not_before.is_(None), c.not_before <= now),
                _lease_free(now),
            ),
            worker_id,
            now,
            limit,
            lease_s,
        )

    def renew_leases(self, worker_id: str, now: datetime, lease_s: float) -> int:
        """Heartbeat: extend every lease ``worker_id`` still holds; returns how many."""
        c = s.task_runs.c
        with self._write(f"renewing leases of worker {worker_id}") as conn:
            result = conn.execute(
                update(s.task_runs)
                .where(c.claimed_by == worker_id, c.state.in_(_NONTERMINAL))
                .values(lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return int(result.rowcount)

    def release(self, run_id: int) -> None:
        """Give a claimed run back (e.g. on graceful shutdown) so another worker takes it."""
        with self._write(f"releasing run {run_id}") as conn:
            self._run_row(conn, run_id)
            conn.execute(
                update(s.task_runs)
                .where(s.task_runs.c.id == run_id)
                .values(claimed_by=None, lease_expires_at=None)
            )

    def adopt_runs(
        self, worker_id: str, now: datetime, limit: int, lease_s: float, *, own: bool = True
    ) -> list[TaskRun]:
        """Claim runs already in Batch whose tracker is gone, and this worker's own runs.

        Takes (a) Starting/Running runs nobody holds or whose lease expired (a dead
        worker's, or ones a `task run --no-wait` left behind) and (b) every non-terminal
        run still claimed by ``worker_id`` itself (a restart under the same id need not
        wait for its own leases to expire), Queued ones only once due — (b) only with
        ``own``: a running worker already tracks its own runs, so it asks for them once,
        on start. Queued runs otherwise go through ``claim_queued`` (priority order).
        PostgreSQL: ``SKIP LOCKED``. Returned without history.
        """
        if limit <= 0:
            return []
        c = s.task_runs.c
        in_batch = (RunState.STARTING.value, RunState.RUNNING.value)
        condition = and_(c.state.in_(in_batch), _lease_free(now))
        if own:
            mine = and_(
                c.claimed_by == worker_id,
                c.state.in_(_NONTERMINAL),
                or_(
                    c.state != RunState.QUEUED.value,
                    c.not_before.is_(None),
                    c.not_before <= now,
                ),
            )
            condition = or_(condition, mine)
        return self._claim_where(
            f"adopting runs for worker {worker_id}",
            condition,
            worker_id,
            now,
            limit,
            lease_s,
        )

    def _claim_where(
        self,
        action: str,
        condition: ColumnElement[bool],
        worker_id: str,
        now: datetime,
        limit: int,
        lease_s: float,
    ) -> list[TaskRun]:
        """Claim up to ``limit`` runs matching ``condition``, highest priority first.

        PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so concurrent workers never wait on or
        double-claim a row; SQLite: the whole claim runs under the database write lock.
        """
        c = s.task_runs.c
        order = (c.priority.desc(), c.id.asc())
        with self._write(action) as conn:
            ids = (
                conn.execute(
                    select(c.id)
                    .where(condition)
                    .order_by(*order)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
                .scalars()
                .all()
            )
            if not ids:
                return []
            conn.execute(
                update(s.task_runs)
                .where(c.id.in_(ids))
                .values(
                    claimed_by=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    updated_at=utc_now(),
                )
            )
            rows = conn.execute(select(s.task_runs).where(c.id.in_(ids)).order_by(*order)).all()
            return [_run(r) for r in rows]

    def claim_run(self, run_id: int, worker_id: str, now: datetime, lease_s: float) -> bool:
        """Claim one non-terminal run if free (or already ours); True when we hold it."""
        c = s.task_runs.c
        with self._write(f"claiming run {run_id} for {worker_id}") as conn:
            self._run_row(conn, run_id, for_update=True)
            result = conn.execute(
                update(s.task_runs)
                .where(
                    c.id == run_id,
                    c.state.in_(_NONTERMINAL),
                    or_(c.claimed_by == worker_id, _lease_free(now)),
                )
                .values(claimed_by=worker_id, lease_expires_at=now + timedelta(seconds=lease_s))
            )
            return int(result.rowcount) == 1

    def release_all(self, worker_id: str) -> int:
        """Give back every run ``worker_id`` holds (graceful shutdown); returns how many."""
        c = s.task_runs.c
        with self._write(f"releasing the runs of worker {worker_id}") as conn:
            result = conn.execute(
                update(s.task_runs)
                .where(c.claimed_by == worker_id)
                .values(claimed_by=None, lease_expires_at=None)
            )
            return int(result.rowcount)

    # --- server (issue 5) -----------------------------------------------------------

    def runs_changed_since(
        self, since: datetime, *, limit: int = 1000
    ) -> list[tuple[TaskRun, datetime]]:
        c = s.task_runs.c
        with self._read("reading recently changed runs") as conn:
            rows = conn.execute(
                select(s.task_runs)
                .where(c.updated_at >= since)
                .order_by(c.updated_at, c.id)
                .limit(limit)
            ).all()
            runs = self._runs(conn, rows, with_history=True)
        return [(run, row.updated_at) for run, row in zip(runs, rows, strict=True)]

    def add_api_token(self, name: str, role: str, digest: str) -> ApiToken:
        _require_name("token", name)
        t = s.api_tokens
        with self._write(f"adding API token {name}") as conn:
            existing = conn.execute(
                select(t.c.name).where(t.c.name_key == _key(name))
            ).scalar_one_or_none()
            if existing is not None:
                raise AlreadyExistsError(
                    f"an API token named {existing!r} already exists (names ignore case); "
                    f"choose another name, or revoke it first with "
                    f"`polysync token revoke {existing}`."
                )
            conn.execute(
                insert(t).values(
                    name=name.strip(),
                    name_key=_key(name),
                    role=role,
                    digest=digest,
                    created_at=utc_now(),
                )
            )
            row = conn.execute(select(t).where(t.c.name_key == _key(name))).one()
        return _api_token(row)

    def find_api_token(self, digest: str) -> ApiToken | None:
        t = s.api_tokens
        with self._read("checking an API token") as conn:
            row = conn.execute(select(t).where(t.c.digest == digest)).first()
        return None if row is None else _api_token(row)

    def list_api_tokens(self) -> list[ApiToken]:
        t = s.api_tokens
        with self._read("listing API tokens") as conn:
            rows = conn.execute(select(t).order_by(t.c.name_key)).all()
        return [_api_token(r) for r in rows]

    def remove_api_token(self, name: str) -> None:
        t = s.api_tokens
        with self._write(f"revoking API token {name}") as conn:
            result = conn.execute(delete(t).where(t.c.name_key == _key(name)))
            if result.rowcount == 0:
                raise NotFoundError(
                    f"API token {name!r} does not exist; run `polysync token list` to see "
                    "the tokens."
                )


def _api_token(row: Row[Any]) -> ApiToken:
    return ApiToken(id=row.id, name=row.name, role=row.role, created_at=row.created_at)


# --- messages -------------------------------------------------------------------------


def _require_name(kind: str, name: str) -> None:
    if not name or not name.strip():
        raise InputError(f"a {kind} name must not be empty.")


def _names(names: Iterable[str]) -> str:
    items = list(names)
    shown = ", ".join(items[:10])
    return shown + (f" and {len(items) - 10} more" if len(items) > 10 else "")


def _platform_exists(name: str, existing: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"a platform named {existing!r} already exists (names ignore case); choose another "
        f"name for {name!r}, or remove it first with `polysync platform remove {existing}`."
    )


def _task_exists(name: str, existing: str) -> AlreadyExistsError:
    return AlreadyExistsError(
        f"a task named {existing!r} already exists (names ignore case); choose another name "
        f"for {name!r}, or change it with `polysync task set {existing}`."
    )
