"""The system dossier: the Article 9-15 mapping is validated, the dossier is generated from the
live system (empty and loaded), reads no personal data outside the gateway, leaks no secret,
and is served to auditors over the API."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import event, func, select
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.util import find_tables
from tests.shared_demo import DemoBuild
from typer.testing import CliRunner

from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import create_user
from immigrationos.api import dossier_routes
from immigrationos.audit import checkpoint as ckpt
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import ConfigurationError, ValidationFailed
from immigrationos.core.ids import sha256_hex
from immigrationos.core.settings import Settings, get_settings
from immigrationos.departures.models import InboxEntry
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import PERSONAL_TABLES
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.guards import GUARDS
from immigrationos.lifecycle.table import load_table
from immigrationos.oversight import ai_act, dossier, dossier_system
from immigrationos.priority.models import PriorityPolicy
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.models import DataSharingAgreement, IngestBatch, Source
from immigrationos.store.engine import transaction

SHIPPED = ai_act.MAPPING_PATH.read_text(encoding="utf-8")
SECRET = "a-long-production-secret-that-must-never-print-0123456789"
SIGNING_KEY = "5e" * 32
CTX = system_context(Purpose.OVERSIGHT_AUDIT, "dossier test")


def _mapping(edit: Any = None) -> ai_act.Mapping:
    """The shipped mapping, optionally changed by ``edit(raw)`` first."""
    raw = yaml.safe_load(SHIPPED)
    if edit is not None:
        edit(raw)
    return ai_act.parse_mapping(yaml.safe_dump(raw))


def _generate(runtime: Runtime, formats: list[dossier.Format]) -> dossier.Dossier:
    with transaction(runtime.sessions) as session:
        return dossier.generate(session, runtime.settings, CTX, formats)


# -- the mapping --------------------------------------------------------------------------------


def test_the_shipped_mapping_has_every_article_and_no_dead_reference() -> None:
    mapping = ai_act.load_mapping()
    assert sorted(a.article for a in mapping.articles) == list(range(9, 16))
    assert all(a.gaps for a in mapping.articles)
    assert ai_act.mapping_problems(mapping) == []


def test_a_missing_or_repeated_article_is_refused() -> None:
    def drop_12_repeat_9(raw: dict[str, Any]) -> None:
        raw["articles"] = [a for a in raw["articles"] if a["article"] != 12]
        raw["articles"].append(raw["articles"][0])

    problems = ai_act.mapping_problems(_mapping(drop_12_repeat_9))
    assert "Article 12 is missing" in problems
    assert "Article 9 appears more than once" in problems


def test_dead_references_are_each_named() -> None:
    def break_refs(raw: dict[str, Any]) -> None:
        article = raw["articles"][0]
        article["mechanisms"][0]["commands"].append("immos lifecycle teleport")
        article["mechanisms"][0]["modules"].append("immigrationos/lifecycle/gone.py")
        article["checks"] += [
            {"text": "a route that is not there", "api": "GET /api/nowhere"},
            {"text": "a test that is not there", "test": "tests/lifecycle/test_engine.py::test_x"},
            {"text": "a test file that is not there", "test": "tests/nowhere/test_nothing.py"},
        ]
        article["evidence"].append({"label": "made up", "metric": "made.up"})

    problems = " | ".join(ai_act.mapping_problems(_mapping(break_refs)))
    for expected in (
        "'immos lifecycle' has no command 'teleport'",
        "module path 'immigrationos/lifecycle/gone.py' does not exist",
        "API route 'GET /api/nowhere' is not declared",
        "tests/lifecycle/test_engine.py has no test 'test_x'",
        "tests/nowhere/test_nothing.py': no such test file",
        "unknown metric 'made.up'",
    ):
        assert expected in problems


def test_commands_are_resolved_against_the_typer_application() -> None:
    tree = ai_act.command_tree()
    ok = [
        "immos audit verify --checkpoint FILE",
        "immos cases show CASE --as USER",
        "immos bench x",
    ]
    assert [ai_act.command_problem(c, tree) for c in ok] == [None, None, None]
    assert "has no command 'nope'" in (ai_act.command_problem("immos audit nope", tree) or "")
    assert "has no command 'nope'" in (ai_act.command_problem("immos nope", tree) or "")
    assert "start with 'immos'" in (ai_act.command_problem("audit verify", tree) or "")


def test_a_malformed_or_dead_mapping_file_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "ai_act.yaml"
    bad.write_text(SHIPPED.replace("article: 14", "article: 16"))
    with pytest.raises(ConfigurationError, match=r"ai_act\.yaml is invalid"):
        ai_act.load_mapping(bad)
    bad.write_text(SHIPPED.replace("immos lifecycle table", "immos lifecycle tabel"))
    with pytest.raises(ConfigurationError, match="no command 'tabel'"):
        ai_act.load_mapping(bad)


def test_formats_are_parsed_and_unknown_ones_refused() -> None:
    assert dossier.parse_formats("json, html") == ["html", "json"]
    with pytest.raises(ValidationFailed, match="docx"):
        dossier.parse_formats("html,docx")


# -- generation on an empty system (both backends) ----------------------------------------------


def test_an_empty_migrated_database_gives_a_complete_dossier(runtime: Runtime) -> None:
    result = _generate(runtime, ["json", "html"])
    data, html = result.data, result.outputs["html"].decode()
    table = load_table()
    assert list(data["metrics"]) == list(ai_act.METRIC_NAMES)
    assert data["metrics"]["sources.registered"] == 0
    assert data["metrics"]["lifecycle.transitions"] == len(table.transitions)
    assert data["metrics"]["lifecycle.two_person_steps"] == sum(
        1 for t in table.transitions.values() if t.approval
    )
    assert data["metrics"]["audit.chain_ok"] is True
    assert data["metrics"]["prohibited.violations"] == 0
    assert [a["article"] for a in data["articles"]] == list(range(9, 16))
    for n in range(9, 16):
        assert f'id="article-{n}"' in html
    assert "Annex III, point 7" in html and "Known gaps" in html
    assert json.loads(result.outputs["json"]) == data


def test_generation_is_audited_with_the_hash_of_the_data(runtime: Runtime) -> None:
    result = _generate(runtime, ["json"])
    with runtime.sessions() as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "report.dossier_generated")
        ).one()
    assert entry.purpose == "oversight-audit"
    assert entry.details["sha256"] == result.sha256
    assert entry.details["formats"] == ["json"] and entry.details["chain_ok"] is True


def test_a_table_that_does_not_exist_degrades_to_not_available(runtime: Runtime) -> None:
    def evidence(raw: dict[str, Any]) -> None:
        raw["articles"][0]["evidence"] += [
            {"label": "future table", "table": "not_built_yet"},
            {"label": "no such column", "table": "cases", "group_by": "colour"},
            {"label": "cases by state", "table": "cases", "group_by": "state"},
        ]

    with transaction(runtime.sessions) as session:
        data = dossier.collect(session, runtime.settings, CTX, _mapping(evidence))
    found = {e["label"]: e for e in data["articles"][0]["evidence"]}
    assert found["future table"]["available"] is False
    assert "does not exist" in found["future table"]["note"]
    assert found["no such column"]["available"] is False
    assert found["cases by state"] == {**found["cases by state"], "available": True, "value": 0}
    assert "gateway" in found["cases by state"]["via"]


def test_the_dossier_reads_no_personal_table_outside_the_gateway(runtime: Runtime) -> None:
    touched: set[str] = set()

    def record(state: ORMExecuteState) -> None:
        if not state.session.info.get("immos.gateway.depth"):
            touched.update(str(t.name) for t in find_tables(state.statement, include_crud=True))

    event.listen(Session, "do_orm_execute", record)
    try:
        _generate(runtime, ["json"])
    finally:
        event.remove(Session, "do_orm_execute", record)
    assert {"sources", "audit_entries", "priority_policies"} <= touched
    assert touched & PERSONAL_TABLES == set()
    with runtime.sessions() as session:
        searches = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "records.searched")
        ).all()
    personal_evidence = {
        e.table
        for a in ai_act.load_mapping().articles
        for e in a.evidence
        if e.table in PERSONAL_TABLES
    }
    assert personal_evidence and {e.object_type for e in searches} == personal_evidence
    assert {e.purpose for e in searches} == {"oversight-audit"}


# -- secrets, PDF -------------------------------------------------------------------------------


@pytest.fixture
def secret_runtime(tmp_path: Path, sqlite_template: Path) -> Iterator[Runtime]:
    """A production-mode runtime whose secrets are set (and must never be printed)."""
    target = tmp_path / "immos.db"
    target.write_bytes(sqlite_template.read_bytes())
    settings = Settings(
        mode="production",
        data_dir=tmp_path,
        database_url=f"sqlite:///{target}",
        secret_key=SECRET,
        audit_signing_key=SIGNING_KEY,
        nats_url="nats://consumer:nats-password-xyz@127.0.0.1:4222",
    )
    rt = open_runtime(settings)
    yield rt
    rt.close()


def test_no_secret_value_appears_in_any_format_and_the_pdf_is_a_pdf(
    secret_runtime: Runtime,
) -> None:
    with transaction(secret_runtime.sessions) as session:
        ckpt.write_checkpoint(session, ckpt.signing_key(secret_runtime.settings), CTX)
    result = _generate(secret_runtime, ["html", "pdf", "json"])
    checkpoint = result.data["audit"]["latest_checkpoint"]
    assert checkpoint["signature_verifies"] and checkpoint["chain_still_holds_it"]
    assert checkpoint["public_key"] == result.data["audit"]["signing_key"]["public_key"]
    pdf = result.outputs["pdf"]
    assert pdf.startswith(b"%PDF")
    pdf_text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    assert "Article 15" in pdf_text and "Known gaps" in pdf_text
    for text in (result.outputs["html"].decode(), result.outputs["json"].decode(), pdf_text):
        for secret in (SECRET, SIGNING_KEY, "nats-password-xyz"):
            assert secret not in text
        assert "set (value withheld)" in text
    assert SECRET.encode() not in pdf and SIGNING_KEY.encode() not in pdf
    settings = result.data["system"]["settings"]
    assert settings["nats_url"] == "nats://consumer:***@127.0.0.1:4222"
    assert result.data["audit"]["signing_key"]["source"] == "IMMOS_AUDIT_SIGNING_KEY"


def test_database_passwords_are_redacted() -> None:
    settings = Settings(mode="demo", database_url="postgresql+psycopg://immos:hunter2@db:5432/x")
    summary = dossier_system.settings_summary(settings)
    assert "hunter2" not in json.dumps(summary)
    assert summary["database_url"] == "postgresql+psycopg://immos:***@db:5432/x"
    assert summary["secret_key"].startswith("not set: the published demo secret")


# -- a loaded demo world: the dossier's numbers are the database's -----------------------------


@pytest.fixture
def demo_dir(demo_build: DemoBuild, tmp_path: Path) -> Path:
    """A copy of the session's demo world (tests/shared_demo.py, loaded by ``immos demo`` as
    a user would): generating the dossier writes to its audit log."""
    return demo_build.copy(tmp_path / "demo")


@pytest.fixture
def demo_env(demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("IMMOS_MODE", "demo")
    monkeypatch.setenv("IMMOS_DATA_DIR", str(demo_dir))
    monkeypatch.delenv("IMMOS_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield demo_dir
    get_settings.cache_clear()


def _count(session: Session, stmt: Any) -> int:
    return int(session.scalar(stmt) or 0)


@pytest.mark.slow
def test_the_cli_writes_the_dossier_with_the_databases_numbers(
    demo_env: Path, tmp_path: Path
) -> None:
    from immigrationos.cli.main import app

    out = tmp_path / "dossier"
    done = CliRunner().invoke(app, ["report", "dossier", "--out", str(out), "-f", "json,html"])
    assert done.exit_code == 0, done.output
    assert "audit chain intact" in " ".join(done.output.split())
    assert sorted(p.name for p in out.iterdir()) == ["dossier.html", "dossier.json"]
    data = json.loads((out / "dossier.json").read_text())
    m = data["metrics"]
    rt = open_runtime(get_settings())
    try:
        with rt.sessions() as s:
            assert m["sources.registered"] == _count(s, select(func.count()).select_from(Source))
            assert m["agreements.versions"] == _count(
                s, select(func.count()).select_from(DataSharingAgreement)
            )
            assert m["ingest.batches"] == _count(s, select(func.count()).select_from(IngestBatch))
            assert m["ingest.rows_quarantined"] == _count(
                s, select(func.sum(IngestBatch.quarantined_count))
            )
            assert m["priority.policies_registered"] == _count(
                s, select(func.count()).select_from(PriorityPolicy)
            )
            assert m["departures.events"] == _count(s, select(func.count()).select_from(InboxEntry))
            last = s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "report.dossier_generated")
                .order_by(AuditEntry.seq.desc())
            ).first()
    finally:
        rt.close()
    assert m["sources.registered"] == 9 and m["ingest.rows_loaded"] > 0
    assert m["priority.policies_in_force"] == 1 and m["resolution.persons"] > 0
    assert m["lifecycle.approvals_decided"] > 0 and m["audit.chain_ok"] is True
    assert last is not None and last.details["formats"] == ["html", "json"]
    adopted = [p for p in data["priority"]["policies"] if p["in_force"]]
    assert adopted[0]["approval_record"] and adopted[0]["source_document"]
    tax = next(s for s in data["sources"]["sources"] if s["id"] == "tax_addresses")
    assert tax["agreement"]["prerequisites"] and tax["agreement"]["legal_authority"]
    html = (out / "dossier.html").read_text()
    assert adopted[0]["title"] in html and "tax_addresses" in html


# -- the API route ------------------------------------------------------------------------------


@pytest.fixture
def client(runtime: Runtime) -> TestClient:
    with transaction(runtime.sessions) as session:
        create_user(session, "auditor", Role.AUDITOR, "auditor-password-1")
        create_user(session, "officer", Role.OFFICER, "officer-password-1", office="Miami")
    app = FastAPI()
    app.state.runtime = runtime
    app.include_router(dossier_routes.router)
    return TestClient(app)


def test_auditors_get_the_dossier_as_json_and_html_and_officers_are_refused(
    client: TestClient,
) -> None:
    auditor = ("auditor", "auditor-password-1")
    got = client.get("/api/reports/dossier", auth=auditor)
    assert got.status_code == 200, got.text
    assert got.json()["metrics"]["lifecycle.guards"] == len(GUARDS)
    assert got.json()["system"]["requested_by"]["role"] == "auditor"
    assert got.headers["x-immos-dossier-sha256"] == sha256_hex(got.content.decode())
    page = client.get("/api/reports/dossier?format=html", auth=auditor)
    assert page.headers["content-type"].startswith("text/html") and "Article 14" in page.text
    refused = client.get("/api/reports/dossier", auth=("officer", "officer-password-1"))
    assert refused.status_code == 403
    wrong_purpose = client.get(
        "/api/reports/dossier", auth=auditor, headers={"X-Immos-Purpose": "statistics"}
    )
    assert wrong_purpose.status_code == 403
