"""Entity resolution from the CLI and the API, as a user runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from immigrationos.api.app import create_app
from immigrationos.cli.main import app as cli
from immigrationos.runtime import Runtime

ANALYST = ("analyst", "demo-analyst-pass")
OFFICER = ("officer.miami", "demo-officer-pass")
PURPOSE = {"X-Immos-Purpose": "identity-resolution", "X-Immos-Justification": "test"}


@pytest.fixture
def client(world: tuple[Runtime, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(world[0]), raise_server_exceptions=False) as test_client:
        yield test_client


def test_api_run_review_person_and_export(client: TestClient) -> None:
    started = client.post("/api/resolution/runs", json={}, auth=ANALYST, headers=PURPOSE)
    assert started.status_code == 201, started.text
    summary = started.json()
    assert summary["persons"] > 0 and "tax_addresses" in summary["sources left out"]
    runs = client.get("/api/resolution/runs", auth=ANALYST, headers=PURPOSE).json()
    assert runs[0]["id"] == summary["run (person-index version)"]
    models = client.get("/api/resolution/models", auth=ANALYST, headers=PURPOSE).json()
    assert models[0]["blocking_analysis"] and models[0]["origin"] == "shipped"
    export = client.get("/api/resolution/export", auth=ANALYST, headers=PURPOSE).text.splitlines()
    assert export[0] == "source,record_key,person_id" and len(export) > 100
    person = export[1].rsplit(",", 1)[1]
    view = client.get(f"/api/persons/{person}/resolution", auth=ANALYST, headers=PURPOSE).json()
    assert view["person_id"] == person and view["links"]
    reviews = client.get("/api/resolution/reviews", auth=ANALYST, headers=PURPOSE).json()
    if reviews:
        rid = reviews[0]["id"]
        shown = client.get(f"/api/resolution/reviews/{rid}", auth=ANALYST, headers=PURPOSE)
        assert shown.json()["contributions"]
        bad = client.post(f"/api/resolution/reviews/{rid}/decision",
                          json={"decision": "maybe", "reason": "looks alike"},
                          auth=ANALYST, headers=PURPOSE)  # fmt: skip
        assert bad.status_code == 422
        ok = client.post(f"/api/resolution/reviews/{rid}/decision",
                         json={"decision": "non-match", "reason": "different parents on file"},
                         auth=ANALYST, headers=PURPOSE)  # fmt: skip
        assert ok.json()["decision"] == "non-match"


def test_api_refuses_other_roles_and_purposes(client: TestClient) -> None:
    assert client.get("/api/resolution/runs", auth=OFFICER, headers=PURPOSE).status_code == 403
    wrong = {"X-Immos-Purpose": "statistics", "X-Immos-Justification": "test"}
    assert client.get("/api/resolution/runs", auth=ANALYST, headers=wrong).status_code == 403


def test_cli_run_status_export_evaluate_person(
    world: tuple[Runtime, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, folder = world
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("IMMOS_DATABASE_URL", rt.settings.database_url)
    runner = CliRunner()
    ran = runner.invoke(cli, ["resolve", "run", "--json"])
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.output)["persons"] > 0
    status = runner.invoke(cli, ["resolve", "status"])
    assert status.exit_code == 0 and "finished" in status.output
    out = tmp_path / "export.csv"
    assert runner.invoke(cli, ["resolve", "export", "--out", str(out)]).exit_code == 0
    lines = out.read_text().splitlines()
    assert lines[0] == '"source","record_key","person_id"'
    result_json = tmp_path / "eval.json"
    evaluated = runner.invoke(
        cli,
        ["resolve", "evaluate", "--truth", str(folder / "truth" / "records.parquet"),
         "--cultures", str(folder / "truth" / "persons.parquet"), "--json", str(result_json)],
    )  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(result_json.read_text())
    assert metrics["bcubed_f1"] > 0.95 and metrics["cultures"]
    person = lines[1].rsplit(",", 1)[1].strip('"')
    shown = runner.invoke(cli, ["resolve", "person", person, "--json"])
    assert shown.exit_code == 0 and json.loads(shown.output)["person_id"] == person
    missing = runner.invoke(cli, ["resolve", "evaluate", "--truth", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 1 and "nope.csv" in missing.output


def test_api_links_a_new_record_without_a_full_run(client: TestClient) -> None:
    client.post("/api/resolution/runs", json={}, auth=ANALYST, headers=PURPOSE)
    export = client.get("/api/resolution/export", auth=ANALYST, headers=PURPOSE).text.splitlines()
    person = export[1].rsplit(",", 1)[1]
    view = client.get(f"/api/persons/{person}/resolution", auth=ANALYST, headers=PURPOSE).json()
    golden = view["golden"]
    record = {
        key: golden[key]["value"]
        for key in ("given_name", "family_name", "birth_date", "sex", "nationality", "a_number",
                    "passport_no")
        if key in golden
    }  # fmt: skip
    linked = client.post("/api/resolution/link", json=record, auth=ANALYST, headers=PURPOSE)
    assert linked.status_code == 200, linked.text
    decision = linked.json()
    assert decision["band"] in {"linked", "review"} and decision["persisted"] is False
    if decision["band"] == "linked":
        assert decision["person_id"] == person
    stranger = {"given_name": "Zebulon", "family_name": "Quixotefield", "birth_date": "1901-02-03"}
    alone = client.post("/api/resolution/link", json=stranger, auth=ANALYST, headers=PURPOSE)
    assert alone.json()["band"] == "new"
    again = client.post("/api/resolution/link", json={"record_id": view["links"][0]["record_id"]},
                        auth=ANALYST, headers=PURPOSE)  # fmt: skip
    assert again.status_code == 422 and "already in person" in again.json()["detail"]


def test_cli_links_one_record(
    world: tuple[Runtime, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, _ = world
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("IMMOS_DATABASE_URL", rt.settings.database_url)
    runner = CliRunner()
    assert runner.invoke(cli, ["resolve", "run"]).exit_code == 0
    record = tmp_path / "encounter.json"
    record.write_text(json.dumps({"given_name": "Zebulon", "family_name": "Quixotefield"}))
    linked = runner.invoke(cli, ["resolve", "link", str(record), "--json"])
    assert linked.exit_code == 0, linked.output
    assert json.loads(linked.output)["band"] == "new"
