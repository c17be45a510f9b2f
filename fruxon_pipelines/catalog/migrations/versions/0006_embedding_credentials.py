"""embedding credentials: an asset's own sealed API key, and tenants' stored LLM configs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 00:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "llm_configs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("modified_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_llm_configs_tenant", "llm_configs", ["tenant"], unique=False)
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embedding_api_key", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("embedding_llm_config_id", sa.String(length=36), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.drop_column("embedding_llm_config_id")
        batch_op.drop_column("embedding_api_key")
    op.drop_index("ix_llm_configs_tenant", table_name="llm_configs")
    op.drop_table("llm_configs")
