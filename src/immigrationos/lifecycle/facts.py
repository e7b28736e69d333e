"""What the guards know about a case: one snapshot, read through the gateway in one go.

Guards are pure functions of a :class:`CaseFacts`; this module is the only place that reads
the store for them, so "what did the engine know when it allowed this?" has one answer,
kept with every step as the list of checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from typing import Any

from sqlalchemy import String, bindparam, select

from immigrationos.accounts.roles import Role
from immigrationos.core.errors import NotFound
from immigrationos.facts.models import Admission, BenefitApplication
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.lifecycle.models import (
    CaseCondition,
    CaseDeadline,
    Document,
    EnforcementCase,
    FlightSeat,
    RemovalFlight,
    TravelDocument,
)
from immigrationos.persons.models import Person, RecordLink
from immigrationos.sources.models import SourceRecord

CITIZENSHIP_SOURCES = ("citizenship_evidence",)
IMMIGRANT_CLASSES = ("IR1", "IR2", "IR5", "CR1", "CR2", "F21", "F41", "E21", "DV", "LPR")


@dataclass(frozen=True)
class Condition:
    id: str
    kind: str
    status: str
    country: str | None
    form: str | None
    opened_at: datetime
    ended_at: datetime | None
    params: dict[str, Any]

    @property
    def active(self) -> bool:
        return self.ended_at is None


@dataclass(frozen=True)
class Deadline:
    id: str
    kind: str
    due_at: datetime
    status: str
    rule: str


@dataclass(frozen=True)
class Benefit:
    form: str
    status: str
    receipt_no: str
    valid_until: date | None
    source_record_id: str | None


@dataclass(frozen=True)
class Flight:
    id: str
    destination: str
    departs_at: datetime
    capacity: int
    taken: int
    status: str


@dataclass
class CaseFacts:
    """A case, its person and everything a guard may ask, as of one moment."""

    case_id: str
    person_id: str
    state: str
    custody: str
    track: str
    office: str | None
    version: int
    remembered_state: str | None
    identity_hold: str | None
    citizenship_status: str = "unknown"
    citizenship_evidence: list[str] = field(default_factory=list)
    lpr: bool = False
    benefits: list[Benefit] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    deadlines: list[Deadline] = field(default_factory=list)
    documents: list[tuple[str, str, str]] = field(default_factory=list)
    """(kind, status, id) of the case's current documents."""
    travel_documents: list[dict[str, Any]] = field(default_factory=list)
    seat_flight_id: str | None = None
    flights: dict[str, Flight] = field(default_factory=dict)
    person_cases: list[tuple[str, str]] = field(default_factory=list)
    """(case id, state) of the person's other cases."""

    def active(self, kind: str) -> list[Condition]:
        return [c for c in self.conditions if c.kind == kind and c.active]

    def deadline(self, kind: str, status: str | None = "open") -> list[Deadline]:
        return [d for d in self.deadlines if d.kind == kind and status in (None, d.status)]


@cache
def file_queries() -> dict[str, tuple[Any, Any]]:
    """The selects of a case file, for the case and person bound as ``case`` and ``person``
    when they run (built once per process; a case id of \"\" gives the person-level parts
    only). Callers must not change the dict."""
    link, rec = RecordLink, SourceRecord
    case_id, person_id = bindparam("case", type_=String), bindparam("person", type_=String)
    return {
        "conditions": (
            select(CaseCondition).where(CaseCondition.case_id == case_id),
            CaseCondition,
        ),
        "deadlines": (select(CaseDeadline).where(CaseDeadline.case_id == case_id), CaseDeadline),
        "documents": (
            select(Document.kind, Document.status, Document.id, Document.version).where(
                Document.case_id == case_id
            ),
            Document,
        ),
        "travel": (select(TravelDocument).where(TravelDocument.case_id == case_id), TravelDocument),
        "seats": (
            select(FlightSeat.flight_id).where(
                FlightSeat.case_id == case_id, FlightSeat.status == "assigned"
            ),
            FlightSeat,
        ),
        "person": (
            select(Person.citizenship_status).where(Person.id == person_id),
            Person,
        ),
        "evidence": (
            select(rec.id)
            .join(link, link.source_record_id == rec.id)
            .where(
                link.person_id == person_id,
                link.unlinked_at.is_(None),
                rec.source_id.in_(CITIZENSHIP_SOURCES),
            ),
            SourceRecord,
        ),
        "benefits": (
            select(BenefitApplication).where(BenefitApplication.person_id == person_id),
            BenefitApplication,
        ),
        "admissions": (
            select(Admission.class_of_admission).where(Admission.person_id == person_id),
            Admission,
        ),
        "cases": (
            select(EnforcementCase.id, EnforcementCase.state).where(
                EnforcementCase.person_id == person_id, EnforcementCase.id != case_id
            ),
            EnforcementCase,
        ),
    }


def gather(gw: Gateway, case_id: str, flight_ids: tuple[str, ...] = ()) -> CaseFacts:
    """Read the case file for the guards (one audit entry for the whole file).

    ``flight_ids`` names flights a step refers to (a seat to take), read with the file.
    """
    case = _case(gw, case_id)
    got = gw.bundle(
        file_queries(),
        params={"file": "case_file", "case": case.id},
        values={"case": case.id, "person": case.person_id},
    )
    facts = CaseFacts(
        case_id=case.id,
        person_id=case.person_id,
        state=case.state,
        custody=case.custody,
        track=case.track,
        office=case.office,
        version=case.version,
        remembered_state=case.remembered_state,
        identity_hold=case.identity_hold,
    )
    fill(facts, got)
    wanted = sorted({*flight_ids, facts.seat_flight_id or ""} - {""})
    facts.flights = flights(gw, wanted) if wanted else {}
    return facts


def _case(gw: Gateway, case_id: str) -> EnforcementCase:
    try:
        case = gw.get(EnforcementCase, case_id)
    except NotFound:
        raise NotFound(f"no case {case_id!r}") from None
    check_office(gw, case)
    return case


#: Roles that work the cases of their own office only (counsel and analysts are agency-wide).
OFFICE_BOUND = frozenset({Role.OFFICER, Role.SUPERVISOR})


def office_scope(gw: Gateway) -> str | None:
    """The office whose cases the actor may see, or None for every office."""
    actor = gw.ctx.actor
    return actor.office if actor.role in OFFICE_BOUND else None


def check_office(gw: Gateway, case: EnforcementCase) -> None:
    """Refuse (audited) an office-bound actor a case of another office."""
    office = office_scope(gw)
    if office and case.office and case.office != office:
        raise Refused(
            f"case {case.id} belongs to the {case.office} office; "
            f"{gw.ctx.actor.username} works for {office}",
            "read",
            "cases",
            [case.id],
            gw.ctx,
        )


def fill(facts: CaseFacts, got: dict[str, list[Any]]) -> None:
    """Set the facts' fields from the rows :func:`file_queries` read."""
    facts.conditions = [
        Condition(c.id, c.kind, c.status, c.country, c.form, c.opened_at, c.ended_at, c.params)
        for (c,) in got["conditions"]
    ]
    facts.deadlines = [
        Deadline(d.id, d.kind, d.due_at, d.status, d.rule) for (d,) in got["deadlines"]
    ]
    latest: dict[str, tuple[int, tuple[str, str, str]]] = {}
    for kind, status, doc_id, version in got["documents"]:
        if kind not in latest or version > latest[kind][0]:
            latest[kind] = (version, (kind, status, doc_id))
    facts.documents = [v for _, v in latest.values()]
    facts.travel_documents = [
        {
            "id": t.id,
            "country": t.country,
            "status": t.status,
            "valid_until": t.valid_until,
            "consulate": t.consulate,
        }
        for (t,) in got["travel"]
    ]
    facts.seat_flight_id = got["seats"][0][0] if got["seats"] else None
    facts.citizenship_status = got["person"][0][0] if got["person"] else "unknown"
    facts.citizenship_evidence = sorted(r[0] for r in got["evidence"])
    facts.benefits = [
        Benefit(b.form, b.status, b.receipt_no, b.valid_until, b.source_record_id)
        for (b,) in got["benefits"]
    ]
    facts.lpr = any(r[0] in IMMIGRANT_CLASSES for r in got["admissions"]) or any(
        b.form == "I-485" and b.status == "approved" for b in facts.benefits
    )
    facts.person_cases = [(r[0], r[1]) for r in got["cases"]]


def flights(gw: Gateway, ids: list[str]) -> dict[str, Flight]:
    """Removal flights by id with how many seats are taken."""
    from sqlalchemy import func

    taken = dict(
        gw.rows(
            select(FlightSeat.flight_id, func.count())
            .where(FlightSeat.flight_id.in_(ids), FlightSeat.status == "assigned")
            .group_by(FlightSeat.flight_id),
            FlightSeat,
            params={"flights": ids},
        )
    )
    rows = gw.session.scalars(select(RemovalFlight).where(RemovalFlight.id.in_(ids))).all()
    return {
        f.id: Flight(f.id, f.destination, f.departs_at, f.capacity, taken.get(f.id, 0), f.status)
        for f in rows
    }
