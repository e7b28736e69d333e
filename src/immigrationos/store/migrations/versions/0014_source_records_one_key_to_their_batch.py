"""A source record's keys to its batch and to its source made one (issue 3)

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25 04:10:00

``source_records`` had a foreign key to ``ingest_batches`` and another to ``sources``.
PostgreSQL checks each with one query per inserted row, and the two were about half of the
server's time in a bulk load of records. One composite key, (batch, source) to the batch's
(id, source), checks both at once and says more: a record's source is its batch's source
(the batch's own key holds that source to ``sources``). A unique index on the batches' (id,
source) is what the key refers to. Existing rows are checked as the key is added (on
SQLite, by the foreign-key check every migration ends with: ``store.migrate``).
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KEY = "fk_source_records_batch_id_ingest_batches"


def upgrade() -> None:
    op.create_index(
        "ix_ingest_batches_id_source_id", "ingest_batches", ["id", "source_id"], unique=True
    )
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_constraint("fk_source_records_source_id_sources", type_="foreignkey")
        batch_op.drop_constraint(_KEY, type_="foreignkey")
        batch_op.create_foreign_key(
            _KEY, "ingest_batches", ["batch_id", "source_id"], ["id", "source_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.drop_constraint(_KEY, type_="foreignkey")
        batch_op.create_foreign_key(_KEY, "ingest_batches", ["batch_id"], ["id"])
        batch_op.create_foreign_key(
            "fk_source_records_source_id_sources", "sources", ["source_id"], ["id"]
        )
    op.drop_index("ix_ingest_batches_id_source_id", table_name="ingest_batches")
