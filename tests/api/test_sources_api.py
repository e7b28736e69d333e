"""Source integration through the API: register, upload, quarantine, lineage, retention,
purpose refusals and the tax disclosure rule, each with the role the route declares."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from immigrationos.accounts.service import ensure_demo_accounts
from immigrationos.api.app import create_app
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import frozen_at, utcnow
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

PRIVACY = ("privacy", "demo-privacy-pass")
OFFICER = ("officer.miami", "demo-officer-pass")
AUDITOR = ("auditor", "demo-auditor-pass")
DEFINITION = {
    "id": "people",
    "name": "People",
    "format": "csv",
    "record_key": "rid",
    "fields": {
        "rid": {"type": "string", "required": True},
        "family_name": "name",
        "given_name": "name",
        "birth_date": "date",
        "sex": {"type": "code", "codes": ["M", "F", "X"]},
        "passport_no": "string",
    },
    "agreement": {
        "legal_authority": "Synthetic test authority, for the API tests",
        "permitted_purposes": ["case-processing", "data-integration"],
        "allowed_fields": ["rid", "family_name", "given_name", "birth_date", "sex", "passport_no"],
        "purpose_fields": {"data-integration": ["rid", "family_name"]},
        "retention_days": 30,
    },
    "facts": [
        {
            "table": "identifiers",
            "name": "id-passport",
            "columns": {"kind": "=passport", "value": "passport_no"},
        }
    ],
}
CSV = (
    b"rid,family_name,given_name,birth_date,sex,passport_no\n"
    b"1,Garcia,Ana,1990-01-02,F,P1234567\n"
    b"2,Nguyen,Bao,1985-03-04,Q,P7654321\n"
    b"3,=HYPERLINK(x),Eve,1970-01-01,F,P0000001\n"
)


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
    with TestClient(create_app(runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def _register_and_upload(client: TestClient) -> dict:
    assert client.post("/api/sources", json=DEFINITION, auth=PRIVACY).status_code == 201
    response = client.post("/api/sources/people/batches", content=CSV, auth=PRIVACY)
    assert response.status_code == 201, response.text
    return response.json()


def test_register_upload_and_a_reconciled_report(client: TestClient) -> None:
    report = _register_and_upload(client)
    assert (report["read"], report["loaded"], report["quarantined"]) == (3, 1, 2)
    assert report["quarantine_reasons"] == {"code": 1, "formula": 1}
    assert report["derived"] == {"identifiers": 1}
    again = client.post("/api/sources/people/batches", content=CSV, auth=PRIVACY).json()
    assert (again["loaded"], again["unchanged"], again["quarantined"]) == (0, 1, 2)


def test_only_a_privacy_officer_registers_sources(client: TestClient) -> None:
    assert client.post("/api/sources", json=DEFINITION, auth=OFFICER).status_code == 403


def test_an_invalid_definition_is_a_clear_error(client: TestClient) -> None:
    bad = DEFINITION | {"record_key": "nope"}
    response = client.post("/api/sources", json=bad, auth=PRIVACY)
    assert response.status_code == 422 and "record_key" in response.json()["detail"]


def test_quarantine_explains_and_reruns_after_a_fix(client: TestClient) -> None:
    _register_and_upload(client)
    rows = client.get("/api/sources/people/quarantine", auth=PRIVACY).json()
    by_reason = {r["reason"]: r for r in rows}
    assert set(by_reason) == {"code", "formula"}
    assert by_reason["code"]["original"] == "2,Nguyen,Bao,1985-03-04,Q,P7654321\n"
    assert "row 2" in by_reason["code"]["message"] and "field sex" in by_reason["code"]["message"]
    assert "code table" in by_reason["code"]["meaning"]
    fixed = {
        **DEFINITION,
        "fields": {**DEFINITION["fields"], "sex": {"type": "code", "codes": ["M", "F", "X", "Q"]}},
    }
    assert client.post("/api/sources", json=fixed, auth=PRIVACY).status_code == 201
    rerun = client.post("/api/sources/people/quarantine/rerun", auth=PRIVACY).json()
    assert (rerun["resolved"], rerun["still_failing"]) == (1, 1)
    still = client.get("/api/sources/people/quarantine", auth=PRIVACY).json()
    assert [r["reason"] for r in still] == ["formula"]
    records = client.get(
        "/api/records",
        params={"source": "people", "key": "2"},
        auth=OFFICER,
        headers={"X-Immos-Purpose": "case-processing"},
    ).json()
    assert records[0]["payload"]["sex"] == "Q"


def test_purpose_fields_hide_values_and_say_why(client: TestClient) -> None:
    _register_and_upload(client)
    full = client.get(
        "/api/records",
        params={"source": "people"},
        auth=OFFICER,
        headers={"X-Immos-Purpose": "case-processing"},
    ).json()
    assert full[0]["payload"]["given_name"] == "Ana" and full[0]["hidden_fields"] == {}
    narrow = client.get(
        "/api/records",
        params={"source": "people"},
        auth=PRIVACY,
        headers={"X-Immos-Purpose": "data-integration"},
    ).json()
    assert set(narrow[0]["payload"]) == {"rid", "family_name"}
    assert "data-integration" in narrow[0]["hidden_fields"]["given_name"]


def test_a_forbidden_purpose_is_refused_naming_the_agreement(
    client: TestClient, runtime: Runtime
) -> None:
    _register_and_upload(client)
    response = client.get(
        "/api/records",
        params={"source": "people"},
        auth=OFFICER,
        headers={"X-Immos-Purpose": "criminal-investigation"},
    )
    assert response.status_code == 403
    assert "does not permit purpose 'criminal-investigation'" in response.json()["detail"]
    with transaction(runtime.sessions) as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None and entry.action == "access.refused"
    assert entry.actor_name == "officer.miami"


def test_lineage_of_a_fact(client: TestClient) -> None:
    _register_and_upload(client)
    records = client.get(
        "/api/records",
        params={"source": "people"},
        auth=OFFICER,
        headers={"X-Immos-Purpose": "case-processing"},
    ).json()
    fact_id = f"{records[0]['id']}/id-passport"
    lineage = client.get(
        f"/api/lineage/facts/identifiers/{fact_id}",
        auth=OFFICER,
        headers={"X-Immos-Purpose": "case-processing"},
    )
    assert lineage.status_code == 200, lineage.text
    values = {v["column"]: v for v in lineage.json()["values"]}
    assert values["value"]["from_field"] == "passport_no"
    assert values["value"]["record"]["row_number"] == 1


def test_retention_plan_then_run(client: TestClient) -> None:
    _register_and_upload(client)
    with frozen_at(utcnow() + timedelta(days=31)):
        plan = client.post("/api/retention/plan", auth=PRIVACY).json()
        assert [(p["source_id"], p["records"]) for p in plan["sources"]] == [("people", 1)]
        result = client.post("/api/retention/run", auth=PRIVACY).json()
    assert result["result"]["sources"]["people"]["records"] == 1
    assert (
        client.get(
            "/api/records",
            params={"source": "people"},
            auth=OFFICER,
            headers={"X-Immos-Purpose": "case-processing"},
        ).json()
        == []
    )


def test_disclosure_requests_need_an_investigating_officer(client: TestClient) -> None:
    form = {
        "investigation": "CI-1",
        "subjects": [{"family_name": "A", "given_name": "B", "address_line": "1 Main St"}],
        "periods": [2024],
        "statutory_authority": "26 U.S.C. 6103(i)(2)",
        "reason": "x" * 60,
    }
    as_case_worker = client.post(
        "/api/disclosure-requests",
        json=form,
        auth=OFFICER,
        headers={"X-Immos-Purpose": "case-processing"},
    )
    assert as_case_worker.status_code == 403
    bulk = form | {"subjects": form["subjects"] * 3}
    response = client.post(
        "/api/disclosure-requests",
        json=bulk,
        auth=OFFICER,
        headers={"X-Immos-Purpose": "criminal-investigation"},
    )
    assert response.status_code in (403, 404)


def test_the_mapping_plan_is_inspectable(client: TestClient) -> None:
    client.post("/api/sources", json=DEFINITION, auth=PRIVACY)
    plan = client.get("/api/sources/people/plan", auth=AUDITOR).json()
    assert "INSERT INTO identifiers" in plan["id-passport"]
