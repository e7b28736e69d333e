"""Compile a source's flat fact mappings into SQL: one ``INSERT … SELECT`` per fact table.

Each statement reads the batch's new source records and writes the facts they imply, inside
the database, so deriving a million admissions is one statement rather than a million Python
round trips. The statements are plans: :func:`fact_statements` returns them unexecuted, so
tests and ``immos sources plan`` can show the SQL before anything runs.

A fact's id is its record's id plus the mapping's suffix: content-derived, so re-deriving is
idempotent and lineage is the id itself.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import (
    Boolean,
    Date,
    DateTime,
    Integer,
    Select,
    String,
    cast,
    func,
    insert,
    literal,
    select,
    type_coerce,
)
from sqlalchemy.sql.dml import Insert

from immigrationos.sources import columnar
from immigrationos.sources.definition import FactMapping, SourceDefinition
from immigrationos.sources.models import SourceRecord
from immigrationos.store.base import Base, UTCDateTime


def table_model(name: str) -> type[Base]:
    """The mapped class of an ontology table, by table name."""
    for mapper in Base.registry.mappers:
        if getattr(mapper.class_, "__tablename__", None) == name:
            cls: type[Base] = mapper.class_
            return cls
    raise KeyError(f"no ontology table {name!r}")


def fact_id(record_id: str, suffix: str) -> str:
    """The id of the fact a record yields under a mapping suffix."""
    return f"{record_id}/{suffix}"


def _json_value(dialect: str, field: str, column_type: Any) -> Any:
    element = SourceRecord.payload[field]
    if isinstance(column_type, Integer):
        return element.as_integer()
    if isinstance(column_type, Boolean):
        return element.as_boolean()
    text = element.as_string()
    if isinstance(column_type, UTCDateTime | DateTime):
        if dialect == "sqlite":  # SQLAlchemy's SQLite format; strftime applies the offset
            return type_coerce(func.strftime("%Y-%m-%d %H:%M:%f", text), String)
        return cast(text, DateTime(timezone=True))
    if isinstance(column_type, Date):
        return text if dialect == "sqlite" else cast(text, Date)
    return text


def _select(mapping: FactMapping, model: type[Base], dialect: str, batch_id: str) -> Select:
    table = model.__table__
    columns: dict[str, Any] = {
        "id": SourceRecord.id.concat(literal("/" + mapping.suffix)),
        "source_record_id": SourceRecord.id,
        "source_id": SourceRecord.source_id,
        "first_seen_at": SourceRecord.ingested_at,
        "last_seen_at": SourceRecord.ingested_at,
    }
    for target, source in mapping.columns.items():
        column_type = table.c[target].type
        if source.startswith("="):
            columns[target] = literal(source[1:], type_=column_type)
        else:
            columns[target] = _json_value(dialect, source, column_type)
    required = [
        *mapping.require,
        *(
            s
            for t, s in mapping.columns.items()
            if not s.startswith("=") and not table.c[t].nullable
        ),
    ]
    where = [SourceRecord.batch_id == batch_id]
    where += [SourceRecord.payload[f].as_string().is_not(None) for f in dict.fromkeys(required)]
    return select(*(c.label(n) for n, c in columns.items())).where(*where)


def fact_statement(mapping: FactMapping, dialect: str, batch_id: str) -> Insert:
    """The ``INSERT … SELECT`` deriving one mapping's facts from one batch."""
    model = table_model(mapping.table)
    stmt = _select(mapping, model, dialect, batch_id)
    return insert(model).from_select(list(stmt.selected_columns.keys()), stmt)


def fact_statements(
    definition: SourceDefinition, dialect: str, batch_id: str
) -> list[tuple[FactMapping, Insert]]:
    """Every flat mapping's statement for a batch, in definition order."""
    return [(m, fact_statement(m, dialect, batch_id)) for m in definition.facts if m.columns]


def fact_tables(definition: SourceDefinition) -> list[str]:
    """Every ontology table a source's mappings write (derivers included)."""
    from immigrationos.sources.derivers import DERIVERS

    tables: list[str] = []
    for mapping in definition.facts:
        names = DERIVERS[mapping.deriver].tables if mapping.deriver else (mapping.table,)
        tables.extend(t for t in names if t not in tables)
    return tables


def _parse_time(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def flat_rows(
    mapping: FactMapping, records: list[dict[str, Any]], payloads: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The facts one flat mapping derives from new records, computed from their payloads.

    Ingest uses this (the payloads are in memory already); :func:`fact_statement` is the same
    mapping as SQL, for inspection and for deriving again from stored records. A test holds
    the two to identical results.
    """
    model = table_model(mapping.table)
    table = model.__table__
    literals = {t: s[1:] for t, s in mapping.columns.items() if s.startswith("=")}
    fields = {t: s for t, s in mapping.columns.items() if not s.startswith("=")}
    required = [*mapping.require, *(s for t, s in fields.items() if not table.c[t].nullable)]
    times = {t for t in fields if isinstance(table.c[t].type, UTCDateTime | DateTime)}
    rows = []
    for record, payload in zip(records, payloads, strict=True):
        if any(payload.get(f) is None for f in required):
            continue
        row = {
            "id": f"{record['id']}/{mapping.suffix}",
            "source_record_id": record["id"],
            "source_id": record["source_id"],
            "first_seen_at": record["ingested_at"],
            "last_seen_at": record["ingested_at"],
            **literals,
        }
        for target, source in fields.items():
            value = payload.get(source)
            row[target] = _parse_time(value) if target in times else value
        rows.append(row)
    return rows


def flat_columns(
    mapping: FactMapping,
    record_ids: pa.Array,
    source_id: str,
    seen_at: Any,
    fields: dict[str, pa.Array],
) -> dict[str, Any]:
    """The facts one flat mapping derives from a columnar block's new records, by column.

    The columnar counterpart of :func:`flat_rows` (same facts; the mapping test holds both
    to the SQL plan), computed with Arrow kernels: ``id`` comes back as a list (the audit
    entry names every id), every other column as an Arrow array or a list.
    """
    table = table_model(mapping.table).__table__
    literals = {t: s[1:] for t, s in mapping.columns.items() if s.startswith("=")}
    sources = {t: s for t, s in mapping.columns.items() if not s.startswith("=")}
    required = [*mapping.require, *(s for t, s in sources.items() if not table.c[t].nullable)]
    keep = pc.indices_nonzero(
        columnar.all_of([pc.is_valid(fields[f]) for f in dict.fromkeys(required)], len(record_ids))
    )
    kept_ids = pc.take(record_ids, keep)
    count = len(kept_ids)
    columns: dict[str, Any] = {
        "id": pc.binary_join_element_wise(kept_ids, "/" + mapping.suffix, "").to_pylist(),
        "source_record_id": kept_ids,
        "source_id": pa.array([source_id] * count, pa.string()),
        "first_seen_at": [seen_at] * count,
        "last_seen_at": [seen_at] * count,
    }
    for target, value in literals.items():
        columns[target] = pa.array([value] * count, pa.string())
    for target, source in sources.items():
        values = pc.take(fields[source], keep)
        if isinstance(table.c[target].type, UTCDateTime | DateTime):
            columns[target] = [_parse_time(v) for v in values.to_pylist()]
        else:
            columns[target] = values
    return columns
