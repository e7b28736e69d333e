"""Response and request models of the REST API (they make up the OpenAPI spec)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict


class Orm(BaseModel):
    """A model read from ORM objects."""

    model_config = ConfigDict(from_attributes=True)


class Health(BaseModel):
    """Liveness and what the server is connected to."""

    status: str
    version: str
    backend: str
    mode: str


class Me(BaseModel):
    """The caller as the system sees them."""

    username: str
    role: str
    office: str | None
    purpose: str
    permitted_purposes: list[str]
    reads_personal_data: bool


class AgreementOut(Orm):
    """A data-sharing agreement version."""

    id: str
    version: int
    legal_authority: str
    permitted_purposes: list[str]
    allowed_fields: list[str]
    retention_days: int
    prerequisites: dict[str, Any]
    effective_from: date
    effective_until: date | None


class SourceOut(Orm):
    """A registered source with its agreement in force."""

    id: str
    name: str
    description: str
    format: str
    record_key: str
    agreement: AgreementOut | None = None


class BatchOut(Orm):
    """An ingest batch and its reconciled report."""

    id: str
    source_id: str
    status: str
    input_uri: str
    started_at: datetime
    finished_at: datetime | None
    read_count: int
    loaded_count: int
    unchanged_count: int
    quarantined_count: int
    quarantine_reasons: dict[str, Any]
    dropped_fields: dict[str, Any]


class RecordOut(Orm):
    """An immutable source record version."""

    id: str
    source_id: str
    record_key: str
    version: int
    content_hash: str
    payload: dict[str, Any]
    batch_id: str
    supersedes_id: str | None
    ingested_at: datetime


class AuditEntryOut(Orm):
    """One audit entry as stored, hash included."""

    seq: int
    id: str
    at: datetime
    actor_name: str | None
    actor_role: str | None
    purpose: str | None
    justification: str | None
    action: str
    outcome: str
    object_type: str | None
    object_ids: list[Any]
    search_params: dict[str, Any] | None
    result_count: int | None
    details: dict[str, Any]
    prev_hash: str
    entry_hash: str


class VerifyOut(BaseModel):
    """The result of verifying the audit chain."""

    ok: bool
    checked: int
    head_hash: str
    first_broken_seq: int | None
    problem: str | None
    message: str


class Checkpoint(BaseModel):
    """A signed audit checkpoint (``immos-audit-checkpoint/1``)."""

    format: str
    entries: int
    head_hash: str
    created_at: str
    public_key: str
    signature: str
