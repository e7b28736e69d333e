"""Overstays from the CLI and the API, as an analyst runs them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from immigrationos.api.app import create_app
from immigrationos.cli import common
from immigrationos.cli.overstays import app as cli
from immigrationos.core.clock import frozen_at
from immigrationos.core.settings import get_settings

from .conftest import NOW, Agency, at

ANALYST = ("analyst", "demo-analyst-pass")
OFFICER = ("officer.miami", "demo-officer-pass")
STATS = {"X-Immos-Purpose": "statistics", "X-Immos-Justification": "test"}
ON, UNTIL = date(2025, 11, 1), date(2026, 5, 1)


@pytest.fixture
def client(agency: Agency) -> Iterator[TestClient]:
    app = create_app(agency.runtime)
    with frozen_at(NOW), TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def test_api_assess_report_and_history(agency: Agency, client: TestClient) -> None:
    pid = agency.person("BRA")
    aid = agency.admission(pid, ON, UNTIL, suffix="/admissions")  # as ingest names them
    first = client.post("/api/departures/overstays/assess", json={"as_of": "2026-06-01"},
                        auth=ANALYST, headers=STATS)  # fmt: skip
    assert first.status_code == 201, first.text
    assert first.json()["outcomes"]["no-departure-record"] == 1
    agency.departure(pid, date(2026, 5, 20), at(date(2026, 7, 1)))
    second = client.post("/api/departures/overstays/assess", json={"as_of": "2026-07-02"},
                         auth=ANALYST, headers=STATS)  # fmt: skip
    assert second.json()["superseded"] == 1

    got = client.get("/api/departures/overstays?fiscal_year=2026", auth=ANALYST, headers=STATS)
    assert got.status_code == 200, got.text
    body = got.json()
    assert (
        body["totals"]["departed-late"] == 1 and body["by_nationality"][0]["nationality"] == "BRA"
    )
    assert [h["no-departure-record"] for h in body["history"]] == [1, 0]
    then = client.get("/api/departures/overstays?fiscal_year=2026&as_of=2026-06-15",
                      auth=ANALYST, headers=STATS).json()  # fmt: skip
    assert then["totals"]["no-departure-record"] == 1
    one = client.get(f"/api/departures/overstays/admissions/{aid}", auth=ANALYST, headers=STATS)
    assert [a["outcome"] for a in one.json()["assessments"]] == ["no-departure-record",
                                                                 "departed-late"]  # fmt: skip
    assert "never an action" in one.json()["note"]


def test_api_refusals(agency: Agency, client: TestClient) -> None:
    officer = client.get("/api/departures/overstays", auth=OFFICER,
                         headers={"X-Immos-Purpose": "departure-verification"})  # fmt: skip
    assert officer.status_code == 403
    missing = client.get("/api/departures/overstays/admissions/adm-none", auth=ANALYST,
                         headers=STATS)  # fmt: skip
    assert missing.status_code == 404
    early = client.post("/api/departures/overstays/assess", json={"as_of": "2027-01-01"},
                        auth=ANALYST, headers=STATS)  # fmt: skip
    assert early.status_code == 422 and "future" in early.text


def test_cli_assess_report_history(agency: Agency, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = agency.runtime
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(rt.settings.data_dir))
    monkeypatch.setenv("IMMOS_DATABASE_URL", rt.settings.database_url)
    monkeypatch.setattr(common.console, "width", 200)  # tables as wide as the text they hold
    get_settings.cache_clear()
    aid = agency.admission(agency.person("FRA"), ON, UNTIL, klass="H1B")
    analyst = ["--as", "analyst", "--password", "demo-analyst-pass"]
    runner = CliRunner()
    with frozen_at(NOW):
        assessed = runner.invoke(cli, ["assess", "--as-of", "2026-10-01", *analyst])
        assert assessed.exit_code == 0, assessed.output
        assert "1 assessments written" in _words(assessed.output)
        shown = runner.invoke(cli, ["report", "--fiscal-year", "2026", *analyst])
        assert shown.exit_code == 0, shown.output
        assert "By nationality" in shown.output and "H1B" in shown.output
        data = runner.invoke(cli, ["report", "--fiscal-year", "2026", "--json", *analyst])
        assert json.loads(data.output)["totals"]["no-departure-record"] == 1
        one = runner.invoke(cli, ["history", aid, *analyst])
        assert one.exit_code == 0 and "no-departure-record" in one.output
        officer = runner.invoke(cli, ["report", "--as", "officer.miami", "--password",
                                      "demo-officer-pass"])  # fmt: skip
        assert officer.exit_code == 1 and "may not work under purpose" in _words(officer.output)
        bad = runner.invoke(cli, ["assess", "--as-of", "tomorrow", *analyst])
        assert bad.exit_code == 2
    get_settings.cache_clear()


def _words(output: str) -> str:
    """The output with Rich's line wrapping (which follows the terminal's width) undone."""
    return " ".join(output.split())
