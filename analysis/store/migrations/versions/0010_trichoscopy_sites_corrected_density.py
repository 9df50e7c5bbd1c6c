"""trichoscopy: the scalp site a photo was taken at (required on trichoscopy captures), the area
a count was made over and the density of the clinician's corrected count

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("site", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("follicle_counts") as batch:
        batch.add_column(sa.Column("area_cm2", sa.Float(), nullable=True))
        batch.add_column(sa.Column("confirmed_density_per_cm2", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("follicle_counts") as batch:
        batch.drop_column("confirmed_density_per_cm2")
        batch.drop_column("area_cm2")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("site")
