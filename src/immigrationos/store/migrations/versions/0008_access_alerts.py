"""Access-anomaly alerts (issue 9)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "access_alerts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("office", sa.String(length=64), nullable=True),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("measured", sa.Double(), nullable=False),
        sa.Column("baseline", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("rules_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_by", sa.String(length=40), nullable=True),
        sa.Column("reviewed_by", sa.String(length=40), nullable=True),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("review_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["raised_by"], ["users.id"], name=op.f("fk_access_alerts_raised_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["reviewed_by"], ["users.id"], name=op.f("fk_access_alerts_reviewed_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_access_alerts_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_access_alerts")),
    )
    with op.batch_alter_table("access_alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_alerts_rule"), ["rule"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_alerts_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_alerts_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_access_alerts_window_start"), ["window_start"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("access_alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_alerts_window_start"))
        batch_op.drop_index(batch_op.f("ix_access_alerts_user_id"))
        batch_op.drop_index(batch_op.f("ix_access_alerts_status"))
        batch_op.drop_index(batch_op.f("ix_access_alerts_rule"))
    op.drop_table("access_alerts")
