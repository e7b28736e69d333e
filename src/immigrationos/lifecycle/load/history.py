"""The histories the demo replays, read through a system gateway under case processing.

Court cases with their proceedings, hearings, decisions and appeals; encounters; departures;
admissions; asylum applications; citizenship evidence: grouped per person as a
:class:`PersonFile`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from sqlalchemy import select

from immigrationos.departures.models import Departure
from immigrationos.facts.models import (
    Admission,
    Appeal,
    BenefitApplication,
    CourtCase,
    CourtDecision,
    Encounter,
    Hearing,
    Proceeding,
)
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.facts import CITIZENSHIP_SOURCES, IMMIGRANT_CLASSES
from immigrationos.persons.models import Person, RecordLink
from immigrationos.sources.models import SourceRecord

PDF_KEY = "immos.documents_pdf"
EWI_CHARGE = "212(a)(6)(A)(i)"
OVERSTAY_CHARGE = "237(a)(1)(B)"
NONIMMIGRANT_CLASSES = ("B1", "B2", "WT", "WB")
#: Field offices handled by the Miami demo accounts; every other office by Houston's.
EAST_OFFICES = frozenset(
    {"Atlanta", "Baltimore", "Boston", "Chicago", "Miami", "New York", "Newark", "Arlington"}
)
DISPOSITIONS = {
    "NTA issued": "referred",
    "reinstated": "referred",
    "removed": "referred",
    "detained": "arrest-requested",
    "released": "released",
    "no action": "interview",
}
ORDER_DECISIONS = frozenset(
    {"removal-ordered", "in-absentia", "voluntary-departure", "withholding-granted", "cat-granted"}
)
APPROVAL_TEXT = "Reviewed the file and every guard check as it stands; approved."
#: States only a recorded departure leads to: the showcase never invents one.
NO_RECIPE = {
    "REMOVED": "needs a verified removal departure on record (none in this world)",
    "DEPARTED_VOLUNTARILY": "needs a verified departure within a voluntary-departure period",
    "CLOSED_DEPARTED": "needs a verified departure of a person with an open case",
}

How = Literal["perform", "approve", "joint", "system", "evaluate", "flight", "flight_departed"]
ProgressFn = Callable[[int, int], None]


# -- the history, as read ----------------------------------------------------------------------


@dataclass(frozen=True)
class HearingRec:
    at: datetime
    kind: str
    place: str


@dataclass(frozen=True)
class DecisionRec:
    kind: str
    on: date
    vd_deadline: date | None
    protected_country: str | None


@dataclass(frozen=True)
class AppealRec:
    filed_on: date
    decided_on: date | None
    outcome: str


@dataclass(frozen=True)
class ProceedingRec:
    kind: str
    opened_on: date | None
    hearings: tuple[HearingRec, ...]
    decision: DecisionRec | None
    appeal: AppealRec | None


@dataclass(frozen=True)
class CourtRec:
    case_no: str
    charge: str | None
    nta_on: date
    proceedings: tuple[ProceedingRec, ...]

    @property
    def kind(self) -> str:
        return self.proceedings[0].kind if self.proceedings else "removal-240"

    @property
    def decision(self) -> DecisionRec | None:
        decided = [p.decision for p in self.proceedings if p.decision]
        return decided[-1] if decided else None


@dataclass(frozen=True)
class EncounterRec:
    no: str
    on: date
    office: str
    disposition: str | None


@dataclass(frozen=True)
class DepartureRec:
    id: str
    at: datetime
    port: str | None
    channel: str
    flight: str | None
    removal: bool


@dataclass(frozen=True)
class AdmissionRec:
    klass: str
    on: date
    until: date | None


@dataclass(frozen=True)
class AsylumRec:
    filed_on: date
    status: str
    decided_on: date | None


@dataclass
class PersonFile:
    """What the records say about one person, as the loader plans from it."""

    id: str
    nationality: str | None
    a_number: str | None
    birth_date: date | None
    citizenship_evidence: bool = False
    lpr: bool = False
    protected_status: bool = False
    court: list[CourtRec] = field(default_factory=list)
    encounters: list[EncounterRec] = field(default_factory=list)
    departures: list[DepartureRec] = field(default_factory=list)
    admissions: list[AdmissionRec] = field(default_factory=list)
    asylum: list[AsylumRec] = field(default_factory=list)

    def entry_before(self, on: date) -> AdmissionRec | None:
        """The last admission on or before ``on``."""
        earlier = [a for a in self.admissions if a.on <= on]
        return max(earlier, key=lambda a: a.on) if earlier else None


def _rows(gw: Gateway, stmt: Any, model: type[Any], what: str) -> list[Any]:
    return gw.rows(stmt, model, params={"demo_cases": what})


def read_world(gw: Gateway, today: date) -> dict[str, PersonFile]:
    """Every active person's history, read once (one audited search per table)."""
    files = _persons(gw)
    _court(gw, files)
    for pid, no, on, office, disposition in _rows(
        gw,
        select(
            Encounter.person_id,
            Encounter.encounter_no,
            Encounter.occurred_on,
            Encounter.office,
            Encounter.disposition,
        ).where(Encounter.person_id.is_not(None)),
        Encounter,
        "encounters",
    ):
        if pid in files:
            files[pid].encounters.append(EncounterRec(no, on, office, disposition))
    _departures(gw, files)
    _status(gw, files, today)
    return files


def _persons(gw: Gateway) -> dict[str, PersonFile]:
    rows = _rows(
        gw,
        select(Person.id, Person.nationality, Person.birth_date, Person.golden).where(
            Person.merged_into_id.is_(None)
        ),
        Person,
        "persons",
    )
    files = {}
    for pid, nationality, birth_date, golden in rows:
        a_number = ((golden or {}).get("a_number") or {}).get("value")
        files[pid] = PersonFile(pid, nationality, a_number, birth_date)
    return files


def _court(gw: Gateway, files: dict[str, PersonFile]) -> None:
    """Court cases with their nested proceedings, assembled from the five court tables."""
    hearings: dict[str, list[HearingRec]] = defaultdict(list)
    for proc_id, at, kind, place in _rows(
        gw,
        select(Hearing.proceeding_id, Hearing.scheduled_at, Hearing.hearing_type, Hearing.location),
        Hearing,
        "hearings",
    ):
        hearings[proc_id].append(HearingRec(at, kind, place or "Immigration court"))
    decisions: dict[str, tuple[str, DecisionRec]] = {}
    for did, proc_id, kind, on, vd, country in _rows(
        gw,
        select(
            CourtDecision.id,
            CourtDecision.proceeding_id,
            CourtDecision.decision_type,
            CourtDecision.decided_on,
            CourtDecision.vd_deadline,
            CourtDecision.protected_country,
        ),
        CourtDecision,
        "court decisions",
    ):
        decisions[proc_id] = (did, DecisionRec(kind, on, vd, country))
    appeals = {
        did: AppealRec(filed, decided, outcome)
        for did, filed, decided, outcome in _rows(
            gw,
            select(Appeal.decision_id, Appeal.filed_on, Appeal.decided_on, Appeal.outcome),
            Appeal,
            "appeals",
        )
    }
    procs: dict[str, list[ProceedingRec]] = defaultdict(list)
    for proc_id, case_id, kind, opened in _rows(
        gw,
        select(Proceeding.id, Proceeding.court_case_id, Proceeding.kind, Proceeding.opened_on),
        Proceeding,
        "proceedings",
    ):
        did, decision = decisions.get(proc_id, ("", None))
        heard = tuple(sorted(hearings[proc_id], key=lambda h: h.at))
        procs[case_id].append(ProceedingRec(kind, opened, heard, decision, appeals.get(did)))
    for case_id, pid, case_no, charge, nta_on in _rows(
        gw,
        select(
            CourtCase.id,
            CourtCase.person_id,
            CourtCase.case_no,
            CourtCase.charge,
            CourtCase.nta_served_on,
        ).where(CourtCase.person_id.is_not(None)),
        CourtCase,
        "court cases",
    ):
        proceedings = tuple(sorted(procs[case_id], key=lambda p: p.opened_on or date.min))
        served = nta_on or next((p.opened_on for p in proceedings if p.opened_on), None)
        if pid in files and served:
            files[pid].court.append(CourtRec(case_no, charge, served, proceedings))


def _departures(gw: Gateway, files: dict[str, PersonFile]) -> None:
    for did, pid, at, port, channel, carrier, flight in _rows(
        gw,
        select(
            Departure.id,
            Departure.person_id,
            Departure.occurred_at,
            Departure.port,
            Departure.channel,
            Departure.carrier,
            Departure.flight,
        ).where(Departure.person_id.is_not(None)),
        Departure,
        "departures",
    ):
        if pid in files:
            removal = carrier == "CHARTER" or channel == "removal"
            files[pid].departures.append(DepartureRec(did, at, port, channel, flight, removal))
    for f in files.values():
        f.departures.sort(key=lambda d: d.at)


def _status(gw: Gateway, files: dict[str, PersonFile], today: date) -> None:
    """Admissions, asylum claims, protected status and citizenship evidence per person."""
    for pid, klass, on, until in _rows(
        gw,
        select(
            Admission.person_id,
            Admission.class_of_admission,
            Admission.admitted_on,
            Admission.admitted_until,
        ).where(Admission.person_id.is_not(None)),
        Admission,
        "admissions",
    ):
        if pid in files:
            files[pid].admissions.append(AdmissionRec(klass, on, until))
            files[pid].lpr |= klass in IMMIGRANT_CLASSES
    for pid, form, status, filed, decided, valid in _rows(
        gw,
        select(
            BenefitApplication.person_id,
            BenefitApplication.form,
            BenefitApplication.status,
            BenefitApplication.filed_on,
            BenefitApplication.decided_on,
            BenefitApplication.valid_until,
        ).where(BenefitApplication.person_id.is_not(None)),
        BenefitApplication,
        "benefits",
    ):
        if pid not in files:
            continue
        f = files[pid]
        if form == "I-589":
            f.asylum.append(AsylumRec(filed, status, decided))
        f.lpr |= form == "I-485" and status == "approved"
        valid_now = status == "approved" and (valid or date.min) >= today
        f.protected_status |= form in ("I-821", "I-821D", "I-918", "I-914", "I-360") and (
            valid_now or status == "pending"
        )
    evidence = select(RecordLink.person_id).join(
        SourceRecord, SourceRecord.id == RecordLink.source_record_id
    )
    for (pid,) in _rows(
        gw,
        evidence.where(
            RecordLink.unlinked_at.is_(None), SourceRecord.source_id.in_(CITIZENSHIP_SOURCES)
        ),
        RecordLink,
        "citizenship evidence",
    ):
        if pid in files:
            files[pid].citizenship_evidence = True


# -- plans: what the records mean in steps of the law (pure) ---------------------------------------
