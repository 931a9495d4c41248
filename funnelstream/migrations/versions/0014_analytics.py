"""funnel analytics summaries

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "analytics_alerts",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_analytics_alerts")),
    )
    op.create_table(
        "analytics_cohorts",
        sa.Column("cohort_week", sa.Date(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("week_offset", sa.SmallInteger(), nullable=False),
        sa.Column(
            "source_id",
            sa.UUID(),
            server_default=sa.text("'00000000-0000-0000-0000-000000000000'::uuid"),
            nullable=False,
        ),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("leads", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "cohort_week",
            "model",
            "stage",
            "week_offset",
            "source_id",
            "utm_source",
            "utm_campaign",
            name=op.f("pk_analytics_cohorts"),
        ),
    )
    op.create_index("ix_analytics_cohorts_model_week", "analytics_cohorts", ["model", "cohort_week"], unique=False)
    op.create_table(
        "analytics_durations",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column(
            "source_id",
            sa.UUID(),
            server_default=sa.text("'00000000-0000-0000-0000-000000000000'::uuid"),
            nullable=False,
        ),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("leads", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "day",
            "model",
            "stage",
            "source_id",
            "utm_source",
            "utm_campaign",
            "bucket",
            name=op.f("pk_analytics_durations"),
        ),
    )
    op.create_index("ix_analytics_durations_model_day", "analytics_durations", ["model", "day"], unique=False)
    op.create_table(
        "analytics_email_engagement",
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("opens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("clicks", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bot_opens", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("bot_clicks", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_analytics_email_engagement")),
    )
    op.create_table(
        "analytics_funnel_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column(
            "source_id",
            sa.UUID(),
            server_default=sa.text("'00000000-0000-0000-0000-000000000000'::uuid"),
            nullable=False,
        ),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("entered", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("exited", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "model", "stage", "source_id", "utm_source", "utm_campaign", name=op.f("pk_analytics_funnel_daily")
        ),
    )
    op.create_index("ix_analytics_funnel_daily_model_day", "analytics_funnel_daily", ["model", "day"], unique=False)
    op.create_table(
        "analytics_lead_stages",
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("stage", sa.Text(), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reached", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "model", name=op.f("pk_analytics_lead_stages")),
    )
    op.create_index(
        "ix_analytics_lead_stages_stage", "analytics_lead_stages", ["model", "stage", "entered_at"], unique=False
    )
    op.create_table(
        "analytics_leads",
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "source_id",
            sa.UUID(),
            server_default=sa.text("'00000000-0000-0000-0000-000000000000'::uuid"),
            nullable=False,
        ),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_medium", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("orders", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_order_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("lead_id", name=op.f("pk_analytics_leads")),
    )
    op.create_index(
        "ix_analytics_leads_customers",
        "analytics_leads",
        ["last_order_at"],
        unique=False,
        postgresql_where=sa.text("orders > 0"),
    )
    op.create_table(
        "analytics_leads_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "source_id",
            sa.UUID(),
            server_default=sa.text("'00000000-0000-0000-0000-000000000000'::uuid"),
            nullable=False,
        ),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("new_leads", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "source_id", "utm_source", "utm_campaign", name=op.f("pk_analytics_leads_daily")
        ),
    )
    op.create_table(
        "analytics_rates",
        sa.Column("base", sa.Text(), nullable=False),
        sa.Column("quote", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("rate", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.PrimaryKeyConstraint("base", "quote", "day", name=op.f("pk_analytics_rates")),
    )
    op.create_table(
        "analytics_revenue_daily",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column(
            "source_id",
            sa.UUID(),
            server_default=sa.text("'00000000-0000-0000-0000-000000000000'::uuid"),
            nullable=False,
        ),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("orders", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("first_orders", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=4), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint(
            "day", "source_id", "utm_source", "utm_campaign", "currency", name=op.f("pk_analytics_revenue_daily")
        ),
    )
    op.create_table(
        "analytics_spend",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=True),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_analytics_spend")),
    )
    op.create_index("ix_analytics_spend_day", "analytics_spend", ["day"], unique=False)
    op.create_table(
        "analytics_touches",
        sa.Column("identity_kind", sa.Text(), nullable=False),
        sa.Column("identity_value", sa.Text(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("utm_source", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_medium", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("utm_campaign", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.PrimaryKeyConstraint("identity_kind", "identity_value", name=op.f("pk_analytics_touches")),
    )


def downgrade() -> None:
    op.drop_table("analytics_touches")
    op.drop_index("ix_analytics_spend_day", table_name="analytics_spend")
    op.drop_table("analytics_spend")
    op.drop_table("analytics_revenue_daily")
    op.drop_table("analytics_rates")
    op.drop_table("analytics_leads_daily")
    op.drop_index("ix_analytics_leads_customers", table_name="analytics_leads", postgresql_where=sa.text("orders > 0"))
    op.drop_table("analytics_leads")
    op.drop_index("ix_analytics_lead_stages_stage", table_name="analytics_lead_stages")
    op.drop_table("analytics_lead_stages")
    op.drop_index("ix_analytics_funnel_daily_model_day", table_name="analytics_funnel_daily")
    op.drop_table("analytics_funnel_daily")
    op.drop_table("analytics_email_engagement")
    op.drop_index("ix_analytics_durations_model_day", table_name="analytics_durations")
    op.drop_table("analytics_durations")
    op.drop_index("ix_analytics_cohorts_model_week", table_name="analytics_cohorts")
    op.drop_table("analytics_cohorts")
    op.drop_table("analytics_alerts")
