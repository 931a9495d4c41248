"""predictive scoring models

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lead_predictions",
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("funnel_model", sa.String(length=80), nullable=False),
        sa.Column("probability", sa.Float(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column(
            "top_features",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("predicted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("lead_id", "funnel_model", name=op.f("pk_lead_predictions")),
    )
    op.create_index(
        "ix_lead_predictions_model_probability", "lead_predictions", ["funnel_model", "probability"], unique=False
    )
    op.create_table(
        "predictive_models",
        sa.Column("version", sa.Integer(), sa.Identity(always=False, start=1), nullable=False),
        sa.Column("funnel_model", sa.String(length=80), nullable=False),
        sa.Column("target_stage", sa.String(length=80), nullable=False),
        sa.Column("horizon_days", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column(
            "metrics", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("artifact", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "params", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("rule_set_version", sa.Integer(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_predictive_models")),
    )
    op.create_index(
        "ux_predictive_models_one_active",
        "predictive_models",
        ["funnel_model"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ux_predictive_models_one_active", table_name="predictive_models", postgresql_where=sa.text("status = 'active'")
    )
    op.drop_table("predictive_models")
    op.drop_index("ix_lead_predictions_model_probability", table_name="lead_predictions")
    op.drop_table("lead_predictions")
