"""experiments

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiment_assignments",
        sa.Column("experiment_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.UUID(), nullable=False),
        sa.Column("variant", sa.Text(), nullable=False),
        sa.Column("enrollment_id", sa.UUID(), nullable=False),
        sa.Column("send_key", sa.Text(), nullable=True),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("experiment_id", "lead_id", name=op.f("pk_experiment_assignments")),
    )
    op.create_index(
        "ix_experiment_assignments_experiment_variant",
        "experiment_assignments",
        ["experiment_id", "variant"],
        unique=False,
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("sequence_id", sa.UUID(), nullable=False),
        sa.Column("step_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("variants", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("goal_event", sa.Text(), nullable=True),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("alpha", sa.Float(), nullable=False),
        sa.Column("min_sample", sa.Integer(), nullable=False),
        sa.Column("auto_winner", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("status", sa.String(length=10), server_default=sa.text("'running'"), nullable=False),
        sa.Column("winner", sa.Text(), nullable=True),
        sa.Column("decision", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("kind IN ('send', 'path')", name=op.f("ck_experiments_kind")),
        sa.CheckConstraint("metric IN ('open', 'click', 'conversion', 'revenue')", name=op.f("ck_experiments_metric")),
        sa.CheckConstraint("status IN ('running', 'decided', 'stopped')", name=op.f("ck_experiments_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiments")),
    )
    op.create_index(
        "uq_experiments_live_step",
        "experiments",
        ["sequence_id", "step_id"],
        unique=True,
        postgresql_where=sa.text("status <> 'stopped'"),
    )


def downgrade() -> None:
    op.drop_index("uq_experiments_live_step", table_name="experiments", postgresql_where=sa.text("status <> 'stopped'"))
    op.drop_table("experiments")
    op.drop_index("ix_experiment_assignments_experiment_variant", table_name="experiment_assignments")
    op.drop_table("experiment_assignments")
