"""retargeting audiences and destinations

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audience_changes",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("audience_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_changes")),
    )
    op.create_index("ix_audience_changes_audience_at", "audience_changes", ["audience_id", "at"], unique=False)
    op.create_index("ix_audience_changes_lead", "audience_changes", ["lead_id"], unique=False)
    op.create_table(
        "audience_destinations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("audience_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "config", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column(
            "credentials", postgresql.JSONB(astext_type=Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pushed_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("removed_count", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_destinations")),
    )
    op.create_index(
        op.f("ix_audience_destinations_audience_id"), "audience_destinations", ["audience_id"], unique=False
    )
    op.create_table(
        "audience_pushed",
        sa.Column("destination_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("hashes", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("destination_id", "lead_id", name=op.f("pk_audience_pushed")),
    )
    op.create_index("ix_audience_pushed_lead", "audience_pushed", ["lead_id"], unique=False)
    op.create_table(
        "audience_sync_queue",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("destination_id", sa.UUID(), nullable=False),
        sa.Column("op", sa.String(length=10), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.Column("hashes", postgresql.JSONB(astext_type=Text()), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_sync_queue")),
    )
    op.create_index("ix_audience_sync_queue_destination", "audience_sync_queue", ["destination_id", "id"], unique=False)
    op.create_index("ix_audience_sync_queue_lead", "audience_sync_queue", ["lead_id"], unique=False)
    op.create_table(
        "audiences",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'active'"), nullable=False),
        sa.Column("backfill_cursor", sa.UUID(), nullable=True),
        sa.Column("backfilled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audiences")),
        sa.UniqueConstraint("name", name=op.f("uq_audiences_name")),
    )


def downgrade() -> None:
    op.drop_table("audiences")
    op.drop_index("ix_audience_sync_queue_lead", table_name="audience_sync_queue")
    op.drop_index("ix_audience_sync_queue_destination", table_name="audience_sync_queue")
    op.drop_table("audience_sync_queue")
    op.drop_index("ix_audience_pushed_lead", table_name="audience_pushed")
    op.drop_table("audience_pushed")
    op.drop_index(op.f("ix_audience_destinations_audience_id"), table_name="audience_destinations")
    op.drop_table("audience_destinations")
    op.drop_index("ix_audience_changes_lead", table_name="audience_changes")
    op.drop_index("ix_audience_changes_audience_at", table_name="audience_changes")
    op.drop_table("audience_changes")
