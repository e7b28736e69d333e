"""Benchmark of the lifecycle engine: transitions per second with guards, documents and audit.

Workload, per case: open, record an encounter (I-213 rendered), issue an NTA (I-862
rendered), file it, schedule a hearing, order removal, then one scheduler tick makes every
order final (a computed step after the appeal window's deadline). That is 6 transitions and
1 deadline per case, each in its own transaction as users work, each reading the case file
through the gateway, checking every guard the table names, writing the event, conditions and
deadlines, and appending to the audit hash chain. Documents are rendered to HTML; PDF
rendering (WeasyPrint, ~0.2–0.5 s a page) is measured separately, per document.

Peer, in the same run on the same store: the same transitions written as a bare state
machine would write them (one ``UPDATE cases`` and one ``INSERT case_events`` per step, in
its own transaction) with no guard, no document and no audit. The ratio is the price of due
process; neither number is comparable across machines, the ratio is.

Backends: SQLite (embedded default) and PostgreSQL (when reachable at
``IMMOS_TEST_POSTGRES_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``; a
throwaway database is created and dropped).
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import insert, update

from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.bench import BenchReport, peak_rss_mib
from immigrationos.core.clock import frozen_at
from immigrationos.core.settings import Settings
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import scheduler, service
from immigrationos.lifecycle.models import CaseEvent, EnforcementCase
from immigrationos.lifecycle.render import DocumentInput, Value, render
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.store.engine import transaction

PG_URL = os.environ.get("IMMOS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
STEPS = [
    (
        "record_encounter",
        {
            "encounter_date": "2026-03-02",
            "office": "Miami",
            "narrative": "Interviewed at the check-in office.",
        },
    ),
    (
        "issue_nta",
        {
            "charges": ["237(a)(1)(B)"],
            "allegations": ["Not a citizen.", "Overstayed."],
            "hearing_at": "2026-05-04T09:00:00+00:00",
            "hearing_place": "Miami court",
        },
    ),
    ("file_nta", {"court_case_no": "IC123456789"}),
    (
        "schedule_hearing",
        {
            "hearing_at": "2026-06-01T09:00:00+00:00",
            "hearing_type": "individual",
            "hearing_place": "Miami court",
        },
    ),
    ("order_removal", {"decision_date": "2026-03-02", "destination": "MEX"}),
]


def _persons(rt: Runtime, count: int) -> list[str]:
    ids = [f"per-bench-{i}" for i in range(count)]
    golden = {"a_number": {"value": "A123456789", "source_id": "court", "record_key": "IC1"}}
    with unit_of_work(rt.sessions, system_context(Purpose.CASE_PROCESSING, "bench")) as gw:
        gw.add(
            *(
                Person(
                    id=p,
                    given_name="Ana",
                    family_name="Lopez",
                    birth_date=date(1990, 5, 1),
                    nationality="MEX",
                    golden=golden,
                )
                for p in ids
            )
        )
    return ids


def _ours(rt: Runtime, persons: list[str]) -> tuple[int, float]:
    with transaction(rt.sessions) as session:
        ensure_demo_accounts(session)
        from sqlalchemy import select

        from immigrationos.accounts.models import User

        officer = actor_of(
            session.scalars(select(User).where(User.username == "officer.miami")).one()
        )
    ctx = AccessContext(officer, Purpose.CASE_PROCESSING, "benchmark")
    steps = 0
    started = time.perf_counter()
    with frozen_at(T0):
        for pid in persons:
            with unit_of_work(rt.sessions, ctx) as gw:
                case = service.open_case(gw, pid, office="Miami", reason="bench").id
            for name, params in STEPS:
                with unit_of_work(rt.sessions, ctx) as gw:
                    service.perform(gw, case, name, params)
                steps += 1
    report = scheduler.tick(rt.sessions, T0 + timedelta(days=40))
    steps += len(report.steps)
    return steps, time.perf_counter() - started


def _peer(rt: Runtime, persons: list[str]) -> tuple[int, float]:
    """The same transitions as a bare state machine writes them: no guard, no audit."""
    states = [
        "ENCOUNTERED",
        "NTA_ISSUED",
        "IN_PROCEEDINGS",
        "IN_PROCEEDINGS",
        "REMOVAL_ORDERED",
        "FINAL_ORDER",
    ]
    cases, events = EnforcementCase.__table__, CaseEvent.__table__
    steps = 0
    started = time.perf_counter()
    with rt.engine.connect() as conn:
        for i, pid in enumerate(persons):
            case = f"case-peer-{i}"
            with conn.begin():
                conn.execute(
                    insert(cases).values(
                        id=case,
                        person_id=pid,
                        state="LEAD",
                        version=1,
                        created_at=T0,
                        track="removal-240",
                        custody="not-detained",
                    )
                )
            previous = "LEAD"
            for seq, state in enumerate(states, start=2):
                with conn.begin():
                    conn.execute(
                        update(cases).where(cases.c.id == case).values(state=state, version=seq)
                    )
                    conn.execute(
                        insert(events).values(
                            id=f"evt-peer-{i}-{seq}",
                            case_id=case,
                            seq=seq,
                            at=T0,
                            kind="transition",
                            from_state=previous,
                            to_state=state,
                            params={},
                            evidence=[],
                            checks=[],
                        )
                    )
                previous = state
                steps += 1
    return steps, time.perf_counter() - started


def _pdf_seconds(samples: int) -> float:
    values = {
        "family_name": Value("Family name", "Lopez", "court record IC1"),
        "given_name": Value("Given name", "Ana", "court record IC1"),
        "birth_date": Value("Date of birth", "1990-05-01", "arrivals record 1"),
        "nationality": Value("Citizenship", "MEX", "arrivals record 1"),
        "probable_cause": Value("Probable cause", ["Admission expired"], "entered by officer"),
        "requested_by": Value("Requested by", "officer.miami", None),
    }
    doc = DocumentInput("arrest_warrant", "case-x", "per-x", values, True, T0, "officer.miami")
    render(doc)  # warm up fonts
    started = time.perf_counter()
    for _ in range(samples):
        render(doc)
    return (time.perf_counter() - started) / samples


def _backend(name: str, url: str, folder: Path, cases: int) -> dict[str, Any]:
    rt = open_runtime(Settings(mode="demo", data_dir=folder, database_url=url, documents_pdf=False))
    try:
        ours_steps, ours_s = _ours(rt, _persons(rt, cases))
        peer_steps, peer_s = _peer(rt, _persons_peer(rt, cases))
    finally:
        rt.close()
    ours_rate, peer_rate = ours_steps / ours_s, peer_steps / peer_s
    return {
        "backend": name,
        "cases": cases,
        "transitions (ours)": ours_steps,
        "ours transitions/s": round(ours_rate, 1),
        "ours ms/transition": round(1000 / ours_rate, 2),
        "peer transitions/s": round(peer_rate, 1),
        "peer / ours": round(peer_rate / ours_rate, 1),
    }


def _persons_peer(rt: Runtime, count: int) -> list[str]:
    ids = [f"per-peer-{i}" for i in range(count)]
    with rt.engine.begin() as conn:
        conn.execute(
            insert(Person.__table__),
            [
                {
                    "id": p,
                    "status": "active",
                    "citizenship_status": "unknown",
                    "golden": {},
                    "created_at": T0,
                    "updated_at": T0,
                }
                for p in ids
            ],
        )
    return ids


def _pg_database() -> str | None:
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute("DROP DATABASE IF EXISTS immos_bench_lifecycle")
            conn.execute("CREATE DATABASE immos_bench_lifecycle")
    except psycopg.Error:
        return None
    return PG_URL.rsplit("/", 1)[0] + "/immos_bench_lifecycle"


def run(quick: bool = False) -> BenchReport:
    cases = 40 if quick else 300
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows.append(_backend("sqlite", f"sqlite:///{tmp}/bench.db", Path(tmp), cases))
        pg = _pg_database()
        if pg:
            rows.append(_backend("postgresql", pg, Path(tmp), cases))
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute("DROP DATABASE IF EXISTS immos_bench_lifecycle")
    pdf = _pdf_seconds(3 if quick else 10)
    notes = [
        "ours: each transition in its own transaction with the case file read, every guard of the "
        "table checked, event/conditions/deadlines written, HTML documents rendered, audit "
        "entries hash-chained; 6 transitions + 1 computed final order per case",
        "peer: the same state changes as bare UPDATE + INSERT per transition, no guard, no "
        "document, no audit (the price of due process is the ratio)",
        f"PDF rendering of one document (WeasyPrint): {pdf * 1000:.0f} ms, outside the rates",
        f"peak RSS {peak_rss_mib():.0f} MiB",
    ]
    if len(rows) == 1:
        notes.append("PostgreSQL not reachable: measured on SQLite only")
    columns = list(rows[0])
    return BenchReport("Lifecycle engine throughput", columns, rows, [], notes)
