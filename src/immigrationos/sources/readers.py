"""Stream rows out of CSV, JSON Lines and Parquet files in bounded chunks.

Values come out as the file holds them (CSV cells as text, never type-guessed), converted
only as far as JSON needs (dates to ISO text), so a record's payload is what the source said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from immigrationos.core.errors import ValidationFailed

Row = dict[str, Any]
CHUNK_ROWS = 5000


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


def _batches_to_rows(batch: pa.RecordBatch) -> list[Row]:
    return [{k: _plain(v) for k, v in row.items()} for row in batch.to_pylist()]


def read_csv(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Row]]:
    """CSV with a header row; every column read as text; empty cells become null."""
    header = pacsv.open_csv(path).schema.names
    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(block_size=1 << 20),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.string() for name in header}, strings_can_be_null=True
        ),
    )
    pending: list[Row] = []
    for batch in reader:
        pending.extend(_batches_to_rows(batch))
        while len(pending) >= chunk_rows:
            yield pending[:chunk_rows]
            pending = pending[chunk_rows:]
    if pending:
        yield pending


def read_jsonl(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Row]]:
    """JSON Lines: one object per line; a line that is not an object is an error naming it."""
    chunk: list[Row] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValidationFailed(f"{path}: line {number}: not JSON: {exc.msg}") from exc
            if not isinstance(value, dict):
                raise ValidationFailed(f"{path}: line {number}: expected an object")
            chunk.append(value)
            if len(chunk) >= chunk_rows:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def read_parquet(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Row]]:
    """Parquet, a row group slice at a time."""
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
        yield _batches_to_rows(batch)


READERS = {"csv": read_csv, "jsonl": read_jsonl, "parquet": read_parquet}


def read(path: Path, fmt: str, chunk_rows: int = CHUNK_ROWS) -> Iterator[list[Row]]:
    """Rows of ``path`` in chunks, by the source's declared format."""
    if fmt not in READERS:
        raise ValidationFailed(f"no file reader for format {fmt!r}")
    if not path.exists():
        raise ValidationFailed(f"{path}: no such file")
    return READERS[fmt](path, chunk_rows)
