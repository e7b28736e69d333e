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

import contextlib
import io
import itertools
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, date
from typing import Any, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import JSON, Boolean, Connection, Date, DateTime, LargeBinary, Table
from sqlalchemy.exc import DBAPIError

from immigrationos.store.base import UTCDateTime

Convert = Callable[[Any], Any]


class RawJSON(str):
    """JSON text already serialised (ingest serialises each payload once, for hash and row)."""

    __slots__ = ()


def _json(value: Any) -> Any:
    if value is None:
        return value
    if isinstance(value, RawJSON):  # as a plain str: sqlite3 binds only exact str directly
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


#: Times already written (a chunk's rows share a handful of distinct times), by the time
#: itself: a dict of datetimes and strings, which the garbage collector never follows (an
#: ``lru_cache`` keys by tuples, which made the collector walk its 65,536 entries again
#: after each new time).
_SQLITE_TIMES: dict[Any, str] = {}
_SQLITE_TIMES_KEPT = 65_536


def _sqlite_time(value: Any) -> Any:
    if value is None:
        return None
    text = _SQLITE_TIMES.get(value)
    if text is None:
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a timezone-aware UTC time is required")
        # SQLAlchemy's SQLite format, "YYYY-MM-DD HH:MM:SS.ffffff": ISO's, less the offset
        # (a third of strftime's cost, and zero-padded years as SQLAlchemy writes them).
        text = value.astimezone(UTC).isoformat(" ", "microseconds")[:26]
        if len(_SQLITE_TIMES) >= _SQLITE_TIMES_KEPT:
            _SQLITE_TIMES.clear()
        _SQLITE_TIMES[value] = text
    return text


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


def insert_columns(
    connection: Connection, table: Table, columns: Mapping[str, Values], into: str | None = None
) -> int:
    """Insert rows given column by column (equal-length lists or Arrow arrays) into ``table``
    (or into ``into``, a table of the same columns: a partition being loaded)."""
    count = len(next(iter(columns.values()), []))
    if not count:
        return 0
    dialect = connection.dialect.name
    target = into or table.name
    extra = _defaults(table, set(columns))
    names = [*columns, *extra]
    full: dict[str, Values] = {n: columns[n] if n in columns else [extra[n]] * count for n in names}
    with _driver_errors(connection, target):
        if dialect != "postgresql":
            columns = {n: _python(full[n], table.c[n].type, dialect) for n in names}
            _executemany(connection, target, columns)
        elif not any(isinstance(table.c[n].type, LargeBinary) for n in names):
            _copy_csv(connection, table, [full], into=into, queued=False)
        else:
            converted = [_python(full[n], table.c[n].type, dialect) for n in names]
            _copy(connection, target, names, list(zip(*converted, strict=True)))
    return count


@contextlib.contextmanager
def _driver_errors(connection: Connection, table: str) -> Iterator[None]:
    """The driver's errors from the cursors used here raised as SQLAlchemy raises them for
    any other statement: a broken key is an ``IntegrityError`` however the rows went in."""
    dbapi: Any = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as error:
        raise DBAPIError.instance(f"bulk insert into {table}", None, error, dbapi.Error) from error


#: A list-partition key's value as it may appear in a partition's name and DDL.
_PARTITION_VALUE = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")


#: ``maintenance_work_mem`` while a partition's indexes are built (PostgreSQL).
_SORT_MEMORY = "512MB"


def partition_name(table: str, value: str) -> str:
    """The name of ``table``'s partition holding the rows whose key is ``value``."""
    if not _PARTITION_VALUE.fullmatch(value):
        raise ValueError(f"{value!r} cannot name a partition (lowercase letters, digits, - and _)")
    return f"{table}_{value.replace('-', '_')}"


def insert_partition(
    connection: Connection, table: Table, value: str, chunks: Iterable[Mapping[str, Values]]
) -> int:
    """Insert rows that all hold ``value`` in the key ``table`` is list-partitioned by on
    PostgreSQL (a priority run's scores), chunk by chunk; return how many.

    On PostgreSQL the rows go into a new table of the same columns, which is then attached
    as the partition for ``value``: the partition's key and indexes are built once over the
    loaded rows and each foreign key is checked with one join, where inserting into the
    partitioned table would check both keys with a query and a row lock per row (two thirds
    of a million-row run's time; docs/benchmarks.md). The key column is filled by a default
    rather than sent a million times. Attaching locks the referenced tables against writes
    (not reads) until the transaction ends. Elsewhere (SQLite, no partitions) the chunks are
    inserted into ``table``.
    """
    key = _partition_key(table)
    name = partition_name(table.name, value)

    def without_key(chunk: Mapping[str, Values]) -> dict[str, Values]:
        if key in chunk and any(v != value for v in _python(chunk[key], table.c[key].type, "")):
            raise ValueError(f"a row of partition {value!r} holds another {key}")
        return {n: v for n, v in chunk.items() if n != key}

    if connection.dialect.name != "postgresql":  # no partitions: the key goes with every row
        count = 0
        for chunk in chunks:
            columns = without_key(chunk)
            rows = len(next(iter(columns.values()), []))
            count += insert_columns(connection, table, {key: [value] * rows, **columns})
        return count
    connection.exec_driver_sql(f'CREATE TABLE "{name}" (LIKE "{table.name}" INCLUDING DEFAULTS)')
    connection.exec_driver_sql(f'ALTER TABLE "{name}" ALTER COLUMN "{key}" SET DEFAULT \'{value}\'')
    # One COPY for the whole run: the server stores a chunk while the next one is made.
    with _driver_errors(connection, name):
        count = _copy_csv(connection, table, map(without_key, chunks), into=name)
    connection.exec_driver_sql(f'ALTER TABLE "{name}" ALTER COLUMN "{key}" DROP DEFAULT')
    # Attaching builds the partition's key and indexes by sorting its rows: in memory, not in
    # temporary files, for a run of a million (this transaction only).
    connection.exec_driver_sql(f"SET LOCAL maintenance_work_mem = '{_SORT_MEMORY}'")
    connection.exec_driver_sql(
        f'ALTER TABLE "{table.name}" ATTACH PARTITION "{name}" FOR VALUES IN (\'{value}\')'
    )
    return count


def _partition_key(table: Table) -> str:
    """The one column ``table`` is list-partitioned by on PostgreSQL."""
    declared = str(table.dialect_options["postgresql"].get("partition_by") or "")
    match = re.fullmatch(r"LIST \((\w+)\)", declared.strip(), re.IGNORECASE)
    if match is None:
        raise ValueError(f"{table.name} is not list-partitioned by one column: {declared!r}")
    return match.group(1)


def _python(values: Values, column_type: Any, dialect: str) -> list[Any]:
    """A column's values as the Python objects the driver binds.

    On SQLite booleans become ints: Python's ``sqlite3`` binds only exact ``int``, ``float``,
    ``str`` and ``bytes`` directly and sends anything else, ``bool`` included, through its
    adapter lookup, which costs more than the rest of the row's binding (docs/benchmarks.md).
    """
    boolean = dialect == "sqlite" and isinstance(column_type, Boolean)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        if boolean:
            values = values.cast(pa.int8())
        values = _pylist(values)
        if isinstance(column_type, JSON):  # Arrow JSON columns hold the text already
            return values
    elif boolean:
        values = [None if v is None else int(v) for v in values]
    convert = _converter(column_type, dialect)
    return values if convert is None else list(map(convert, values))


#: Parameters per multi-row ``INSERT`` on SQLite (well under its limit of 32,766).
_SQLITE_PARAMETERS = 400


def _pylist(values: pa.Array | pa.ChunkedArray) -> list[Any]:
    """An Arrow column as Python values. A long string column with few distinct values (a
    tier, an office, a code) makes each string once and repeats it, rather than one per row."""
    few = pa.types.is_string(values.type) and len(values) >= 4096
    if few and pc.count_distinct(values.slice(0, 1024)).as_py() <= 64:
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        encoded = pc.dictionary_encode(values)
        if len(encoded.dictionary) <= len(values) // 64:
            distinct = np.array([*encoded.dictionary.to_pylist(), None], dtype=object)
            where = encoded.indices.fill_null(len(encoded.dictionary)).to_numpy()
            return list(distinct[where].tolist())
    return list(values.to_pylist())


def _executemany(connection: Connection, table: str, columns: dict[str, list[Any]]) -> None:
    """SQLite: ``executemany`` on the driver's cursor, in the caller's transaction.

    Rows go many to a statement (``VALUES (…), (…), …``): one statement step per row is
    most of the cost of a narrow row, and a multi-row statement also keeps SQLite's cursor
    on the key it just wrote. A column holding one value for every row (a run's id, a
    batch's source) is written into the statement as a literal instead of being bound a
    million times.
    """
    literals = {n: lit for n, v in columns.items() if (lit := _constant_literal(v)) is not None}
    if len(literals) == len(columns):  # at least one bound column keeps the row count
        literals.pop(next(iter(columns)))
    bound = [columns[n] for n in columns if n not in literals]
    count = len(bound[0])
    per = max(1, _SQLITE_PARAMETERS // len(bound))
    full = count - count % per
    row = "(" + ", ".join(literals.get(n, "?") for n in columns) + ")"
    insert = f'INSERT INTO "{table}" (' + ", ".join(f'"{n}"' for n in columns) + ") VALUES "
    # Fed lazily, flat: no list of tuples is built.
    flat = itertools.chain.from_iterable(zip(*(c[:full] for c in bound), strict=True))
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if full:  # ``full`` is a multiple of ``per``: the flat values group exactly
            groups = zip(*[flat] * (per * len(bound)), strict=True)
            cursor.executemany(insert + ", ".join([row] * per), groups)
        if full < count:
            cursor.executemany(insert + row, zip(*(c[full:] for c in bound), strict=True))
    finally:
        cursor.close()


def _constant_literal(values: list[Any]) -> str | None:
    """SQL for the one value every row holds, if there is one and it is safely written."""
    first = values[0]
    if values.count(first) != len(values):
        return None
    if first is None:
        return "NULL"
    if type(first) is int:
        return str(first)
    if type(first) is float and math.isfinite(first):
        return repr(first)
    if type(first) is str and "\x00" not in first:
        return "'" + first.replace("'", "''") + "'"
    return None


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
    connection: Connection,
    table: Table,
    chunks: Iterable[Mapping[str, Values]],
    into: str | None = None,
    queued: bool = True,
) -> int:
    """One ``COPY … FROM STDIN (FORMAT csv)`` of column chunks (lists or Arrow arrays, the
    same columns in each) into ``table`` (or ``into``); return the rows sent.

    Each chunk becomes CSV with Arrow's writer, which quotes every string and leaves nulls
    unquoted and empty, exactly how PostgreSQL's CSV format tells an empty string from NULL.
    psycopg's queued writer sends the data from a thread of its own, so the server stores
    one chunk while the caller makes the next (a priority run's evaluation streams in here);
    ``queued=False`` sends from the caller's thread (one chunk: nothing to overlap).
    """
    driver: Any = connection.connection.driver_connection
    names: list[str] | None = None
    count = 0
    # The COPY opens with the first chunk, which names the columns; leaving the stack by an
    # exception ends it with an error, and the server keeps no row.
    with driver.cursor() as cursor, contextlib.ExitStack() as stack:
        for chunk in chunks:
            rows = len(next(iter(chunk.values()), []))
            if not rows:
                continue
            extra = _defaults(table, set(chunk))
            columns = {
                n: _arrow(v, table.c[n].type)
                for n, v in [*chunk.items(), *((n, [d] * rows) for n, d in extra.items())]
            }
            if names is None:
                names = list(columns)
                quoted = ", ".join(f'"{n}"' for n in names)
                copy = stack.enter_context(
                    cursor.copy(
                        f'COPY "{into or table.name}" ({quoted}) FROM STDIN (FORMAT csv)',
                        writer=QueuedLibpqWriter(cursor) if queued else None,
                    )
                )
            elif list(columns) != names:
                raise ValueError(f"a chunk holds columns {list(columns)}, not {names}")
            buffer = io.BytesIO()
            pacsv.write_csv(pa.table(columns), buffer, pacsv.WriteOptions(include_header=False))
            copy.write(buffer.getbuffer())
            count += rows
    return count


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
    """Rebuild what :func:`drop_secondary_indexes`, :func:`drop_unique_constraints` and
    :func:`drop_foreign_keys` dropped (their original DDL, in order: a unique constraint or
    a foreign key is checked once, over the whole table)."""
    for statement in ddl:
        connection.exec_driver_sql(statement)


def analyze(connection: Connection, tables: list[str] | None = None) -> None:
    """Bring PostgreSQL's planner statistics up to date after a bulk write (``ANALYZE``, of
    ``tables`` or of every table); nothing on SQLite.

    Without it the planner takes tables filled a moment ago for the near-empty tables it
    last saw, until autovacuum gets round to them (or never, where autovacuum is off): at
    100,000 persons a guard's one-person read then walked every citizenship record instead
    of the person's few links, 450 ms instead of 0.5 (docs/benchmarks-web.md). Statistics
    are sampled (about 30,000 rows a table), so the cost is bounded by the table count.
    Rows this transaction wrote count: ANALYZE sees them before they are committed.
    """
    if connection.dialect.name != "postgresql":
        return
    names = ", ".join(f'"{t}"' for t in tables or [])
    connection.exec_driver_sql(f"ANALYZE {names}".rstrip())


def drop_foreign_keys(connection: Connection, tables: list[str]) -> list[str]:
    """PostgreSQL: drop the foreign keys among ``tables`` (both ends in the list); return the
    DDL adding them back.

    PostgreSQL checks a foreign key with one query per inserted row; adding the constraint
    back checks every row with one join. Only keys between the (empty) tables being loaded
    are dropped: dropping one locks the referenced table too, and those hold nothing yet,
    while keys to shared tables (sources, batches, persons) stay and are checked per row.
    SQLite checks keys in-process, cheaply, and cannot drop them: nothing is done there.
    """
    return _drop_constraints(
        connection,
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE contype = 'f' AND conrelid = ANY(%(t)s::regclass[]) "
        "AND confrelid = ANY(%(t)s::regclass[]) ORDER BY 1, 2",
        tables,
    )


def drop_unique_constraints(connection: Connection, tables: list[str]) -> list[str]:
    """PostgreSQL: drop the unique constraints (not primary keys) of ``tables`` that no foreign
    key depends on; return the DDL adding them back.

    A unique constraint is an index maintained on every insert, scattered when its keys are
    (a source's record keys); added back after a large load, it is built once by sorting and
    checks every row then, so nothing unchecked is ever committed. Dropping one locks only
    its own table, which a large load into it holds anyway. SQLite cannot drop a constraint
    without rebuilding its table: nothing is done there.
    """
    return _drop_constraints(
        connection,
        "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) "
        "FROM pg_constraint c WHERE c.contype = 'u' AND c.conrelid = ANY(%(t)s::regclass[]) "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' "
        "AND f.conindid = c.conindid) ORDER BY 1, 2",
        tables,
    )


def _drop_constraints(connection: Connection, query: str, tables: list[str]) -> list[str]:
    """PostgreSQL: drop the constraints ``query`` finds among ``tables`` (rows of table, name,
    definition); return the DDL adding them back. Nothing on SQLite."""
    if connection.dialect.name != "postgresql" or not tables:
        return []
    rows = connection.exec_driver_sql(query, {"t": tables}).all()
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
    connection: Connection, table: str, names: list[str], data: list[tuple[Any, ...]]
) -> None:
    driver: Any = connection.connection.driver_connection
    columns = ", ".join(f'"{n}"' for n in names)
    with (
        driver.cursor() as cursor,
        cursor.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy,
    ):
        for row in data:
            copy.write_row(row)
