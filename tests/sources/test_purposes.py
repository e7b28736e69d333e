"""Purpose enforcement: for each synthetic source, each purpose is allowed or refused exactly
as its agreement says, for records and for the facts derived from them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from immigrationos.accounts.roles import ROLES, Role
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused
from immigrationos.gateway.context import AccessContext, Actor, system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Identifier
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.models import SourceRecord
from immigrationos.store.engine import transaction

DEFINITIONS = {d.id: d for d in shipped_definitions()}
CASES = [(s, p) for s in sorted(DEFINITIONS) for p in Purpose]


def _context(purpose: Purpose) -> AccessContext:
    """A person (never the system account) whose role may declare ``purpose``."""
    role = next(r for r, spec in ROLES.items() if purpose in spec.purposes and r is not Role.SYSTEM)
    return AccessContext(
        Actor(f"usr-{role.value}", f"t.{role.value}", role, "Miami"), purpose, "purpose test"
    )


def _expected(source_id: str, purpose: Purpose) -> bool:
    agreement = DEFINITIONS[source_id].agreement
    role = _context(purpose).actor.role
    per_request = bool(agreement.prerequisites.get("per_request"))
    return (
        purpose in agreement.permitted_purposes
        and ROLES[role].reads_personal_data
        and not per_request
    )


def _a_record(runtime: Runtime, source_id: str) -> str:
    ctx = system_context(Purpose.DATA_INTEGRATION, "pick a record")
    with unit_of_work(runtime.sessions, ctx) as gw:
        (record,) = gw.search(SourceRecord, SourceRecord.source_id == source_id, params={}, limit=1)
    return record.id


@pytest.mark.parametrize(("source_id", "purpose"), CASES, ids=[f"{s}-{p.value}" for s, p in CASES])
def test_each_source_and_purpose(world_runtime: Runtime, source_id: str, purpose: Purpose) -> None:
    ctx = _context(purpose)
    allowed = _expected(source_id, purpose)
    record_id = _a_record(world_runtime, source_id)
    with transaction(world_runtime.sessions) as session:
        gateway = Gateway(session, ctx)
        if allowed:
            gateway.require_source(source_id)
            assert gateway.get(SourceRecord, record_id).id == record_id
            records = gateway.search(
                SourceRecord,
                SourceRecord.source_id == source_id,
                params={"source": source_id},
                limit=5,
            )
            facts = gateway.search(
                Identifier, Identifier.source_id == source_id, params={"source": source_id}, limit=5
            )
            assert records and facts
        else:
            with pytest.raises(AccessRefused) as refusal:
                gateway.get(SourceRecord, record_id)
            message = str(refusal.value)
            assert "separation of duties" in message or (
                "agreement" in message and source_id in message
            )
            session.rollback()


@pytest.mark.parametrize("purpose", [Purpose.CASE_PROCESSING, Purpose.STATISTICS])
def test_searches_leave_out_forbidden_sources_and_say_so(
    world_runtime: Runtime, purpose: Purpose
) -> None:
    ctx = _context(purpose)
    with unit_of_work(world_runtime.sessions, ctx) as gw:
        found = gw.search(Identifier, params={"all": True}, limit=100_000)
    sources = {f.source_id for f in found}
    forbidden = {s for s in DEFINITIONS if not _expected(s, purpose)}
    assert forbidden and not sources & forbidden
    assert sources  # something permitted was found
    with transaction(world_runtime.sessions) as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None and entry.action == "records.searched"
    assert set(entry.details["withheld_sources"]) == forbidden
    assert all(
        purpose.value in reason or "disclosure request" in reason
        for reason in entry.details["withheld_sources"].values()
    )


def test_a_refused_read_is_audited_with_the_agreement(world_runtime: Runtime) -> None:
    ctx = _context(Purpose.ENFORCEMENT_PRIORITIZATION)
    record_id = _a_record(world_runtime, "visas")
    with pytest.raises(AccessRefused), unit_of_work(world_runtime.sessions, ctx) as gw:
        gw.get(SourceRecord, record_id)
    with transaction(world_runtime.sessions) as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None and (entry.action, entry.outcome) == ("access.refused", "refused")
    assert "enforcement-prioritization" in entry.details["reason"]
    assert "visas" in entry.details["reason"] and "agreement dsa-" in entry.details["reason"]
