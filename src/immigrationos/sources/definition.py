"""A source definition file (YAML): the source, its fields, their mapping, and its agreement.

The schema is a set of Pydantic models, so a malformed file fails with a message naming the
field. A definition says, declaratively:

- how to read the input (format, delimiter, encoding, or a PostgreSQL table or query);
- each field's type and checks (required, pattern, code table, date formats, length), in
  compact form (``birth_date: date``) or full form (``sex: {type: code, codes: [M, F, X]}``);
- transforms that derive fields (name splitting);
- how validated rows map onto ontology facts (``facts``), either column to column (compiled
  to one SQL statement per batch) or through a named Python deriver (nested records);
- the data-sharing agreement.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.purposes import Purpose

FieldType = Literal[
    "string", "name", "date", "timestamp", "integer", "code", "country", "a_number", "nested"
]


class FieldSpec(BaseModel):
    """One input field: its type and the checks its values must pass."""

    model_config = ConfigDict(extra="forbid")

    type: FieldType = "string"
    required: bool = False
    pattern: str | None = Field(default=None, description="Regex the cleaned value must match.")
    codes: list[str] | dict[str, str] | None = Field(
        default=None, description="Allowed codes, or a code table: source code → our code."
    )
    formats: list[str] = Field(
        default_factory=lambda: ["%Y-%m-%d"], description="strptime formats for dates."
    )
    max_length: int = Field(default=512, gt=0, description="Longest value accepted, in chars.")
    placeholders: list[str] = Field(
        default_factory=list, description="Extra values meaning 'unknown' for this field."
    )

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            re.compile(value)
        return value


class SplitName(BaseModel):
    """Split one full-name field into family and given names."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="The full-name field.")
    family: str = Field(description="Field to write the family name into.")
    given: str = Field(description="Field to write the given name(s) into.")
    style: Literal["family, given", "given family", "family given"] = "family, given"


class FactMapping(BaseModel):
    """How validated rows become rows of one ontology table.

    ``columns`` maps a target column to a source field, or to a literal when the value starts
    with ``=`` (``kind: =passport``). ``require`` names fields that must be present for the
    fact to exist. ``deriver`` instead names a registered Python deriver (for nested input).
    """

    model_config = ConfigDict(extra="forbid")

    table: str
    name: str | None = Field(default=None, description="Suffix of the fact ids (default table).")
    columns: dict[str, str] = Field(default_factory=dict)
    require: list[str] = Field(default_factory=list)
    deriver: str | None = None

    @model_validator(mode="after")
    def _one_way(self) -> FactMapping:
        if bool(self.columns) == bool(self.deriver):
            raise ValueError(f"fact mapping for {self.table!r}: give columns or a deriver")
        return self

    @property
    def suffix(self) -> str:
        """The id suffix that makes this fact's id unique per record."""
        return self.name or self.table


class PersonMapping(BaseModel):
    """Which fields carry a person's attributes, for entity resolution.

    ``identifiers`` maps an identifier kind (``a_number``, ``passport``, ``fin``, ``itin``,
    ``national_id``, or any other kind) to the field holding it; ``passport_country`` names
    the field with the passport's issuing country. When a definition has no ``person``
    section, the mapping is inferred from conventional field names (see
    :func:`immigrationos.resolution.records.person_mapping`).
    """

    model_config = ConfigDict(extra="forbid")

    given_name: str | None = None
    middle_name: str | None = None
    family_name: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    nationality: str | None = None
    address: str | None = None
    postcode: str | None = None
    passport_country: str | None = None
    identifiers: dict[str, str] = Field(default_factory=dict)

    def fields(self) -> set[str]:
        """Every source field the mapping reads."""
        named = [
            self.given_name,
            self.middle_name,
            self.family_name,
            self.birth_date,
            self.sex,
            self.nationality,
            self.address,
            self.postcode,
            self.passport_country,
        ]
        return {f for f in named if f} | set(self.identifiers.values())


class AgreementSpec(BaseModel):
    """The data-sharing agreement that allows a source's use."""

    model_config = ConfigDict(extra="forbid")

    legal_authority: str = Field(min_length=10)
    permitted_purposes: list[Purpose] = Field(min_length=1)
    allowed_fields: list[str] = Field(min_length=1)
    purpose_fields: dict[Purpose, list[str]] = Field(
        default_factory=dict,
        description="For a purpose, the only fields it may see (others are hidden, with why).",
    )
    retention_days: int = Field(gt=0)
    prerequisites: dict[str, Any] = Field(default_factory=dict)
    effective_from: date = date(2026, 1, 1)
    effective_until: date | None = None


class SourceDefinition(BaseModel):
    """What ``immos sources register FILE.yaml`` reads."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,62}$")
    name: str
    description: str = ""
    format: Literal["csv", "jsonl", "parquet", "postgresql"]
    file: str | None = Field(default=None, description="File name inside a world's sources/.")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    encoding: str = "utf-8"
    table: str | None = Field(default=None, description="postgresql: table to read.")
    query: str | None = Field(default=None, description="postgresql: query to read.")
    record_key: str | list[str] = Field(
        description="The field (or fields, joined with ':') that identify a row in the source."
    )
    fields: dict[str, FieldSpec]
    split_names: list[SplitName] = Field(default_factory=list)
    facts: list[FactMapping] = Field(default_factory=list)
    person: PersonMapping | None = Field(
        default=None, description="Person attributes for entity resolution (else inferred)."
    )
    agreement: AgreementSpec

    @field_validator("fields", mode="before")
    @classmethod
    def _compact(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not value:
            raise ValueError("a source declares at least one field")
        return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}

    @property
    def key_fields(self) -> list[str]:
        """The record key's fields, in order."""
        return [self.record_key] if isinstance(self.record_key, str) else list(self.record_key)

    @property
    def derived_fields(self) -> list[str]:
        """Fields produced by transforms rather than read from the input."""
        return [f for s in self.split_names for f in (s.family, s.given)]

    @model_validator(mode="after")
    def _consistent(self) -> SourceDefinition:
        known = set(self.fields) | set(self.derived_fields)
        missing = [k for k in self.key_fields if k not in known]
        if missing:
            raise ValueError(f"record_key {missing} is not among the fields")
        unknown = sorted(set(self.agreement.allowed_fields) - known)
        if unknown:
            raise ValueError(f"agreement allows fields the source does not have: {unknown}")
        for purpose, names in self.agreement.purpose_fields.items():
            extra = sorted(set(names) - set(self.agreement.allowed_fields))
            if extra:
                raise ValueError(f"purpose_fields[{purpose}] names fields not allowed: {extra}")
        for mapping in self.facts:
            used = {v for v in mapping.columns.values() if not v.startswith("=")}
            bad = sorted((used | set(mapping.require)) - known)
            if bad:
                raise ValueError(f"fact mapping {mapping.suffix!r} uses unknown fields: {bad}")
        if self.person is not None:
            bad = sorted(self.person.fields() - known)
            if bad:
                raise ValueError(f"person mapping uses unknown fields: {bad}")
        if self.format == "postgresql" and not (self.table or self.query):
            raise ValueError("a postgresql source names a table or a query")
        return self


def load_definition(path: Path) -> SourceDefinition:
    """Parse and validate a definition file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"{path}: cannot read source definition: {exc}") from exc
    return parse_definition(raw, str(path))


def parse_definition(raw: Any, where: str = "definition") -> SourceDefinition:
    """Validate a definition given as data (from YAML or a JSON request body)."""
    try:
        return SourceDefinition.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(f"{where}: invalid source definition:\n{exc}") from exc


SHIPPED = Path(__file__).parent / "definitions"


def shipped_definitions() -> list[SourceDefinition]:
    """The definitions of every synthetic source shipped with the project."""
    return [load_definition(p) for p in sorted(SHIPPED.glob("*.yaml"))]
