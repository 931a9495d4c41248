"""email sends and delivery

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 16:25:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "email_sends",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("send_key", sa.Text(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("source_id", sa.UUID(), nullable=True),
        sa.Column("template_id", sa.Text(), nullable=True),
        sa.Column("template_version", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("to_email", sa.Text(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resend_of", sa.UUID(), nullable=True),
        sa.Column("raw_message", sa.LargeBinary(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "status IN ('claimed', 'sent', 'failed', 'unknown', 'dropped', 'suppressed')",
            name=op.f("ck_email_sends_status"),
        ),
        sa.CheckConstraint("kind IN ('marketing', 'transactional')", name=op.f("ck_email_sends_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_sends")),
        sa.UniqueConstraint("send_key", name=op.f("uq_email_sends_send_key")),
    )
    op.create_index(
        "ix_email_sends_lease",
        "email_sends",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'claimed'"),
    )
    op.create_index("ix_email_sends_status_created_at", "email_sends", ["status", "created_at"], unique=False)
    op.create_index("ix_email_sends_lead_id_created_at", "email_sends", ["lead_id", "created_at"], unique=False)
    op.create_table(
        "source_mail_settings",
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("from_address", sa.Text(), nullable=True),
        sa.Column("reply_to", sa.Text(), nullable=True),
        sa.Column("dkim_domain", sa.Text(), nullable=True),
        sa.Column("dkim_selector", sa.Text(), nullable=True),
        sa.Column("dkim_private_key", sa.Text(), nullable=True),
        sa.Column("default_timezone", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["sources.id"],
            name=op.f("fk_source_mail_settings_source_id_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_mail_settings")),
    )


def downgrade() -> None:
    op.drop_table("source_mail_settings")
    op.drop_index("ix_email_sends_lead_id_created_at", table_name="email_sends")
    op.drop_index("ix_email_sends_status_created_at", table_name="email_sends")
    op.drop_index("ix_email_sends_lease", table_name="email_sends", postgresql_where=sa.text("status = 'claimed'"))
    op.drop_table("email_sends")
