"""API tokens for `polysync server`, and an index for its run event stream.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01

Written by hand to match ``polysync.store.schema`` (``test_migrations_match_schema``).
Tokens are stored as SHA-256 hashes only: the token is shown once when created.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name_key", name="uq_api_tokens_name_key"),
        sa.UniqueConstraint("digest", name="uq_api_tokens_digest"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_task_runs_updated_at", "task_runs", ["updated_at"])


def downgrade() -> None:
    op.drop_index("ix_task_runs_updated_at", table_name="task_runs")
    op.drop_table("api_tokens")
