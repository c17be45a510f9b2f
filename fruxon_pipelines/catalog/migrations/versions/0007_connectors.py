"""connectors: assets' sealed source auth, connector state and error category; OAuth flows
and the credentials they produce

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_auth", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("source_state", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("last_error_category", sa.String(length=32), nullable=True))
    op.create_table(
        "oauth_flows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("code_verifier", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("used_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_oauth_flows_expires_at", "oauth_flows", ["expires_at"], unique=False)
    op.create_table(
        "oauth_credentials",
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("source_type", sa.String(length=32), nullable=False),
        sa.Column("tokens", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("consumed_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("key_hash"),
    )
    op.create_index(
        "ix_oauth_credentials_expires_at", "oauth_credentials", ["expires_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_oauth_credentials_expires_at", table_name="oauth_credentials")
    op.drop_table("oauth_credentials")
    op.drop_index("ix_oauth_flows_expires_at", table_name="oauth_flows")
    op.drop_table("oauth_flows")
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.drop_column("last_error_category")
        batch_op.drop_column("source_state")
        batch_op.drop_column("source_auth")
