"""Lineage: for a fact or a person, every value with the source row that said so.

Lineage is a join, not a separate log: a fact's id is ``<record id>/<suffix>`` and its
provenance columns name its source record, which names its batch (input file, ingest time) and
its source, whose registered definition maps each fact column to a payload field. Keeping no
second copy means lineage cannot drift from the data it explains.

Reads of personal data (facts, source records, persons, record links) pass the gateway, so every
lineage lookup is audited like any other read. Sources and batches describe no person and are
read from the gateway's session directly, as ingest does.

Flat mappings say declaratively which field fed which column; a Python deriver does not, so the
nested paths of the project's court deriver are listed here (:data:`NESTED_PATHS`); a deriver
without an entry is reported as ``nested (<name> deriver)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import inspect, select

from immigrationos.core.errors import NotFound
from immigrationos.gateway.core import Gateway
from immigrationos.persons.models import Person, RecordLink
from immigrationos.sources.definition import FactMapping, SourceDefinition, parse_definition
from immigrationos.sources.derivers import DERIVERS
from immigrationos.sources.models import IngestBatch, Source, SourceRecord
from immigrationos.store.base import Base, Provenance

#: Columns every fact has that say where it came from rather than what it says.
PROVENANCE_COLUMNS = frozenset(
    {"id", "source_record_id", "source_id", "first_seen_at", "last_seen_at"}
)
#: Person columns that survivorship fills (the golden record), in display order.
GOLDEN_COLUMNS = (
    "given_name",
    "middle_name",
    "family_name",
    "birth_date",
    "sex",
    "nationality",
    "citizenship_status",
)
CONSTANT = "constant"
RESOLVED = "entity resolution"
NOT_MAPPED = "not mapped"
NOT_RECORDED = "not recorded"
UNKNOWN = "unknown (no mapping in the source's definition)"
PARENT = "id of the parent fact"

#: For each deriver, table and column: the payload path the value came from. ``{p}`` and
#: ``{h}`` are the proceeding and hearing indexes read from the fact id (``…/p0/h1``).
NESTED_PATHS: dict[str, dict[str, dict[str, str]]] = {
    "court": {
        "court_cases": {
            "case_no": "case_no",
            "charge": "charge",
            "nta_served_on": "nta_served_on",
        },
        "proceedings": {
            "court_case_id": PARENT,
            "kind": "proceedings[{p}].kind",
            "opened_on": "proceedings[{p}].opened_on",
            "closed_on": "proceedings[{p}].decision.decided_on",
        },
        "hearings": {
            "proceeding_id": PARENT,
            "scheduled_at": "proceedings[{p}].hearings[{h}].date (with .time)",
            "hearing_type": "proceedings[{p}].hearings[{h}].type",
            "location": "proceedings[{p}].hearings[{h}].location",
        },
        "court_decisions": {
            "proceeding_id": PARENT,
            "decision_type": "proceedings[{p}].decision.type",
            "decided_on": "proceedings[{p}].decision.decided_on",
            "vd_deadline": "proceedings[{p}].decision.vd_deadline",
            "protected_country": "proceedings[{p}].decision.protected_country",
            "details": "proceedings[{p}].decision (its other keys)",
        },
        "appeals": {
            "decision_id": PARENT,
            "filed_on": "proceedings[{p}].appeal.filed_on",
            "decided_on": "proceedings[{p}].appeal.decided_on",
            "outcome": "proceedings[{p}].appeal.outcome",
        },
    }
}
_INDEX = re.compile(r"/([ph])(\d+)")


class RecordLineage(BaseModel):
    """A source record and where it came from: source, key and version, row, batch, file."""

    source_id: str
    source_name: str | None = None
    record_id: str
    record_key: str
    record_version: int
    supersedes_id: str | None = None
    row_number: int | None = None
    batch_id: str
    batch_input_uri: str | None = None
    ingested_at: datetime


class ValueLineage(BaseModel):
    """One value, the field it came from, and the record behind it (none if not from a record)."""

    column: str
    value: Any = None
    from_field: str = Field(
        description="Payload field, 'constant', nested path, 'entity resolution' or 'not mapped'."
    )
    note: str | None = Field(default=None, description="What the source said, if set aside.")
    record: RecordLineage | None = None


class FactLineage(BaseModel):
    """One fact: its values with their lineage, and when it was first and last seen."""

    table: str
    fact_id: str
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    record: RecordLineage | None = None
    values: list[ValueLineage] = Field(default_factory=list)


class FactSummary(BaseModel):
    """A fact attached to a person, with the record, batch and ingest time behind it."""

    table: str
    fact_id: str
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    record: RecordLineage | None = None


class LinkLineage(BaseModel):
    """A source record linked to a person, and how the link was made."""

    link_id: str
    method: str
    match_probability: float | None = None
    linked_at: datetime
    record: RecordLineage | None = None


class PersonLineage(BaseModel):
    """A person's golden values, linked records and facts, each with its source."""

    person_id: str
    status: str
    merged_into_id: str | None = None
    golden: list[ValueLineage] = Field(default_factory=list)
    links: list[LinkLineage] = Field(default_factory=list)
    facts: list[FactSummary] = Field(default_factory=list)


def fact_models() -> dict[str, type[Base]]:
    """Every table whose rows carry provenance (the ontology's facts), by table name."""
    classes: list[type[Base]] = [m.class_ for m in Base.registry.mappers]
    return {str(c.__tablename__): c for c in classes if issubclass(c, Provenance)}


def fact_model(table: str) -> type[Base]:
    """The model of a fact table; :class:`NotFound` names the tables that have lineage."""
    models = fact_models()
    if table not in models:
        raise NotFound(f"no fact table {table!r}; tables with lineage: {', '.join(sorted(models))}")
    return models[table]


def value_source(
    definition: SourceDefinition | None, table: str, suffix: str | None, column: str
) -> str:
    """Where a fact column's value came from, given the fact id's suffix after the record id."""
    if column == "person_id":
        return RESOLVED
    if definition is None or suffix is None:
        return UNKNOWN
    for mapping in definition.facts:
        found = _from_mapping(mapping, table, suffix, column)
        if found is not None:
            return found
    return UNKNOWN


def _from_mapping(mapping: FactMapping, table: str, suffix: str, column: str) -> str | None:
    if mapping.columns:
        if mapping.table != table or mapping.suffix != suffix:
            return None
        field = mapping.columns.get(column)
        if field is None:
            return NOT_MAPPED
        return CONSTANT if field.startswith("=") else field
    deriver = DERIVERS.get(mapping.deriver or "")
    if deriver is None or table not in deriver.tables or suffix.split("/")[0] != mapping.suffix:
        return None
    return nested_path(deriver.name, table, suffix, column)


def nested_path(deriver: str, table: str, suffix: str, column: str) -> str:
    """The payload path of a deriver-made column, e.g. ``proceedings[0].hearings[1].type``."""
    fallback = f"nested ({deriver} deriver)"
    template = NESTED_PATHS.get(deriver, {}).get(table, {}).get(column)
    if template is None:
        return fallback
    try:
        return template.format(**dict(_INDEX.findall("/" + suffix)))
    except KeyError:
        return fallback


class _Records:
    """Source records (read through the gateway) with their batches and sources, each once."""

    def __init__(self, gateway: Gateway, params: dict[str, Any]) -> None:
        self.gateway, self.params = gateway, params
        self.records: dict[str, SourceRecord] = {}
        self._batches: dict[str, IngestBatch | None] = {}
        self._sources: dict[str, tuple[Source | None, SourceDefinition | None]] = {}

    def load(self, ids: Iterable[str | None]) -> None:
        """Read every record of ``ids`` not yet read, in one audited search."""
        wanted = sorted({i for i in ids if i and i not in self.records})
        if wanted:
            stmt = select(SourceRecord).where(SourceRecord.id.in_(wanted))
            rows = self.gateway.select(stmt, SourceRecord, params=self.params)
            self.records.update((r.id, r) for r in rows)

    def read(self, record_id: str | None) -> None:
        """Read one record (audited as a read); a record no longer stored is left out."""
        if record_id and record_id not in self.records:
            with suppress(NotFound):
                self.records[record_id] = self.gateway.get(SourceRecord, record_id)

    def source(self, source_id: str) -> tuple[Source | None, SourceDefinition | None]:
        """A source and its registered definition (the fact mappings), read once."""
        if source_id not in self._sources:
            source = self.gateway.session.get(Source, source_id)
            definition = (
                parse_definition(source.definition, f"source {source_id}") if source else None
            )
            self._sources[source_id] = (source, definition)
        return self._sources[source_id]

    def lineage(self, record_id: str | None) -> RecordLineage | None:
        """The lineage of a record already loaded; ``None`` when it is not stored."""
        record = self.records.get(record_id or "")
        if record is None:
            return None
        if record.batch_id not in self._batches:
            self._batches[record.batch_id] = self.gateway.session.get(IngestBatch, record.batch_id)
        return _record_lineage(
            record, self._batches[record.batch_id], self.source(record.source_id)[0]
        )


def _record_lineage(
    record: SourceRecord, batch: IngestBatch | None, source: Source | None
) -> RecordLineage:
    return RecordLineage(
        source_id=record.source_id,
        source_name=source.name if source else None,
        record_id=record.id,
        record_key=record.record_key,
        record_version=record.version,
        supersedes_id=record.supersedes_id,
        row_number=record.row_number,
        batch_id=record.batch_id,
        batch_input_uri=batch.input_uri if batch else None,
        ingested_at=record.ingested_at,
    )


def _flag_note(record: SourceRecord | None, field: str) -> str | None:
    """What the source said for a value set aside, unless the purpose may not see that field.

    The gateway hides payload fields a purpose may not see and lists them, with why, in
    ``hidden_fields``; flags keep the source's raw value, so they are withheld the same way.
    """
    hidden = getattr(record, "hidden_fields", None) or {}
    if field in hidden:
        return str(hidden[field])
    flag = (record.flags if record else {}).get(field)
    if not isinstance(flag, dict):
        return None
    return f"set aside as {flag.get('flag', 'flagged')}: the source said {flag.get('value')!r}"


def _columns(model: type[Base]) -> list[str]:
    return [a.key for a in inspect(model).column_attrs if a.key not in PROVENANCE_COLUMNS]


def _suffix(fact_id: str, record_id: str | None) -> str | None:
    prefix = f"{record_id}/"
    return fact_id[len(prefix) :] if record_id and fact_id.startswith(prefix) else None


def _fact_values(table: str, fact: Any, records: _Records) -> list[ValueLineage]:
    record_id = fact.source_record_id
    record, lineage = records.records.get(record_id or ""), records.lineage(record_id)
    definition = records.source(fact.source_id)[1] if fact.source_id else None
    suffix = _suffix(fact.id, record_id)
    values = []
    for column in _columns(type(fact)):
        field = value_source(definition, table, suffix, column)
        values.append(
            ValueLineage(
                column=column,
                value=getattr(fact, column),
                from_field=field,
                note=_flag_note(record, field),
                record=None if field == RESOLVED else lineage,
            )
        )
    return values


def fact_lineage(gateway: Gateway, table: str, fact_id: str) -> FactLineage:
    """A fact's values, each with its source field, record, batch and ingest time; audited."""
    fact: Any = gateway.get(fact_model(table), fact_id)
    records = _Records(gateway, {"lineage": "fact", "table": table, "fact_id": fact_id})
    records.read(fact.source_record_id)
    return FactLineage(
        table=table,
        fact_id=fact_id,
        first_seen_at=fact.first_seen_at,
        last_seen_at=fact.last_seen_at,
        record=records.lineage(fact.source_record_id),
        values=_fact_values(table, fact, records),
    )


def _person(gateway: Gateway, person_id: str) -> Person:
    try:
        return gateway.get(Person, person_id)
    except NotFound:
        raise NotFound(f"no person {person_id!r}") from None


def _links(gateway: Gateway, person_id: str, params: dict[str, Any]) -> list[RecordLink]:
    stmt = (
        select(RecordLink)
        .where(RecordLink.person_id == person_id, RecordLink.unlinked_at.is_(None))
        .order_by(RecordLink.linked_at, RecordLink.id)
    )
    return gateway.select(stmt, RecordLink, params=params)


def _person_facts(gateway: Gateway, person_id: str, params: dict[str, Any]) -> list[Any]:
    facts: list[Any] = []
    for table, model in sorted(fact_models().items()):
        column = model.__table__.c.get("person_id")
        if column is not None:
            stmt = select(model).where(column == person_id).order_by(model.__table__.c.id)
            facts.extend(gateway.select(stmt, model, params={**params, "table": table}))
    return facts


def _golden_record_id(entry: Any) -> str | None:
    return entry.get("source_record_id") if isinstance(entry, dict) else None


def _golden_value(attribute: str, entry: Any, records: _Records) -> ValueLineage:
    if not isinstance(entry, dict) or "value" not in entry:
        return ValueLineage(column=attribute, value=entry, from_field=NOT_RECORDED)
    record_id = _golden_record_id(entry)
    record = records.records.get(record_id or "")
    field = entry.get("field") or (attribute if record and attribute in record.payload else None)
    note = None if record or not record_id else f"source record {record_id!r} is not stored"
    return ValueLineage(
        column=attribute,
        value=entry["value"],
        from_field=field or NOT_RECORDED,
        note=note or (_flag_note(record, field) if field else None),
        record=records.lineage(record_id),
    )


def _golden(person: Person, records: _Records) -> list[ValueLineage]:
    golden = person.golden or {}
    values = [_golden_value(name, entry, records) for name, entry in golden.items()]
    for name in GOLDEN_COLUMNS:  # values survivorship left no provenance for are shown as such
        value = getattr(person, name)
        if name not in golden and value not in (None, "", "unknown"):
            values.append(ValueLineage(column=name, value=value, from_field=NOT_RECORDED))
    return values


def _summary(fact: Any, records: _Records) -> FactSummary:
    return FactSummary(
        table=type(fact).__tablename__,
        fact_id=fact.id,
        first_seen_at=fact.first_seen_at,
        last_seen_at=fact.last_seen_at,
        record=records.lineage(fact.source_record_id),
    )


def _link(link: RecordLink, records: _Records) -> LinkLineage:
    return LinkLineage(
        link_id=link.id,
        method=link.method,
        match_probability=link.match_probability,
        linked_at=link.linked_at,
        record=records.lineage(link.source_record_id),
    )


def person_lineage(gateway: Gateway, person_id: str) -> PersonLineage:
    """A person's golden values, active links and facts, each with its source; audited."""
    params = {"lineage": "person", "person_id": person_id}
    person = _person(gateway, person_id)
    links = _links(gateway, person_id, params)
    facts = _person_facts(gateway, person_id, params)
    records = _Records(gateway, params)
    golden_ids = [_golden_record_id(e) for e in (person.golden or {}).values()]
    records.load(
        [*golden_ids, *(k.source_record_id for k in links), *(f.source_record_id for f in facts)]
    )
    return PersonLineage(
        person_id=person.id,
        status=person.status,
        merged_into_id=person.merged_into_id,
        golden=_golden(person, records),
        links=[_link(k, records) for k in links],
        facts=[_summary(f, records) for f in facts],
    )
