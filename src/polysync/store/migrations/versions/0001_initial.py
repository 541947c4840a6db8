"""Initial schema: platforms, jobs, tasks, runs with attempts and history, meta.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written by hand to match ``polysync.store.schema`` (the test ``test_migrations_match_schema``
compares the two on every run). Engine columns for issue 4 (claims, leases, priorities,
attempts, retry delays, poll scheduling) are here from the start.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _json(name: str, *, nullable: bool) -> sa.Column[object]:
    return sa.Column(name, sa.JSON(), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "meta",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_meta"),
    )
    op.create_table(
        "platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("account_url", sa.Text(), nullable=False),
        sa.Column("account_name", sa.String(200), nullable=False),
        sa.Column("subscription_id", sa.String(200), nullable=False),
        sa.Column("resource_group", sa.String(200), nullable=False),
        sa.Column("auth_mode", sa.String(32), nullable=False),
        sa.Column("auth_secret_ref", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.String(200), nullable=True),
        sa.Column("client_id", sa.String(200), nullable=True),
        sa.Column("certificate_path", sa.Text(), nullable=True),
        sa.Column("verify_tls", sa.Boolean(), nullable=False),
        sa.Column("ca_bundle", sa.Text(), nullable=True),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_platforms"),
        sa.UniqueConstraint("name_key", name="uq_platforms_name_key"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("external_key", sa.String(64), nullable=False),
        sa.Column("job_type", sa.String(64), nullable=False),
        _json("parameters", nullable=False),
        _json("overrides", nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _json("tags", nullable=False),
        _json("cloned_defaults", nullable=False),
        _json("warnings", nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("name_key", name="uq_jobs_name_key"),
        sa.UniqueConstraint("platform_id", "external_key", name="uq_jobs_platform_external"),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["platforms.id"],
            ondelete="CASCADE",
            name="fk_jobs_platform_id_platforms",
        ),
    )
    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        _json("params", nullable=False),
        sa.Column("execution_timeout_s", sa.Integer(), nullable=True),
        sa.Column("retry_enabled", sa.Boolean(), nullable=False),
        sa.Column("retry_max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_backoff", sa.String(32), nullable=False),
        sa.Column("retry_initial_delay_s", sa.Float(), nullable=False),
        sa.Column("retry_max_delay_s", sa.Float(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tasks"),
        sa.UniqueConstraint("name_key", name="uq_tasks_name_key"),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], ondelete="CASCADE", name="fk_tasks_job_id_jobs"
        ),
    )
    op.create_index("ix_tasks_job_id", "tasks", ["job_id"])
    op.create_table(
        "task_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("task_name", sa.String(200), nullable=False),
        sa.Column("job_name", sa.String(200), nullable=False),
        sa.Column("platform_name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("trigger", sa.String(32), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("batch_job_id", sa.String(64), nullable=True),
        sa.Column("batch_task_id", sa.String(64), nullable=True),
        sa.Column("monitor_url", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        _json("failure", nullable=True),
        _json("params_sent", nullable=False),
        _json("param_overrides", nullable=False),
        sa.Column("diagnosis", sa.Text(), nullable=True),
        sa.Column("waiting_reason", sa.Text(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        _ts("created_at", nullable=False),
        _ts("updated_at", nullable=False),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        _ts("not_before", nullable=True),
        sa.Column("claimed_by", sa.String(200), nullable=True),
        _ts("lease_expires_at", nullable=True),
        _ts("last_polled_at", nullable=True),
        _ts("next_poll_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_task_runs"),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], ondelete="CASCADE", name="fk_task_runs_task_id_tasks"
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], ondelete="CASCADE", name="fk_task_runs_job_id_jobs"
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["platforms.id"],
            ondelete="CASCADE",
            name="fk_task_runs_platform_id_platforms",
        ),
        # Run ids feed Batch job ids (D5): never reuse one, even after deletions.
        sqlite_autoincrement=True,
    )
    op.create_index("ix_task_runs_task_id", "task_runs", ["task_id"])
    op.create_index("ix_task_runs_platform_id", "task_runs", ["platform_id"])
    op.create_index("ix_task_runs_state_priority", "task_runs", ["state", "priority", "id"])
    op.create_index("ix_task_runs_batch_job_id", "task_runs", ["batch_job_id"])
    op.create_table(
        "run_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("batch_job_id", sa.String(64), nullable=False),
        sa.Column("batch_job_key", sa.String(64), nullable=False),
        sa.Column("batch_task_id", sa.String(64), nullable=False),
        sa.Column("monitor_url", sa.Text(), nullable=True),
        _json("params_sent", nullable=False),
        sa.Column("state", sa.String(32), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        _json("failure", nullable=True),
        _ts("created_at", nullable=False),
        _ts("started_at", nullable=True),
        _ts("ended_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_run_attempts"),
        sa.UniqueConstraint("batch_job_key", name="uq_run_attempts_batch_job_key"),
        sa.UniqueConstraint("run_id", "attempt", name="uq_run_attempts_run_attempt"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["task_runs.id"],
            ondelete="CASCADE",
            name="fk_run_attempts_run_id_task_runs",
        ),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "run_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        _ts("at", nullable=False),
        sa.Column("from_state", sa.String(32), nullable=True),
        sa.Column("to_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_run_history"),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["task_runs.id"],
            ondelete="CASCADE",
            name="fk_run_history_run_id_task_runs",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_run_history_run_id", "run_history", ["run_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_run_history_run_id", "run_history"),
        ("ix_task_runs_batch_job_id", "task_runs"),
        ("ix_task_runs_state_priority", "task_runs"),
        ("ix_task_runs_platform_id", "task_runs"),
        ("ix_task_runs_task_id", "task_runs"),
        ("ix_tasks_job_id", "tasks"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("run_history", "run_attempts", "task_runs", "tasks", "jobs", "platforms", "meta"):
        op.drop_table(table)
