"""consent and subscriptions

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 16:25:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "consent_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("previous_status", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("actor", sa.String(length=80), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_changes")),
    )
    op.create_index("ix_consent_changes_lead", "consent_changes", ["lead_id", "recorded_at"], unique=False)
    op.create_table(
        "consent_topics",
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("topic", name=op.f("pk_consent_topics")),
    )
    op.create_table(
        "email_feedback",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("bounce_type", sa.String(length=10), nullable=True),
        sa.Column("message_id", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_feedback")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_email_feedback_dedup_key")),
    )
    op.create_index(op.f("ix_email_feedback_email"), "email_feedback", ["email"], unique=False)
    op.create_table(
        "erasure_tombstones",
        sa.Column("identity_hash", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("erasure_id", sa.UUID(), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("identity_hash", name=op.f("pk_erasure_tombstones")),
    )
    op.create_index(op.f("ix_erasure_tombstones_erasure_id"), "erasure_tombstones", ["erasure_id"], unique=False)
    op.create_table(
        "subscriptions",
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "method IN ('single', 'double', 'import', 'shopify', 'api', 'link', 'feedback', 'admin')",
            name=op.f("ck_subscriptions_method"),
        ),
        sa.CheckConstraint(
            "status IN ('subscribed', 'pending', 'unsubscribed', 'bounced', 'complained')",
            name=op.f("ck_subscriptions_status"),
        ),
        sa.PrimaryKeyConstraint("lead_id", "topic", name=op.f("pk_subscriptions")),
    )
    op.create_table(
        "suppressions",
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("source", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "reason IN ('bounced', 'complained', 'unsubscribed', 'manual')", name=op.f("ck_suppressions_reason")
        ),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_suppressions")),
    )
    op.create_table(
        "source_consent_settings",
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("opt_out_regime", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_source_consent_settings_source_id_sources"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_source_consent_settings")),
    )


def downgrade() -> None:
    op.drop_table("source_consent_settings")
    op.drop_table("suppressions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_erasure_tombstones_erasure_id"), table_name="erasure_tombstones")
    op.drop_table("erasure_tombstones")
    op.drop_index(op.f("ix_email_feedback_email"), table_name="email_feedback")
    op.drop_table("email_feedback")
    op.drop_table("consent_topics")
    op.drop_index("ix_consent_changes_lead", table_name="consent_changes")
    op.drop_table("consent_changes")
