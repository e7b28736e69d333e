"""Departures from the API and the CLI, as users and producers run them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.departures.conftest import World
from typer.testing import CliRunner

from immigrationos.api.app import create_app
from immigrationos.cli import common
from immigrationos.cli.main import app as cli
from immigrationos.core.settings import get_settings
from immigrationos.runtime import Runtime

ANALYST = ("analyst", "demo-analyst-pass")
OFFICER = ("officer.miami", "demo-officer-pass")
PURPOSE = {"X-Immos-Purpose": "departure-verification", "X-Immos-Justification": "test"}
EXIT = {"event_id": "DEPAPI1", "channel": "land_exit", "occurred_at": "2026-09-30T09:00:00Z",
        "family_name": "Doe", "given_name": "Jan", "port": "San Ysidro"}  # fmt: skip


@pytest.fixture
def client(world_store: Runtime) -> Iterator[TestClient]:
    with TestClient(create_app(world_store), raise_server_exceptions=False) as test_client:
        yield test_client


def test_the_http_endpoint_applies_once_and_dead_letters_the_unreadable(
    client: TestClient, departure_world: World
) -> None:
    lines = [json.loads(line) for line in departure_world.lines()[:30]]
    first = client.post("/api/departures/events", json=lines, auth=ANALYST, headers=PURPOSE)
    assert first.status_code == 200, first.text
    outcomes = first.json()["outcomes"]
    assert len(outcomes) == 30 and {o["status"] for o in outcomes} <= {"applied", "dead-letter"}
    again = client.post("/api/departures/events", json=lines[0], auth=ANALYST, headers=PURPOSE)
    assert again.json()["outcomes"][0]["status"] in ("duplicate", "dead-letter")
    bad = client.post("/api/departures/events", json={**EXIT, "occurred_at": "later"},
                      auth=ANALYST, headers=PURPOSE)  # fmt: skip
    assert bad.json()["outcomes"][0]["status"] == "dead-letter"
    assert "occurred_at" in bad.json()["outcomes"][0]["reason"]
    letters = client.get("/api/departures/dead-letters", auth=ANALYST, headers=PURPOSE).json()
    assert any(x["event_id"] == "DEPAPI1" for x in letters)
    # an officer reads departures but does not feed events
    denied = client.post("/api/departures/events", json=EXIT, auth=OFFICER, headers=PURPOSE)
    assert denied.status_code == 403
    unsigned = client.post("/api/departures/events", json=EXIT)
    assert unsigned.status_code == 401


def test_monitor_metrics_schema_and_one_departure(client: TestClient) -> None:
    made = client.post("/api/departures/events", json=EXIT, auth=ANALYST, headers=PURPOSE)
    outcome = made.json()["outcomes"][0]
    assert outcome["status"] == "applied" and outcome["band"] == "unmatched"
    shown = client.get(f"/api/departures/{outcome['departure_id']}", auth=OFFICER,
                       headers=PURPOSE).json()  # fmt: skip
    assert shown["event_id"] == "DEPAPI1" and shown["explanation"]["path"] == "fuzzy"
    figures = client.get("/api/departures/monitor", auth=ANALYST, headers=PURPOSE).json()
    assert figures["events_total"]["land_exit"]["unmatched"] == 1
    assert figures["events_per_minute"]["land_exit"] > 0
    assert figures["lag_ms"]["p50"] is not None
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert 'immos_departure_events_total{band="unmatched",channel="land_exit"} 1.0' in metrics.text
    assert "immos_departure_review_queue 0.0" in metrics.text
    schema = client.get("/api/departures/schema").json()
    assert schema["title"].endswith("version 1")
    wrong = {**PURPOSE, "X-Immos-Purpose": "criminal-investigation"}
    assert client.get("/api/departures/monitor", auth=ANALYST, headers=wrong).status_code == 403


def test_cli_replay_is_idempotent_and_reports(
    world_store: Runtime,
    departure_world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(world_store.settings.data_dir))
    monkeypatch.setenv("IMMOS_DATABASE_URL", world_store.settings.database_url)
    get_settings.cache_clear()
    monkeypatch.setattr(common.console, "width", 200)  # tables as wide as the text they hold
    stream = tmp_path / "tail.jsonl"
    stream.write_bytes(b"\n".join(departure_world.lines()[-60:]) + b"\n")
    runner = CliRunner()
    first = runner.invoke(cli, ["departures", "replay", str(stream), "--rate", "500"])
    assert first.exit_code == 0, first.output
    assert "band verified" in first.output
    second = runner.invoke(cli, ["departures", "replay", str(stream)])
    assert second.exit_code == 0 and "status duplicate" in second.output
    assert "band verified" not in second.output
    shown = runner.invoke(cli, ["departures", "monitor", "--json"])
    assert shown.exit_code == 0 and '"review_queue"' in shown.output
    queue = runner.invoke(cli, ["departures", "review", "list", "--as", "analyst",
                                "--password", "demo-analyst-pass"])  # fmt: skip
    assert queue.exit_code == 0, queue.output
    schema = runner.invoke(cli, ["departures", "schema"])
    assert schema.exit_code == 0 and "self_report" in schema.output
    missing = runner.invoke(cli, ["departures", "replay", str(tmp_path / "none.jsonl")])
    assert missing.exit_code != 0
