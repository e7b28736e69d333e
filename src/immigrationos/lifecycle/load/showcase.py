"""Showcase: at least one case in every state of the table, reached through the engine.

For a state the histories did not produce, a recipe drives a suitable person there with the
same request, approval and execution discipline; documents are printed to PDF.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from immigrationos.audit.chain import emit
from immigrationos.core.errors import ImmosError
from immigrationos.core.ids import sha256_hex
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Refused, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import service
from immigrationos.lifecycle.load.history import (
    EWI_CHARGE,
    NO_RECIPE,
    NONIMMIGRANT_CLASSES,
    OVERSTAY_CHARGE,
    EncounterRec,
    PersonFile,
)
from immigrationos.lifecycle.load.plan import (
    _GAP,
    FLIGHT,
    TRAVEL_DOCUMENT,
    _allegations,
    _at,
    _encounter_params,
    _Planner,
    _presence_days,
    handling_office,
)
from immigrationos.lifecycle.load.replay import Loader, _Desk, _Rollback, refusal_reason
from immigrationos.lifecycle.models import (
    EnforcementCase,
)
from immigrationos.lifecycle.table import load_table
from immigrationos.runtime import Runtime


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
