"""The departures' index on the document number dropped (issue 7)

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 20:30:00

No statement looks departures up by their document number: the matcher finds documents in
its in-memory index, and every read of ``departures`` goes by person, event, source record,
review status or time. The index was kept up to date on every departure written, one of
the handful of random-keyed b-trees each event touches; without it the consumers apply
about a tenth more events a second (docs/benchmarks-departures.md). A query that needs it
again should bring it back with its own migration.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("departures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_departures_document_no"))


def downgrade() -> None:
    with op.batch_alter_table("departures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_departures_document_no"), ["document_no"], unique=False
        )
