"""Readers that join source files to the ground truth, for the synthetic-world tests."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from immigrationos.synth import SOURCES

KEY_COLUMN = {s.name: s.key for s in SOURCES}


def _normal(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    return None if value == "" else value


def load_source(out: Path, name: str) -> list[dict[str, Any]]:
    """Rows of a source file as dicts of strings (dates ISO, blanks None)."""
    src = next(s for s in SOURCES if s.name == name)
    path = out / "sources" / src.filename
    if src.fmt == "csv":
        with path.open(encoding="utf-8", newline="") as fh:
            rows: list[dict[str, Any]] = list(csv.DictReader(fh))
    elif src.fmt == "jsonl":
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    else:
        rows = pq.read_table(path).to_pylist()
    return [{k: _normal(v) for k, v in row.items()} for row in rows]


def record_key(name: str, row: dict[str, Any]) -> str:
    if name == "tax_addresses":
        return f"{row['itin']}:{row['tax_year']}"
    key = KEY_COLUMN[name]
    assert key
    return str(row[key])


def joined(out: Path, name: str) -> list[tuple[dict[str, Any], dict[str, Any], list[str]]]:
    """(source row, true person, noise kinds) for every record of a source."""
    persons = {p["person_id"]: p for p in pq.read_table(out / "truth/persons.parquet").to_pylist()}
    records = pq.read_table(out / "truth/records.parquet").to_pylist()
    link = {(r["source"], r["record_key"]): r for r in records}
    result = []
    for row in load_source(out, name):
        rec = link[(name, record_key(name, row))]
        person = {
            k: _normal(v) if k != "a_numbers" else v for k, v in persons[rec["person_id"]].items()
        }
        result.append((row, person, [k for k in rec["noise"].split(",") if k]))
    return result
