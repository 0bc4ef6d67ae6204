"""refund attempts

Revision ID: b3c9e1f0a2d4
Revises: 844fed3af44c
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import shared.db  # noqa: F401 - the project's column types

revision: str = "b3c9e1f0a2d4"
down_revision: str | None = "844fed3af44c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Refunds made before this are counted as asked once if the gateway answered, else not at all.
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE payment_refunds SET attempts = 1 WHERE completed_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("payment_refunds", schema=None) as batch_op:
        batch_op.drop_column("attempts")
