"""A source definition file (YAML): the source, its fields, and its data-sharing agreement.

The schema is a Pydantic model, so a malformed file fails with a message naming the field.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.purposes import Purpose


class AgreementSpec(BaseModel):
    """The data-sharing agreement that allows a source's use."""

    model_config = ConfigDict(extra="forbid")

    legal_authority: str = Field(min_length=10)
    permitted_purposes: list[Purpose] = Field(min_length=1)
    allowed_fields: list[str] = Field(min_length=1)
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
    record_key: str | list[str] = Field(
        description="The field (or fields, joined with ':') that identify a row in the source."
    )
    fields: dict[str, str] = Field(description="Column name → type (string, date, integer, …).")
    agreement: AgreementSpec

    @field_validator("fields")
    @classmethod
    def _no_empty(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("a source declares at least one field")
        return value

    @property
    def key_fields(self) -> list[str]:
        """The record key's fields, in order."""
        return [self.record_key] if isinstance(self.record_key, str) else list(self.record_key)

    def model_post_init(self, _context: Any) -> None:
        missing = [k for k in self.key_fields if k not in self.fields]
        if missing or not self.key_fields:
            raise ValueError(f"record_key {missing or self.record_key!r} is not among the fields")
        unknown = sorted(set(self.agreement.allowed_fields) - set(self.fields))
        if unknown:
            raise ValueError(f"agreement allows fields the source does not have: {unknown}")


def load_definition(path: Path) -> SourceDefinition:
    """Parse and validate a definition file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValidationFailed(f"{path}: cannot read source definition: {exc}") from exc
    try:
        return SourceDefinition.model_validate(raw)
    except ValidationError as exc:
        raise ValidationFailed(f"{path}: invalid source definition:\n{exc}") from exc


SHIPPED = Path(__file__).parent / "definitions"


def shipped_definitions() -> list[SourceDefinition]:
    """The definitions of every synthetic source shipped with the project."""
    return [load_definition(p) for p in sorted(SHIPPED.glob("*.yaml"))]
