"""Priority scores partitioned by run on PostgreSQL (issue 6)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23 09:30:00

PostgreSQL checks a foreign key with a query and a row lock per inserted row, which made
two thirds of writing a million-person run. ``priority_scores`` becomes a table partitioned
by ``run_id``, one partition per run: a run is loaded into a table of its own and attached,
so its key and indexes are built once and each foreign key is checked with one join
(``store.bulk.insert_partition``). Stored scores move into one partition per run. SQLite has
no partitions and is left as it is.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "run_id, person_id, tier, tier_rank, lead, actionable, score, rules, evidence, blocks, "
    "office, nationality, age_band"
)
_NAMES = (
    ("pk_priority_scores", "pk_priority_scores_previous"),
    ("fk_priority_scores_person_id_persons", "fk_priority_scores_person_id_persons_previous"),
    ("fk_priority_scores_run_id_priority_runs", "fk_priority_scores_run_id_priority_runs_previous"),
)


def _create(partitioned: bool) -> None:
    options: dict[str, Any] = {"postgresql_partition_by": "LIST (run_id)"} if partitioned else {}
    op.create_table(
        "priority_scores",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("tier", sa.String(length=48), nullable=False),
        sa.Column("tier_rank", sa.Integer(), nullable=False),
        sa.Column("lead", sa.Boolean(), nullable=False),
        sa.Column("actionable", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("office", sa.String(length=64), nullable=True),
        sa.Column("nationality", sa.String(length=3), nullable=True),
        sa.Column("age_band", sa.String(length=8), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name="fk_priority_scores_person_id_persons"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["priority_runs.id"], name="fk_priority_scores_run_id_priority_runs"
        ),
        sa.PrimaryKeyConstraint("run_id", "person_id", name="pk_priority_scores"),
        **options,
    )
    op.create_index(
        "ix_priority_scores_worklist",
        "priority_scores",
        ["run_id", "office", "actionable", "tier_rank"],
        unique=False,
        postgresql_where=sa.text("lead"),
    )


def _set_aside() -> None:
    """Rename the current table, its constraints and index out of the new table's way."""
    op.rename_table("priority_scores", "priority_scores_previous")
    for name, new in _NAMES:
        op.execute(f'ALTER TABLE priority_scores_previous RENAME CONSTRAINT "{name}" TO "{new}"')
    op.execute("ALTER INDEX ix_priority_scores_worklist RENAME TO ix_priority_scores_previous")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _set_aside()
    _create(partitioned=True)
    runs = bind.execute(sa.text("SELECT DISTINCT run_id FROM priority_scores_previous")).scalars()
    for run_id in runs:
        name = "priority_scores_" + run_id.replace("-", "_")
        literal = run_id.replace("'", "''")
        op.execute(
            f"CREATE TABLE \"{name}\" PARTITION OF priority_scores FOR VALUES IN ('{literal}')"
        )
    op.execute(
        f"INSERT INTO priority_scores ({_COLUMNS}) SELECT {_COLUMNS} FROM priority_scores_previous"
    )
    op.drop_table("priority_scores_previous")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_aside()  # the partitioned table; its partitions go with it
    _create(partitioned=False)
    op.execute(
        f"INSERT INTO priority_scores ({_COLUMNS}) SELECT {_COLUMNS} FROM priority_scores_previous"
    )
    op.drop_table("priority_scores_previous")
