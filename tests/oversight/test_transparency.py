"""The transparency report: periods, the counts on both backends, suppression in every output,
the CLI and the API (formats, refusals), and a demo world end to end.

A small world is written through the gateway with known counts, some of them small on
purpose ("planted"): the tests check the true counts, that every planted count is withheld
in every output, that what is published adds up, and that the generation is audited.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from tests.shared_demo import DemoBuild

from immigrationos.accounts.roles import Role
from immigrationos.accounts.service import create_user
from immigrationos.api.app import create_app
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import frozen_at
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.departures.models import Departure
from immigrationos.gateway.context import AccessContext, Actor, system_context
from immigrationos.gateway.core import Refused, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.oversight import suppression, transparency
from immigrationos.oversight import transparency_render as out
from immigrationos.oversight.models import RedressRequest
from immigrationos.oversight.transparency import Period, PublishedTable, TransparencyReport
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

NOW = datetime(2026, 4, 2, 12, 0, tzinfo=UTC)
Q1 = "2026-Q1"
PASSWORD = "transparency-test-pass"


# --- periods ------------------------------------------------------------------------------


def test_periods_parse_years_quarters_months_and_spans() -> None:
    with frozen_at(NOW):
        year = Period.parse("2025")
        quarter = Period.parse("2026-q1")
        month = Period.parse("2026-02")
        span = Period.between(date(2024, 11, 15), date(2026, 3, 1))
    assert (year.start, year.end, year.buckets()[0], len(year.buckets())) == (
        date(2025, 1, 1), date(2025, 12, 31), "2025-01", 12,
    )  # fmt: skip
    assert (quarter.label, quarter.end, quarter.buckets()) == (
        "2026-Q1", date(2026, 3, 31), ["2026-01", "2026-02", "2026-03"],
    )  # fmt: skip
    assert month.end == date(2026, 2, 28) and month.until == datetime(2026, 3, 1, tzinfo=UTC)
    assert span.buckets() == ["2024-Q4", "2025-Q1", "2025-Q2", "2025-Q3", "2025-Q4", "2026-Q1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-13", "month 13 does not exist"),
        ("26", "is not a year"),
        ("2026-Q5", "is not a year"),
        ("2027", "has not started"),
        ("last year", "is not a year"),
    ],
)
def test_a_bad_period_is_refused_with_the_reason(text: str, message: str) -> None:
    with frozen_at(NOW), pytest.raises(ValidationFailed, match=message):
        Period.parse(text)


def test_a_span_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="before it starts"):
        Period.between(date(2026, 3, 1), date(2026, 2, 1))


# --- outputs never carry a withheld count -------------------------------------------------

PLANTED = 7
"""A count that must be withheld; no published number, label or date below has a 7 in it."""


def planted_report() -> tuple[TransparencyReport, dict[str, suppression.Table]]:
    tables = {
        "enforcement": suppression.Table.of(
            ["Arrests", "Detainers lodged", "Notices to appear issued"],
            ["2026-01", "2026-02", "2026-03"],
            [[PLANTED, 21, 32], [40, 50, 60], [83, 90, 110]],
        ),
        "redress": suppression.Table.of(
            ["filed", "decided", "withdrawn"],
            ["Requests"],
            [[43], [PLANTED], [0]],
        ),
    }
    with frozen_at(NOW):
        return transparency.assemble(Period.parse(Q1), tables), tables


def test_planted_small_counts_are_withheld_in_every_format(tmp_path: Path) -> None:
    report, _ = planted_report()
    enforcement, redress = report.table("enforcement"), report.table("redress")
    assert enforcement.cells[0][0] is None and redress.cells[1][0] is None
    published_numbers = [
        str(v)
        for t in report.tables
        for v in [*(c for row in t.cells for c in row), *t.row_totals, *t.column_totals, t.total]
        if v is not None
    ]
    assert published_numbers and not any("7" in n for n in published_numbers), "precondition"
    paths = out.write(report, tmp_path, ["csv", "html", "pdf", "json"])
    assert [p.suffix for p in paths] == [".csv", ".html", ".pdf", ".json"]

    rows = list(csv.DictReader(io.StringIO(paths[0].read_text())))
    withheld = [r for r in rows if r["suppressed"] == "true"]
    assert withheld and all(r["value"] == "" for r in withheld)
    assert not any(r["value"] == str(PLANTED) for r in rows)
    cell = next(r for r in rows if r["table"] == "enforcement" and r["row"] == "Arrests"
                and r["column"] == "2026-01")  # fmt: skip
    assert (cell["value"], cell["suppressed"]) == ("", "true")

    html = paths[1].read_text()
    assert "<script" not in html and "http" not in html.replace("http-equiv", "")
    assert f">{PLANTED}<" not in html and f"{out.MARKER}" in html
    assert "<svg" in html

    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(paths[2]).pages)
    assert "Enforcement actions" in text and out.MARKER in text
    assert "7" not in text.replace("2026-04-02", ""), "no withheld count in the PDF"
    assert str(PLANTED) not in paths[3].read_text().replace("2026-04-02", "")


def test_a_withheld_row_total_gets_no_bar() -> None:
    table = PublishedTable(
        key="t", title="T", definition="d", limits="l", row_dimension="r",
        column_dimension="c", rows=["a", "b"], columns=["x", "y"],
        cells=[[None, None], [20, 25]], row_totals=[None, 45], column_totals=[None, None],
        total=None, withheld=6,
    )  # fmt: skip
    chart = str(out.bar_chart(table, 0))
    assert chart.count("<rect") == 1, "only the published row is drawn"
    assert out.MARKER in chart and ">45<" in chart


def test_published_tables_add_up_where_everything_is_published() -> None:
    report, tables = planted_report()
    for t in report.tables:
        assert_adds_up(t)
        truth = tables[t.key].extended()
        for i, row in enumerate(t.cells):
            for j, v in enumerate(row):
                assert v is None or v == truth[i][j]
                if 0 < truth[i][j] < 11:
                    assert v is None


def assert_adds_up(t: PublishedTable) -> None:
    """Every fully published line adds up to its published total."""
    for row, total in zip(t.cells, t.row_totals, strict=True):
        if None not in row and total is not None:
            assert sum(row) == total
    for j, total in enumerate(t.column_totals):
        column = [row[j] for row in t.cells]
        if None not in column and total is not None:
            assert sum(c for c in column if c is not None) == total
    if t.total is not None and None not in t.row_totals:
        assert sum(v for v in t.row_totals if v is not None) == t.total


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(ValidationFailed, match="xlsx"):
        out.parse_formats("html,xlsx")
    assert out.parse_formats(" HTML, csv,html") == ["html", "csv"]


# --- a small world on both backends -------------------------------------------------------


def _at(month: int, day: int = 10) -> datetime:
    return datetime(2026, month, day, 9, 0, tzinfo=UTC)


def _world(runtime: Runtime) -> None:
    """Persons, cases and steps with known counts in 2026-Q1 (and some outside it)."""
    people: list[Any] = []
    events: list[Any] = []
    cases: list[Any] = []
    plan = [("MEX", "removal-240", 15), ("POL", "removal-240", 3), ("IND", "expedited-235b1", 2)]
    n = 0
    for nationality, track, removed in plan:
        for _ in range(removed):
            n += 1
            people.append(Person(id=f"per-{n}", nationality=nationality))
            cases.append(EnforcementCase(id=f"case-{n}", person_id=f"per-{n}", track=track,
                                         state="REMOVED"))  # fmt: skip
            events.append(CaseEvent(id=f"evt-{n}-r", case_id=f"case-{n}", seq=2, at=_at(2),
                                    kind="system", action="removal_verified",
                                    from_state="FINAL_ORDER", to_state="REMOVED"))  # fmt: skip
    for k, (month, count) in enumerate([(1, 25), (2, 3), (5, 4)]):  # May is outside Q1
        for i in range(count):
            events.append(CaseEvent(id=f"evt-a{k}-{i}", case_id=f"case-{i % n + 1}",
                                    seq=100 * k + i + 10, at=_at(month), kind="transition",
                                    action="arrest",
                                    from_state="ENCOUNTERED", to_state="ARRESTED"))  # fmt: skip
    departures = [
        Departure(id=f"dep-{i}", event_id=f"ev-{i}", channel=channel, occurred_at=_at(month),
                  match_band=band, person_id="per-1")
        for i, (channel, month, band) in enumerate(
            [("manifest", 1, "verified")] * 20 + [("land_exit", 3, "verified")] * 2
            + [("manifest", 1, "unmatched")] * 5
        )
    ]  # fmt: skip
    redress = [
        RedressRequest(id=f"red-{i}", requester_name="Counsel", claim="not me", status=status,
                       filed_at=_at(2))
        for i, status in enumerate(["filed"] * 12 + ["decided"] * 4)
    ]  # fmt: skip
    ctx = system_context(Purpose.CASE_PROCESSING, "transparency test world")
    with unit_of_work(runtime.sessions, ctx) as gw:
        gw.add(*people)
        gw.add(*cases)
        gw.add(*events, *departures, *redress)


@pytest.fixture
def world(runtime: Runtime) -> Iterator[Runtime]:
    _world(runtime)
    yield runtime


def statistics() -> AccessContext:
    return system_context(Purpose.STATISTICS, "transparency test")


def test_counts_are_right_on_each_backend(world: Runtime) -> None:
    with frozen_at(NOW), unit_of_work(world.sessions, statistics()) as gw:
        raw = transparency.collect(gw, Period.parse(Q1))
    enforcement = raw["enforcement"]
    arrests = enforcement.counts[enforcement.rows.index("Arrests")]
    assert list(arrests) == [25, 3, 0], "by month, May left out"
    removals = raw["removals"]
    assert removals.rows == ("IND", "MEX", "POL")
    assert removals.columns[:2] == ("Removal proceedings", "Expedited removal")
    assert [list(r[:2]) for r in removals.counts] == [[0, 2], [15, 0], [3, 0]]
    closed = raw["closed"]
    assert closed.counts[closed.rows.index("Removed")] == (0, 20, 0)
    departures = raw["departures"]
    assert departures.counts[departures.rows.index("manifest")] == (20, 0, 0)
    assert departures.counts[departures.rows.index("land exit")] == (0, 0, 2)
    redress = raw["redress"]
    assert dict(zip(redress.rows, (r[0] for r in redress.counts), strict=True)) == {
        "decided": 4, "filed": 12,
    }  # fmt: skip


def test_the_report_withholds_small_counts_and_the_shared_total_consistently(
    world: Runtime,
) -> None:
    with frozen_at(NOW), unit_of_work(world.sessions, statistics()) as gw:
        raw = transparency.collect(gw, Period.parse(Q1))
        report = transparency.generate(gw, Period.parse(Q1), ["html"])
    for t in report.tables:
        assert_adds_up(t)
        truth = raw[t.key].extended()
        r, c = raw[t.key].shape
        shown = [[*t.cells[i], t.row_totals[i]] for i in range(r)] + [[*t.column_totals, t.total]]
        for i in range(r + 1):
            for j in range(c + 1):
                if 0 < truth[i][j] < 11:
                    assert shown[i][j] is None, (t.key, i, j)
                else:
                    assert shown[i][j] in (None, truth[i][j])
    arrests = report.table("enforcement").cells[0]
    assert arrests[1] is None and arrests[0] is None, "3 withheld, and 25 beside it"
    removed = report.table("closed").row_totals[report.table("closed").rows.index("Removed")]
    assert removed == report.table("removals").total, "the shared count agrees"
    with transaction(world.sessions) as session:
        entry = session.scalars(
            select(AuditEntry).where(AuditEntry.action == "transparency.generated")
        ).one()
        searches = session.scalars(
            select(AuditEntry.search_params).where(AuditEntry.purpose == "statistics")
        ).all()
    assert entry.details["period"] == Q1 and entry.details["withheld"]["enforcement"] > 0
    assert any(p and p.get("report") == "transparency" for p in searches)


def test_only_statistics_and_a_role_that_reads_personal_data_may_compute_it(
    world: Runtime,
) -> None:
    other = system_context(Purpose.CASE_PROCESSING)
    with (
        pytest.raises(Refused, match="statistics"),
        frozen_at(NOW),
        unit_of_work(world.sessions, other) as gw,
    ):
        transparency.collect(gw, Period.parse(Q1))
    auditor = AccessContext(Actor("u-aud", "aud", Role.AUDITOR, None), Purpose.STATISTICS)
    with (
        pytest.raises(AccessRefused, match="separation of duties"),
        frozen_at(NOW),
        unit_of_work(world.sessions, auditor) as gw,
    ):
        transparency.collect(gw, Period.parse(Q1))


# --- the API and the CLI ------------------------------------------------------------------


@pytest.fixture
def client(world: Runtime) -> TestClient:
    with transaction(world.sessions) as session:
        create_user(session, "stat.analyst", Role.ANALYST, PASSWORD)
        create_user(session, "inspector", Role.AUDITOR, PASSWORD)
        create_user(session, "clerk", Role.OFFICER, PASSWORD, office="Miami")
    return TestClient(create_app(world))


def _get(client: TestClient, user: str, purpose: str, **params: str) -> Any:
    return client.get(
        "/api/reports/transparency",
        params=params,
        auth=(user, PASSWORD),
        headers={"X-Immos-Purpose": purpose},
    )


def test_the_api_serves_every_format_and_auditors_read_the_published_copy(
    client: TestClient, world: Runtime
) -> None:
    with frozen_at(NOW):
        before = _get(client, "inspector", "oversight-audit", period=Q1)
        assert before.status_code == 404 and "immos report transparency" in before.text
        live = _get(client, "stat.analyst", "statistics", period=Q1)
        assert live.status_code == 200, live.text
        body = live.json()
        assert body["period"] == Q1 and body["tables"][0]["key"] == "enforcement"
        assert body["tables"][0]["cells"][0][1] is None, "the planted 3 is withheld"
        for fmt, kind in (("csv", "text/csv"), ("html", "text/html"), ("pdf", "application/pdf")):
            answer = _get(client, "stat.analyst", "statistics", period=Q1, format=fmt)
            assert answer.status_code == 200 and answer.headers["content-type"].startswith(kind)
        assert answer.content.startswith(b"%PDF")
        published = _get(client, "inspector", "oversight-audit", period=Q1, format="csv")
        assert published.status_code == 200 and "enforcement,Arrests" in published.text
        spans = _get(
            client, "stat.analyst", "statistics", **{"from": "2026-01-01", "to": "2026-03-31"}
        )
        assert spans.status_code == 200 and spans.json()["period"] == "2026-01-01_2026-03-31"
    assert (world.settings.data_dir / "reports" / "transparency" / f"{Q1}.json").is_file()


def test_the_api_refuses_the_wrong_role_purpose_and_period(client: TestClient) -> None:
    with frozen_at(NOW):
        officer = _get(client, "clerk", "case-processing", period=Q1)
        assert officer.status_code == 403 and "may not use this route" in officer.text
        wrong = _get(client, "stat.analyst", "enforcement-prioritization", period=Q1)
        assert wrong.status_code == 403 and "does not permit this route" in wrong.text
        bad = _get(client, "stat.analyst", "statistics", period="2026-13")
        assert bad.status_code == 422 and "month 13" in bad.text
        none = _get(client, "stat.analyst", "statistics")
        assert none.status_code == 422 and "give a period" in none.text


def test_published_reports_round_trip(tmp_path: Path) -> None:
    report, _ = planted_report()
    transparency.publish(report, tmp_path)
    with frozen_at(NOW):
        again = transparency.published(tmp_path, Period.parse(Q1))
        assert again == report
        with pytest.raises(NotFound, match="2026-02"):
            transparency.published(tmp_path, Period.parse("2026-02"))


# --- a demo world, end to end -------------------------------------------------------------


def _immos(data: Path, *args: str, password: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMMOS_")}
    env.update({"IMMOS_MODE": "demo", "IMMOS_DATA_DIR": str(data), "COLUMNS": "200"})
    if password:
        env["IMMOS_PASSWORD"] = password
    command = [sys.executable, "-c", "from immigrationos.cli.main import app; app()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture
def transparency_demo(demo_build: DemoBuild, tmp_path: Path) -> Path:
    """A copy of the session's demo world (tests/shared_demo.py): the report is written into
    it."""
    return demo_build.copy(tmp_path / "demo")


@pytest.mark.slow
def test_the_cli_writes_the_report_of_a_demo_world(transparency_demo: Path, tmp_path: Path) -> None:
    target = tmp_path / "report"
    done = _immos(transparency_demo, "report", "transparency", "--period", "2026", "--out",
                  str(target), "--as", "analyst", password="demo-analyst-pass")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(p.name for p in target.iterdir())
    assert files == ["transparency-2026.csv", "transparency-2026.html", "transparency-2026.pdf"]
    report = TransparencyReport.model_validate_json(
        (transparency_demo / "reports" / "transparency" / "2026.json").read_text()
    )
    assert [t.key for t in report.tables] == list(transparency.TABLES)
    for t in report.tables:
        assert_adds_up(t)
        values = [v for row in t.cells for v in row]
        assert all(v is None or v == 0 or v >= 11 for v in values), t.key
        for v in [*t.row_totals, *t.column_totals, t.total]:
            assert v is None or v == 0 or v >= 11
    access = report.table("access")
    assert "statistics" in access.rows or access.total is None or access.total > 0
    bad = _immos(transparency_demo, "report", "transparency", "--period", "2026-Q7", "--out",
                 str(target), "--as", "analyst", password="demo-analyst-pass")  # fmt: skip
    assert bad.returncode == 1 and "2026-Q7" in bad.stderr and "Traceback" not in bad.stderr
    auditor = _immos(transparency_demo, "report", "transparency", "--period", "2026", "--out",
                     str(target), "--as", "auditor", password="demo-auditor-pass")  # fmt: skip
    assert auditor.returncode == 1 and "separation of duties" in auditor.stderr
