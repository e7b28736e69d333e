"""The lifecycle from the CLI and the API, as users run it; the documented diagram is current."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.lifecycle.conftest import Desk
from typer.testing import CliRunner

from immigrationos.api.app import create_app
from immigrationos.cli.main import app as cli
from immigrationos.lifecycle import diagram

ROOT = Path(__file__).resolve().parents[2]
OFFICER = ("officer.miami", "demo-officer-pass")
SUPERVISOR = ("supervisor.miami", "demo-supervisor-pass")
ANALYST = ("analyst", "demo-analyst-pass")
PURPOSE = {"X-Immos-Purpose": "case-processing", "X-Immos-Justification": "test"}
A_NUMBER = {
    "value": "A123456789",
    "source_id": "court",
    "record_key": "IC1",
    "observed_on": "2025-01-01",
}
ENCOUNTER = {
    "encounter_date": "2026-03-02",
    "office": "Miami",
    "narrative": "Interviewed at the check-in office.",
}


def test_documented_diagram_is_generated_from_the_table() -> None:
    assert diagram.current(ROOT / "docs" / "lifecycle.md") == diagram.block(), (
        "docs/lifecycle.md is stale: run `immos lifecycle diagram --write`"
    )


@pytest.fixture
def client(desk: Desk) -> Iterator[TestClient]:
    desk.runtime.sessions.configure(info={"immos.documents_pdf": True})
    with TestClient(create_app(desk.runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def test_api_case_from_lead_to_arrest_with_two_people(desk: Desk, client: TestClient) -> None:
    pid = desk.person(golden={"a_number": A_NUMBER})
    opened = client.post(
        "/api/cases",
        json={"person_id": pid, "office": "Miami", "reason": "overstay lead"},
        auth=OFFICER,
        headers=PURPOSE,
    )
    assert opened.status_code == 201, opened.text
    case = opened.json()["case"]["id"]
    next_steps = {o["transition"]: o for o in opened.json()["next"]}
    assert next_steps["record_encounter"]["allowed"]
    step = client.post(
        f"/api/cases/{case}/steps",
        json={"action": "record_encounter", "params": ENCOUNTER},
        auth=OFFICER,
        headers=PURPOSE,
    )
    assert step.status_code == 201 and step.json()["state"] == "ENCOUNTERED", step.text
    bad = client.post(
        f"/api/cases/{case}/steps",
        json={"action": "record_encounter", "params": ENCOUNTER},
        auth=OFFICER,
        headers=PURPOSE,
    )
    assert bad.status_code == 409 and "not from ENCOUNTERED" in bad.json()["detail"]
    body = {
        "action": "arrest",
        "params": {"authority": "warrant", "probable_cause": "Admission expired, no extension"},
        "justification": "overstay without pending relief",
    }
    req = client.post(f"/api/cases/{case}/requests", json=body, auth=OFFICER, headers=PURPOSE)
    assert req.status_code == 201, req.text
    request_id = req.json()["id"]
    own = client.post(
        f"/api/requests/{request_id}/decision",
        json={"approve": True, "justification": "my own call"},
        auth=OFFICER,
        headers=PURPOSE,
    )
    assert own.status_code == 403 and "own request" in own.json()["detail"]
    ok = client.post(
        f"/api/requests/{request_id}/decision",
        json={"approve": True, "justification": "sound"},
        auth=SUPERVISOR,
        headers=PURPOSE,
    )
    assert ok.status_code == 200 and ok.json()["decision"] == "approved", ok.text
    done = client.post(f"/api/requests/{request_id}/execution", auth=OFFICER, headers=PURPOSE)
    assert done.json()["state"] == "ARRESTED", done.text
    page = client.get(f"/api/cases/{case}", auth=OFFICER, headers=PURPOSE).json()
    final = next(
        d for d in page["documents"] if d["kind"] == "arrest_warrant" and d["status"] == "final"
    )
    pdf = client.get(f"/api/documents/{final['id']}?format=pdf", auth=OFFICER, headers=PURPOSE)
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")


def test_api_refuses_roles_without_case_work(desk: Desk, client: TestClient) -> None:
    refused = client.get("/api/cases", auth=ANALYST, headers={"X-Immos-Purpose": "statistics"})
    assert refused.status_code == 403, refused.text
    assert "/api/cases/{case_id}/steps" in client.get("/openapi.json").json()["paths"]


def test_cli_open_act_request_approve_execute_tick(
    desk: Desk, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rt = desk.runtime
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("IMMOS_DATABASE_URL", rt.settings.database_url)
    monkeypatch.setenv("IMMOS_DOCUMENTS_PDF", "false")
    from immigrationos.core.settings import get_settings

    get_settings.cache_clear()
    pid = desk.person(golden={"a_number": A_NUMBER})
    runner = CliRunner()
    officer = ["--as", "officer.miami", "--password", "demo-officer-pass"]
    supervisor = ["--as", "supervisor.miami", "--password", "demo-supervisor-pass"]
    opened = runner.invoke(
        cli, ["cases", "open", pid, "--office", "Miami", "--reason", "lead", *officer]
    )
    assert opened.exit_code == 0, opened.output
    case = opened.output.split()[1]
    args = ["cases", "do", case, "record_encounter", *[f"-p{k}={v}" for k, v in ENCOUNTER.items()]]
    assert runner.invoke(cli, [*args, *officer]).exit_code == 0
    bad = runner.invoke(cli, ["cases", "do", case, "arrest", "-pauthority=warrant", *officer])
    assert bad.exit_code == 1 and "approval" in bad.output
    req = runner.invoke(
        cli,
        [
            "cases",
            "request",
            case,
            "arrest",
            "-p",
            "authority=warrant",
            "-p",
            "probable_cause=Admission expired long ago",
            "--why",
            "overstay, no relief",
            "--json",
            *officer,
        ],
    )
    assert req.exit_code == 0, req.output
    request_id = json.loads(req.output)["id"]
    queue = runner.invoke(cli, ["cases", "requests", "--json", *supervisor])
    assert request_id in queue.output
    assert (
        runner.invoke(
            cli, ["cases", "approve", request_id, "--why", "sound", *supervisor]
        ).exit_code
        == 0
    )
    executed = runner.invoke(cli, ["cases", "execute", request_id, "--json", *officer])
    assert json.loads(executed.output)["state"] == "ARRESTED", executed.output
    shown = runner.invoke(cli, ["cases", "show", case, "--json", *officer])
    page = json.loads(shown.output)
    assert page["case"]["custody"] == "detained"
    assert any(o["transition"] == "issue_nta" for o in page["next"])
    doc = next(d["id"] for d in page["documents"] if d["kind"] == "encounter_record")
    out = tmp_path / "doc.html"
    assert (
        runner.invoke(cli, ["cases", "document", doc, "--out", str(out), *officer]).exit_code == 0
    )
    assert "Interviewed at the check-in office." in out.read_text()
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    ticked = runner.invoke(cli, ["lifecycle", "tick", "--at", later, "--json"])
    assert ticked.exit_code == 0 and "deadlines_applied" in ticked.output
    assert "stateDiagram-v2" in runner.invoke(cli, ["lifecycle", "diagram"]).output
    get_settings.cache_clear()
