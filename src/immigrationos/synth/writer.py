"""Streaming, deterministic file writers (CSV, Parquet, JSON Lines) and the manifest.

Chunks arrive in order and are appended, so memory holds one chunk at a time. Every writer is
configured so that equal input gives equal bytes: fixed Parquet compression and row groups, no
timestamps anywhere, and JSON with a fixed key order and separators.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from immigrationos.core.ids import file_sha256

PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "compression_level": 3}


class Sink:
    """Appends Arrow tables to one file in one format."""

    def __init__(self, path: Path, fmt: str, schema: pa.Schema) -> None:
        self.path, self.fmt, self.schema, self.rows = path, fmt, schema, 0
        self._csv: pacsv.CSVWriter | None = None
        self._pq: pq.ParquetWriter | None = None
        self._text: IO[str] | None = None
        if fmt == "csv":
            options = pacsv.WriteOptions(quoting_style="needed")
            self._csv = pacsv.CSVWriter(str(path), schema, write_options=options)
        elif fmt == "parquet":
            self._pq = pq.ParquetWriter(str(path), schema, **PARQUET_OPTIONS)
        else:
            self._text = path.open("w", encoding="utf-8", newline="\n")

    def write(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        if self._csv:
            self._csv.write_table(table)
        elif self._pq:
            self._pq.write_table(table, row_group_size=max(1, table.num_rows))
        elif self._text:
            self._text.write(jsonl(table))

    def close(self) -> None:
        for closer in (self._csv, self._pq, self._text):
            if closer is not None:
                closer.close()


def jsonl(table: pa.Table) -> str:
    """JSON Lines text of a table: dates as ISO strings, ``proceedings`` spliced as raw JSON."""
    raw = table.column("proceedings").to_pylist() if "proceedings" in table.column_names else None
    if raw is not None:
        table = table.drop_columns(["proceedings"])
    for i, f in enumerate(table.schema):
        if pa.types.is_date(f.type):
            table = table.set_column(i, f.name, pc.cast(table.column(i), pa.string()))
    lines = [
        json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in table.to_pylist()
    ]
    if raw is not None:
        lines = [f'{line[:-1]},"proceedings":{r}}}' for line, r in zip(lines, raw, strict=True)]
    return "".join(line + "\n" for line in lines)


@dataclass(frozen=True)
class FileSummary:
    """One output file: where, what format, how many rows and bytes, and its digest."""

    path: str
    format: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class WorldSummary:
    """What ``generate_world`` wrote (also saved as ``manifest.json``)."""

    out_dir: Path
    persons: int
    seed: int
    files: list[FileSummary] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def file(self, path: str) -> FileSummary:
        """The summary of one file by relative path (``sources/arrivals.csv``)."""
        return next(f for f in self.files if f.path == path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "generator": "immigrationos.synth",
            "persons": self.persons,
            "seed": self.seed,
            "config": self.config,
            "counts": self.counts,
            "files": [asdict(f) for f in self.files],
        }


def summarize(out_dir: Path, rel: str, fmt: str, rows: int) -> FileSummary:
    path = out_dir / rel
    return FileSummary(rel, fmt, rows, path.stat().st_size, file_sha256(path))


def write_manifest(summary: WorldSummary) -> Path:
    path = summary.out_dir / "manifest.json"
    path.write_text(json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n", "utf-8")
    return path
