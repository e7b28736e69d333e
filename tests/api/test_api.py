"""The API authenticates, checks role and purpose once per route, and audits reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.api.app import create_app
from immigrationos.audit.models import AuditEntry
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import SourceDefinition
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

OFFICER = ("officer.miami", "demo-officer-pass")
AUDITOR = ("auditor", "demo-auditor-pass")
ADMIN = ("admin", "demo-admin-pass")


@pytest.fixture
def client(runtime: Runtime, tmp_path: Path) -> Iterator[TestClient]:
    ctx = system_context(Purpose.DATA_INTEGRATION, "api test fixture")
    definition = SourceDefinition.model_validate(
        {
            "id": "people",
            "name": "People",
            "format": "csv",
            "record_key": "rid",
            "fields": {"rid": "string", "name": "string"},
            "agreement": {
                "legal_authority": "Synthetic test authority",
                "permitted_purposes": ["case-processing"],
                "allowed_fields": ["rid", "name"],
                "retention_days": 30,
            },
        }
    )
    csv = tmp_path / "people.csv"
    csv.write_text("rid,name\n1,Ana\n2,Bo\n")
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        register(session, definition, ctx)
    with unit_of_work(runtime.sessions, ctx) as gw:
        ingest_file(gw.session, gw, "people", csv)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def _last_entry(runtime: Runtime) -> AuditEntry:
    with transaction(runtime.sessions) as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None
    return entry


def test_health_and_home_need_no_sign_in(client: TestClient) -> None:
    assert client.get("/api/health").json()["status"] == "ok"
    home = client.get("/")
    assert home.status_code == 200 and "ImmigrationOS" in home.text
    assert home.headers["X-Frame-Options"] == "DENY"


def test_routes_require_sign_in(client: TestClient) -> None:
    assert client.get("/api/me").status_code == 401
    assert client.get("/api/me", auth=("officer.miami", "wrong-password")).status_code == 401


def test_officer_reads_records_under_a_purpose_and_it_is_audited(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.get(
        "/api/records",
        params={"source": "people"},
        auth=OFFICER,
        headers={"X-Immos-Purpose": "case-processing", "X-Immos-Justification": "case C-9"},
    )
    assert response.status_code == 200
    assert [r["record_key"] for r in response.json()] == ["1", "2"]
    entry = _last_entry(runtime)
    assert (entry.action, entry.actor_name, entry.purpose, entry.result_count) == (
        "records.searched",
        "officer.miami",
        "case-processing",
        2,
    )
    assert entry.justification == "case C-9"


def test_a_purpose_outside_the_role_is_refused_and_audited(
    client: TestClient, runtime: Runtime
) -> None:
    response = client.get(
        "/api/records",
        params={"source": "people"},
        auth=OFFICER,
        headers={"X-Immos-Purpose": "statistics"},
    )
    assert response.status_code == 403
    entry = _last_entry(runtime)
    assert (entry.action, entry.actor_name) == ("access.refused", "officer.miami")


def test_unknown_purpose_is_a_clear_error(client: TestClient) -> None:
    response = client.get("/api/me", auth=OFFICER, headers={"X-Immos-Purpose": "curiosity"})
    assert response.status_code == 400 and "unknown purpose" in response.json()["detail"]


def test_administrator_cannot_read_records(client: TestClient, runtime: Runtime) -> None:
    response = client.get("/api/records", params={"source": "people"}, auth=ADMIN)
    assert response.status_code == 403
    assert _last_entry(runtime).outcome == "refused"


def test_auditor_verifies_the_chain_and_gets_a_signed_checkpoint(client: TestClient) -> None:
    verified = client.post("/api/audit/verify", auth=AUDITOR).json()
    assert verified["ok"] is True and verified["checked"] > 0
    checkpoint = client.post("/api/audit/checkpoints", auth=AUDITOR).json()
    assert checkpoint["format"] == "immos-audit-checkpoint/1"
    assert checkpoint["entries"] >= verified["checked"]
    entries = client.get("/api/audit/entries", auth=AUDITOR, params={"limit": 5}).json()
    assert entries[0]["action"] == "audit.checkpoint"


def test_officer_cannot_read_the_audit_log(client: TestClient) -> None:
    assert client.get("/api/audit/entries", auth=OFFICER).status_code == 403


def test_sources_list_shows_agreements(client: TestClient) -> None:
    sources = client.get("/api/sources", auth=AUDITOR).json()
    assert sources[0]["agreement"]["permitted_purposes"] == ["case-processing"]


def test_unknown_record_is_404_without_internals(client: TestClient) -> None:
    response = client.get("/api/records/rec-nope", auth=OFFICER)
    assert response.status_code == 404
    assert "Traceback" not in response.text


def test_openapi_documents_every_api_route(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/health", "/api/me", "/api/records", "/api/audit/verify"} <= set(spec["paths"])
