"""``store.sql.one_of``: the same rows on both backends, for lists bound at run time and fixed
when built, empty lists included; one array parameter on PostgreSQL whatever the length.
``store.sql.of_sources``: the rows of the allowed sources and of none, and on SQLite a plan
that looks rows up by the read's own condition, not by their source."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.departures.models import Departure
from immigrationos.runtime import Runtime
from immigrationos.store.base import Base
from immigrationos.store.engine import transaction
from immigrationos.store.sql import of_sources, one_of

NAMES = ["analyst", "auditor", "no-such-user", "officer.miami"]


@pytest.mark.parametrize(
    "wanted", [[], ["analyst"], NAMES, ["no-such-user"], ["analyst", "analyst"]]
)
def test_one_of_selects_the_same_rows_bound_or_fixed(runtime: Runtime, wanted: list[str]) -> None:
    dialect = runtime.engine.dialect.name
    bound = select(User.username).where(one_of(User.username, dialect, name="names"))
    fixed = select(User.username).where(one_of(User.username, dialect, values=wanted))
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        every = set(session.scalars(select(User.username)))
        got_bound = sorted(session.scalars(bound, {"names": wanted}))
        got_fixed = sorted(session.scalars(fixed))
    assert got_bound == got_fixed == sorted(every & set(wanted))


def test_one_statement_text_for_every_length_on_postgresql(runtime: Runtime) -> None:
    dialect = runtime.engine.dialect
    stmt = select(User.username).where(one_of(User.username, dialect.name, name="names"))
    sql = str(stmt.compile(dialect=dialect))
    if dialect.name == "postgresql":
        assert "ANY" in sql and "IN" not in sql.split("WHERE", 1)[1]
    else:
        assert "IN" in sql.split("WHERE", 1)[1]


#: As many sources as the shipped definitions: the number SQLite weighs against a lookup.
SOURCES = ["arrivals", "benefits", "citizenship", "convictions", "court", "departures",
           "encounters", "tax_addresses", "visas", "redress"]  # fmt: skip


@pytest.mark.parametrize("allowed", [[], ["departures"], SOURCES, ["court", "visas"]])
def test_of_sources_keeps_the_allowed_sources_and_rows_of_none(
    runtime: Runtime, allowed: list[str]
) -> None:
    table = Table("of_sources_rows", MetaData(), Column("id", String, primary_key=True),
                  Column("source_id", String, index=True))  # fmt: skip
    rows = [(f"r{i}", s) for i, s in enumerate(["departures", "court", None, "visas", "court"])]
    dialect = runtime.engine.dialect.name
    with runtime.engine.begin() as conn:
        table.create(conn)
        conn.execute(insert(table), [{"id": k, "source_id": s} for k, s in rows])
        condition = of_sources(table.c.source_id, dialect, allowed)
        got = sorted(conn.scalars(select(table.c.id).where(condition)))
        table.drop(conn)
    assert got == sorted(k for k, s in rows if s is None or s in allowed)


def test_a_read_by_event_id_on_sqlite_looks_up_the_event_ids() -> None:
    """The plan of a scoped read of departures by event id: the event id's unique index.
    ``source_id IN (…) OR source_id IS NULL`` made SQLite walk the ``source_id`` index, every
    departure of the allowed sources, on every read (a batch's duplicate check)."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine, tables=[Departure.__table__])  # type: ignore[list-item]
    table = Departure.__table__
    ids = [f"DEP{i}" for i in range(256)]

    def plan(condition: object) -> str:
        stmt = select(table.c.event_id).where(table.c.event_id.in_(ids), condition)
        sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            return " | ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))

    scoped = plan(of_sources(table.c.source_id, "sqlite", SOURCES))
    assert "event_id=?" in scoped and "source_id" not in scoped, scoped
    # What the plain form gives, so that this test shows what it guards against.
    plain = plan(table.c.source_id.in_(SOURCES) | table.c.source_id.is_(None))
    assert "ix_departures_source_id" in plain, plain
