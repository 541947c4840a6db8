"""The pool each run's current attempt went to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

Written by hand to match ``polysync.store.schema`` (``test_migrations_match_schema``).
The worker lists the nodes of the pools its runs use to see their tasks start and end
(decision 0009); runs submitted before this revision have none and are polled as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("task_runs", sa.Column("batch_pool_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("task_runs") as batch:
        batch.drop_column("batch_pool_id")
