"""blinded rating studies: studies, invited raters, photo pairs, per-rater assignments and ratings

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rating_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=160), nullable=False),
        sa.Column("endpoint_code", sa.String(length=64), nullable=False),
        sa.Column("protocol_ids", sa.JSON(), nullable=False),
        sa.Column("views", sa.JSON(), nullable=False),
        sa.Column("followup_session", sa.Integer(), nullable=True),
        sa.Column("followup_days", sa.Integer(), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("inclusion", sa.JSON(), nullable=False),
        sa.Column("exclusions", sa.JSON(), nullable=False),
        sa.Column("repeat_share", sa.Float(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name="ck_rating_study_status"),
        sa.CheckConstraint(
            "repeat_share >= 0 AND repeat_share <= 1", name="ck_rating_repeat_share"
        ),
        sa.ForeignKeyConstraint(["created_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "rating_raters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["rating_studies.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "user_id", name="uq_rating_rater"),
    )
    op.create_table(
        "rating_pairs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("view", sa.String(length=32), nullable=False),
        sa.Column("baseline_photo_id", sa.Integer(), nullable=False),
        sa.Column("followup_photo_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["study_id"], ["rating_studies.id"]),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"]),
        sa.ForeignKeyConstraint(["baseline_photo_id"], ["photos.id"]),
        sa.ForeignKeyConstraint(["followup_photo_id"], ["photos.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "position", name="uq_rating_pair_position"),
    )
    op.create_table(
        "rating_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater_id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("order_index", sa.Integer(), nullable=False),
        sa.Column("left_is_baseline", sa.Boolean(), nullable=False),
        sa.Column("repeat", sa.Boolean(), nullable=False),
        sa.Column("better_side", sa.String(length=8), nullable=True),
        sa.Column("grade", sa.Float(), nullable=True),
        sa.Column("left_score", sa.Float(), nullable=True),
        sa.Column("right_score", sa.Float(), nullable=True),
        sa.Column("change", sa.Float(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["rating_studies.id"]),
        sa.ForeignKeyConstraint(["rater_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["pair_id"], ["rating_pairs.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rater_id", "pair_id", "repeat", name="uq_rating_assignment"),
        sa.UniqueConstraint("study_id", "rater_id", "order_index", name="uq_rating_order"),
    )
    for table, columns in (
        ("rating_raters", ("study_id", "user_id")),
        ("rating_pairs", ("study_id", "series_id")),
        ("rating_assignments", ("study_id", "rater_id", "pair_id")),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.create_index(batch_op.f(f"ix_{table}_{column}"), [column], unique=False)


def downgrade() -> None:
    for table, columns in (
        ("rating_assignments", ("study_id", "rater_id", "pair_id")),
        ("rating_pairs", ("study_id", "series_id")),
        ("rating_raters", ("study_id", "user_id")),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_index(batch_op.f(f"ix_{table}_{column}"))
    for table in ("rating_assignments", "rating_pairs", "rating_raters", "rating_studies"):
        op.drop_table(table)
