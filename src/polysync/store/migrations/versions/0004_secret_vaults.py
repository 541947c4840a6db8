"""Secret Vaults: the external secret managers ``vault://`` references resolve through.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

Written by hand to match ``polysync.store.schema`` (``test_migrations_match_schema``).
A vault row holds where the vault is and how to authenticate to it (its own credential
as a reference); secret values are never stored (docs/decisions/0010-secret-model.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secret_vaults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("name_key", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("auth_mode", sa.String(32), nullable=False),
        sa.Column("auth_secret_ref", sa.Text(), nullable=True),
        sa.Column("tenant_id", sa.String(200), nullable=True),
        sa.Column("client_id", sa.String(200), nullable=True),
        sa.Column("certificate_path", sa.Text(), nullable=True),
        sa.Column("verify_tls", sa.Boolean(), nullable=False),
        sa.Column("ca_bundle", sa.Text(), nullable=True),
        sa.Column("task_secrets", sa.JSON(none_as_null=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_secret_vaults"),
        sa.UniqueConstraint("name_key", name="uq_secret_vaults_name_key"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("secret_vaults")
