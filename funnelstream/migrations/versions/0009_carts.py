"""commerce carts and reminders

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cart_recoveries",
        sa.Column("order_cart_key", sa.Text(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("order_id", sa.Text(), nullable=True),
        sa.Column("reminded_cart_key", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("reminder_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_cart_key", name=op.f("pk_cart_recoveries")),
    )
    op.create_index(op.f("ix_cart_recoveries_source_id"), "cart_recoveries", ["source_id"], unique=False)
    op.create_table(
        "cart_reminders",
        sa.Column("cart_key", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("send_key", sa.Text(), nullable=True),
        sa.Column("code", sa.Text(), nullable=True),
        sa.Column("incentive", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cart_key", "step", name=op.f("pk_cart_reminders")),
    )
    op.create_index("ix_cart_reminders_lead", "cart_reminders", ["lead_id", "at"], unique=False)
    op.create_index("ix_cart_reminders_source", "cart_reminders", ["source_id"], unique=False)
    op.create_table(
        "carts",
        sa.Column("cart_key", sa.Text(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("currency", sa.Text(), nullable=True),
        sa.Column("total", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ordered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column(
            "steps_sent", postgresql.ARRAY(sa.Integer()), server_default=sa.text("'{}'::integer[]"), nullable=False
        ),
        sa.Column("next_reminder_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'checkout', 'ordered', 'emptied')", name=op.f("ck_carts_status")),
        sa.PrimaryKeyConstraint("cart_key", name=op.f("pk_carts")),
    )
    op.create_index(op.f("ix_carts_lead_id"), "carts", ["lead_id"], unique=False)
    op.create_index(
        "ix_carts_next_reminder_at",
        "carts",
        ["next_reminder_at"],
        unique=False,
        postgresql_where=sa.text("next_reminder_at IS NOT NULL"),
    )
    op.create_index("ix_carts_source_status", "carts", ["source_id", "status"], unique=False)
    op.create_table(
        "commerce_shop_settings",
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source_id", name=op.f("pk_commerce_shop_settings")),
    )
    op.create_table(
        "incentive_codes",
        sa.Column("source_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=10), nullable=False),
        sa.Column("cart_key", sa.Text(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("given_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("source_id", "code", name=op.f("pk_incentive_codes")),
    )
    op.create_index(
        "ix_incentive_codes_free",
        "incentive_codes",
        ["source_id", "created_at"],
        unique=False,
        postgresql_where=sa.text("cart_key IS NULL"),
    )
    op.create_index(
        "ux_incentive_codes_given",
        "incentive_codes",
        ["cart_key", "step"],
        unique=True,
        postgresql_where=sa.text("cart_key IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ux_incentive_codes_given", table_name="incentive_codes", postgresql_where=sa.text("cart_key IS NOT NULL")
    )
    op.drop_index("ix_incentive_codes_free", table_name="incentive_codes", postgresql_where=sa.text("cart_key IS NULL"))
    op.drop_table("incentive_codes")
    op.drop_table("commerce_shop_settings")
    op.drop_index("ix_carts_source_status", table_name="carts")
    op.drop_index(
        "ix_carts_next_reminder_at", table_name="carts", postgresql_where=sa.text("next_reminder_at IS NOT NULL")
    )
    op.drop_index(op.f("ix_carts_lead_id"), table_name="carts")
    op.drop_table("carts")
    op.drop_index("ix_cart_reminders_source", table_name="cart_reminders")
    op.drop_index("ix_cart_reminders_lead", table_name="cart_reminders")
    op.drop_table("cart_reminders")
    op.drop_index(op.f("ix_cart_recoveries_source_id"), table_name="cart_recoveries")
    op.drop_table("cart_recoveries")
