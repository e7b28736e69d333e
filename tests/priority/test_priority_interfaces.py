"""Prioritization from the CLI and the API, as users run it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.priority.conftest import Agency
from typer.testing import CliRunner

from immigrationos.api.app import create_app
from immigrationos.cli.main import app as cli
from immigrationos.priority.policy import shipped_policies

ANALYST = ("analyst", "demo-analyst-pass")
OFFICER = ("officer.miami", "demo-officer-pass")
SUPERVISOR = ("supervisor.miami", "demo-supervisor-pass")
PURPOSE = {"X-Immos-Purpose": "enforcement-prioritization", "X-Immos-Justification": "test"}
FELONY = {"offense_category": "robbery", "offense_level": "felony", "sentence_days": 900,
          "conviction_date": date(2023, 5, 1)}  # fmt: skip


@pytest.fixture
def client(agency: Agency) -> Iterator[TestClient]:
    with TestClient(create_app(agency.runtime), raise_server_exceptions=False) as test_client:
        yield test_client


def test_api_register_adopt_run_explain_worklist_override(
    agency: Agency, client: TestClient
) -> None:
    pid = agency.person(convictions=[FELONY], encounters=[{"occurred_on": date(2024, 1, 2)}])
    text = next(p for p in shipped_policies() if "2021" in p.name).read_text()
    made = client.post("/api/priority/policies", json={"text": text}, auth=ANALYST, headers=PURPOSE)
    assert made.status_code == 201, made.text
    policy = made.json()["id"]
    bad_text = text.replace("when: felony,", "when: religion,")
    bad = client.post("/api/priority/policies", json={"text": bad_text}, auth=ANALYST,
                      headers=PURPOSE)  # fmt: skip
    assert bad.status_code == 422 and "prohibited attribute" in bad.text
    mine = client.post(f"/api/priority/policies/{policy}/adopt", json={"note": "in force"},
                       auth=OFFICER, headers=PURPOSE)  # fmt: skip
    assert mine.status_code == 403
    adopted = client.post(f"/api/priority/policies/{policy}/adopt", json={"note": "in force"},
                          auth=SUPERVISOR, headers=PURPOSE)  # fmt: skip
    assert adopted.status_code == 200 and adopted.json()["status"] == "adopted"
    run = client.post("/api/priority/runs", json={"as_of": "2026-03-02"}, auth=ANALYST,
                      headers=PURPOSE)  # fmt: skip
    assert run.status_code == 201 and run.json()["counts"]["actionable"] == 1
    explained = client.get(f"/api/priority/persons/{pid}?as_of=2026-03-02", auth=OFFICER,
                           headers=PURPOSE).json()  # fmt: skip
    assert explained["tier"]["id"] == "public-safety" and explained["action"]["possible"]
    work = client.get("/api/priority/worklist?size=5", auth=OFFICER, headers=PURPOSE).json()
    assert [i["person_id"] for i in work["items"]] == [pid]
    why = "Cooperating witness in a pending prosecution."
    over = client.post(f"/api/priority/persons/{pid}/override", auth=OFFICER, headers=PURPOSE,
                       json={"tier": "not-a-priority", "justification": why})  # fmt: skip
    assert over.status_code == 201 and over.json()["direction"] == "lower"
    wrong_purpose = client.get("/api/priority/worklist", auth=OFFICER,
                               headers={"X-Immos-Purpose": "case-processing"})  # fmt: skip
    assert wrong_purpose.status_code == 403
    assert "/api/priority/compare" in client.get("/openapi.json").json()["paths"]


def test_cli_publish_run_worklist_explain_and_what_if_report(
    agency: Agency, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rt = agency.runtime
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("IMMOS_DATABASE_URL", rt.settings.database_url)
    from immigrationos.core.settings import get_settings

    get_settings.cache_clear()
    pid = agency.person(convictions=[FELONY], encounters=[{"occurred_on": date(2024, 1, 2)}])
    runner = CliRunner()
    analyst = ["--as", "analyst", "--password", "demo-analyst-pass"]
    officer = ["--as", "officer.miami", "--password", "demo-officer-pass"]
    for path in shipped_policies():
        done = runner.invoke(cli, ["priority", "register", str(path), *analyst])
        assert done.exit_code == 0, done.output
    adopt = ["priority", "adopt", "dhs-2021-guidelines@1.0.0", "--note", "ok",
             "--as", "supervisor.miami", "--password", "demo-supervisor-pass"]  # fmt: skip
    assert runner.invoke(cli, adopt).exit_code == 0
    ran = runner.invoke(cli, ["priority", "run", "--as-of", "2026-03-02", *analyst])
    assert ran.exit_code == 0 and "actionable leads: 1" in ran.output
    work = runner.invoke(cli, ["priority", "worklist", *officer])
    assert work.exit_code == 0 and "actionable" in work.output
    explained = runner.invoke(cli, ["priority", "explain", pid, "--as-of", "2026-03-02",
                                    *officer])  # fmt: skip
    assert explained.exit_code == 0 and "public-safety" in explained.output
    out = tmp_path / "what-if.html"
    what_if = ["priority", "compare", "dhs-2021-guidelines", "dhs-2025-enforcement"]
    compared = runner.invoke(cli, [*what_if, "--out", str(out), *analyst])
    assert compared.exit_code == 0, compared.output
    assert "<svg" in out.read_text() and "https://" not in out.read_text()
    refused = runner.invoke(cli, ["priority", "adopt", "dhs-2014-priorities@1.0.0", "--note",
                                  "x", *analyst])  # fmt: skip
    assert refused.exit_code == 1 and "supervisor" in refused.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        Path(shipped_policies()[0]).read_text().replace("when: felony,", "when: gang_membership,")
    )
    invalid = runner.invoke(cli, ["priority", "validate", str(bad)])
    assert invalid.exit_code == 1 and "associations" in invalid.output
