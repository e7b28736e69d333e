"""Demo cases: each resolved person's court and encounter history, replayed through the engine.

The loader never writes a case row itself. It reads the history (court cases with their
proceedings, hearings, decisions and appeals; encounters; departures) through a system gateway
under case processing, turns each court case, and each encounter that led to none, into a
:class:`CasePlan` (a pure, dated list of steps), and replays the plan with the lifecycle
service, every step at its historical moment, so deadlines fall on the dates the law gives.
Deadlines a case passes on the way are applied when they fell due, as the scheduler would have
done then. A step the engine refuses ends that case's replay where it stands and is counted by
reason: the engine is right by definition, and the loader never works around a guard.

One scheduler tick then brings everything up to today (and sweeps citizens into review), and
a showcase makes sure every state of the table has at least one case, driving suitable persons
there with the same request, approval and execution discipline (documents printed to PDF).
Cases are keyed by the record they replay (``opened_reason`` starts with it), so loading twice
opens nothing twice.

Hand-written rather than generated from the table because the mapping from court records to
steps is the point: it says, per record kind, which step of the law it is.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.audit.chain import emit
from immigrationos.audit.events import FlightChanged
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ImmosError
from immigrationos.core.ids import sha256_hex
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
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway, Refused, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import calendar, service
from immigrationos.lifecycle.facts import CITIZENSHIP_SOURCES, IMMIGRANT_CLASSES
from immigrationos.lifecycle.logistics import create_flight
from immigrationos.lifecycle.models import (
    CaseDeadline,
    EnforcementCase,
    RemovalFlight,
    TravelDocument,
)
from immigrationos.lifecycle.scheduler import TickReport, apply_deadline, tick
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import Person, RecordLink
from immigrationos.runtime import Runtime
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


@dataclass(frozen=True)
class PlannedStep:
    """One dated step: a transition and how it is taken (by hand, with approval, by the system)."""

    at: datetime
    action: str
    params: dict[str, Any]
    how: How = "perform"
    why: str = ""


@dataclass(frozen=True)
class CasePlan:
    """One case to open and replay: keyed by the record it comes from."""

    key: str
    person_id: str
    office: str
    opened_at: datetime
    reason: str
    origin: str
    steps: tuple[PlannedStep, ...]


TRAVEL_DOCUMENT = "$travel_document"
FLIGHT = "$flight"
_GAP = timedelta(minutes=1)
_DECIDE_AFTER = timedelta(minutes=20)
_EXECUTE_AFTER = timedelta(minutes=40)


def _at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def handling_office(office: str | None) -> str:
    """The demo office (Miami or Houston) whose officer and supervisor work a case."""
    city = (office or "").split(" - ")[0].strip()
    return "Miami" if city in EAST_OFFICES else "Houston"


class _Planner:
    """Collects steps in time order; an approved action takes its decision and execution time."""

    def __init__(self) -> None:
        self.steps: list[PlannedStep] = []
        self.last = datetime.min.replace(tzinfo=UTC)

    def add(
        self, at: datetime, action: str, params: dict[str, Any], how: How = "perform", why: str = ""
    ) -> datetime:
        at = max(at, self.last + _GAP)
        self.steps.append(PlannedStep(at, action, params, how, why))
        self.last = at + (_EXECUTE_AFTER if how in ("approve", "joint") else timedelta(0))
        return at


def _narrative(e: EncounterRec) -> str:
    return (
        f"Encounter {e.no} at the {e.office} field office on {e.on.isoformat()}: identity "
        f"checked against the records on file; recorded disposition: {e.disposition or 'none'}."
    )


def _allegations(f: PersonFile, charge: str | None, on: date) -> list[str]:
    country = f.nationality or "a country other than the United States"
    out = [
        "You are not a citizen or national of the United States.",
        f"You are a native and citizen of {country}.",
    ]
    entry = f.entry_before(on)
    if charge in (EWI_CHARGE, None):
        return [
            *out,
            "You arrived in the United States at a place other than a designated port of entry.",
            "You were not then admitted or paroled after inspection by an immigration officer.",
        ]
    if charge != OVERSTAY_CHARGE:
        return [*out, f"You were convicted of an offense that makes you removable under {charge}."]
    if entry is None:
        out.append("You were admitted to the United States as a nonimmigrant for a set period.")
    else:
        until = entry.until.isoformat() if entry.until else "the date on your admission record"
        out.append(
            f"You were admitted to the United States on {entry.on.isoformat()} as a "
            f"nonimmigrant ({entry.klass}) with authorization to remain until {until}."
        )
    return [*out, "You remained in the United States beyond that time without authorization."]


def _presence_days(f: PersonFile, first_seen: date, on: date) -> int:
    """Continuous presence at ``on``: since the last admission, else since first encountered."""
    entry = f.entry_before(on)
    return max(0, (on - (entry.on if entry else first_seen)).days)


def plan_person(f: PersonFile) -> list[CasePlan]:
    """One plan per court case and per encounter that led to no court case, oldest first."""
    courts = sorted(f.court, key=lambda c: c.nta_on)
    used: set[str] = set()
    plans = []
    for i, court in enumerate(courts):
        since = courts[i - 1].nta_on if i else date.min
        until = courts[i + 1].nta_on if i + 1 < len(courts) else None
        met = [e for e in f.encounters if since < e.on <= court.nta_on and e.no not in used]
        encounter = max(met, key=lambda e: e.on) if met else None
        if encounter:
            used.add(encounter.no)
        prior = next((c.decision for c in reversed(courts[:i]) if c.decision), None)
        plans.append(plan_court_case(f, court, encounter, until, prior))
    plans += [plan_encounter(f, e) for e in f.encounters if e.no not in used]
    return sorted(plans, key=lambda p: p.opened_at)


def plan_encounter(f: PersonFile, e: EncounterRec) -> CasePlan:
    """An encounter that led to no court case: the case rests where the encounter left it."""
    p = _Planner()
    at = p.add(_at(e.on, 10), "record_encounter", _encounter_params(e))
    reason = f"encounter {e.no}: replayed from the encounter record"
    return CasePlan(
        f"encounter {e.no}", f.id, handling_office(e.office), at - _GAP, reason, "encounter",
        tuple(p.steps),
    )  # fmt: skip


def _encounter_params(e: EncounterRec) -> dict[str, Any]:
    params = {"encounter_date": e.on.isoformat(), "office": e.office, "narrative": _narrative(e)}
    if e.disposition in DISPOSITIONS:
        params["disposition"] = DISPOSITIONS[e.disposition]
    return params


def plan_court_case(
    f: PersonFile,
    court: CourtRec,
    encounter: EncounterRec | None,
    until: date | None,
    prior: DecisionRec | None,
) -> CasePlan:
    """A court case from first contact through its decision, appeal and the departure after."""
    p = _Planner()
    place = next((h.place for pr in court.proceedings for h in pr.hearings), "")
    if encounter is None:
        office = place.split(" - ")[0] or "Houston"
        encounter = EncounterRec(f"(none for {court.case_no})", court.nta_on, office, None)
        params = _encounter_params(encounter) | {
            "narrative": "No encounter record on file: the Notice to Appear served on "
            f"{court.nta_on.isoformat()} in court case {court.case_no} is the first contact."
        }
    else:
        params = _encounter_params(encounter)
    opened = p.add(_at(encounter.on, 8), "record_encounter", params)
    _court_steps(p, f, court, encounter, prior)
    _departure_steps(p, f, court, until)
    reason = f"court case {court.case_no}: replayed from the immigration court record"
    return CasePlan(
        f"court case {court.case_no}", f.id, handling_office(encounter.office), opened - _GAP,
        reason, "court-record", tuple(p.steps),
    )  # fmt: skip


def _court_steps(
    p: _Planner, f: PersonFile, court: CourtRec, met: EncounterRec, prior: DecisionRec | None
) -> None:
    decision = court.decision
    if court.kind == "expedited-235b1" and decision:
        why = f"Expedited removal: court record {court.case_no}; no fear of return expressed."
        params = {
            "continuous_presence_days": _presence_days(f, met.on, decision.on),
            "destination": f.nationality,
            "fear_screening": "no-fear-expressed",
        }
        p.add(_at(decision.on, 11), "issue_expedited_order", params, "approve", why)
        return
    if court.kind == "reinstatement" and decision:
        why = (
            f"Prior removal order reinstated: court record {court.case_no}; re-entry after removal."
        )
        params = {
            "prior_order_date": prior.on.isoformat() if prior else None,
            "destination": f.nationality,
            "fear_screening": "no-fear-expressed",
        }
        p.add(_at(decision.on, 11), "reinstate_prior_order", params, "approve", why)
        return
    _removal_proceedings(p, f, court)


Dated = tuple[datetime, str, dict[str, Any]]


def _removal_proceedings(p: _Planner, f: PersonFile, court: CourtRec) -> None:
    """Section 240: the NTA with its first hearing, filing, hearings, decision and appeal."""
    hearings = [h for pr in court.proceedings for h in pr.hearings]
    first = hearings[0] if hearings else None
    nta = {
        "charges": [court.charge or OVERSTAY_CHARGE],
        "allegations": _allegations(f, court.charge, court.nta_on),
        "hearing_at": first.at.isoformat() if first else None,
        "hearing_place": first.place if first else None,
    }
    p.add(_at(court.nta_on, 9), "issue_nta", nta)
    opened = next((pr.opened_on for pr in court.proceedings if pr.opened_on), court.nta_on)
    p.add(_at(opened, 10), "file_nta", {"court_case_no": court.case_no})
    dated: list[Dated] = []
    for before, h in pairwise(hearings):
        params = {"hearing_at": h.at.isoformat(), "hearing_type": h.kind, "hearing_place": h.place}
        dated.append((before.at + timedelta(hours=1), "schedule_hearing", params))
    dated += _relief(f, court)
    for pr in court.proceedings:
        dated += _decided(f, pr)
    for at, action, params in sorted(dated, key=lambda x: x[0]):
        p.add(at, action, params)


def _relief(f: PersonFile, court: CourtRec) -> list[Dated]:
    """An asylum application pending in (or decided by) the court is filed with it."""
    decision = court.decision
    for claim in sorted(f.asylum, key=lambda c: c.filed_on):
        live = claim.status == "pending" or (claim.decided_on or date.min) >= court.nta_on
        if live and (decision is None or claim.filed_on < decision.on):
            params = {"form": "asylum", "filed_on": claim.filed_on.isoformat()}
            return [(_at(claim.filed_on, 12), "file_relief_application", params)]
    return []


def _decided(f: PersonFile, pr: ProceedingRec) -> list[Dated]:
    """A proceeding's decision (after its last hearing), a bond posted, an appeal."""
    out: list[Dated] = []
    d = pr.decision
    if d is not None:
        last = pr.hearings[-1].at if pr.hearings else _at(d.on, 14)
        out.append((max(last + timedelta(hours=2), _at(d.on, 14)), *_decision_step(f, d)))
        if d.kind == "voluntary-departure" and _vd_at_conclusion(d):
            day = d.on + timedelta(days=1)
            out.append(
                (_at(day, 10), "post_vd_bond", {"posted_on": day.isoformat(), "amount": 500})
            )
    if pr.appeal:
        a = pr.appeal
        out.append((_at(a.filed_on, 11), "file_appeal", {"received_on": a.filed_on.isoformat()}))
        if a.decided_on and a.outcome in ("dismissed", "sustained"):
            action = "appeal_dismissed" if a.outcome == "dismissed" else "appeal_sustained"
            out.append((_at(a.decided_on, 11), action, {"decision_date": a.decided_on.isoformat()}))
    return out


def _vd_at_conclusion(d: DecisionRec) -> bool:
    return d.vd_deadline is not None and (d.vd_deadline - d.on).days <= 60


def _decision_step(f: PersonFile, d: DecisionRec) -> tuple[str, dict[str, Any]]:
    """The transition a judge's decision is, with its parameters."""
    on = d.on.isoformat()
    params: dict[str, Any]
    if d.kind == "removal-ordered":
        return "order_removal", {"decision_date": on, "destination": f.nationality}
    if d.kind == "in-absentia":
        params = {"decision_date": on, "destination": f.nationality, "notice_given": True}
        return "order_in_absentia", params
    if d.kind in ("withholding-granted", "cat-granted"):
        protection = "withholding" if d.kind == "withholding-granted" else "cat"
        country = d.protected_country or f.nationality
        params = {"decision_date": on, "protection": protection, "protected_country": country}
        return "grant_protection", params
    if d.kind == "voluntary-departure":
        at_end = _vd_at_conclusion(d)
        params = {
            "decision_date": on,
            "stage": "at-conclusion" if at_end else "before-conclusion",
            "departure_deadline": d.vd_deadline.isoformat() if d.vd_deadline else None,
            "alternate_destination": f.nationality,
        } | ({"bond_amount": 500} if at_end else {})
        return "grant_voluntary_departure", params
    if d.kind == "admin-closed":
        return "admin_close", {"order_date": on}
    return "terminate", {"decision_date": on}


def _final_at(court: CourtRec) -> datetime | None:
    """When the court case's order became final, by the record (None: no order, or pending)."""
    d = court.decision
    if d is None or (d.kind not in ORDER_DECISIONS and court.kind == "removal-240"):
        return None
    appeal = court.proceedings[-1].appeal
    if appeal:
        ok = appeal.outcome == "dismissed" and appeal.decided_on
        return _at(appeal.decided_on, 11) if ok and appeal.decided_on else None
    if court.kind != "removal-240" or d.kind == "in-absentia":
        return _at(d.on, 12)
    if d.kind == "voluntary-departure" and d.vd_deadline:
        return _at(d.vd_deadline + timedelta(days=1), 0)
    return calendar.due(load_table().deadlines["appeal_window"], d.on)[0]


def _departure_steps(p: _Planner, f: PersonFile, court: CourtRec, until: date | None) -> None:
    """What the next verified departure after the order means for the case."""
    final = _final_at(court)
    d = court.decision
    if final is None or d is None:
        return
    after = p.last if d.kind == "voluntary-departure" else max(p.last, final)
    gone = next(
        (
            x
            for x in f.departures
            if x.port and x.at > after and (until is None or x.at.date() < until)
        ),
        None,
    )
    if gone is None:
        return
    evidence = {"departure_id": gone.id, "departed_at": gone.at.isoformat(), "port": gone.port}
    if gone.removal:
        _removal(p, f, gone, max(p.last, final), evidence)
    elif d.kind == "voluntary-departure" and d.vd_deadline and gone.at.date() <= d.vd_deadline:
        p.add(gone.at, "voluntary_departure_verified", evidence, "system")
    else:
        p.add(gone.at, "closed_as_departed", evidence, "system")


def _removal(
    p: _Planner, f: PersonFile, gone: DepartureRec, final: datetime, evidence: dict[str, Any]
) -> None:
    """Travel document, warrant, a seat on the flight the record names, then the departure."""
    country = f.nationality
    span = max(gone.at - final, timedelta(hours=6)) / 7
    t = final + span
    p.add(
        t, "request_travel_document", {"country": country, "consulate": f"Consulate of {country}"}
    )
    issued = {
        "travel_document_id": TRAVEL_DOCUMENT,
        "outcome": "issued",
        "document_no": f"TD{sha256_hex(gone.id)[:8].upper()}",
        "valid_until": (gone.at.date() + timedelta(days=60)).isoformat(),
    }
    p.add(t + span, "record_travel_document", issued)
    why = "Final order of removal; the travel document is issued: a warrant carries the order out."
    p.add(t + 2 * span, "issue_warrant_of_removal", {"destination": country}, "approve", why)
    flight = {
        "kind": "charter",
        "carrier": "CHARTER",
        "flight_no": gone.flight or "RPN",
        "origin": gone.port or "IAH",
        "destination": country,
        "departs_at": gone.at,
        "capacity": 120,
    }
    p.add(t + 3 * span, "create_flight", flight, "flight")
    why = f"Seat on charter {gone.flight or ''} to {country}: warrant signed, document issued."
    p.add(
        t + 4 * span,
        "schedule_removal",
        {"flight_id": FLIGHT, "destination": country},
        "approve",
        why,
    )
    p.add(gone.at, "removal_verified", evidence, "system")
    p.add(gone.at + _GAP, "flight_departed", {"departed_at": gone.at}, "flight_departed")


# -- the report ---------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What a load did: cases opened, steps applied, final states, refusals by reason."""

    cases_opened: int = 0
    cases_present: int = 0
    """Cases of the records that an earlier load already opened (left as they are)."""
    steps_applied: int = 0
    by_state: dict[str, int] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    """One full refusal message per reason."""
    showcase: dict[str, str] = field(default_factory=dict)
    """State → case driven there by the showcase."""
    showcase_attempts_refused: Counter[str] = field(default_factory=Counter)
    unreachable: dict[str, str] = field(default_factory=dict)
    tick: TickReport | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases_opened": self.cases_opened,
            "cases_present": self.cases_present,
            "steps_applied": self.steps_applied,
            "by_state": dict(sorted(self.by_state.items())),
            "refused": dict(self.refused.most_common()),
            "showcase": self.showcase,
            "showcase_attempts_refused": dict(self.showcase_attempts_refused.most_common()),
            "unreachable": self.unreachable,
            "tick": self.tick.as_dict() | {"steps": len(self.tick.steps)} if self.tick else None,
            "seconds": round(self.seconds, 2),
        }


_IDS = re.compile(r"\b[a-z]{2,6}-[0-9a-f]{8,}\b")


def refusal_reason(action: str, exc: Exception) -> str:
    """A countable reason: the blocking guards, or the message without ids."""
    if isinstance(exc, service.StepBlocked):
        return f"{action}: " + "+".join(c.guard for c in exc.plan.blocked_by)
    return f"{action}: " + _IDS.sub("…", str(exc))[:90]


# -- replaying a plan ---------------------------------------------------------------------------


@dataclass
class _Desk:
    """The people working one case, all in the same transaction."""

    officer: Gateway
    supervisor: Gateway
    counsel: Gateway
    system: Gateway
    flight_id: str | None = None
    due: list[tuple[str, datetime]] | None = None
    """The case's open deadlines (id, due), when known."""


def _sets_deadlines(action: str) -> bool:
    t = load_table().transitions.get(action)
    return t is not None and bool(t.effects.deadlines or t.effects.cancels)


class _Rollback(Exception):
    """Undo a showcase attempt that did not reach its state (not a refusal: nothing to audit)."""


class Loader:
    """Opens and replays cases; one transaction per case."""

    def __init__(self, runtime: Runtime, now: datetime, report: LoadReport) -> None:
        self.runtime = runtime
        self.now = now
        self.report = report
        with runtime.sessions() as session:
            users = session.scalars(select(User)).all()
            self.actors = {u.username: actor_of(u) for u in users}

    def _ctx(self, username: str, why: str) -> AccessContext:
        return AccessContext(self.actors[username], Purpose.CASE_PROCESSING, why)

    @contextmanager
    def desk(self, office: str, why: str, *, pdf: bool) -> Iterator[_Desk]:
        """Gateways for the office's officer and supervisor, counsel and the system."""
        system = system_context(Purpose.CASE_PROCESSING, why)
        with unit_of_work(self.runtime.sessions, system) as gw:
            session = gw.session
            session.info[PDF_KEY] = pdf
            town = office.lower()
            yield _Desk(
                Gateway(session, self._ctx(f"officer.{town}", why)),
                Gateway(session, self._ctx(f"supervisor.{town}", why)),
                Gateway(session, self._ctx("counsel", why)),
                gw,
            )

    def replay(self, plan: CasePlan, *, pdf: bool) -> str:
        """Open the case and take each step until one is refused; the state it rests in."""
        with self.desk(plan.office, f"demo: replay {plan.key}", pdf=pdf) as d:
            case = service.open_case(
                d.officer, plan.person_id, office=plan.office, reason=plan.reason,
                origin=plan.origin, at=plan.opened_at,
            )  # fmt: skip
            self.report.cases_opened += 1
            for step in plan.steps:
                if step.at > self.now or not self._attempt(d, case.id, step):
                    break
            self.report.steps_applied += self.catch_up(d, case.id, self.now)
            return str(d.system.get(EnforcementCase, case.id).state)

    def _attempt(self, d: _Desk, case_id: str, step: PlannedStep) -> bool:
        """One step in a savepoint: a refusal undoes only this step, and is audited."""
        self.report.steps_applied += self.catch_up(d, case_id, step.at)
        savepoint = d.system.session.begin_nested()
        try:
            self.report.steps_applied += self.run(d, case_id, step)
        except ImmosError as exc:
            savepoint.rollback()
            self._refused(d.system.session, step.action, exc)
            return False
        savepoint.commit()
        return True

    def _refused(self, session: Session, action: str, exc: Exception) -> None:
        reason = refusal_reason(action, exc)
        self.report.refused[reason] += 1
        self.report.examples.setdefault(reason, str(exc))
        if isinstance(exc, Refused):
            emit(session, exc.audit_event(), exc.ctx)

    def catch_up(self, d: _Desk, case_id: str, until: datetime) -> int:
        """Apply the case's deadlines due by ``until``, each at the moment it fell due; how
        many case events that wrote. Open deadlines are read again only after a step that may
        have set or cancelled one."""
        if d.due is None:
            rows = d.system.rows(
                select(CaseDeadline.id, CaseDeadline.due_at)
                .where(CaseDeadline.case_id == case_id, CaseDeadline.status == "open")
                .order_by(CaseDeadline.due_at),
                CaseDeadline,
                params={"case": case_id, "open_deadlines": True},
            )
            d.due = [(r[0], r[1]) for r in rows]
        due = [(i, at) for i, at in d.due if at <= until]
        if not due:
            return 0
        d.due = None
        applied = sum(len(apply_deadline(d.system, i, case_id, at) or []) for i, at in due)
        # a computed step that followed may have set a deadline that is itself already due
        return applied + self.catch_up(d, case_id, until)

    def run(self, d: _Desk, case_id: str, step: PlannedStep) -> int:
        """Take one step as the people the table names; how many case events it wrote."""
        written = self._take(d, case_id, step)
        if written > 1 or step.how == "evaluate" or _sets_deadlines(step.action):
            d.due = None
        return written

    def _take(self, d: _Desk, case_id: str, step: PlannedStep) -> int:
        params = self._resolve(d, case_id, step.params)
        if step.how == "flight":
            d.flight_id = create_flight(d.officer, **params).id
            return 0
        if step.how == "flight_departed":
            self._departed(d, params["departed_at"])
            return 0
        if step.how == "evaluate":
            return len(service.evaluate(d.system, case_id, step.at))
        if step.how in ("perform", "system"):
            gw = d.system if step.how == "system" else d.officer
            return len(service.perform(gw, case_id, step.action, params, now=step.at).events)
        asker, approver = (d.officer, d.supervisor) if step.how == "approve" else (
            d.supervisor, d.counsel,
        )  # fmt: skip
        request = service.request_action(asker, case_id, step.action, params, step.why, now=step.at)
        service.decide(approver, request.id, True, APPROVAL_TEXT, now=step.at + _DECIDE_AFTER)
        return len(service.execute(asker, request.id, now=step.at + _EXECUTE_AFTER).events)

    def _resolve(self, d: _Desk, case_id: str, params: dict[str, Any]) -> dict[str, Any]:
        """Fill in what only exists once earlier steps ran (the travel document, the flight)."""
        out = dict(params)
        if out.get("travel_document_id") == TRAVEL_DOCUMENT:
            rows = d.officer.rows(
                select(TravelDocument.id)
                .where(TravelDocument.case_id == case_id, TravelDocument.status == "requested")
                .order_by(TravelDocument.requested_at.desc()),
                TravelDocument,
                params={"case": case_id},
            )
            out["travel_document_id"] = rows[0][0] if rows else "none requested"
        if out.get("flight_id") == FLIGHT:
            out["flight_id"] = d.flight_id or "no flight planned"
        return out

    def _departed(self, d: _Desk, at: datetime) -> None:
        """The flight the record names has left (its one passenger verified separately)."""
        flight = d.system.session.get(RemovalFlight, d.flight_id or "")
        if flight is None:
            return
        flight.status, flight.departed_at = "departed", at
        d.system.session.flush()
        d.system._audit(
            FlightChanged(
                object_type="removal_flights", object_ids=[flight.id], change="departed",
                passengers=1,
            )
        )  # fmt: skip


# -- the showcase: a case in every state --------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """A person a showcase recipe acts on, and from when."""

    file: PersonFile
    office: str
    start: datetime
    prior_order_on: date | None = None


StepsFn = Callable[[_Planner, Subject], None]


@dataclass(frozen=True)
class Recipe:
    """How to bring a case into a state: from which state (or which fresh person), by which steps.

    ``recent``: the steps need the person's last entry under two years before (expedited
    removal), so they are never tried on an old encounter. ``natural``: the steps may act on a
    replayed case already in ``source``.
    """

    source: str
    steps: StepsFn
    recent: bool = False
    natural: bool = True
    accepts: Callable[[Subject], bool] = lambda s: True


FRESH = ("overstay", "citizen", "removed")


def _charge(s: Subject) -> str:
    entry = s.file.entry_before(s.start.date())
    return OVERSTAY_CHARGE if entry and entry.klass in NONIMMIGRANT_CLASSES else EWI_CHARGE


def _s_encounter(p: _Planner, s: Subject) -> None:
    e = EncounterRec(f"showcase-{s.file.id[-8:]}", s.start.date(), s.office, "NTA issued")
    params = _encounter_params(e) | {
        "narrative": f"Showcase encounter at the {s.office} field office: identity checked "
        "against the admission and departure records on file.",
        "disposition": "interview",
    }
    p.add(s.start, "record_encounter", params)


def _s_indicate(p: _Planner, s: Subject) -> None:
    p.add(s.start, "citizenship_indicated", {}, "evaluate")


def _s_confirm(p: _Planner, s: Subject) -> None:
    params = {"evidence": "Linked citizenship evidence reviewed by supervisor and counsel."}
    why = "Citizenship evidence on record: no civil immigration authority over a citizen."
    p.add(p.last + _GAP, "confirm_citizenship", params, "joint", why)


def _s_arrest(p: _Planner, s: Subject) -> None:
    cause = (
        "Admission record shows the authorized stay ended with no departure on record; the "
        "person confirmed identity at the encounter."
    )
    why = "Administrative arrest on an I-200 warrant: overstay confirmed against the records."
    p.add(
        p.last + _GAP, "arrest", {"authority": "warrant", "probable_cause": cause}, "approve", why
    )


def _s_detainer(p: _Planner, s: Subject) -> None:
    params = {
        "probable_cause_basis": "biometric-match-and-records-indicate-removable",
        "facility": f"{s.office} County Jail (synthetic)",
        "release_at": (p.last + timedelta(days=3)).isoformat(),
    }
    why = "Detainer on the signed I-200: the county intends to release in three days."
    p.add(p.last + _GAP, "lodge_detainer", params, "approve", why)


def _s_nta(p: _Planner, s: Subject) -> None:
    at = p.last + _GAP
    charge = _charge(s)
    params: dict[str, Any] = {
        "charges": [charge],
        "allegations": _allegations(s.file, charge, at.date()),
        "hearing_at": _at(at.date() + timedelta(days=63), 9).isoformat(),
        "hearing_place": f"{s.office} Immigration Court",
    }
    if not s.file.a_number:
        params["a_number"] = f"A{int(sha256_hex(s.file.id)[:12], 16) % 10**9:09d}"
    p.add(at, "issue_nta", params)


def _s_file_nta(p: _Planner, s: Subject) -> None:
    p.add(p.last + _GAP, "file_nta", {"court_case_no": f"DEMO-{s.file.id[-8:].upper()}"})


def _s_court(action: str, extra: Callable[[Subject], dict[str, Any]]) -> StepsFn:
    def steps(p: _Planner, s: Subject) -> None:
        at = p.last + _GAP
        p.add(at, action, {"decision_date": at.date().isoformat()} | extra(s))

    return steps


def _s_relief(p: _Planner, s: Subject) -> None:
    at = p.last + _GAP
    p.add(at, "file_relief_application", {"form": "asylum", "filed_on": at.date().isoformat()})


def _s_admin_close(p: _Planner, s: Subject) -> None:
    at = p.last + _GAP
    p.add(at, "admin_close", {"order_date": at.date().isoformat()})


def _s_vd(p: _Planner, s: Subject) -> None:
    at = p.last + _GAP
    params = {
        "decision_date": at.date().isoformat(),
        "stage": "before-conclusion",
        "departure_deadline": (at.date() + timedelta(days=120)).isoformat(),
        "alternate_destination": s.file.nationality,
    }
    p.add(at, "grant_voluntary_departure", params)


def _s_appeal(p: _Planner, s: Subject) -> None:
    at = p.last + _GAP
    p.add(at, "file_appeal", {"received_on": at.date().isoformat()})


def _s_expedited(fear: bool) -> StepsFn:
    def steps(p: _Planner, s: Subject) -> None:
        at = p.last + _GAP
        params = {
            "continuous_presence_days": _presence_days(s.file, s.start.date(), at.date()),
            "destination": s.file.nationality,
            "fear_screening": "fear-expressed" if fear else "no-fear-expressed",
        }
        why = "Expedited removal: entered under two years ago, as the admission record shows."
        p.add(at, "issue_expedited_order", params, "approve", why)

    return steps


def _s_fear(action: str) -> StepsFn:
    def steps(p: _Planner, s: Subject) -> None:
        details = "The person states a fear of persecution on return."
        p.add(p.last + _GAP, action, {"details": details})

    return steps


def _s_claim_status(p: _Planner, s: Subject) -> None:
    p.add(p.last + _GAP, "claim_status", {"claimed_status": "lpr"})


def _s_reinstate(p: _Planner, s: Subject) -> None:
    _s_encounter(p, s)
    params = {
        "prior_order_date": s.prior_order_on.isoformat() if s.prior_order_on else None,
        "destination": s.file.nationality,
        "fear_screening": "fear-expressed",
    }
    why = "Re-entry after a removal on record: the prior order is reinstated."
    p.add(p.last + _GAP, "reinstate_prior_order", params, "approve", why)


def _s_stay(p: _Planner, s: Subject) -> None:
    at = p.last + _GAP
    p.add(at, "grant_stay", {"granted_by": "dhs-i-246", "granted_on": at.date().isoformat()})


def _s_schedule(p: _Planner, s: Subject) -> None:
    country = s.file.nationality
    at = p.last + _GAP
    departs = _at(at.date() + timedelta(days=12), 7)
    p.add(
        at, "request_travel_document", {"country": country, "consulate": f"Consulate of {country}"}
    )
    issued = {
        "travel_document_id": TRAVEL_DOCUMENT,
        "outcome": "issued",
        "document_no": f"TD{sha256_hex(s.file.id)[:8].upper()}",
        "valid_until": (departs.date() + timedelta(days=60)).isoformat(),
    }
    p.add(at, "record_travel_document", issued)
    why = "Final order of removal; travel document issued."
    p.add(at, "issue_warrant_of_removal", {"destination": country}, "approve", why)
    flight = {
        "kind": "charter", "carrier": "Demo Air Charter", "flight_no": "DMO100",
        "origin": "IAH" if s.office == "Houston" else "MIA", "destination": country,
        "departs_at": departs, "capacity": 60,
    }  # fmt: skip
    p.add(p.last + _GAP, "create_flight", flight, "flight")
    why = "Seat on the planned charter: warrant signed, travel document valid on the flight date."
    p.add(
        p.last + _GAP,
        "schedule_removal",
        {"flight_id": FLIGHT, "destination": country},
        "approve",
        why,
    )


def _s_close(p: _Planner, s: Subject) -> None:
    params = {
        "reason": "prosecutorial-discretion",
        "details": "No enforcement priority: closed on review of the file.",
    }
    why = "Old encounter without any further record: close under prosecutorial discretion."
    p.add(p.last + _GAP, "close_case", params, "approve", why)


def _has_evidence(s: Subject) -> bool:
    return s.file.citizenship_evidence


def _nat(s: Subject) -> dict[str, Any]:
    return {"destination": s.file.nationality}


_IN_ABSENTIA = _s_court("order_in_absentia", lambda s: _nat(s) | {"notice_given": True})
_WITHHOLDING = _s_court(
    "grant_protection",
    lambda s: {"protection": "withholding", "protected_country": s.file.nationality},
)


def _s_absentia_motion(p: _Planner, s: Subject) -> None:
    """Ordered removed in absentia (final at once), then a timely motion to reopen stays it."""
    _IN_ABSENTIA(p, s)
    at = p.last + _GAP
    p.add(at, "file_motion_to_reopen_in_absentia", {"filed_on": at.date().isoformat()})


def _s_reopen(p: _Planner, s: Subject) -> None:
    """Ordered removed in absentia, then the court grants a motion to reopen."""
    _IN_ABSENTIA(p, s)
    at = p.last + _GAP
    p.add(at, "file_motion_to_reopen", {"filed_on": at.date().isoformat()})
    p.add(at + _GAP, "reopen", {"decision_date": at.date().isoformat()})


#: Per state: where it is reached from, and how. Court decisions are only ever made in showcase
#: cases of their own (``natural=False``), so a case replayed from a court record never shows
#: a decision the record does not hold; agency acts (an arrest, a stay by DHS, a warrant, a
#: closure, a citizenship decision) may act today on a replayed case that has one to spare.
RECIPES: dict[str, Recipe] = {
    "LEAD": Recipe("overstay", lambda p, s: None),
    "ENCOUNTERED": Recipe("LEAD", _s_encounter),
    "CITIZENSHIP_REVIEW": Recipe("citizen", _s_indicate),
    "EXITED_CITIZEN": Recipe("CITIZENSHIP_REVIEW", _s_confirm, accepts=_has_evidence),
    "ARRESTED": Recipe("ENCOUNTERED", _s_arrest),
    "DETAINER_LODGED": Recipe("ARRESTED", _s_detainer),
    "NTA_ISSUED": Recipe("ENCOUNTERED", _s_nta),
    "IN_PROCEEDINGS": Recipe("NTA_ISSUED", _s_file_nta),
    "RELIEF_PENDING": Recipe("IN_PROCEEDINGS", _s_relief, natural=False),
    "ADMIN_CLOSED": Recipe("IN_PROCEEDINGS", _s_admin_close, natural=False),
    "TERMINATED": Recipe("IN_PROCEEDINGS", _s_court("terminate", lambda s: {}), natural=False),
    "RELIEF_GRANTED": Recipe(
        "IN_PROCEEDINGS", _s_court("grant_relief", lambda s: {}), natural=False
    ),
    "PROTECTION_GRANTED": Recipe("IN_PROCEEDINGS", _WITHHOLDING, natural=False),
    "VD_GRANTED": Recipe("IN_PROCEEDINGS", _s_vd, natural=False),
    "REMOVAL_ORDERED": Recipe("IN_PROCEEDINGS", _s_court("order_removal", _nat), natural=False),
    "IN_ABSENTIA_ORDER": Recipe("IN_PROCEEDINGS", _s_absentia_motion, natural=False),
    "APPEAL_PENDING": Recipe("REMOVAL_ORDERED", _s_appeal, natural=False),
    "REOPENED": Recipe("IN_PROCEEDINGS", _s_reopen, natural=False),
    "EXPEDITED_ORDER": Recipe("ENCOUNTERED", _s_expedited(fear=True), recent=True),
    "CREDIBLE_FEAR_REVIEW": Recipe("EXPEDITED_ORDER", _s_fear("claim_credible_fear")),
    "CLAIMED_STATUS_REVIEW": Recipe("EXPEDITED_ORDER", _s_claim_status),
    "FINAL_ORDER": Recipe("ENCOUNTERED", _s_expedited(fear=False), recent=True),
    "STAYED": Recipe("FINAL_ORDER", _s_stay),
    "REMOVAL_SCHEDULED": Recipe("FINAL_ORDER", _s_schedule),
    "CLOSED": Recipe("ENCOUNTERED", _s_close),
    "REINSTATED": Recipe("removed", _s_reinstate),
    "REASONABLE_FEAR_REVIEW": Recipe("REINSTATED", _s_fear("claim_reasonable_fear")),
}


def chain(target: str) -> tuple[str, list[Recipe]]:
    """The fresh pool a target is reached from, and every recipe on the way."""
    recipe = RECIPES[target]
    if recipe.source in FRESH:
        return recipe.source, [recipe]
    root, recipes = chain(recipe.source)
    return root, [*recipes, recipe]


@dataclass
class _Cases:
    """The store's cases as the showcase sees them: (id, person, state, office)."""

    rows: list[tuple[str, str, str, str]]

    def count(self) -> Counter[str]:
        return Counter(r[2] for r in self.rows)

    def persons(self) -> set[str]:
        return {r[1] for r in self.rows}

    def in_state(self, state: str) -> list[tuple[str, str, str, str]]:
        return [r for r in self.rows if r[2] == state]


class Showcase:
    """Drive a case into every state the histories left empty, through the engine."""

    ATTEMPTS = 6

    def __init__(self, loader: Loader, files: dict[str, PersonFile], pdf: bool) -> None:
        self.loader = loader
        self.files = files
        self.pdf = pdf
        self.used: set[str] = set()
        self.failures: dict[str, str] = {}
        self.structural: set[str] = set()
        """States a chain cannot rest in: a computed step always moves the case on."""

    def run(self) -> None:
        for state in load_table().states:
            cases = self._cases()
            if cases.count()[state] or state in NO_RECIPE:
                continue
            if not (self._natural(state, cases) or self._fresh(state, cases)):
                reason = self.failures.get(state, "no suitable person in this world")
                self.loader.report.unreachable[state] = reason

    def _cases(self) -> _Cases:
        ctx = system_context(Purpose.CASE_PROCESSING, "demo: showcase coverage")
        with unit_of_work(self.loader.runtime.sessions, ctx) as gw:
            rows = gw.rows(
                select(
                    EnforcementCase.id,
                    EnforcementCase.person_id,
                    EnforcementCase.state,
                    EnforcementCase.office,
                ).order_by(EnforcementCase.opened_reason, EnforcementCase.id),
                EnforcementCase,
                params={"demo_cases": "showcase coverage"},
            )
        return _Cases([(r[0], r[1], r[2], r[3] or "Houston") for r in rows])

    def _natural(self, state: str, cases: _Cases) -> bool:
        """A case already in the recipe's source state, when that state has one to spare."""
        recipe = RECIPES.get(state)
        if recipe is None or recipe.source in FRESH or recipe.recent or not recipe.natural:
            return False
        if cases.count()[recipe.source] < 2:
            return False
        tried = 0
        for case_id, pid, _state, office in cases.in_state(recipe.source):
            if pid in self.used or pid not in self.files:
                continue
            subject = Subject(self.files[pid], handling_office(office), self._start())
            if not recipe.accepts(subject):
                continue
            if self._attempt(state, [recipe], subject, case_id):
                return True
            tried += 1
            if tried >= self.ATTEMPTS or state in self.structural:
                break
        return False

    def _fresh(self, state: str, cases: _Cases) -> bool:
        """A person with no case yet, driven from the start of the recipe chain."""
        if state not in RECIPES or state in self.structural:
            return False
        root, recipes = chain(state)
        recent = any(r.recent for r in recipes)
        for i, subject in enumerate(self._pool(root, cases, recent)):
            if i >= self.ATTEMPTS or state in self.structural:
                break
            if self._attempt(state, recipes, subject, None):
                return True
        return False

    def _start(self) -> datetime:
        return self.loader.now - timedelta(hours=6)

    def _pool(self, root: str, cases: _Cases, recent: bool) -> Iterable[Subject]:
        taken = cases.persons() | self.used
        free = [f for f in self.files.values() if f.id not in taken]
        if root == "citizen":
            for f in free:
                if f.citizenship_evidence and f.nationality and f.birth_date:
                    yield Subject(f, "Miami", self._start())
        elif root == "removed":
            yield from self._removed(cases)
        else:
            yield from self._overstays(free, recent)

    def _overstays(self, free: list[PersonFile], recent: bool) -> Iterator[Subject]:
        """Visitors past their admitted stay with no departure since, most recent first."""
        start = self._start()
        found: list[tuple[date, date, PersonFile]] = []
        for f in free:
            if f.citizenship_evidence or f.lpr or f.protected_status or f.court:
                continue
            if not (f.nationality and f.birth_date and f.nationality != "USA"):
                continue
            entry = f.entry_before(start.date())
            if entry is None or entry.klass not in NONIMMIGRANT_CLASSES or entry.until is None:
                continue
            if entry.until >= start.date() or any(d.at.date() >= entry.on for d in f.departures):
                continue
            found.append((entry.on, entry.until, f))
        for entered, until, f in sorted(found, key=lambda x: x[0], reverse=True):
            at = min(start, _at(entered + timedelta(days=700), 10)) if recent else start
            if at.date() > until:
                office = "Miami" if int(sha256_hex(f.id)[:2], 16) % 2 else "Houston"
                yield Subject(f, office, at)

    def _removed(self, cases: _Cases) -> Iterator[Subject]:
        """Persons removed under a case, with no open case now."""
        terminal = load_table().terminal
        open_persons = {r[1] for r in cases.rows if r[2] not in terminal}
        for _cid, pid, _state, office in cases.in_state("REMOVED"):
            f = self.files.get(pid)
            if f is None or pid in open_persons or pid in self.used:
                continue
            orders = [c.decision.on for c in f.court if c.decision]
            prior = max(orders) if orders else None
            yield Subject(f, handling_office(office), self._start(), prior)

    def _attempt(
        self, state: str, recipes: list[Recipe], subject: Subject, case_id: str | None
    ) -> bool:
        """All of a recipe chain in one transaction, kept only if the case ends in ``state``."""
        p = _Planner()
        p.last = subject.start - _GAP
        for recipe in recipes:
            recipe.steps(p, subject)
        loader, action, steps, failure = self.loader, state, 0, None
        fresh = case_id is None
        try:
            with loader.desk(subject.office, f"demo showcase: {state}", pdf=self.pdf) as d:
                try:
                    case_id = case_id or self._open(d, subject, state)
                    for step in p.steps:
                        action = step.action
                        steps += loader.catch_up(d, case_id, step.at)
                        steps += loader.run(d, case_id, step)
                    steps += loader.catch_up(d, case_id, loader.now)
                    reached = str(d.system.get(EnforcementCase, case_id).state)
                    if reached != state:
                        raise _Missed(f"a computed step moves the case on to {reached} at once")
                except ImmosError as exc:
                    failure = exc
                    raise _Rollback from exc
        except _Rollback:
            self._failed(state, action, failure)
            return False
        self.used.add(subject.file.id)
        loader.report.steps_applied += steps
        loader.report.cases_opened += fresh
        loader.report.showcase[state] = str(case_id)
        return True

    def _open(self, d: _Desk, s: Subject, state: str) -> str:
        reason = f"showcase {state}: a demo walkthrough case, driven through the engine"
        case = service.open_case(
            d.officer, s.file.id, office=s.office, reason=reason, origin="showcase",
            at=s.start - _GAP,
        )  # fmt: skip
        return case.id

    def _failed(self, state: str, action: str, failure: Exception | None) -> None:
        if failure is None:
            return
        if isinstance(failure, _Missed):
            self.structural.add(state)
        reason = refusal_reason(action, failure)
        self.loader.report.showcase_attempts_refused[reason] += 1
        self.failures[state] = reason
        if isinstance(failure, Refused):
            ctx = system_context(Purpose.CASE_PROCESSING, "demo showcase refusal")
            with unit_of_work(self.loader.runtime.sessions, ctx) as gw:
                emit(gw.session, failure.audit_event(), failure.ctx)


class _Missed(ImmosError):
    """A showcase chain ran without refusal but the case rests elsewhere (a computed step)."""


# -- the entry point ----------------------------------------------------------------------------


def existing_keys(runtime: Runtime) -> set[str]:
    """The record keys of cases already loaded (the part of ``opened_reason`` before ':')."""
    ctx = system_context(Purpose.CASE_PROCESSING, "demo: cases already loaded")
    with unit_of_work(runtime.sessions, ctx) as gw:
        rows = gw.rows(
            select(EnforcementCase.opened_reason).where(EnforcementCase.opened_reason.is_not(None)),
            EnforcementCase,
            params={"demo_cases": "keys"},
        )
    return {str(r[0]).partition(":")[0] for r in rows}


def _by_state(runtime: Runtime) -> dict[str, int]:
    ctx = system_context(Purpose.CASE_PROCESSING, "demo: cases by state")
    with unit_of_work(runtime.sessions, ctx) as gw:
        rows = gw.rows(
            select(EnforcementCase.state, func.count()).group_by(EnforcementCase.state),
            EnforcementCase,
            params={"demo_cases": "by state"},
        )
    return {str(state): int(n) for state, n in rows}


def plan_world(files: dict[str, PersonFile]) -> list[CasePlan]:
    """Every person's plans, oldest case first per person (a reinstatement needs its removal)."""
    return [plan for f in files.values() for plan in plan_person(f)]


def load_cases(
    runtime: Runtime,
    *,
    progress: ProgressFn | None = None,
    now: datetime | None = None,
    showcase_pdf: bool | None = None,
) -> LoadReport:
    """Replay every person's history into cases, tick once, then showcase every state.

    Bulk replays render HTML only; showcase cases render PDF too unless ``showcase_pdf`` is
    False (default: the runtime's setting).
    """
    started = time.perf_counter()
    now = now or utcnow()
    report = LoadReport()
    ctx = system_context(Purpose.CASE_PROCESSING, "demo: read the histories to replay")
    with unit_of_work(runtime.sessions, ctx) as gw:
        files = read_world(gw, now.date())
        pdf = bool(gw.session.info.get(PDF_KEY, True)) if showcase_pdf is None else showcase_pdf
    loader = Loader(runtime, now, report)
    keys = existing_keys(runtime)
    plans = plan_world(files)
    for i, plan in enumerate(plans):
        if plan.key in keys:
            report.cases_present += 1
        else:
            loader.replay(plan, pdf=False)
        if progress:
            progress(i + 1, len(plans))
    report.tick = tick(runtime.sessions, now)
    Showcase(loader, files, pdf).run()
    report.by_state = _by_state(runtime)
    for state in load_table().states:
        if not report.by_state.get(state):
            report.unreachable.setdefault(state, NO_RECIPE.get(state, "no case rests there"))
    report.seconds = time.perf_counter() - started
    return report


__all__ = [
    "CasePlan",
    "LoadReport",
    "PersonFile",
    "PlannedStep",
    "handling_office",
    "load_cases",
    "plan_court_case",
    "plan_encounter",
    "plan_person",
    "plan_world",
    "read_world",
]
