"""Redress: disputed facts, decisions and letters (issue 9)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _request_columns() -> tuple[sa.Column, ...]:
    """Columns added to redress_requests (a request is filed before it is linked to a person)."""
    return (
        sa.Column("requester_authority", sa.String(length=200), nullable=True),
        sa.Column("subject", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
        sa.Column("tracking_hash", sa.String(length=64), nullable=True),
        sa.Column("linked_by", sa.String(length=40), nullable=True),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision", sa.String(length=24), nullable=True),
        sa.Column("decision_plan", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )


def upgrade() -> None:
    with op.batch_alter_table("redress_requests", schema=None) as batch_op:
        for column in _request_columns():
            batch_op.add_column(column)
        batch_op.alter_column("person_id", existing_type=sa.String(length=40), nullable=True)
        batch_op.create_foreign_key(
            batch_op.f("fk_redress_requests_linked_by_users"), "users", ["linked_by"], ["id"]
        )

    op.create_table(
        "disputed_facts",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("person_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("table_name", sa.String(length=48), nullable=False),
        sa.Column("row_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("source_id", sa.String(length=64), nullable=True),
        sa.Column("field", sa.String(length=48), nullable=True),
        sa.Column("disputed_value", sa.String(length=200), nullable=True),
        sa.Column("claimed_value", sa.String(length=200), nullable=True),
        sa.Column("corrected_value", sa.String(length=200), nullable=True),
        sa.Column("item", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("marked_by", sa.String(length=40), nullable=True),
        sa.Column("marked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["marked_by"], ["users.id"], name=op.f("fk_disputed_facts_marked_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_disputed_facts_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["redress_requests.id"],
            name=op.f("fk_disputed_facts_request_id_redress_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_disputed_facts")),
    )
    with op.batch_alter_table("disputed_facts", schema=None) as batch_op:
        for name in ("person_id", "record_id", "request_id", "status"):
            batch_op.create_index(batch_op.f(f"ix_disputed_facts_{name}"), [name], unique=False)

    op.create_table(
        "redress_letters",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("template_version", sa.String(length=64), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=True),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_redress_letters_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["redress_requests.id"],
            name=op.f("fk_redress_letters_request_id_redress_requests"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redress_letters")),
    )
    with op.batch_alter_table("redress_letters", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_redress_letters_request_id"), ["request_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("redress_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_redress_letters_request_id"))
    op.drop_table("redress_letters")
    with op.batch_alter_table("disputed_facts", schema=None) as batch_op:
        for name in ("status", "request_id", "record_id", "person_id"):
            batch_op.drop_index(batch_op.f(f"ix_disputed_facts_{name}"))
    op.drop_table("disputed_facts")
    with op.batch_alter_table("redress_requests", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_redress_requests_linked_by_users"), type_="foreignkey"
        )
        batch_op.alter_column("person_id", existing_type=sa.String(length=40), nullable=False)
        for column in reversed(_request_columns()):
            batch_op.drop_column(column.name)
