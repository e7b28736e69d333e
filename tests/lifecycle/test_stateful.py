"""The case lifecycle under random use: a hypothesis state machine against the invariants.

Rules drive a few persons (a plain one, a pending asylum application, valid TPS or DACA, a
pending U visa, a citizen, citizenship evidence on file) and their cases through every
transition of the table, with parameters drawn from the table's own parameter specs, by
random users (the requester included), at a clock that moves by hours to months, with the
scheduler ticking (sometimes twice at the same moment). Errors the engine raises on purpose
are fine; anything else fails.

After every step the invariants are read back from the store with SQL Core on a raw
connection (the gateway guard watches ORM sessions only), incrementally, so a check stays
cheap as the store grows. The enforcement invariants are checked twice: against the guard
checks each event stored, and against a snapshot of the store taken just before the step
(an oracle independent of the guards).

Each example gets a store of its own, copied from a seeded SQLite template; the machine is
SQLite-only because a PostgreSQL database per example would cost more than the steps.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, Row, func, literal_column, select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.audit.chain import verify
from immigrationos.audit.models import AuditEntry
from immigrationos.core.clock import frozen_at
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.core.settings import Settings
from immigrationos.facts.models import BenefitApplication
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import service as lc
from immigrationos.lifecycle.engine import options
from immigrationos.lifecycle.facts import gather
from immigrationos.lifecycle.guards import PROTECTION_FORMS, VICTIM_FORMS
from immigrationos.lifecycle.models import (
    ActionRequest,
    Approval,
    CaseCondition,
    CaseDeadline,
    CaseEvent,
    EnforcementCase,
    RemovalFlight,
    TravelDocument,
)
from immigrationos.lifecycle.scheduler import TickReport, tick
from immigrationos.lifecycle.service import CaseConflict, StepBlocked
from immigrationos.lifecycle.table import ParamSpec, TransitionSpec, load_table
from immigrationos.persons.models import Person, RecordLink
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import SHIPPED, load_definition
from immigrationos.sources.models import IngestBatch, SourceRecord
from immigrationos.sources.registry import agreement_in_force, register
from immigrationos.store.engine import transaction
from tests.lifecycle.conftest import T0, Desk

IN_CI = os.environ.get("CI", "").lower() == "true"
STEPS_PER_EXAMPLE = 100
EXAMPLES = 100 if IN_CI else 15
"""CI runs 10,000 steps (the issue's floor); a local run 1,500."""

TABLE = load_table()
USERS = ("officer.miami", "officer.houston", "supervisor.miami", "supervisor.houston", "counsel",
         "system")  # fmt: skip
EXPECTED = (StepBlocked, ValidationFailed, AccessRefused, CaseConflict, NotFound)
"""What the engine raises on purpose; StepBlocked and Refused are AccessRefused."""

CITIZENSHIP_BARRED = frozenset(
    {"arrest", "lodge_detainer", "schedule_removal", "removal_verified", "issue_warrant_of_removal",
     "redetain", "issue_expedited_order", "reinstate_prior_order"}
)  # fmt: skip
"""Steps that restrain or remove a person: never while citizenship is claimed or in review."""
REMOVAL_STEPS = frozenset({"schedule_removal", "removal_verified", "issue_warrant_of_removal"})
REMOVAL_STATES = frozenset({"REMOVAL_SCHEDULED", "REMOVED"})
REMOVAL_GUARDS = frozenset(
    {"final_order_holds", "no_stay", "no_pending_protection_claim", "appeal_window_closed"}
)
FINAL_ORDER_ENTRIES = frozenset({"order_became_final", "lift_stay", "unschedule_removal"})
APPLIED_KINDS = ("transition", "computed", "system")

COUNTRIES = ("MEX", "MEX", "GTM", "HND", "mx")
TEXTS = (
    "Met at a traffic stop and interviewed at the scene.",
    "Overstayed the admission by two years per arrival records.",
    "Miami Immigration Court",
    "Birth certificate on file, reviewed by the officer.",
    "Krome Service Processing Center",
    "Reviewed.",
    "Overstay documented in the arrival and departure records.",
    "x",
)
JUSTIFICATIONS = ("Documented in the case file.", "Reviewed the file and the evidence.",
                  "Checked against the records.", "ok")  # fmt: skip
LIST_ITEMS = ("237(a)(1)(B)", "212(a)(6)(A)(i)", "You are not a citizen of the United States.")
WORLD_CHANGES = ("open case", "flight", "flight", "benefit", "deny benefit", "citizenship evidence")
PROFILES = ("plain", "asylum", "tps", "daca", "u_visa", "citizen", "evidence")


# -- the seeded template ------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A migrated store with the demo accounts and the citizenship-evidence source."""

    template: Path
    workdir: Path
    actors: dict[str, Any]
    batch_id: str
    examples: Iterator[int] = field(default_factory=count)
    stats: Counter[str] = field(default_factory=Counter)


def _seed(template: Path, workdir: Path) -> Seed:
    path = workdir / "seed.db"
    shutil.copyfile(template, path)
    rt = open_runtime(_settings(workdir, path), upgrade=False)
    try:
        ctx = system_context(Purpose.DATA_INTEGRATION, "stateful test seed")
        with frozen_at(T0), transaction(rt.sessions) as session:
            ensure_demo_accounts(session)
            register(session, load_definition(SHIPPED / "citizenship_evidence.yaml"), ctx)
            agreement = agreement_in_force(session, "citizenship_evidence")
            assert agreement is not None
            session.add(
                IngestBatch(id="bat-evidence", source_id="citizenship_evidence",
                            agreement_id=agreement.id, input_uri="test://evidence", status="done")
            )  # fmt: skip
            actors = {u.username: actor_of(u) for u in session.scalars(select(User))}
    finally:
        rt.close()
    return Seed(path, workdir, actors, "bat-evidence")


def _settings(workdir: Path, db: Path) -> Settings:
    return Settings(mode="demo", data_dir=workdir, database_url=f"sqlite:///{db}")


# -- parameters from the table's specs ------------------------------------------------------


@dataclass(frozen=True)
class Refs:
    """What parameters may refer to: the store's flights and the case's travel documents."""

    now: datetime
    flights: tuple[str, ...]
    travel_documents: tuple[str, ...]


def _day(now: datetime, low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda d: (now.date() + timedelta(days=d)).isoformat())


def _moment(now: datetime, low_h: int, high_h: int) -> st.SearchStrategy[str]:
    return st.integers(low_h, high_h).map(lambda h: (now + timedelta(hours=h)).isoformat())


def _value(name: str, spec: ParamSpec, refs: Refs) -> st.SearchStrategy[Any]:
    """Plausible values (dates near the clock, references that exist) and some invalid ones."""
    if name == "flight_id":
        return st.sampled_from((*refs.flights, "flt-missing"))
    if name == "travel_document_id":
        return st.sampled_from((*refs.travel_documents, "trd-missing"))
    if spec.choices:
        return st.sampled_from((*spec.choices * 6, "not-a-choice"))
    now = refs.now
    by_type: dict[str, st.SearchStrategy[Any]] = {
        "text": st.sampled_from(TEXTS),
        "date": _day(now, -45, 45) if name != "departure_deadline" else _day(now, -5, 150),
        "datetime": _moment(now, -72, 24 * 10) if name == "release_at" else _moment(now, -48, 2000),
        "bool": st.booleans(),
        "int": st.integers(-1, 1000),
        "money": st.integers(0, 5000).map(float),
        "country": st.sampled_from(COUNTRIES),
        "list": st.lists(st.sampled_from(LIST_ITEMS), max_size=3),
    }
    return by_type[spec.type]


def params_strategy(t: TransitionSpec, refs: Refs) -> st.SearchStrategy[dict[str, Any]]:
    required = {n: _value(n, p, refs) for n, p in t.params.items() if p.required}
    optional = {n: _value(n, p, refs) for n, p in t.params.items() if not p.required}
    return st.fixed_dictionaries(required, optional=optional)


def _corrupt(data: st.DataObject, params: dict[str, Any]) -> dict[str, Any]:
    """Now and then a parameter missing or one the table does not know."""
    roll = data.draw(st.integers(0, 24), label="corrupt")
    if roll == 23 and params:
        params.pop(sorted(params)[0])
    if roll == 24:
        params["unexpected"] = "value"
    return params


# -- snapshots and the oracle -----------------------------------------------------------------


@dataclass
class Snapshot:
    """The store around one case just before a step, for the oracle below."""

    case_id: str
    at: datetime
    citizenship: str
    case_states: dict[str, str]
    conditions: list[Row[Any]]
    open_deadlines: list[str]
    benefits: list[Row[Any]]
    evidence: set[str]

    def active(self, kind: str) -> list[Row[Any]]:
        return [c for c in self.conditions if c.kind == kind and c.ended_at is None]


def snapshot(conn: Connection, case_id: str, at: datetime) -> Snapshot:
    cases, cond = EnforcementCase.__table__, CaseCondition.__table__
    ddl, ben = CaseDeadline.__table__, BenefitApplication.__table__
    link, rec = RecordLink.__table__, SourceRecord.__table__
    person_id = conn.scalar(select(cases.c.person_id).where(cases.c.id == case_id))
    person = Person.__table__
    return Snapshot(
        case_id=case_id,
        at=at,
        citizenship=str(
            conn.scalar(select(person.c.citizenship_status).where(person.c.id == person_id))
        ),
        case_states=dict(
            conn.execute(select(cases.c.id, cases.c.state).where(cases.c.person_id == person_id))
            .tuples()
            .all()
        ),
        conditions=list(
            conn.execute(
                select(cond)
                .where(cond.c.case_id == case_id)
                .order_by(cond.c.opened_at, literal_column("case_conditions.rowid"))
            )
        ),
        open_deadlines=list(
            conn.scalars(select(ddl.c.kind).where(ddl.c.case_id == case_id, ddl.c.status == "open"))
        ),
        benefits=list(conn.execute(select(ben).where(ben.c.person_id == person_id))),
        evidence=set(
            conn.scalars(
                select(rec.c.id)
                .join(link, link.c.source_record_id == rec.c.id)
                .where(link.c.person_id == person_id, link.c.unlinked_at.is_(None))
            )
        ),
    )


def citizenship_bar(s: Snapshot) -> str | None:
    """Why no enforcement step may be applied now (the oracle), or None."""
    if s.citizenship in ("citizen", "claimed"):
        return f"citizenship status {s.citizenship}"
    if "CITIZENSHIP_REVIEW" in s.case_states.values():
        return "a case of the person is in citizenship review"
    decided = {
        r
        for c in s.conditions
        if c.kind == "citizenship_decided"
        for r in (c.params or {}).get("evidence_records", [])
    }
    if s.evidence - decided:
        return f"undecided citizenship evidence {sorted(s.evidence - decided)}"
    pending = [b for b in s.benefits if b.form in VICTIM_FORMS and b.status == "pending"]
    decisions = s.active("victim_petition_decision")
    if pending and not (
        decisions
        and (decisions[-1].params or {}).get("decision") == "proceed-with-documented-reason"
    ):
        return "a pending victim petition without a decision to proceed"
    return None


def removal_bar(s: Snapshot) -> str | None:
    """Why the case may not move towards removal now (the oracle), or None."""
    if not s.active("final_order"):
        return "no active final order"
    if s.active("stay"):
        return "a stay is in effect"
    if s.active("fear_claim") or any(
        c.form in PROTECTION_FORMS for c in s.active("relief_application")
    ):
        return "a protection claim is pending in the case"
    if any(b.form == "I-589" and b.status == "pending" for b in s.benefits):
        return "a pending I-589"
    if "appeal_window" in s.open_deadlines:
        return "the appeal window is open"
    today = s.at.date()
    for b in s.benefits:
        if (
            b.form in ("I-821", "I-821D")
            and b.status == "approved"
            and (b.valid_until or date.min) >= today
        ):
            return f"{b.form} valid until {b.valid_until}"
    return None


def _checks(event: Row[Any]) -> dict[str, dict[str, Any]]:
    return {c["guard"]: c for c in event.checks or []}


# -- the machine ----------------------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    """Random use of the lifecycle service and scheduler on one fresh store per example."""

    def __init__(self, seed: Seed) -> None:
        super().__init__()
        self.seed = seed
        n = next(seed.examples)
        self.db = seed.workdir / f"example-{n}.db"
        shutil.copyfile(seed.template, self.db)
        self.runtime: Runtime = open_runtime(_settings(seed.workdir, self.db), upgrade=False)
        self.runtime.sessions.configure(info={"immos.documents_pdf": False})
        self.desk = Desk(self.runtime, seed.actors, T0)
        self.role_of = {a.user_id: a.role.value for a in seed.actors.values()}
        self.role_of["usr-system"] = "system"
        self.persons: list[str] = []
        self.cases: list[str] = []
        self.requests: list[str] = []
        self.request_action: dict[str, tuple[str, str]] = {}
        self.flights: list[str] = []
        self.benefits: list[str] = []
        self.evidence: set[str] = set()
        self.state: dict[str, str] = {}
        self.request_status: dict[str, str] = {}
        self.pending_snapshot: tuple[str, Snapshot] | None = None
        # what the checks have seen so far (they read only what is new)
        self.seen_events: set[str] = set()
        self.seen_approvals: set[str] = set()
        self.audit_seq = 0
        self.deadline_events: dict[str, str] = {}
        self.applied_events: Counter[tuple[str, str, str]] = Counter()
        self.applied_audit: Counter[tuple[str, str, str]] = Counter()
        self.blocked = 0
        self.blocked_audit = 0
        self.refused = 0
        self.refused_audit = 0

    # -- helpers ---------------------------------------------------------------------------

    def _attempt(self, username: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn`` as ``username``; refusals the engine means are counted, not raised."""
        try:
            return self.desk.run(username, fn, *args)
        except StepBlocked:
            self.blocked += 1
        except Refused:
            self.refused += 1
        except EXPECTED as exc:
            self.seed.stats[f"outcome {type(exc).__name__}"] += 1
        return None

    def _refs(self, case_id: str) -> Refs:
        trd = TravelDocument.__table__
        with self.runtime.engine.connect() as conn:
            docs = tuple(conn.scalars(select(trd.c.id).where(trd.c.case_id == case_id)))
        return Refs(self.desk.now, tuple(self.flights), docs)

    def _transition(self, data: st.DataObject, case_id: str, approval: bool) -> TransitionSpec:
        """Mostly a step the engine's planner offers now; sometimes one from the case's state,
        sometimes any (the planner only guides the walk: the checks never ask it)."""
        pool = [t for t in TABLE.transitions.values() if t.needs_approval == approval]
        here = [t for t in pool if self.state.get(case_id) in TABLE.sources(t)]
        roll = data.draw(st.integers(0, 9), label="guidance")
        if roll < 6:
            offered = self._offered(case_id)
            here = [t for t in here if t.name in offered] or here
        return data.draw(st.sampled_from(here if roll < 9 and here else pool), label="transition")

    def _offered(self, case_id: str) -> set[str]:
        """What the planner allows on the case now (parameters aside)."""

        def plans(gw: Gateway) -> set[str]:
            found = options(gather(gw, case_id), self.desk.now)
            return {p.transition.name for p in found if p.allowed and p.transition.kind != "computed"}

        return set(self.desk.run("system", plans))

    def _user(self, data: st.DataObject, roles: tuple[str, ...]) -> str:
        """Mostly a user of one of ``roles``; sometimes anybody."""
        fitting = [u for u in USERS if _role(self, u) in roles]
        if fitting and data.draw(st.integers(0, 4), label="any user") < 4:
            return data.draw(st.sampled_from(fitting), label="user")
        return data.draw(st.sampled_from(USERS), label="user")

    def _watch(self, case_id: str) -> None:
        """Keep a snapshot of the case for the oracle to judge the step about to happen."""
        with self.runtime.engine.connect() as conn:
            self.pending_snapshot = (case_id, snapshot(conn, case_id, self.desk.now))

    # -- set-up ----------------------------------------------------------------------------

    @initialize(profiles=st.lists(st.sampled_from(PROFILES), min_size=1, max_size=3))
    def persons_and_cases(self, profiles: list[str]) -> None:
        for i, profile in enumerate(("plain", *profiles)):
            pid = f"per-{i}-{profile}"
            citizen = "citizen" if profile == "citizen" else "unknown"
            golden = {"a_number": {"value": f"A20000000{i}", "source_id": "court",
                                   "record_key": f"IC{i}", "observed_on": "2025-01-01"}}  # fmt: skip
            self.desk.person(pid, golden=golden, citizenship_status=citizen)
            self.persons.append(pid)
            form = {"asylum": "I-589", "tps": "I-821", "daca": "I-821D", "u_visa": "I-918"}
            if profile in form:
                self._benefit(pid, form[profile], 120 + 90 * i)
            if profile == "evidence":
                self._link_evidence(pid)
            self._open(pid, "officer.miami")

    def _open(self, person_id: str, username: str) -> None:
        def go(gw: Gateway) -> str:
            return lc.open_case(gw, person_id, office="Miami", reason="stateful test lead").id

        case_id = self._attempt(username, go)
        if case_id:
            self.cases.append(case_id)

    def _benefit(self, person_id: str, form: str, valid_days: int) -> None:
        n = len(self.benefits)
        approved = form in ("I-821", "I-821D")
        row = BenefitApplication(
            id=f"ben-{n}", person_id=person_id, receipt_no=f"EAC26{n:08d}", form=form,
            status="approved" if approved else "pending", filed_on=self.desk.now.date(),
            valid_until=(self.desk.now + timedelta(days=valid_days)).date() if approved else None,
        )  # fmt: skip
        self.desk.run("system", lambda gw: gw.add(row))
        self.benefits.append(row.id)

    def _link_evidence(self, person_id: str) -> None:
        n = len(self.evidence)
        record = SourceRecord(
            id=f"rec-cz-{n}", source_id="citizenship_evidence", record_key=f"N{n:08d}",
            content_hash=f"{n:064d}", payload={"certificate_no": f"N{n:08d}", "kind": "birth"},
            batch_id=self.seed.batch_id,
        )  # fmt: skip
        link = RecordLink(id=f"lnk-cz-{n}", source_record_id=record.id, person_id=person_id,
                          method="exact")  # fmt: skip
        self.desk.run("system", lambda gw: (gw.add(record), gw.add(link)))
        self.evidence.add(person_id)

    # -- the steps -------------------------------------------------------------------------

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        """One step of use, of a kind drawn with weights (see ``_kinds``).

        One rule rather than one per kind: hypothesis's swarm testing switches off a random
        share of a machine's rules in each example, which would starve the request → decide
        → execute pipeline that every enforcement step goes through.
        """
        kind = data.draw(st.sampled_from(self._kinds()), label="kind")
        self.seed.stats[f"step {kind}"] += 1
        getattr(self, f"_{kind}")(data)

    def _kinds(self) -> list[str]:
        kinds = ["perform"] * 4 + ["request"] * 2 + ["tick"] * 2 + ["world"]
        if "pending" in self.request_status.values():
            kinds += ["decide"] * 3
        if "approved" in self.request_status.values():
            kinds += ["execute"] * 3
        return kinds

    def _perform(self, data: st.DataObject) -> None:
        case_id = data.draw(st.sampled_from(self.cases), label="case")
        t = self._transition(data, case_id, approval=False)
        roles = ("system",) if t.kind == "system" else tuple(r.value for r in t.by)
        user = self._user(data, roles)
        params = _corrupt(data, data.draw(params_strategy(t, self._refs(case_id)), label="params"))
        self._watch(case_id)
        self._attempt(user, lc.perform, case_id, t.name, params)

    def _request(self, data: st.DataObject) -> None:
        case_id = data.draw(st.sampled_from(self.cases), label="case")
        t = self._transition(data, case_id, approval=True)
        user = self._user(data, tuple(r.value for r in t.by))
        params = _corrupt(data, data.draw(params_strategy(t, self._refs(case_id)), label="params"))
        why = data.draw(st.sampled_from(JUSTIFICATIONS), label="justification")
        request = self._attempt(user, lc.request_action, case_id, t.name, params, why)
        if request is not None:
            self.requests.append(request.id)
            self.request_action[request.id] = (t.name, case_id)

    def _pick_request(self, data: st.DataObject, status: str) -> str:
        """Mostly a request in ``status``; sometimes any, or one that does not exist."""
        wanted = [r for r in self.requests if self.request_status.get(r) == status]
        if wanted and data.draw(st.integers(0, 4), label="any request") < 4:
            return data.draw(st.sampled_from(wanted), label="request")
        return data.draw(st.sampled_from([*self.requests, "req-missing"]), label="request")

    def _decide(self, data: st.DataObject) -> None:
        """Approve or refuse, mostly as a user of an approving role (the requester included)."""
        request_id = self._pick_request(data, "pending")
        action, _ = self.request_action.get(request_id, ("arrest", ""))
        spec = TABLE.transitions[action].approval
        assert spec is not None
        user = self._user(data, tuple(r.value for r in spec.approvers))
        approve = data.draw(st.integers(0, 3), label="refuse") < 3
        why = data.draw(st.sampled_from(JUSTIFICATIONS), label="justification")
        self._attempt(user, lc.decide, request_id, approve, why)

    def _execute(self, data: st.DataObject) -> None:
        request_id = self._pick_request(data, "approved")
        action, case_id = self.request_action.get(request_id, ("arrest", ""))
        user = self._user(data, (*(r.value for r in TABLE.transitions[action].by), "system"))
        if case_id:
            self._watch(case_id)
        self._attempt(user, lc.execute, request_id)

    def _tick(self, data: st.DataObject) -> None:
        """Move the clock by hours to months and run the scheduler, sometimes twice."""
        hours = data.draw(
            st.one_of(st.integers(1, 48), st.integers(48, 24 * 40), st.integers(24 * 40, 24 * 120)),
            label="hours",
        )
        self.desk.now += timedelta(hours=hours)
        with frozen_at(self.desk.now):
            report = tick(self.runtime.sessions, self.desk.now)
        assert report.conflicts == 0, report.as_dict()
        self._check_nothing_due()
        if data.draw(st.integers(0, 2), label="tick again") == 2:
            self._tick_again(report)

    def _tick_again(self, first: TickReport) -> None:
        """Invariant 5, second half: a second tick at the same moment finds nothing to do."""
        with self.runtime.engine.connect() as conn:
            before = conn.scalar(select(func.count()).select_from(CaseEvent.__table__))
        with frozen_at(self.desk.now):
            second = tick(self.runtime.sessions, self.desk.now)
        with self.runtime.engine.connect() as conn:
            after = conn.scalar(select(func.count()).select_from(CaseEvent.__table__))
        assert not second.deadlines_applied and not second.steps, (first.as_dict(), second.as_dict())
        assert second.already_applied == 0 and second.requests_expired == 0, second.as_dict()
        assert before == after, "a second tick at the same moment wrote case events"

    def _check_nothing_due(self) -> None:
        ddl = CaseDeadline.__table__
        with self.runtime.engine.connect() as conn:
            due = conn.scalars(
                select(ddl.c.id).where(ddl.c.status == "open", ddl.c.due_at <= self.desk.now)
            ).all()
        assert not due, f"deadlines due but not applied after a tick: {due}"

    def _world(self, data: st.DataObject) -> None:
        """Something outside the lifecycle: a new case or flight, a benefit filed or denied,
        citizenship evidence linked by entity resolution."""
        change = data.draw(st.sampled_from(WORLD_CHANGES), label="change")
        person = data.draw(st.sampled_from(self.persons), label="person")
        if change == "open case" and len(self.cases) < 6:
            self._open(person, data.draw(st.sampled_from(USERS), label="user"))
        elif change == "flight" and len(self.flights) < 8:
            self._flight(data)
        elif change == "benefit" and len(self.benefits) < 8:
            form = data.draw(st.sampled_from(("I-589", "I-918", "I-821", "I-821D")), label="form")
            self._benefit(person, form, data.draw(st.integers(-10, 300), label="valid days"))
        elif change == "deny benefit" and self.benefits:
            self._deny(data.draw(st.sampled_from(self.benefits), label="benefit"))
        elif change == "citizenship evidence" and person not in self.evidence:
            self._link_evidence(person)

    def _flight(self, data: st.DataObject) -> None:
        n = len(self.flights)
        flight = RemovalFlight(
            id=f"flt-{n}", kind="charter", carrier="Test Air", flight_no=f"TA{n}", origin="AEX",
            destination=data.draw(st.sampled_from(COUNTRIES[:-1]), label="destination"),
            departs_at=self.desk.now + timedelta(days=data.draw(st.integers(1, 60), label="days")),
            capacity=data.draw(st.integers(1, 3), label="capacity"),
        )  # fmt: skip
        with transaction(self.runtime.sessions) as session:
            session.add(flight)
        self.flights.append(flight.id)

    def _deny(self, benefit_id: str) -> None:
        def deny(gw: Gateway) -> None:
            gw.update(gw.get(BenefitApplication, benefit_id), status="denied")

        self.desk.run("system", deny)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def store_is_consistent(self) -> None:
        self.seed.stats["checks"] += 1
        snap, self.pending_snapshot = self.pending_snapshot, None
        with self.runtime.engine.connect() as conn:
            self._cases(conn)
            for event in self._new_events(conn):
                self._event(conn, event, snap)
            self._deadlines(conn)
            self._approvals(conn)
            self._audit(conn)

    def _cases(self, conn: Connection) -> None:
        """Invariant 6: events 1..n per case, version = n, state = the last event's state."""
        cases, ev = EnforcementCase.__table__, CaseEvent.__table__
        stats = (
            select(ev.c.case_id, func.count(), func.min(ev.c.seq), func.max(ev.c.seq))
            .group_by(ev.c.case_id)
            .subquery()
        )
        rows = conn.execute(
            select(
                cases.c.id, cases.c.state, cases.c.version, cases.c.closed_at, stats, ev.c.to_state
            )
            .join(stats, stats.c.case_id == cases.c.id, isouter=True)
            .join(ev, (ev.c.case_id == cases.c.id) & (ev.c.seq == cases.c.version), isouter=True)
        ).all()
        for case_id, state, version, closed_at, _, n, first, last, last_state in rows:
            assert (first, last) == (1, n), f"{case_id}: seq {first}..{last} for {n} events"
            assert version == last, f"{case_id}: version {version}, last seq {last}"
            assert last_state == state, f"{case_id}: state {state}, last event {last_state}"
            if state in TABLE.terminal:
                assert closed_at is not None, f"{case_id}: {state} without closed_at"
            self.state[case_id] = state
        req = ActionRequest.__table__
        self.request_status = dict(conn.execute(select(req.c.id, req.c.status)).tuples().all())
        cond = CaseCondition.__table__
        final = set(
            conn.scalars(
                select(cond.c.case_id).where(
                    cond.c.kind == "final_order", cond.c.ended_at.is_(None)
                )
            )
        )
        for case_id, state in self.state.items():
            if state in ("FINAL_ORDER", "REMOVAL_SCHEDULED"):
                assert case_id in final, f"{case_id} in {state} without an active final order"

    def _new_events(self, conn: Connection) -> list[Row[Any]]:
        ev = CaseEvent.__table__
        ids = set(conn.scalars(select(ev.c.id))) - self.seen_events
        self.seen_events |= ids
        if not ids:
            return []
        return list(
            conn.execute(select(ev).where(ev.c.id.in_(ids)).order_by(ev.c.case_id, ev.c.seq))
        )

    def _event(self, conn: Connection, e: Row[Any], snap: tuple[str, Snapshot] | None) -> None:
        if e.kind in APPLIED_KINDS:
            self.applied_events[(e.case_id, e.action, e.to_state)] += 1
        if e.kind == "deadline":
            deadline_id = e.params["deadline_id"]
            assert deadline_id not in self.deadline_events, f"deadline {deadline_id} applied twice"
            self.deadline_events[deadline_id] = e.id
        if e.kind not in APPLIED_KINDS:
            return
        checks = _checks(e)
        failing = [g for g, c in checks.items() if not c["ok"]]
        assert not failing, f"{e.action} applied to {e.case_id} with failing checks {failing}"
        if e.action in CITIZENSHIP_BARRED:
            self._citizenship_checked(e, checks)
        if e.to_state in REMOVAL_STATES and e.from_state != e.to_state:
            missing = REMOVAL_GUARDS - set(checks)
            assert not missing, f"{e.action} entered {e.to_state} without checking {missing}"
        if e.to_state == "FINAL_ORDER" and e.from_state != "FINAL_ORDER":
            assert e.action in FINAL_ORDER_ENTRIES, f"{e.action} entered FINAL_ORDER ({e.case_id})"
            assert "final_order_holds" in checks, f"{e.action} entered FINAL_ORDER unchecked"
        self._taken_by_the_right_people(conn, e)
        if snap and snap[0] == e.case_id and e.kind != "computed":
            self._oracle(e, snap[1])

    def _citizenship_checked(self, e: Row[Any], checks: dict[str, dict[str, Any]]) -> None:
        """Invariant 1 from the stored checks."""
        for guard in ("not_a_citizen", "not_in_citizenship_review"):
            assert guard in checks, f"{e.action} on {e.case_id} without the {guard} check"
        status = checks["not_a_citizen"]["evidence"][0]["citizenship_status"]
        assert status not in ("citizen", "claimed"), f"{e.action} with citizenship {status}"

    def _oracle(self, e: Row[Any], s: Snapshot) -> None:
        """Invariants 1 and 2 from the store as it stood just before the step."""
        if e.action in CITIZENSHIP_BARRED:
            bar = citizenship_bar(s)
            assert bar is None, f"{e.action} applied to {e.case_id} although {bar}"
        if e.action in REMOVAL_STEPS or (
            e.to_state in REMOVAL_STATES and e.from_state != e.to_state
        ):
            bar = removal_bar(s)
            assert bar is None, f"{e.action} ({e.from_state}→{e.to_state}) on {e.case_id}: {bar}"
        if e.to_state == "FINAL_ORDER" and e.from_state != "FINAL_ORDER":
            assert e.action == "order_became_final" or s.active("final_order"), (
                f"{e.action} entered FINAL_ORDER on {e.case_id} without an active final order"
            )

    def _taken_by_the_right_people(self, conn: Connection, e: Row[Any]) -> None:
        """Invariant 3 at the step: a role the table names, and a valid approval by another."""
        t = TABLE.transitions[e.action]
        role = self.role_of.get(e.actor_id, "?")
        if t.kind == "system":
            assert role == "system", f"system step {e.action} recorded by {role}"
        if e.kind == "transition":
            assert role in {r.value for r in t.by} | {"system"}, f"{role} took {e.action}"
        if not t.needs_approval or e.kind != "transition":
            assert e.request_id is None or e.kind != "transition", f"{e.action} has a request"
            return
        assert e.request_id, f"{e.action} on {e.case_id} applied without a request"
        req, apv = ActionRequest.__table__, Approval.__table__
        r = conn.execute(select(req).where(req.c.id == e.request_id)).one()
        a = conn.execute(
            select(apv).where(apv.c.request_id == r.id).order_by(apv.c.decided_at.desc())
        ).first()
        assert (r.action, r.case_id, r.status) == (e.action, e.case_id, "executed"), r
        assert a is not None and a.decision == "approved", f"{e.request_id} executed unapproved"
        assert a.decided_by != r.requested_by, f"{e.request_id} approved by its requester"
        assert a.decided_at <= e.at < a.expires_at, f"{e.request_id} approval not valid at {e.at}"

    def _deadlines(self, conn: Connection) -> None:
        """Invariant 5: each applied deadline has exactly one deadline event, and vice versa."""
        ddl = CaseDeadline.__table__
        applied = dict(
            conn.execute(select(ddl.c.id, ddl.c.applied_event_id).where(ddl.c.status == "applied"))
            .tuples()
            .all()
        )
        assert applied == self.deadline_events, (applied, self.deadline_events)

    def _approvals(self, conn: Connection) -> None:
        """Invariant 3: nobody approves (or refuses) their own request; joint means two roles."""
        apv, req = Approval.__table__, ActionRequest.__table__
        rows = conn.execute(
            select(apv.c.id, apv.c.decided_by, apv.c.role, req.c.requested_by, req.c.action).join(
                req, req.c.id == apv.c.request_id
            )
        ).all()
        for approval_id, decided_by, role, requested_by, action in rows:
            if approval_id in self.seen_approvals:
                continue
            self.seen_approvals.add(approval_id)
            spec = TABLE.transitions[action].approval
            assert spec is not None
            assert decided_by != requested_by, f"{approval_id}: {action} decided by its requester"
            assert role == self.role_of[decided_by]
            assert role in {r.value for r in spec.approvers}, f"{role} decided {action}"
            if spec.joint:
                assert role != self.role_of[requested_by], (
                    f"{approval_id}: joint {action} by one role"
                )

    def _audit(self, conn: Connection) -> None:
        """Invariant 4: every applied step and every refusal is on the audit record."""
        au = AuditEntry.__table__
        rows = conn.execute(
            select(au.c.seq, au.c.action, au.c.object_ids, au.c.details)
            .where(au.c.seq > self.audit_seq)
            .order_by(au.c.seq)
        ).all()
        for seq, action, object_ids, details in rows:
            self.audit_seq = seq
            if action == "case.step_applied":
                key = (object_ids[0], details["transition"], details["to_state"])
                self.applied_audit[key] += 1
            self.blocked_audit += action == "case.step_blocked"
            self.refused_audit += action == "access.refused"
        assert self.applied_audit == self.applied_events, (
            self.applied_audit - self.applied_events,
            self.applied_events - self.applied_audit,
        )
        assert self.blocked_audit == self.blocked, (self.blocked_audit, self.blocked)
        assert self.refused_audit == self.refused, (self.refused_audit, self.refused)

    def teardown(self) -> None:
        try:
            with self.runtime.sessions() as session:
                result = verify(session)
            assert result.ok, result.describe()
            self._tally()
        finally:
            self.runtime.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.db}{suffix}").unlink(missing_ok=True)

    def _tally(self) -> None:
        """What the example reached, for the summary the test prints."""
        ev = CaseEvent.__table__
        with self.runtime.engine.connect() as conn:
            for action, n in conn.execute(select(ev.c.action, func.count()).group_by(ev.c.action)):
                self.seed.stats[f"event {action}"] += n
        for state in self.state.values():
            self.seed.stats[f"state {state}"] += 1
        self.seed.stats["outcome StepBlocked"] += self.blocked
        self.seed.stats["outcome Refused"] += self.refused


def _role(machine: LifecycleMachine, username: str) -> str:
    return "system" if username == "system" else machine.desk.actors[username].role.value


# -- the test -------------------------------------------------------------------------------


@pytest.mark.slow
def test_lifecycle_invariants_hold_under_random_use(
    sqlite_template: Path, tmp_path: Path, cheap_password_hashing: None
) -> None:
    assert EXAMPLES * STEPS_PER_EXAMPLE >= (10_000 if IN_CI else 1_500)
    seed = _seed(sqlite_template, tmp_path)
    run_state_machine_as_test(
        lambda: LifecycleMachine(seed),
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        ),  # fmt: skip
    )
    print(dict(sorted(seed.stats.items())))
