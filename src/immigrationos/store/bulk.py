"""Bulk inserts at driver speed: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

SQLAlchemy's ORM bulk insert spends most of its time per value (type processing, JSON
encoding with the standard library, statement bookkeeping); ingest inserts millions of rows.
Here each column's conversion is chosen once from its SQLAlchemy type, values are converted
exactly as those types would store them (JSON as text, timestamps as UTC in SQLAlchemy's
SQLite format), and the driver gets plain tuples. Columns may also arrive as Arrow arrays
(ingest's columnar path builds them so): on PostgreSQL those are written by Arrow's CSV
writer and sent with one ``COPY … (FORMAT csv)``, with no Python work per row. Used only
through the gateway, which audits.

For a large first load, :func:`drop_secondary_indexes` and :func:`recreate_indexes` let ingest
build a table's plain (non-unique) indexes once at the end, by sorting, instead of maintaining
them row by row; both run inside the caller's transaction, so a failed load leaves the
indexes as they were. Primary keys and unique constraints always stay.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from datetime import UTC, date
from functools import lru_cache
from typing import Any, TypeAlias

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import JSON, Connection, Date, DateTime, LargeBinary, Table

from immigrationos.store.base import UTCDateTime

Convert = Callable[[Any], Any]


class RawJSON(str):
    """JSON text already serialised (ingest serialises each payload once, for hash and row)."""

    __slots__ = ()


def _json(value: Any) -> Any:
    if value is None or isinstance(value, RawJSON):
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


@lru_cache(maxsize=65536)  # a chunk's rows share a handful of distinct times
def _sqlite_time(value: Any) -> Any:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given where a timezone-aware UTC time is required")
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_time(value: Any) -> Any:
    if value is not None and value.tzinfo is None:
        raise ValueError("naive datetime given where a timezone-aware UTC time is required")
    return value


def _iso_date(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


def _converter(column_type: Any, dialect: str) -> Convert | None:
    """How to convert a column's values for the driver (None: they go as they are)."""
    if isinstance(column_type, JSON):
        return _json
    if isinstance(column_type, UTCDateTime | DateTime):
        return _sqlite_time if dialect == "sqlite" else _pg_time
    if isinstance(column_type, Date) and dialect == "sqlite":
        return _iso_date
    return None


def _defaults(table: Table, present: set[str]) -> dict[str, Any]:
    """Python-side defaults of columns the rows leave out (as an ORM insert would apply)."""
    values = {}
    for column in table.c:
        if column.name in present or column.default is None:
            continue
        default = column.default.arg  # type: ignore[attr-defined]
        values[column.name] = default(None) if callable(default) else default
    return values


def insert(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    """Insert ``rows`` (dicts keyed by column name, all with the same keys) into ``table``."""
    if not rows:
        return 0
    return insert_columns(connection, table, {n: [row[n] for row in rows] for n in rows[0]})


#: Column values: a list, or an Arrow array (already in the form the column stores).
Values: TypeAlias = list[Any] | pa.Array | pa.ChunkedArray


def _is_arrow(values: Values) -> bool:
    return isinstance(values, pa.Array | pa.ChunkedArray)


def insert_columns(connection: Connection, table: Table, columns: Mapping[str, Values]) -> int:
    """Insert rows given column by column (equal-length lists or Arrow arrays) into ``table``."""
    count = len(next(iter(columns.values()), []))
    if not count:
        return 0
    dialect = connection.dialect.name
    extra = _defaults(table, set(columns))
    names = [*columns, *extra]
    full: dict[str, Values] = {n: columns[n] if n in columns else [extra[n]] * count for n in names}
    if dialect == "postgresql" and not any(isinstance(table.c[n].type, LargeBinary) for n in names):
        _copy_csv(connection, table, {n: _arrow(v, table.c[n].type) for n, v in full.items()})
        return count
    converted: list[Any] = []
    for name in names:
        values, column_type = full[name], table.c[name].type
        convert = _converter(column_type, dialect)
        if isinstance(values, pa.Array | pa.ChunkedArray):
            values = values.to_pylist()
            if isinstance(column_type, JSON):  # Arrow JSON columns hold the text already
                convert = None
        converted.append(values if convert is None else list(map(convert, values)))
    rows = zip(*converted, strict=True)
    if dialect == "postgresql":
        _copy(connection, table, names, list(rows))
        return count
    marks = ", ".join("?" for _ in names)
    quoted = ", ".join(f'"{n}"' for n in names)
    # The driver's own cursor, fed lazily: no list of tuples is built (same transaction).
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', rows)
    finally:
        cursor.close()
    return count


def _arrow(values: Values, column_type: Any) -> pa.Array | pa.ChunkedArray:
    """A column as Arrow, converted as its type stores it (JSON as text), for ``COPY``."""
    if _is_arrow(values):
        return values
    convert = _converter(column_type, "postgresql")
    first = values[0]
    if values.count(first) == len(values):  # a constant (batch, source, time): built once
        value = first if convert is None else convert(first)
        return pa.repeat(pa.scalar(value), len(values))
    return pa.array(values if convert is None else list(map(convert, values)))


def _copy_csv(
    connection: Connection, table: Table, columns: dict[str, pa.Array | pa.ChunkedArray]
) -> None:
    """One ``COPY … FROM STDIN (FORMAT csv)`` of Arrow columns.

    Arrow's writer quotes every string and leaves nulls unquoted and empty, which is exactly
    how PostgreSQL's CSV format tells an empty string from NULL.
    """
    buffer = io.BytesIO()
    pacsv.write_csv(pa.table(columns), buffer, pacsv.WriteOptions(include_header=False))
    driver: Any = connection.connection.driver_connection
    quoted = ", ".join(f'"{n}"' for n in columns)
    with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN (FORMAT csv)') as copy,
    ):
        copy.write(buffer.getbuffer())


def drop_secondary_indexes(connection: Connection, tables: list[str]) -> list[str]:
    """Drop the plain (non-unique, non-key) indexes of ``tables``; return the DDL rebuilding them.

    Only for a table that is empty when a large load starts: building an index once over
    sorted keys is many times faster than maintaining it on every insert.
    """
    rebuild: list[str] = []
    for name, ddl in _secondary_indexes(connection, tables):
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
        rebuild.append(ddl)
    return rebuild


def recreate_indexes(connection: Connection, ddl: list[str]) -> None:
    """Rebuild what :func:`drop_secondary_indexes` and :func:`drop_foreign_keys` dropped
    (their original DDL, in order: a foreign key is checked once, over the whole table)."""
    for statement in ddl:
        connection.exec_driver_sql(statement)


def drop_foreign_keys(connection: Connection, tables: list[str]) -> list[str]:
    """PostgreSQL: drop the foreign keys among ``tables`` (both ends in the list); return the
    DDL adding them back.

    PostgreSQL checks a foreign key with one query per inserted row; adding the constraint
    back checks every row with one join. Only keys between the (empty) tables being loaded
    are dropped: dropping one locks the referenced table too, and those hold nothing yet,
    while keys to shared tables (sources, batches, persons) stay and are checked per row.
    SQLite checks keys in-process, cheaply, and cannot drop them: nothing is done there.
    """
    if connection.dialect.name != "postgresql" or not tables:
        return []
    rows = connection.exec_driver_sql(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%(t)s::regclass[]) "
        "AND confrelid = ANY(%(t)s::regclass[]) ORDER BY 1, 2",
        {"t": tables},
    ).all()
    rebuild = []
    for table, name, definition in rows:
        connection.exec_driver_sql(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    return rebuild


def _secondary_indexes(connection: Connection, tables: list[str]) -> list[tuple[str, str]]:
    """(name, creating DDL) of each plain index of ``tables``, as the database holds it."""
    found: list[tuple[str, str]] = []
    for table in tables:
        if connection.dialect.name == "postgresql":
            rows = connection.exec_driver_sql(
                "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = to_regclass(%(t)s) AND NOT i.indisunique "
                "AND NOT i.indisprimary ORDER BY c.relname",
                {"t": table},
            )
        else:
            rows = connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL AND sql NOT LIKE 'CREATE UNIQUE%' ORDER BY name",
                (table,),
            )
        found.extend((str(name), str(ddl)) for name, ddl in rows)
    return found


def _copy(
    connection: Connection, table: Table, names: list[str], data: list[tuple[Any, ...]]
) -> None:
    driver: Any = connection.connection.driver_connection
    columns = ", ".join(f'"{n}"' for n in names)
    with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table.name}" ({columns}) FROM STDIN') as copy,
    ):
        for row in data:
            copy.write_row(row)
