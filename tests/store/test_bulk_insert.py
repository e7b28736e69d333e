"""Bulk inserts write exactly the values given, however the SQLite path packs them
(several rows to a statement, constant columns as literals, booleans as ints, repeated
strings built once) and on PostgreSQL through COPY."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from immigrationos.runtime import Runtime
from immigrationos.store import bulk

METADATA = MetaData()
ROWS_TABLE = Table(
    "test_bulk_rows",
    METADATA,
    Column("n", Integer, primary_key=True),
    Column("flag", Boolean),
    Column("label", String(40)),
    Column("kind", String(10)),
    Column("data", JSON),
)
#: No key: rows may repeat, every column may be constant.
LOOSE_TABLE = Table(
    "test_bulk_loose", METADATA, Column("a", String(10)), Column("b", Integer), Column("c", Boolean)
)
REFS = Table("test_bulk_refs", METADATA, Column("id", String(10), primary_key=True))
#: Partitioned by run on PostgreSQL, as priority scores are.
PARTS = Table(
    "test_bulk_parts",
    METADATA,
    Column("run", String(40), primary_key=True),
    Column("ref", String(10), ForeignKey("test_bulk_refs.id"), primary_key=True),
    Column("v", Integer),
    postgresql_partition_by="LIST (run)",
)


@pytest.fixture
def tables(runtime: Runtime) -> Iterator[Runtime]:
    METADATA.create_all(runtime.engine)
    try:
        yield runtime
    finally:
        METADATA.drop_all(runtime.engine)


def _stored(runtime: Runtime, table: Table, order: Any) -> list[tuple[Any, ...]]:
    with runtime.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(table).order_by(order))]


def test_arrow_and_list_columns_come_back_as_given(tables: Runtime) -> None:
    # 4,099 rows: not a multiple of the rows per statement, and long enough for the
    # few-distinct-strings path; a constant label with a quote; nulls among the kinds.
    n = 4_099
    kinds = [None if i % 7 == 0 else ("alpha", "beta", "gamma")[i % 3] for i in range(n)]
    flags = [i % 3 == 0 for i in range(n)]
    columns: dict[str, Any] = {
        "n": pa.array(range(n), pa.int64()),
        "flag": pa.array(flags),
        "label": ["O'Brien; DROP TABLE x --"] * n,
        "kind": pa.array(kinds),
        "data": [{"i": i, "even": i % 2 == 0} for i in range(n)],
    }
    with tables.engine.begin() as conn:
        assert bulk.insert_columns(conn, ROWS_TABLE, columns) == n
    stored = _stored(tables, ROWS_TABLE, ROWS_TABLE.c.n)
    expected = [
        (i, flags[i], "O'Brien; DROP TABLE x --", kinds[i], {"i": i, "even": i % 2 == 0})
        for i in range(n)
    ]
    assert stored == expected
    assert all(type(row[1]) is bool for row in stored)


def test_rows_whose_every_column_is_constant_are_all_written(tables: Runtime) -> None:
    columns: dict[str, Any] = {"a": ["same"] * 5, "b": [7] * 5, "c": [True] * 5}
    with tables.engine.begin() as conn:
        bulk.insert_columns(conn, LOOSE_TABLE, columns)
        nulls: dict[str, Any] = {"a": [None] * 2, "b": [None] * 2, "c": [False, None]}
        bulk.insert_columns(conn, LOOSE_TABLE, nulls)
    stored = _stored(tables, LOOSE_TABLE, LOOSE_TABLE.c.b)
    assert sorted(stored, key=repr) == sorted(
        [("same", 7, True)] * 5 + [(None, None, False), (None, None, None)], key=repr
    )


def _load(runtime: Runtime, run: str, refs: list[str], run_column: list[str] | None = None) -> int:
    chunks = [
        {"run": run_column or [run] * len(refs), "ref": refs[:2], "v": [1, 2][: len(refs[:2])]},
        {"ref": refs[2:], "v": list(range(len(refs[2:])))},  # the key may also be left out
    ]
    chunks[0]["run"] = chunks[0]["run"][:2]
    with runtime.engine.begin() as conn:
        return bulk.insert_partition(conn, PARTS, run, chunks)


def test_a_run_loads_as_its_own_partition_with_its_keys_checked(tables: Runtime) -> None:
    with tables.engine.begin() as conn:
        bulk.insert_columns(conn, REFS, {"id": ["a", "b", "c"]})
    assert _load(tables, "run-1", ["a", "b", "c"]) == 3
    assert _load(tables, "run-2", ["a", "c"]) == 2
    stored = _stored(tables, PARTS, PARTS.c.run)
    assert sorted(stored) == [("run-1", "a", 1), ("run-1", "b", 2), ("run-1", "c", 0),
                              ("run-2", "a", 1), ("run-2", "c", 2)]  # fmt: skip
    if tables.engine.dialect.name == "postgresql":
        with tables.engine.connect() as conn:
            parts = conn.execute(text(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = 'test_bulk_parts'::regclass ORDER BY 1"
            )).scalars().all()  # fmt: skip
        assert parts == ["test_bulk_parts_run_1", "test_bulk_parts_run_2"]
    # A reference that does not exist fails the load (checked once, at attach, on
    # PostgreSQL) and leaves nothing behind; so does a row of another run.
    with pytest.raises(IntegrityError):  # SQLAlchemy's, whichever driver raised it
        _load(tables, "run-3", ["a", "zzz"])
    with pytest.raises(ValueError, match="holds another run"):
        _load(tables, "run-4", ["a", "b"], run_column=["run-4", "run-x"])
    assert len(_stored(tables, PARTS, PARTS.c.run)) == 5
    with pytest.raises(ValueError, match="cannot name a partition"):
        bulk.partition_name("test_bulk_parts", "Run 1; DROP")


def test_a_load_failing_after_rows_were_sent_leaves_nothing(tables: Runtime) -> None:
    # On PostgreSQL the chunks stream through one COPY: the second chunk's fault ends it
    # with an error after the first chunk's rows were sent, and the transaction keeps none.
    with tables.engine.begin() as conn:
        bulk.insert_columns(conn, REFS, {"id": ["a", "b"]})

    def chunks(second: dict[str, Any]) -> Iterator[dict[str, Any]]:
        yield {"ref": ["a"], "v": [1]}
        yield second

    with pytest.raises(ValueError, match="holds another run"), tables.engine.begin() as conn:
        bulk.insert_partition(conn, PARTS, "run-5", chunks({"run": ["run-y"], "ref": ["b"]}))
    if tables.engine.dialect.name == "postgresql":
        with pytest.raises(ValueError, match="holds columns"), tables.engine.begin() as conn:
            bulk.insert_partition(conn, PARTS, "run-5", chunks({"ref": ["b"]}))
    assert _stored(tables, PARTS, PARTS.c.run) == []
    with tables.engine.begin() as conn:  # the run's partition name is free again
        assert bulk.insert_partition(conn, PARTS, "run-5", chunks({"ref": ["b"], "v": [2]})) == 2
    assert sorted(_stored(tables, PARTS, PARTS.c.run)) == [("run-5", "a", 1), ("run-5", "b", 2)]


def test_statistics_follow_a_bulk_write_in_the_same_transaction(tables: Runtime) -> None:
    """The planner learns of rows written a moment ago (PostgreSQL; nothing on SQLite)."""
    with tables.engine.begin() as conn:
        bulk.insert(conn, ROWS_TABLE, [{"n": i, "label": f"r{i}"} for i in range(3_000)])
        bulk.analyze(conn, [ROWS_TABLE.name])
        if conn.dialect.name != "postgresql":
            return
        seen = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE relname = 'test_bulk_rows'"
        ).scalar_one()
    assert seen == 3_000
