"""endpoint_definitions.neutral: the no-change anchor of a rating made against baseline

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


#: The demo clinic's ratings made against baseline (analysis/demo/catalogue.py at this revision),
#: so a database seeded before this column existed reads them the same way as a new one.
_DEMO_NEUTRAL = {
    "gais_clinician": 4.0,
    "gais_patient": 4.0,
    "global_photo_score": 0.0,
    "patient_satisfaction": 5.0,
}


def upgrade() -> None:
    with op.batch_alter_table("endpoint_definitions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("neutral", sa.Float(), nullable=True))
    table = sa.table(
        "endpoint_definitions", sa.column("code", sa.String()), sa.column("neutral", sa.Float())
    )
    for code, neutral in _DEMO_NEUTRAL.items():
        op.execute(table.update().where(table.c.code == code).values(neutral=neutral))


def downgrade() -> None:
    with op.batch_alter_table("endpoint_definitions", schema=None) as batch_op:
        batch_op.drop_column("neutral")
