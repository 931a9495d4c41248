"""referral codes and attributed referrals

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-23 18:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_codes",
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.lead_id"], name=op.f("fk_referral_codes_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_referral_codes")),
        sa.UniqueConstraint("code", name=op.f("uq_referral_codes_code")),
    )
    op.create_table(
        "referrals",
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("referrer_lead_id", sa.UUID(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=False),
        sa.Column("event_name", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.lead_id"], name=op.f("fk_referrals_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["referrer_lead_id"],
            ["leads.lead_id"],
            name=op.f("fk_referrals_referrer_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_referrals")),
    )
    op.create_index(op.f("ix_referrals_referrer_lead_id"), "referrals", ["referrer_lead_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_referrals_referrer_lead_id"), table_name="referrals")
    op.drop_table("referrals")
    op.drop_table("referral_codes")
