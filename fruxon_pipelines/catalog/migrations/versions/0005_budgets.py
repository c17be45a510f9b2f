"""token budgets and model changes: assets' budget and serving model, operations' error
category and dry-run report, the token usage ledger

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("budget", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("serving_embedding", sa.JSON(), nullable=True))
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_category", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("dry_run_report", sa.JSON(), nullable=True))
    op.create_table(
        "token_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["knowledge_assets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_token_usage_asset_day", "token_usage", ["asset_id", "day"], unique=False)
    op.create_index(
        "ix_token_usage_asset_month", "token_usage", ["asset_id", "month"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_token_usage_asset_month", table_name="token_usage")
    op.drop_index("ix_token_usage_asset_day", table_name="token_usage")
    op.drop_table("token_usage")
    with op.batch_alter_table("operations", schema=None) as batch_op:
        batch_op.drop_column("dry_run_report")
        batch_op.drop_column("error_category")
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.drop_column("serving_embedding")
        batch_op.drop_column("budget")
