"""lead capture forms

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 18:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forms",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("source_id", sa.UUID(), nullable=True),
        sa.Column("definition", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'active'"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("status IN ('active', 'archived')", name=op.f("ck_forms_status")),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_forms_source_id_sources"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forms")),
    )
    op.create_table(
        "form_files",
        sa.Column("form_id", sa.UUID(), nullable=False),
        sa.Column("filename", sa.Text(), nullable=False),
        sa.Column("content_type", sa.Text(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_form_files_form_id_forms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("form_id", name=op.f("pk_form_files")),
    )
    op.create_table(
        "form_submissions",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("form_id", sa.UUID(), nullable=False),
        sa.Column("form_version", sa.Integer(), nullable=False),
        sa.Column("token_nonce", sa.String(length=64), nullable=False),
        sa.Column("email", sa.Text(), nullable=False),
        sa.Column("anonymous_id", sa.Text(), nullable=False),
        sa.Column("values", postgresql.JSONB(astext_type=Text()), nullable=False),
        sa.Column("consent_text", sa.Text(), nullable=False),
        sa.Column("topic", sa.String(length=80), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("confirm_ip", sa.String(length=64), nullable=True),
        sa.Column("confirm_user_agent", sa.Text(), nullable=True),
        sa.Column("lead_id", sa.UUID(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'confirmed')", name=op.f("ck_form_submissions_status")),
        sa.ForeignKeyConstraint(
            ["form_id"], ["forms.id"], name=op.f("fk_form_submissions_form_id_forms"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_submissions")),
        sa.UniqueConstraint("token_nonce", name=op.f("uq_form_submissions_token_nonce")),
    )
    op.create_index("ix_form_submissions_email", "form_submissions", ["email"], unique=False)
    op.create_index("ix_form_submissions_form", "form_submissions", ["form_id", "submitted_at"], unique=False)
    op.create_index("ix_form_submissions_lead", "form_submissions", ["lead_id"], unique=False)
    # ### end Alembic commands ###


def downgrade() -> None:
    op.drop_index("ix_form_submissions_lead", table_name="form_submissions")
    op.drop_index("ix_form_submissions_form", table_name="form_submissions")
    op.drop_index("ix_form_submissions_email", table_name="form_submissions")
    op.drop_table("form_submissions")
    op.drop_table("form_files")
    op.drop_table("forms")
    # ### end Alembic commands ###
