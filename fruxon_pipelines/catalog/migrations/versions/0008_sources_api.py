"""sources API: asset selection, document operation links, change flag, attributes and
text; workspace API keys

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 04:30:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("selection", sa.String(length=16), nullable=False, server_default="ALL")
        )
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operation_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("outcome_operation_id", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("changed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("attributes", sa.JSON(), nullable=True))
        batch_op.create_index("ix_documents_modified_at", ["modified_at"], unique=False)
    op.create_table(
        "document_texts",
        sa.Column("document_id", sa.String(length=36), nullable=False),
        sa.Column("paragraphs", sa.JSON(), nullable=False),
        sa.Column("previous_paragraphs", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("document_id"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_api_keys_tenant", "api_keys", ["tenant"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_api_keys_tenant", table_name="api_keys")
    op.drop_table("api_keys")
    op.drop_table("document_texts")
    with op.batch_alter_table("documents", schema=None) as batch_op:
        batch_op.drop_index("ix_documents_modified_at")
        batch_op.drop_column("attributes")
        batch_op.drop_column("changed")
        batch_op.drop_column("outcome_operation_id")
        batch_op.drop_column("operation_id")
    with op.batch_alter_table("knowledge_assets", schema=None) as batch_op:
        batch_op.drop_column("selection")
