"""Priority scores stored in their key's b-tree on SQLite (issue 6)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-23 09:00:00

On SQLite a table with a composite primary key keeps each row in a rowid b-tree and the key
again in an index beside it, so a run's million rows were written twice. ``WITHOUT ROWID``
stores them once, ordered by (run, person), the order every reader asks for. The table is
rebuilt with its rows, foreign keys and the worklist index; PostgreSQL has no rowid and is
left as it is.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "priority_scores", recreate="always", table_kwargs={"sqlite_with_rowid": with_rowid}
    ) as batch_op:
        batch_op.drop_index("ix_priority_scores_worklist")
        batch_op.create_index(
            "ix_priority_scores_worklist",
            ["run_id", "office", "actionable", "tier_rank"],
            unique=False,
            sqlite_where=sa.text("lead = 1"),
        )


def upgrade() -> None:
    _rebuild(with_rowid=False)


def downgrade() -> None:
    _rebuild(with_rowid=True)
