"""Bulk inserts at driver speed: ``executemany`` on SQLite, ``COPY`` on PostgreSQL.

SQLAlchemy's ORM bulk insert spends most of its time per value (type processing, JSON
encoding with the standard library, statement bookkeeping); ingest inserts millions of rows.
Here each column's conversion is chosen once from its SQLAlchemy type, values are converted
exactly as those types would store them (JSON as text, timestamps as UTC in SQLAlchemy's
SQLite format), and the driver gets plain tuples. Used only through the gateway, which audits.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import JSON, Connection, Date, DateTime, Table

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


def insert_columns(connection: Connection, table: Table, columns: dict[str, list[Any]]) -> int:
    """Insert rows given column by column (equal-length lists) into ``table``."""
    count = len(next(iter(columns.values()), []))
    if not count:
        return 0
    dialect = connection.dialect.name
    extra = _defaults(table, set(columns))
    names = [*columns, *extra]
    converted: list[Any] = []
    for name in names:
        values = columns[name] if name in columns else [extra[name]] * count
        convert = _converter(table.c[name].type, dialect)
        converted.append(values if convert is None else list(map(convert, values)))
    data = list(zip(*converted, strict=True))
    if dialect == "postgresql":
        _copy(connection, table, names, data)
    else:
        marks = ", ".join("?" for _ in names)
        quoted = ", ".join(f'"{n}"' for n in names)
        connection.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', data)
    return count


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
