"""auto-update: assets' config and poll times, webhook registrations and events

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("auto_update", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_polled_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("next_poll_at", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_knowledge_assets_next_poll_at"), ["next_poll_at"], unique=False
        )
    op.create_table(
        "webhooks",
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("auth_mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("signing_secret", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["asset_id"], ["knowledge_assets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    op.create_index("ix_webhooks_asset_id", "webhooks", ["asset_id"], unique=False)
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("asset_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("webhook_id_hash", sa.String(length=64), nullable=True),
        sa.Column("received_at", sa.BigInteger(), nullable=False),
        sa.Column("document_ids", sa.JSON(), nullable=False),
        sa.Column("source_keys", sa.JSON(), nullable=False),
        sa.Column("full_refresh", sa.Boolean(), nullable=False),
        sa.Column("operation_id", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(["asset_id"], ["knowledge_assets.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["webhook_id_hash"], ["webhooks.id_hash"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_webhook_events_asset_id", "webhook_events", ["asset_id"], unique=False)
    op.create_index(
        "ix_webhook_events_operation_id", "webhook_events", ["operation_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_events_operation_id", table_name="webhook_events")
    op.drop_index("ix_webhook_events_asset_id", table_name="webhook_events")
    op.drop_table("webhook_events")
    op.drop_index("ix_webhooks_asset_id", table_name="webhooks")
    op.drop_table("webhooks")
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_knowledge_assets_next_poll_at"))
        batch_op.drop_column("next_poll_at")
        batch_op.drop_column("last_polled_at")
        batch_op.drop_column("auto_update")
