"""The database schema, as SQLAlchemy Core tables.

Why Core and not the ORM: the domain objects (``polysync.domain.models``) are frozen,
slotted dataclasses with no I/O. Mapping them with the ORM would either make them mutable
ORM classes or need a second set of mapped classes plus an identity map and lazy loading
we do not want near an async engine. With Core, ``sql.py`` turns rows into dataclasses in
one visible place, and every query is explicit.

Conventions (they make the schema portable between SQLite and PostgreSQL):

- Integer surrogate keys; foreign keys use them, ``ON DELETE CASCADE`` (the store refuses
  to delete anything in use unless the caller forces it, see ``sql.py``).
- Names are unique ignoring case through a ``*_key`` column holding ``name.lower()``
  (portable, unlike functional or ``COLLATE NOCASE`` indexes).
- Enums are plain strings (no database enum types: a new state needs no migration).
- Datetimes go through :class:`UtcDateTime`: aware UTC in and out on both databases.
- ``task_runs.id`` never reuses a number (``sqlite_autoincrement``; PostgreSQL sequences
  never do): Batch job ids are derived from the run id (D5), so a reused id could adopt a
  stranger's Batch job.
- Secret *values* have no column anywhere; only references (``vault://…``, ``env:``,
  ``file:``) are stored (docs/decisions/0010-secret-model.md).

Any change here needs a new file in ``migrations/versions/``; the test
``test_migrations_match_schema`` fails when the two disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so migrations can refer to them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

NAME_LEN = 200
ID_LEN = 64  # Batch ids are at most 64 characters (NOTES.md)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out.

    SQLite has no time zone support, so values are stored naive (in UTC) and given their
    ``tzinfo`` back when read. PostgreSQL stores ``timestamptz`` and returns it in the
    session's zone, which we convert. A naive datetime going in is a bug in the caller:
    refuse it instead of guessing its zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> JSON:
    # none_as_null: a Python None is SQL NULL, not the JSON text 'null'.
    return JSON(none_as_null=True)


meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
"""Facts about this database: ``installation_id`` (8 characters, used in Batch ids)."""

platforms = Table(
    "platforms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("name_key", String(NAME_LEN), nullable=False, unique=True),
    Column("account_url", Text, nullable=False),
    Column("account_name", String(NAME_LEN), nullable=False),
    Column("subscription_id", String(NAME_LEN), nullable=False),
    Column("resource_group", String(NAME_LEN), nullable=False),
    Column("auth_mode", String(32), nullable=False),
    # "env:NAME" or "file:PATH": where the key / client secret / token lives. Never a value.
    Column("auth_secret_ref", Text, nullable=True),
    Column("tenant_id", String(NAME_LEN), nullable=True),
    Column("client_id", String(NAME_LEN), nullable=True),
    Column("certificate_path", Text, nullable=True),
    Column("verify_tls", Boolean, nullable=False),
    Column("ca_bundle", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("name_key", String(NAME_LEN), nullable=False, unique=True),
    Column(
        "platform_id",
        Integer,
        ForeignKey("platforms.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("external_id", String(ID_LEN), nullable=False),
    # Batch ids are unique ignoring case (NOTES.md), so the template is found that way too.
    Column("external_key", String(ID_LEN), nullable=False),
    Column("job_type", String(64), nullable=False),
    # Lists/objects that are only ever read and written whole: JSON, not child tables.
    Column("parameters", _json(), nullable=False),
    Column("overrides", _json(), nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", _json(), nullable=False),
    Column("cloned_defaults", _json(), nullable=False),
    Column("warnings", _json(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("platform_id", "external_key", name="uq_jobs_platform_external"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("name_key", String(NAME_LEN), nullable=False, unique=True),
    Column(
        "job_id",
        Integer,
        ForeignKey("jobs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # Literals or env:/file: references; Secret parameters only ever as references.
    Column("params", _json(), nullable=False),
    Column("execution_timeout_s", Integer, nullable=True),
    Column("retry_enabled", Boolean, nullable=False),
    Column("retry_max_attempts", Integer, nullable=False),
    Column("retry_backoff", String(32), nullable=False),
    Column("retry_initial_delay_s", Float, nullable=False),
    Column("retry_max_delay_s", Float, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

task_runs = Table(
    "task_runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "task_id", Integer, ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, index=True
    ),
    Column("job_id", Integer, ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column(
        "platform_id",
        Integer,
        ForeignKey("platforms.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    # Names copied at creation: they never change (no renames), and reads need no joins.
    Column("task_name", String(NAME_LEN), nullable=False),
    Column("job_name", String(NAME_LEN), nullable=False),
    Column("platform_name", String(NAME_LEN), nullable=False),
    Column("state", String(32), nullable=False),
    Column("trigger", String(32), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    # The current attempt's Batch objects (every attempt's are in run_attempts).
    Column("batch_job_id", String(ID_LEN), nullable=True),
    Column("batch_task_id", String(ID_LEN), nullable=True),
    # The pool the attempt's job went to (its template's poolInfo.poolId; None for an
    # auto pool): the worker lists that pool's nodes to see tasks start and end (0009).
    Column("batch_pool_id", String(ID_LEN), nullable=True),
    Column("monitor_url", Text, nullable=True),
    Column("exit_code", Integer, nullable=True),
    # {"category", "code", "message", "details": [[k, v], ...], "stderr_tail"}
    Column("failure", _json(), nullable=True),
    # Redacted by the caller: secrets are "***" before they reach the store.
    Column("params_sent", _json(), nullable=False),
    Column("param_overrides", _json(), nullable=False),
    Column("diagnosis", Text, nullable=True),
    Column("waiting_reason", Text, nullable=True),  # e.g. "waiting for quota"
    Column("cancel_requested", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    # Engine (issue 4): retry delay, claims with leases, adaptive polling.
    Column("not_before", UtcDateTime, nullable=True),
    Column("claimed_by", String(NAME_LEN), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("last_polled_at", UtcDateTime, nullable=True),
    Column("next_poll_at", UtcDateTime, nullable=True),
    Index("ix_task_runs_state_priority", "state", "priority", "id"),
    Index("ix_task_runs_batch_job_id", "batch_job_id"),
    # The server's event stream reads "runs changed since T" twice a second (0002).
    Index("ix_task_runs_updated_at", "updated_at"),
    sqlite_autoincrement=True,
)

run_attempts = Table(
    "run_attempts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("task_runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempt", Integer, nullable=False),
    Column("batch_job_id", String(ID_LEN), nullable=False),
    # Unique ignoring case, like Batch itself: the database refuses a second run or attempt
    # claiming the same Batch job (D5).
    Column("batch_job_key", String(ID_LEN), nullable=False, unique=True),
    Column("batch_task_id", String(ID_LEN), nullable=False),
    Column("monitor_url", Text, nullable=True),
    Column("params_sent", _json(), nullable=False),
    Column("state", String(32), nullable=True),  # the attempt's outcome once terminal
    Column("exit_code", Integer, nullable=True),
    Column("failure", _json(), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("ended_at", UtcDateTime, nullable=True),
    UniqueConstraint("run_id", "attempt", name="uq_run_attempts_run_attempt"),
    sqlite_autoincrement=True,
)
"""One row per attempt that reached the point of having Batch ids (issue 4 retries)."""

run_history = Table(
    "run_history",
    metadata,
    Column("id", Integer, primary_key=True),
    Column(
        "run_id",
        Integer,
        ForeignKey("task_runs.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("attempt", Integer, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("from_state", String(32), nullable=True),
    Column("to_state", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    sqlite_autoincrement=True,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("name_key", String(NAME_LEN), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    # SHA-256 (hex) of the token: the token itself is shown once and never stored.
    Column("digest", String(64), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)
"""API tokens of ``polysync server`` (migration 0002): a name, a role and a hash."""

secret_vaults = Table(
    "secret_vaults",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(NAME_LEN), nullable=False),
    Column("name_key", String(NAME_LEN), nullable=False, unique=True),
    # "azure-key-vault" (the only provider of this edition; a string, so a new one needs
    # no migration).
    Column("provider", String(32), nullable=False),
    Column("url", Text, nullable=False),
    Column("auth_mode", String(32), nullable=False),
    # Where the vault's own credential lives (client secret, certificate password, bearer
    # token): a reference like a platform's, never a value.
    Column("auth_secret_ref", Text, nullable=True),
    Column("tenant_id", String(NAME_LEN), nullable=True),
    Column("client_id", String(NAME_LEN), nullable=True),
    Column("certificate_path", Text, nullable=True),
    Column("verify_tls", Boolean, nullable=False),
    Column("ca_bundle", Text, nullable=True),
    # Glob patterns of the secret names Task and run parameters may refer to (0010).
    Column("task_secrets", _json(), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)
"""Secret Vaults (migration 0004): where ``vault://NAME/SECRET`` references are resolved."""

console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    # SHA-256 (hex) of the session id: the id itself lives only in the browser's cookie.
    Column("digest", String(64), nullable=False, unique=True),
    # Revoking the token (deleting its row) ends every session signed in with it.
    Column(
        "token_id",
        Integer,
        ForeignKey("api_tokens.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", UtcDateTime, nullable=False),
    # The absolute end, fixed at sign-in; the idle end is last_seen_at + the idle timeout.
    Column("expires_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    sqlite_autoincrement=True,
)
"""Web console sessions (migration 0005): a signed-in browser, bound to one API token."""
