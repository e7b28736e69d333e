"""The features in plain Python (:func:`features_py.compute_py`) equal the SQL's
(:func:`features.compute`): over the shared demo world, whole and a few persons at a time, and
over hand-built persons for the tricky parts (appeals, voluntary departure, executed orders,
re-entry, ties, blocks, a disputed fact)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select
from tests.priority.conftest import AS_OF, Agency
from tests.shared_demo import DemoBuild

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.core.settings import Settings
from immigrationos.departures.models import Departure
from immigrationos.facts.models import (
    Appeal,
    BenefitApplication,
    CourtCase,
    CourtDecision,
    Proceeding,
)
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import CaseCondition, CaseEvent, EnforcementCase
from immigrationos.oversight.models import DisputedFact, RedressRequest
from immigrationos.persons.models import RecordLink
from immigrationos.priority import features
from immigrationos.priority.features_py import compute_py
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.models import IngestBatch, SourceRecord
from immigrationos.sources.registry import agreement_in_force
from immigrationos.store.engine import transaction

DATES = (date(2019, 6, 1), date(2024, 5, 15), AS_OF)


def assert_same(snapshot: features.Snapshot, as_of: date) -> pa.Table:
    """compute_py gives compute's table (the rows compared first, for a readable diff)."""
    want, got = features.compute(snapshot, as_of), compute_py(snapshot, as_of)
    assert got.schema == want.schema
    assert got.to_pylist() == want.to_pylist()
    assert got.equals(want)
    return got


# -- the demo world -----------------------------------------------------------------------


@dataclass
class Demo:
    runtime: Runtime
    analyst: Any

    def read(self, person_ids: list[str] | None = None) -> features.Snapshot:
        ctx = AccessContext(self.analyst, Purpose.ENFORCEMENT_PRIORITIZATION, "test")
        with unit_of_work(self.runtime.sessions, ctx) as gw:
            return features.read(gw, person_ids)


@pytest.fixture
def demo(demo_build: DemoBuild, tmp_path: Path) -> Iterator[Demo]:
    """The session's demo world (copied: reading it is audited)."""
    data = demo_build.copy(tmp_path / "data")
    runtime = open_runtime(Settings(mode="demo", data_dir=data))
    try:
        with transaction(runtime.sessions) as session:
            analyst = actor_of(
                session.scalars(select(User).where(User.username == "analyst")).one()
            )
        yield Demo(runtime, analyst)
    finally:
        runtime.close()


def _busiest(snapshot: features.Snapshot, n: int) -> list[str]:
    """The ``n`` active persons with the most rows across the person-keyed reads."""
    rows: dict[str, int] = {}
    for table in snapshot.tables.values():
        if "person_id" in table.column_names:
            for pid in table.column("person_id").to_pylist():
                rows[pid] = rows.get(pid, 0) + 1
    active = set(snapshot.tables["persons"].column("id").to_pylist())
    return sorted((p for p in rows if p in active), key=lambda p: (-rows[p], p))[:n]


def test_the_demo_world_gives_the_same_features_whole_and_a_few_persons_at_a_time(
    demo: Demo,
) -> None:
    whole = demo.read()
    assert whole.unknown  # the demo's sample redress requests leave a dispute open
    for as_of in DATES:
        assert_same(whole, as_of)
    assert_same(demo.read(sorted({*_busiest(whole, 12), *whole.unknown})), AS_OF)
    for pid in {*_busiest(whole, 5), *whole.unknown}:
        one = assert_same(demo.read([pid]), AS_OF)
        assert one.column("person_id").to_pylist() == [pid]


# -- hand-built persons -------------------------------------------------------------------


def _order(gw: Gateway, pid: str, key: str, decided_on: date, **decision: Any) -> str:
    """A court case, proceeding and decision (a removal order unless told otherwise)."""
    proc_kind = decision.pop("proc_kind", "removal-240")
    gw.add(
        CourtCase(
            id=f"cc-{key}",
            person_id=pid,
            source_id="court",
            case_no=key,
            charge="237(a)(1)(B)",
            nta_served_on=date(2023, 1, 5),
        )
    )
    gw.session.flush()
    gw.add(
        Proceeding(
            id=f"pr-{key}",
            court_case_id=f"cc-{key}",
            source_id="court",
            kind=proc_kind,
            opened_on=date(2023, 1, 5),
        )
    )
    gw.session.flush()
    gw.add(
        CourtDecision(
            id=f"dc-{key}",
            proceeding_id=f"pr-{key}",
            source_id="court",
            decided_on=decided_on,
            details={},
            **{"decision_type": "removal-ordered"} | decision,
        )
    )
    gw.session.flush()
    return f"dc-{key}"


def _appeal(gw: Gateway, decision: str, outcome: str, decided_on: date | None) -> None:
    """An appeal of ``decision`` to the board."""
    gw.add(
        Appeal(
            id=f"{decision}-a",
            decision_id=decision,
            source_id="court",
            filed_on=date(2025, 6, 20),
            decided_on=decided_on,
            outcome=outcome,
        )
    )


def _departure(gw: Gateway, pid: str, key: str, at: datetime) -> None:
    """A verified departure of the person at ``at``."""
    gw.add(
        Departure(
            id=f"dep-{key}",
            event_id=f"ev-{key}",
            person_id=pid,
            source_id="departures",
            channel="manifest",
            occurred_at=at,
            match_band="verified",
        )
    )


def _case(gw: Gateway, pid: str, key: str, state: str, **fields: Any) -> str:
    """An enforcement case of the person, in ``state``."""
    gw.add(EnforcementCase(id=f"case-{key}", person_id=pid, state=state, **fields))
    gw.session.flush()
    return f"case-{key}"


def _condition(gw: Gateway, case: str, key: str, kind: str, **fields: Any) -> None:
    """A condition in force on ``case``."""
    gw.add(
        CaseCondition(
            id=f"cond-{key}", case_id=case, kind=kind, status="granted", **{"params": {}} | fields
        )
    )


def _evidence(gw: Gateway, pid: str, keys: list[str]) -> None:
    """Citizenship evidence records linked to the person."""
    agreement = agreement_in_force(gw.session, "citizenship_evidence")
    assert agreement is not None
    gw.add(
        IngestBatch(
            id=f"bat-{pid}",
            source_id="citizenship_evidence",
            agreement_id=agreement.id,
            input_uri="test://evidence",
            status="done",
        )
    )
    gw.session.flush()
    for key in keys:
        gw.add(
            SourceRecord(
                id=key,
                source_id="citizenship_evidence",
                record_key=key,
                content_hash=key.ljust(64, "0"),
                payload={},
                batch_id=f"bat-{pid}",
            )
        )
        gw.session.flush()
        gw.add(RecordLink(id=f"lnk-{key}", source_record_id=key, person_id=pid, method="exact"))


def _world(agency: Agency) -> dict[str, str]:
    """Persons by what they are built to exercise (see :func:`_holds_the_cases_meant`)."""
    stay = {"admitted_on": date(2019, 1, 1), "admitted_until": date(2019, 7, 1)}
    felony = {
        "offense_category": "robbery",
        "offense_level": "felony",
        "sentence_days": 900,
        "conviction_date": date(2022, 5, 1),
    }
    people = {
        name: agency.person()
        for name in (
            "appeal pending",
            "appeal sustained",
            "appeal dismissed",
            "vd not taken",
            "vd taken",
            "blocked",
            "victim undecided",
            "victim decided",
            "final cases",
            "summary order",
        )
    }
    people |= {
        "executed and back": agency.person(admissions=[{"admitted_on": date(2025, 1, 1)}]),
        # ties are broken by id, whatever order the rows come in (the middle id comes first)
        "ties": agency.person(admissions=[stay | {"id": f"adm-{k}"} for k in "bac"]),
        "left the day they came": agency.person(admissions=[{"admitted_on": date(2022, 4, 1)}]),
        "disputed": agency.person(
            convictions=[felony | {"id": "conv-disputed"}],
            admissions=[stay],
            benefits=[{"form": "I-130", "status": "pending", "filed_on": date(2019, 3, 1)}],
        ),
        "overstayer": agency.person(
            admissions=[stay],
            encounters=[
                {"id": "enc-a", "occurred_on": date(2021, 3, 1), "office": "Houston"},
                {"id": "enc-b", "occurred_on": date(2021, 3, 1), "office": "Miami"},
            ],
        ),
    }
    agency.run("system", _facts, people)
    return people


def _facts(gw: Gateway, p: dict[str, str]) -> None:
    """Court orders, departures, cases and conditions, and a dispute, for :func:`_world`."""
    on = date(2025, 6, 1)
    _appeal(gw, _order(gw, p["appeal pending"], "pend", on), "pending", None)
    _appeal(gw, _order(gw, p["appeal sustained"], "sust", on), "sustained", date(2025, 8, 1))
    _appeal(gw, _order(gw, p["appeal dismissed"], "dism", on), "dismissed", date(2025, 9, 15))
    _order(gw, p["summary order"], "sum", on, proc_kind="reinstatement")
    vd = {"decision_type": "voluntary-departure", "vd_deadline": date(2025, 3, 10)}
    _order(gw, p["vd not taken"], "vdn", date(2025, 1, 10), **vd)
    _order(gw, p["vd taken"], "vdt", date(2025, 1, 10), **vd)
    _departure(gw, p["vd taken"], "vdt", datetime(2025, 2, 20, 9, tzinfo=UTC))
    # an in-absentia order final at once, executed by two departures (counted once), a case
    # closed as removed, then a new admission: back after leaving
    gone = p["executed and back"]
    _order(gw, gone, "exe", date(2024, 1, 5), decision_type="in-absentia")
    _departure(gw, gone, "exe1", datetime(2024, 5, 1, 12, tzinfo=UTC))
    _departure(gw, gone, "exe2", datetime(2024, 6, 1, 12, tzinfo=UTC))
    _case(gw, gone, "rem", "REMOVED", closed_at=datetime(2024, 6, 2, tzinfo=UTC))
    # ties: two departures at the same instant, two open cases created at the same instant
    same = datetime(2020, 2, 1, 8, tzinfo=UTC)
    _departure(gw, p["ties"], "tie-a", same)
    _departure(gw, p["ties"], "tie-b", same)
    _case(gw, p["ties"], "tie-a", "NTA_ISSUED", office="Houston", created_at=same)
    _case(gw, p["ties"], "tie-b", "IN_PROCEEDINGS", office="Miami", created_at=same)
    _departure(gw, p["left the day they came"], "same-day", datetime(2022, 4, 1, 18, tzinfo=UTC))
    _blocked(gw, p["blocked"])
    gw.add(_benefit(p["victim undecided"], "I-918", "pending"))
    gw.add(_benefit(p["victim decided"], "I-918", "pending"))
    victim = _case(gw, p["victim decided"], "vic", "LEAD")
    # the decision of the largest condition id stands; one without a decision is no decision
    for key, params in (
        ("vic1", {"decision": "await the petition"}),
        ("vic2", {"decision": "proceed-with-documented-reason"}),
        ("vic3", {}),
    ):
        _condition(gw, victim, key, "victim_petition_decision", params=params)
    _final_cases(gw, p["final cases"])
    gw.add(
        RedressRequest(
            id="req-1",
            person_id=p["disputed"],
            requester_name="A. Test",
            claim="the conviction is not mine",
        )
    )
    gw.session.flush()
    gw.add(
        DisputedFact(
            id="df-1",
            request_id="req-1",
            person_id=p["disputed"],
            kind="conviction",
            table_name="convictions",
            row_id="conv-disputed",
            source_id="convictions",
            status="disputed",
        )
    )


def _benefit(pid: str, form: str, status: str, **fields: Any) -> BenefitApplication:
    """A benefit application of the person filed on 2024-01-01."""
    key = f"b{pid[-4:]}-{form}"  # receipt numbers are short
    return BenefitApplication(
        id=key,
        person_id=pid,
        source_id="benefits",
        receipt_no=key,
        form=form,
        status=status,
        filed_on=date(2024, 1, 1),
        **fields,
    )


def _blocked(gw: Gateway, pid: str) -> None:
    """Every block at once (the victim petition decided, one evidence record of two)."""
    review = _case(gw, pid, "rev", "CITIZENSHIP_REVIEW", identity_hold="possible merge")
    _case(gw, pid, "held", "ENCOUNTERED", identity_hold="another merge")
    conditions: dict[str, dict[str, Any]] = {
        "stay": {},
        "relief_application": {"form": "asylum"},
        "fear_claim": {},
        "victim_petition_decision": {"params": {"decision": "proceed-with-documented-reason"}},
        "citizenship_decided": {"params": {"evidence_records": ["rec-cz-1"]}},
    }
    for kind, fields in conditions.items():
        _condition(gw, review, kind, kind, **fields)
    valid = {"valid_until": date(2027, 1, 1)}
    for obj in (
        _benefit(pid, "I-918", "pending"),
        _benefit(pid, "I-821", "approved", **valid),
        _benefit(pid, "I-821D", "approved", **valid),
        _benefit(pid, "I-589", "pending"),
    ):
        gw.add(obj)
    _evidence(gw, pid, ["rec-cz-1", "rec-cz-2"])


def _final_cases(gw: Gateway, pid: str) -> None:
    """A case at a final order (with its event) and one scheduled for removal without one."""
    final = _case(gw, pid, "fin", "FINAL_ORDER", office="Miami")
    gw.add(
        CaseEvent(
            id="evt-fin",
            case_id=final,
            seq=1,
            kind="transition",
            to_state="FINAL_ORDER",
            at=datetime(2025, 11, 3, 10, tzinfo=UTC),
        )
    )
    _case(gw, pid, "sched", "REMOVAL_SCHEDULED")


def test_hand_built_persons_give_the_same_features_on_every_backend(agency: Agency) -> None:
    people = _world(agency)
    whole = agency.run("analyst", features.read)
    for as_of in (*DATES, date(2025, 3, 10), date(2025, 3, 11)):  # a deadline, the day after
        assert_same(whole, as_of)
    for name in ("executed and back", "ties", "blocked", "disputed"):
        assert_same(agency.run("analyst", features.read, [people[name]]), AS_OF)
    assert_same(agency.run("analyst", features.read, sorted(people.values())[:6]), AS_OF)
    _holds_the_cases_meant(
        people, {r["person_id"]: r for r in compute_py(whole, AS_OF).to_pylist()}
    )


def _holds_the_cases_meant(people: dict[str, str], rows: dict[str, dict[str, Any]]) -> None:
    """The hand-built persons exercise what they are named for."""
    row = {name: rows[pid] for name, pid in people.items()}
    assert not row["appeal pending"]["final_order"] and not row["appeal sustained"]["final_order"]
    assert row["appeal dismissed"]["final_order_date"] == date(2025, 9, 15)
    assert row["summary order"]["final_order_date"] == date(2025, 6, 1)
    assert row["vd not taken"]["final_order_date"] == date(2025, 3, 10)
    assert not row["vd taken"]["final_order"]
    assert [b["guard"] for b in row["vd taken"]["blocks"]] == ["not_departed"]
    back = row["executed and back"]
    assert back["prior_removals"] == 2 and len(back["ev_prior_removals"]) == 2
    assert (back["departed_on"], back["back_on"], back["blocks"]) == (
        date(2024, 6, 2),
        date(2025, 1, 1),
        [],
    )
    ties = row["ties"]
    assert [e["id"] for e in ties["ev_last_entry_date"]] == ["adm-c"]
    assert [e["id"] for e in ties["ev_years_in_country"]] == ["adm-a"]
    assert ties["ev_dep"]["id"] == "dep-tie-b" and ties["office"] == "Miami"
    assert [e["id"] for e in ties["ev_in_proceedings"]] == ["case-tie-a", "case-tie-b"]
    assert row["left the day they came"]["blocks"][0]["guard"] == "not_departed"
    assert row["overstayer"]["overstay_days"] == (AS_OF - date(2019, 7, 1)).days
    assert row["overstayer"]["office"] == "Miami"  # the encounter of the larger id that day
    disputed = row["disputed"]
    assert disputed["felony"] is None and disputed["ev_felony"] is None
    assert disputed["overstay_days"] == 0  # a benefit filed during the stay
    assert sorted(b["guard"] for b in row["blocked"]["blocks"]) == sorted(
        [
            "not_a_citizen",
            "not_in_citizenship_review",
            "no_identity_hold",
            "no_pending_protection_claim",
            "tps_not_valid",
            "deferred_action_not_in_effect",
            "no_stay",
        ]
    )
    assert "rec-cz-2" in row["blocked"]["blocks"][0]["message"]
    assert "rec-cz-1" not in row["blocked"]["blocks"][0]["message"]
    assert [b["guard"] for b in row["victim undecided"]["blocks"]] == ["victim_petitions_decided"]
    assert row["victim decided"]["victim_pending"] and row["victim decided"]["blocks"] == []
    final = row["final cases"]
    assert final["final_order_date"] == date(2025, 11, 3)
    assert [(e["id"], e["d"]) for e in final["ev_final_order"]] == [
        ("case-fin", date(2025, 11, 3)),
        ("case-sched", None),
    ]
