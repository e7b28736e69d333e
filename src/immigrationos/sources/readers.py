"""Stream rows out of CSV, JSON Lines, Parquet files and PostgreSQL, in bounded chunks.

Every row comes out as a :class:`RawRow`: its number, its values (as the source holds them:
CSV cells as text, never type-guessed), the bytes exactly as the source sent them (kept for
quarantine), and a parse problem if it has one (bad encoding, wrong field count, bad JSON).
Row-level problems never stop the file; only a file that cannot be read as declared at all
(missing header fields, likely a wrong delimiter) is refused, with a message saying so.

Memory stays bounded by the chunk size: files are read line by line or a record batch at a
time, and PostgreSQL through a server-side cursor.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow.parquet as pq

from immigrationos.core.errors import ValidationFailed
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.validate import Problem

CHUNK_ROWS = 25_000
#: Longest CSV field the parser accepts before it reports the row (validators set the limits
#: that matter; this only bounds memory on a runaway quote).
CSV_FIELD_LIMIT = 16 * 1024 * 1024
csv.field_size_limit(CSV_FIELD_LIMIT)


class RawRow(NamedTuple):
    """One input row: number (1 = first data row), values, original bytes, parse problem."""

    number: int
    values: dict[str, Any] | None
    raw: bytes
    problem: Problem | None


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def json_bytes(values: dict[str, Any]) -> bytes:
    return json.dumps(values, ensure_ascii=False, sort_keys=True, default=str).encode("utf-8")


def _chunks(rows: Iterator[RawRow], size: int) -> Iterator[list[RawRow]]:
    chunk: list[RawRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def check_header(path: Path, header: list[str], definition: SourceDefinition) -> None:
    expected = [f for f in definition.key_fields if f not in definition.derived_fields]
    missing = [f for f in expected if f not in header]
    if not missing:
        return
    hint = ""
    if len(header) == 1:
        for candidate in (";", "\t", "|", ","):
            if candidate != definition.delimiter and candidate in header[0]:
                hint = (
                    f"; the header looks {candidate!r}-delimited (declare "
                    f"`delimiter: {candidate!r}` in the source definition)"
                )
                break
    raise ValidationFailed(
        f"{path}: header row lacks {missing} (found {header[:8]}"
        f"{' …' if len(header) > 8 else ''}){hint}; nothing was loaded"
    )


def _undecodable(values: list[str], header: list[str], encoding: str) -> Problem | None:
    for index, value in enumerate(values):
        if value.isascii():
            continue
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            name = header[index] if index < len(header) else f"column {index + 1}"
            bad = value[exc.start].encode("utf-8", "surrogateescape")
            return Problem(
                "encoding",
                name,
                f"field {name}: byte {bad!r} at position {exc.start + 1} is not "
                f"valid {encoding} (declare the file's `encoding:`)",
            )
    return None


def read_csv(
    path: Path, definition: SourceDefinition, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[RawRow]]:
    """CSV with a header row; text values; ragged and undecodable rows reported per row."""
    encoding = definition.encoding
    with path.open("rb") as handle:
        consumed: list[bytes] = []

        def lines() -> Iterator[str]:
            for line in handle:
                consumed.append(line)
                yield line.decode(encoding, "surrogateescape")

        reader = csv.reader(lines(), delimiter=definition.delimiter)
        try:
            header = [h.strip().lstrip("\ufeff") for h in next(reader)]
        except StopIteration:
            raise ValidationFailed(f"{path}: empty file, no header row") from None
        check_header(path, header, definition)
        consumed.clear()
        yield from _chunks(_csv_rows(reader, consumed, header, encoding), chunk_rows)


def _csv_rows(
    reader: Any, consumed: list[bytes], header: list[str], encoding: str
) -> Iterator[RawRow]:
    number, width = 0, len(header)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            number += 1
            raw = b"".join(consumed)
            consumed.clear()
            yield RawRow(number, None, raw, Problem("csv", None, f"not parseable as CSV: {exc}"))
            continue
        raw = consumed[0] if len(consumed) == 1 else b"".join(consumed)
        consumed.clear()
        if not values:
            continue
        number += 1
        if len(values) != width:
            yield RawRow(
                number,
                None,
                raw,
                Problem("ragged", None, f"has {len(values)} fields; the header has {width}"),
            )
            continue
        problem = _undecodable(values, header, encoding)
        if problem:
            yield RawRow(number, None, raw, problem)
            continue
        yield RawRow(
            number,
            {h: (v if v != "" else None) for h, v in zip(header, values, strict=True)},
            raw,
            None,
        )


def read_jsonl(
    path: Path, definition: SourceDefinition, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[RawRow]]:
    """JSON Lines: one object per line; bad lines are reported with their number."""

    def rows() -> Iterator[RawRow]:
        with path.open("rb") as handle:
            number = 0
            for line in handle:
                if not line.strip():
                    continue
                number += 1
                yield _json_row(number, line, definition.encoding)

    return _chunks(rows(), chunk_rows)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _json_row(number: int, line: bytes, encoding: str) -> RawRow:
    try:
        text = line.decode(encoding)
    except UnicodeDecodeError as exc:
        return RawRow(
            number,
            None,
            line,
            Problem(
                "encoding",
                None,
                f"byte {line[exc.start : exc.start + 1]!r} at position "
                f"{exc.start + 1} is not valid {encoding}",
            ),
        )
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        return RawRow(
            number, None, line, Problem("json", None, f"not JSON: {exc.msg} at column {exc.colno}")
        )
    except (ValueError, RecursionError) as exc:  # huge integers, NaN, nesting too deep
        message = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        return RawRow(number, None, line, Problem("json", None, f"not loadable JSON: {message}"))
    if not isinstance(value, dict):
        return RawRow(number, None, line, Problem("json", None, "not a JSON object"))
    return RawRow(number, value, line, None)


def read_parquet(
    path: Path, definition: SourceDefinition, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[RawRow]]:
    """Parquet, a record batch at a time; the original bytes are the row as canonical JSON."""
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        chunk = []
        for row in batch.to_pylist():
            number += 1
            values = {k: _plain(v) for k, v in row.items()}
            chunk.append(RawRow(number, values, json_bytes(values), None))
        yield chunk


def read_postgresql(
    dsn: str, definition: SourceDefinition, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[RawRow]]:
    """A PostgreSQL table or query through a server-side cursor (bounded memory)."""
    import psycopg
    from psycopg import sql
    from psycopg.rows import dict_row

    if definition.query:
        statement: Any = sql.SQL(definition.query)
    else:
        schema, _, table = (definition.table or "").rpartition(".")
        ident = sql.Identifier(schema, table) if schema else sql.Identifier(table)
        statement = sql.SQL("SELECT * FROM {}").format(ident)
    try:
        connection = psycopg.connect(dsn, row_factory=dict_row)
    except psycopg.Error as exc:
        raise ValidationFailed(f"cannot connect to the source database: {exc}") from exc
    with connection, connection.cursor(name=f"immos_{definition.id}") as cursor:
        cursor.itersize = chunk_rows
        try:
            cursor.execute(statement)
        except psycopg.Error as exc:
            raise ValidationFailed(f"source query failed: {exc}".strip()) from exc
        number = 0
        while rows := cursor.fetchmany(chunk_rows):
            chunk = []
            for row in rows:
                number += 1
                values = {k: _plain(v) for k, v in row.items()}
                chunk.append(RawRow(number, values, json_bytes(values), None))
            yield chunk


FILE_READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def read(
    location: str | Path, definition: SourceDefinition, chunk_rows: int = CHUNK_ROWS
) -> Iterator[list[RawRow]]:
    """Rows of the input in chunks: a file path, or a PostgreSQL DSN for ``postgresql``."""
    if definition.format == "postgresql":
        return read_postgresql(str(location), definition, chunk_rows)
    path = Path(location)
    if not path.is_file():
        raise ValidationFailed(f"{path}: no such file")
    return FILE_READERS[definition.format](path, definition, chunk_rows)


def csv_rows_from_lines(
    lines: list[bytes], header: list[str], definition: SourceDefinition, first: int
) -> Iterator[RawRow]:
    """Parse a block of CSV lines (no header) row by row, numbering rows from ``first``."""
    consumed: list[bytes] = []

    def decoded() -> Iterator[str]:
        for line in lines:
            consumed.append(line)
            yield line.decode(definition.encoding, "surrogateescape")

    reader = csv.reader(decoded(), delimiter=definition.delimiter)
    for row in _csv_rows(reader, consumed, header, definition.encoding):
        yield row._replace(number=row.number + first - 1)
