"""keyed audit chain (audit_events.chain_scheme) and the sign-in back-off table

Every event written from this revision on is chained with HMAC-SHA-256 under the audit key
(``chain_scheme = 'hmac-sha256'``); the events already in the database keep their unkeyed SHA-256
hashes and are marked ``sha256`` by the column's server default, so a clinic seeded before this
still verifies. ``sign_in_throttle`` holds the failed sign-in counters of
:mod:`analysis.auth.throttle`.

The column is added with a plain ``ALTER TABLE ... ADD COLUMN`` (no batch table copy), so the
append-only triggers on ``audit_events`` stay in place. A downgrade drops the column: keyed events
then no longer verify as unkeyed ones (a recovery step only).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "audit_events",
        sa.Column("chain_scheme", sa.String(length=16), server_default="sha256", nullable=False),
    )
    op.create_table(
        "sign_in_throttle",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.Float(), nullable=False),
        sa.Column("locked_until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttle")
    op.drop_column("audit_events", "chain_scheme")
