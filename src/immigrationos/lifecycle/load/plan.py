"""Plans: each court case, and each encounter that led to none, as a pure dated list of steps.

Hand-written rather than generated from the table because the mapping from court records to
steps is the point: it says, per record kind, which step of the law it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any

from immigrationos.core.ids import sha256_hex
from immigrationos.lifecycle import calendar
from immigrationos.lifecycle.load.history import (
    DISPOSITIONS,
    EAST_OFFICES,
    EWI_CHARGE,
    ORDER_DECISIONS,
    OVERSTAY_CHARGE,
    CourtRec,
    DecisionRec,
    DepartureRec,
    EncounterRec,
    How,
    PersonFile,
    ProceedingRec,
)
from immigrationos.lifecycle.table import load_table


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
