"""trichoscopy: device calibrations (mm per pixel per device and magnification) and follicle
counts stored beside their photo (automatic count, points, method, version; the confirmed count)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "device_calibrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device", sa.String(length=80), nullable=False),
        sa.Column("magnification", sa.Float(), nullable=False),
        sa.Column("mm_per_px", sa.Float(), nullable=False),
        sa.Column("set_by_id", sa.Integer(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("mm_per_px > 0", name="ck_calibration_mm_per_px"),
        sa.CheckConstraint("magnification > 0", name="ck_calibration_magnification"),
        sa.ForeignKeyConstraint(["set_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device", "magnification", name="uq_device_calibration"),
    )
    op.create_table(
        "follicle_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("photo_id", sa.Integer(), nullable=False),
        sa.Column("auto_count", sa.Integer(), nullable=False),
        sa.Column("points_px", sa.JSON(), nullable=False),
        sa.Column("density_per_cm2", sa.Float(), nullable=True),
        sa.Column("mm_per_px", sa.Float(), nullable=True),
        sa.Column("calibration_id", sa.Integer(), nullable=True),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("version", sa.String(length=16), nullable=False),
        sa.Column("counted_by_id", sa.Integer(), nullable=True),
        sa.Column("counted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("confirmed_count", sa.Integer(), nullable=True),
        sa.Column("confirmed_by_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("measurement_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("auto_count >= 0", name="ck_follicle_auto_count"),
        sa.CheckConstraint(
            "confirmed_count IS NULL OR confirmed_count >= 0", name="ck_follicle_confirmed_count"
        ),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"]),
        sa.ForeignKeyConstraint(["calibration_id"], ["device_calibrations.id"]),
        sa.ForeignKeyConstraint(["counted_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["confirmed_by_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["measurement_id"], ["endpoint_measurements.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("photo_id"),
    )


def downgrade() -> None:
    op.drop_table("follicle_counts")
    op.drop_table("device_calibrations")
