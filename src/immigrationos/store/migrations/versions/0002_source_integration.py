"""source integration

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Source integration: quarantine, tombstones, per-request disclosure authorizations, record
flags and row numbers, and the source and record of every fact (lineage, purpose
enforcement and retention all follow them).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tombstones",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("derived_removed", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_tombstones_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tombstones")),
    )
    with op.batch_alter_table("tombstones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tombstones_source_id"), ["source_id"], unique=False)

    op.create_table(
        "disclosure_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("agreement_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=48), nullable=False),
        sa.Column("requested_by", sa.String(length=40), nullable=False),
        sa.Column("investigation", sa.String(length=100), nullable=False),
        sa.Column("subject", sa.JSON(), nullable=False),
        sa.Column("periods", sa.JSON(), nullable=False),
        sa.Column("statutory_authority", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agreement_id"],
            ["agreements.id"],
            name=op.f("fk_disclosure_requests_agreement_id_agreements"),
        ),
        sa.ForeignKeyConstraint(
            ["requested_by"], ["users.id"], name=op.f("fk_disclosure_requests_requested_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_disclosure_requests_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disclosure_requests")),
    )
    with op.batch_alter_table("disclosure_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_disclosure_requests_source_id"), ["source_id"], unique=False
        )

    op.create_table(
        "quarantined_rows",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("row_number", sa.Integer(), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=48), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resolved_by_batch_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["ingest_batches.id"],
            name=op.f("fk_quarantined_rows_batch_id_ingest_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["resolved_by_batch_id"],
            ["ingest_batches.id"],
            name=op.f("fk_quarantined_rows_resolved_by_batch_id_ingest_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name=op.f("fk_quarantined_rows_source_id_sources")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quarantined_rows")),
    )
    with op.batch_alter_table("quarantined_rows", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_quarantined_rows_batch_id"), ["batch_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_quarantined_rows_reason"), ["reason"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_quarantined_rows_source_id"), ["source_id"], unique=False
        )

    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("flag_reason", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_addresses_source_id"), ["source_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_addresses_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("admissions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_admissions_source_id"), ["source_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_admissions_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purpose_fields", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )

    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "first_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(sa.Column("source_record_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_appeals_source_id"), ["source_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_appeals_source_record_id"), ["source_record_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_appeals_source_id_sources"), "sources", ["source_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_appeals_source_record_id_source_records"),
            "source_records",
            ["source_record_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    with op.batch_alter_table("benefit_applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_benefit_applications_source_id"), ["source_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_benefit_applications_source_id_sources"),
            "sources",
            ["source_id"],
            ["id"],
        )

    with op.batch_alter_table("convictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_convictions_source_id"), ["source_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_convictions_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("court_cases", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_court_cases_source_id"), ["source_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_court_cases_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("court_decisions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "first_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(sa.Column("source_record_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_court_decisions_source_id"), ["source_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_court_decisions_source_record_id"), ["source_record_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_court_decisions_source_id_sources"), "sources", ["source_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_court_decisions_source_record_id_source_records"),
            "source_records",
            ["source_record_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    with op.batch_alter_table("departures", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "first_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(sa.Column("source_record_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_departures_source_id"), ["source_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_departures_source_record_id"), ["source_record_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_departures_source_record_id_source_records"),
            "source_records",
            ["source_record_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_departures_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_encounters_source_id"), ["source_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_encounters_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "first_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(sa.Column("source_record_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_hearings_source_id"), ["source_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_hearings_source_record_id"), ["source_record_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_hearings_source_id_sources"), "sources", ["source_id"], ["id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_hearings_source_record_id_source_records"),
            "source_records",
            ["source_record_id"],
            ["id"],
            ondelete="RESTRICT",
        )

    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_identifiers_source_id"), ["source_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_identifiers_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input_header", sa.Text(), nullable=True))

    with op.batch_alter_table("proceedings", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "first_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(
            sa.Column(
                "last_seen_at",
                sa.DateTime(timezone=True),
                nullable=False,
                server_default=sa.func.now(),
            )
        )
        batch_op.add_column(sa.Column("source_record_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_proceedings_source_id"), ["source_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_proceedings_source_record_id"), ["source_record_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_proceedings_source_record_id_source_records"),
            "source_records",
            ["source_record_id"],
            ["id"],
            ondelete="RESTRICT",
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_proceedings_source_id_sources"), "sources", ["source_id"], ["id"]
        )

    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("flags", sa.JSON(), nullable=False, server_default=sa.text("'{}'"))
        )
        batch_op.add_column(sa.Column("row_number", sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f("ix_source_records_source_key"))

    with op.batch_alter_table("status_episodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=64), nullable=True))
        batch_op.alter_column("person_id", existing_type=sa.VARCHAR(length=40), nullable=True)
        batch_op.create_index(
            batch_op.f("ix_status_episodes_source_id"), ["source_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_status_episodes_source_id_sources"), "sources", ["source_id"], ["id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("status_episodes", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_status_episodes_source_id_sources"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_status_episodes_source_id"))
        batch_op.alter_column("person_id", existing_type=sa.VARCHAR(length=40), nullable=False)
        batch_op.drop_column("source_id")

    with op.batch_alter_table("source_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_source_records_source_key"), ["source_id", "record_key"], unique=False
        )
        batch_op.drop_column("row_number")
        batch_op.drop_column("flags")

    with op.batch_alter_table("proceedings", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_proceedings_source_id_sources"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_proceedings_source_record_id_source_records"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_proceedings_source_record_id"))
        batch_op.drop_index(batch_op.f("ix_proceedings_source_id"))
        batch_op.drop_column("source_id")
        batch_op.drop_column("source_record_id")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("first_seen_at")

    with op.batch_alter_table("ingest_batches", schema=None) as batch_op:
        batch_op.drop_column("input_header")

    with op.batch_alter_table("identifiers", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_identifiers_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_identifiers_source_id"))
        batch_op.drop_column("source_id")

    with op.batch_alter_table("hearings", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_hearings_source_record_id_source_records"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_hearings_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_hearings_source_record_id"))
        batch_op.drop_index(batch_op.f("ix_hearings_source_id"))
        batch_op.drop_column("source_id")
        batch_op.drop_column("source_record_id")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("first_seen_at")

    with op.batch_alter_table("encounters", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_encounters_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_encounters_source_id"))
        batch_op.drop_column("source_id")

    with op.batch_alter_table("departures", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_departures_source_id_sources"), type_="foreignkey")
        batch_op.drop_constraint(
            batch_op.f("fk_departures_source_record_id_source_records"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_departures_source_record_id"))
        batch_op.drop_index(batch_op.f("ix_departures_source_id"))
        batch_op.drop_column("source_id")
        batch_op.drop_column("source_record_id")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("first_seen_at")

    with op.batch_alter_table("court_decisions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_court_decisions_source_record_id_source_records"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("fk_court_decisions_source_id_sources"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_court_decisions_source_record_id"))
        batch_op.drop_index(batch_op.f("ix_court_decisions_source_id"))
        batch_op.drop_column("source_id")
        batch_op.drop_column("source_record_id")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("first_seen_at")

    with op.batch_alter_table("court_cases", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_court_cases_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_court_cases_source_id"))
        batch_op.drop_column("source_id")

    with op.batch_alter_table("convictions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_convictions_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_convictions_source_id"))
        batch_op.drop_column("source_id")

    with op.batch_alter_table("benefit_applications", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_benefit_applications_source_id_sources"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_benefit_applications_source_id"))
        batch_op.drop_column("source_id")

    with op.batch_alter_table("appeals", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_appeals_source_record_id_source_records"), type_="foreignkey"
        )
        batch_op.drop_constraint(batch_op.f("fk_appeals_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_appeals_source_record_id"))
        batch_op.drop_index(batch_op.f("ix_appeals_source_id"))
        batch_op.drop_column("source_id")
        batch_op.drop_column("source_record_id")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("first_seen_at")

    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_column("purpose_fields")

    with op.batch_alter_table("admissions", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_admissions_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_admissions_source_id"))
        batch_op.drop_column("source_id")

    with op.batch_alter_table("addresses", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_addresses_source_id_sources"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_addresses_source_id"))
        batch_op.drop_column("source_id")
        batch_op.drop_column("flag_reason")

    with op.batch_alter_table("quarantined_rows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantined_rows_source_id"))
        batch_op.drop_index(batch_op.f("ix_quarantined_rows_reason"))
        batch_op.drop_index(batch_op.f("ix_quarantined_rows_batch_id"))

    op.drop_table("quarantined_rows")
    with op.batch_alter_table("disclosure_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_disclosure_requests_source_id"))

    op.drop_table("disclosure_requests")
    with op.batch_alter_table("tombstones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tombstones_source_id"))

    op.drop_table("tombstones")
