"""The case lifecycle under random use: a hypothesis state machine against its invariants.

The walk. Each example gets a store of its own (copied from a seeded SQLite template) with a
few persons, a plain one and some with a pending asylum application (I-589), valid TPS
(I-821) or DACA (I-821D), a pending U visa (I-918), a citizen status or citizenship evidence
linked from a registered source, and a case each. The one rule, ``step``, draws a kind:

- act: a transition of the table on a case, performed, or requested when it needs approval,
  mostly by a user of a role the table names, with parameters drawn from the table's specs
  (dates near the clock, flights and travel documents that exist; now and then a value out
  of bounds, a parameter missing or unknown, or a perform/request the wrong way round). The
  engine's planner steers which transition, leaning towards removal; it never checks;
- decide: approve or refuse a request, mostly as an entitled user, sometimes as the requester
  or someone of the requester's role; execute: carry out an approved request (or another);
- tick: move the clock by hours to months and run the scheduler, now and then twice;
- open, world: a new case; a flight planned, or leaving (its manifest re-checks everyone); a
  benefit filed or denied; citizenship evidence linked; a case fast-tracked some way along
  the expedited path.

Errors the engine raises on purpose (StepBlocked, ValidationFailed, Refused and AccessRefused,
CaseConflict, NotFound) are fine; anything else fails.

The invariants, checked after every step from the store (SQL Core on a raw connection: the
gateway guard watches ORM sessions only), reading only what is new since the last check:

1. No arrest, detainer or removal step while the person's citizenship is claimed or confirmed,
   or a case of theirs is in review, or evidence is undecided (the checks the event stored,
   and a snapshot of the store taken just before the step, an oracle apart from the guards).
2. Nothing enters REMOVAL_SCHEDULED or REMOVED without the removal guards: an active final
   order, no stay, no pending protection claim, the appeal window closed (stored checks and
   snapshot, which also looks at TPS, DACA and victim petitions).
3. Nobody decides their own request; a joint decision takes two roles; every step that needs
   approval ran on another person's approval, valid when it ran, by a role the table names.
4. Every applied step, and every refusal, has its audit entry; the chain verifies at the end.
5. Every deadline is applied once, by one deadline event; a tick leaves nothing due; a second
   tick at the same moment does nothing.
6. Events of a case are numbered 1..n, its version is n, its state the last event's state,
   and a case in a terminal state is closed.
7. FINAL_ORDER is entered only by order_became_final, lift_stay, unschedule_removal or a
   return from citizenship review, each with final_order_holds; a case in FINAL_ORDER or
   REMOVAL_SCHEDULED has an active final order.

SQLite only: a PostgreSQL database per example would cost more than the steps. The regression
tests at the end (cases the machine found) run on both backends.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.internal.cache import LRUCache
from hypothesis.internal.conjecture import providers
from hypothesis.internal.constants_ast import Constants
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Connection, Row, Select, func, literal_column, select
from tests.lifecycle.conftest import T0, Desk

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.audit.chain import verify
from immigrationos.audit.models import AuditEntry, AuditHead
from immigrationos.core import ids
from immigrationos.core.clock import frozen_at
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.core.settings import Settings
from immigrationos.facts.models import BenefitApplication
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import logistics
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
    FlightSeat,
    TravelDocument,
)
from immigrationos.lifecycle.scheduler import TickReport, tick
from immigrationos.lifecycle.service import CaseConflict, StepBlocked
from immigrationos.lifecycle.table import (
    OPEN,
    REMEMBERED,
    ParamSpec,
    TransitionSpec,
    load_table,
)
from immigrationos.persons.models import Person, RecordLink
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import SHIPPED, load_definition
from immigrationos.sources.models import IngestBatch, SourceRecord
from immigrationos.sources.registry import agreement_in_force, register
from immigrationos.store.engine import transaction

IN_CI = os.environ.get("CI", "").lower() == "true"
STEPS_PER_EXAMPLE = 200
EXAMPLES = 66 if IN_CI else 10
MIN_STEPS = 10_000 if IN_CI else 1_500
"""CI runs at least 10,000 steps (the issue's floor), a local run 1,500. Hypothesis cuts a few
examples short (its own probes and mutations), hence a margin over the floor."""
REACHED_IN_CI = (
    "claim_citizenship", "citizenship_indicated", "confirm_citizenship",
    "reject_citizenship_claim", "arrest", "lodge_detainer", "order_became_final", "grant_stay",
    "issue_warrant_of_removal", "schedule_removal", "removal_verified",
)  # fmt: skip
"""Steps a CI run must have applied at least once, so the walk keeps reaching what the
invariants are about (the run is derandomized: a change of walk or engine that loses one
shows here, not as a silently weaker test)."""

TABLE = load_table()
NAMES = tuple(TABLE.transitions)
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
"""The steps into FINAL_ORDER; besides them only a return from citizenship review to the state
it interrupted, and every entry with the final_order_holds check."""
JUDGED = (
    CITIZENSHIP_BARRED
    | REMOVAL_STEPS
    | {
        t.name
        for t in TABLE.transitions.values()
        if t.to in ("FINAL_ORDER", *REMOVAL_STATES, REMEMBERED)
    }
)
"""Steps the oracle judges against a snapshot of the store taken just before them."""
APPLIED_KINDS = ("transition", "computed", "system")
TOWARDS_REMOVAL = frozenset(
    {"record_encounter", "arrest", "lodge_detainer", "issue_nta", "file_nta", "order_removal",
     "order_in_absentia", "waive_appeal", "appeal_dismissed", "issue_expedited_order",
     "reinstate_prior_order", "status_not_verified", "credible_fear_not_found",
     "reasonable_fear_not_found", "deny_motion_to_reopen", "lift_stay", "grant_voluntary_departure",
     "issue_warrant_of_removal", "request_travel_document", "record_travel_document",
     "schedule_removal", "removal_verified", "reject_citizenship_claim"}
)  # fmt: skip
"""The walk leans towards removal: these steps weigh most when the planner offers them."""
NEAR = frozenset(
    {"REMOVAL_ORDERED", "APPEAL_PENDING", "IN_ABSENTIA_ORDER", "VD_GRANTED", "EXPEDITED_ORDER",
     "REINSTATED", "FINAL_ORDER", "STAYED", "REMOVAL_SCHEDULED", "DETAINER_LODGED"}
)  # fmt: skip
"""States near removal: cases in them get more of the walk's steps."""
PARAMETER_GUARDS = frozenset(
    {"warrant_of_removal_signed", "travel_document_issued", "seat_available",
     "destination_permitted", "arrest_authority", "expedited_eligible", "appeal_timely",
     "vd_terms_lawful"}
)  # fmt: skip
"""Guards that read the step's parameters: the planner cannot answer them without any."""

DATE_RANGES = {"departure_deadline": (20, 130), "valid_until": (30, 400)}
"""Days from today a date parameter falls in (default -45..45)."""
COUNTRIES = ("MEX",) * 8 + ("GTM", "HND", "mx")
"""Mostly one destination, so orders, warrants, travel documents and flights can meet."""
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
                  "Checked against the records.", "Seen and agreed after review.",
                  "Grounds set out in the memo.", "Facts confirmed with the office.",
                  "Legal basis confirmed by counsel.", "Matches the records on file.",
                  "ok")  # fmt: skip
LIST_ITEMS = ("237(a)(1)(B)", "212(a)(6)(A)(i)", "You are not a citizen of the United States.")
WORLD_CHANGES = ("fast-tracked case", "flight", "departure", "departure", "benefit", "benefit",
                 "deny benefit", "open case", "citizenship evidence", "flight",
                 "fast-tracked case", "detainer")  # fmt: skip
MAX_CASES = 40
MAX_PERSONS = 8
FAST_TRACK: tuple[tuple[str, dict[str, Any]], ...] = (
    ("record_encounter", {"encounter_date": T0.date().isoformat(), "office": "Miami",
                          "narrative": "Met at a traffic stop and interviewed."}),
    ("issue_expedited_order", {"continuous_presence_days": 100, "destination": "MEX",
                               "fear_screening": "no-fear-expressed"}),
    ("issue_warrant_of_removal", {"destination": "MEX"}),
    ("request_travel_document", {"country": "MEX", "consulate": "Consulate of Mexico, Miami"}),
    ("record_travel_document", {"outcome": "issued"}),
    ("schedule_removal", {"destination": "MEX"}),
)  # fmt: skip
"""The usual expedited path, step by step (a fast-tracked case goes some way along it, and
past its end the flight leaves)."""
DETAINER_TRACK: tuple[tuple[str, dict[str, Any]], ...] = (
    ("record_encounter", {"encounter_date": T0.date().isoformat(), "office": "Miami",
                          "narrative": "Met at a traffic stop and interviewed."}),
    ("arrest", {"authority": "warrant",
                "probable_cause": "Overstayed the admission by two years per arrival records."}),
    ("lodge_detainer", {"probable_cause_basis": "statements-to-officer-indicate-removable",
                        "facility": "Krome Service Processing Center"}),
)  # fmt: skip
"""An arrest on a warrant, then a detainer resting on it (``release_at`` set from the clock)."""
HOURS = ((1, 24),) * 6 + ((24, 24 * 7),) * 4 + ((24 * 7, 24 * 45),) * 2 + ((24 * 45, 24 * 120),)
"""Clock moves: hours to days mostly (requests expire in 14 days, approvals in 7), sometimes
weeks, now and then months."""
PROFILES = ("plain", "asylum", "tps", "daca", "u_visa", "citizen", "evidence")


class SeededIds:
    """``uuid4`` from a generator seeded per example, in place of the random one ids use: the
    walk draws from lists that new ids order, so with random ids the derandomized run would
    take a different walk each time (and now and then miss a step ``REACHED_IN_CI`` names)."""

    def __init__(self) -> None:
        self.rng = random.Random(0)

    def seed(self, n: int) -> None:
        self.rng.seed(20261122 + n)

    def uuid4(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)


IDS = SeededIds()


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
    """What parameters may refer to: flights, the case's travel documents, the countries its
    orders name; the likeliest useful first (hypothesis favours the first choices)."""

    now: datetime
    flights: tuple[str, ...]
    travel_documents: tuple[str, ...]
    destinations: tuple[str, ...]


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
        "date": _day(now, *DATE_RANGES.get(name, (-45, 45))),
        "datetime": _moment(now, -72, 24 * 10) if name == "release_at" else _moment(now, -48, 2000),
        "bool": st.booleans(),
        "int": st.integers(-1, 1000),
        "money": st.integers(0, 5000).map(float),
        "country": st.sampled_from(refs.destinations * 8 + COUNTRIES),
        "list": st.one_of(
            st.lists(st.sampled_from(LIST_ITEMS), min_size=1, max_size=3), st.just([])
        ),
    }
    return by_type[spec.type]


def params_strategy(t: TransitionSpec, refs: Refs) -> st.SearchStrategy[dict[str, Any]]:
    required = {n: _value(n, p, refs) for n, p in t.params.items() if p.required}
    optional = {n: _value(n, p, refs) for n, p in t.params.items() if not p.required}
    return st.fixed_dictionaries(required, optional=optional)


DROP_PARAMETER, EXTRA_PARAMETER, MISROUTE = 22, 23, 24
"""Variants of a step (drawn from 0..24; below 22 it goes as drawn)."""


def _corrupt(params: dict[str, Any], variant: int) -> dict[str, Any]:
    """Now and then a parameter missing or one the table does not know."""
    if variant == DROP_PARAMETER and params:
        params.pop(sorted(params)[0])
    if variant == EXTRA_PARAMETER:
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
        case_states=_pairs(
            conn, select(cases.c.id, cases.c.state).where(cases.c.person_id == person_id)
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


def _pairs(conn: Connection, stmt: Select[Any]) -> dict[Any, Any]:
    """A two-column select as a dict."""
    return {key: value for key, value in conn.execute(stmt)}


def _checks(event: Row[Any]) -> dict[str, dict[str, Any]]:
    return {c["guard"]: c for c in event.checks or []}


# -- the machine ----------------------------------------------------------------------------


class LifecycleMachine(RuleBasedStateMachine):
    """Random use of the lifecycle service and scheduler on one fresh store per example."""

    def __init__(self, seed: Seed) -> None:
        super().__init__()
        self.seed = seed
        n = next(seed.examples)
        IDS.seed(n)
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
        self.requester: dict[str, str] = {}
        self.flights: list[str] = []
        self.flight_to: dict[str, str] = {}
        self.flown: set[str] = set()
        self.benefits: list[str] = []
        self.evidence: set[str] = set()
        self.state: dict[str, str] = {}
        self.custody: dict[str, str] = {}
        self.version: dict[str, int] = {}
        self.person_of: dict[str, str] = {}
        self.citizenship: dict[str, str] = {}
        self.request_status: dict[str, str] = {}
        self.snapshots: dict[str, Snapshot] = {}
        self.offered: dict[str, tuple[Any, set[str]]] = {}
        self.world_version = 0
        # what the checks have seen so far (they read only what is new)
        self.seen_events: set[str] = set()
        self.seen_approvals: set[str] = set()
        self.audit_seq = 0
        self.checked_at = -1
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
        """Open travel-document requests first; the countries the case's orders name; flights
        yet to leave for those countries first."""
        trd, cond = TravelDocument.__table__, CaseCondition.__table__
        with self.runtime.engine.connect() as conn:
            docs = conn.scalars(
                select(trd.c.id)
                .where(trd.c.case_id == case_id)
                .order_by(trd.c.status != "requested")
            )
            doc_ids = tuple(docs)
            named = conn.scalars(
                select(cond.c.country).where(
                    cond.c.case_id == case_id,
                    cond.c.kind == "order",
                    cond.c.ended_at.is_(None),
                    cond.c.country.is_not(None),
                )
            )
            destinations = tuple(dict.fromkeys(named))
        flights = sorted(
            self.flights, key=lambda f: (f in self.flown, self.flight_to[f] not in destinations)
        )
        return Refs(self.desk.now, tuple(flights), doc_ids, destinations)

    def _case(self, data: st.DataObject) -> str:
        """Mostly an open case, preferably one near removal and not waiting on a decision.

        Weighted lists rather than a draw per preference: fewer choices per step, so an
        example runs its full length within hypothesis's choice budget.
        """
        open_ = [c for c in self.cases if self.state.get(c) not in TABLE.terminal]
        weighted = [
            c
            for c in open_
            for _ in range((1 if self._requests_of(c) else 4) * (3 if self.state[c] in NEAR else 1))
        ]
        return data.draw(st.sampled_from(weighted + self.cases), label="case")

    def _transition(self, data: st.DataObject, case_id: str, refs: Refs) -> TransitionSpec:
        """A step for the case, guided by the engine's planner (which only steers the walk:
        the checks never ask it). By the drawn ``guidance``:

        0-3  pursue removal: a step towards removal the planner offers, if there is one;
        4-6  any step the planner offers, weighted (towards removal most, steps open from
             every state least, or they would end most cases before the walk gets far);
        7-8  any step from the case's state and custody, weighted alike;
        9    any step of the table.

        Below 9, a step referring to a flight or travel document is left out while there is
        none to refer to.
        """
        roll = data.draw(st.integers(0, 9), label="guidance")
        if roll == 9:
            return TABLE.transitions[data.draw(st.sampled_from(NAMES), label="transition")]
        state, custody = self.state.get(case_id), self.custody.get(case_id)
        here = [
            t
            for t in TABLE.transitions.values()
            if state in TABLE.sources(t)
            and t.kind != "computed"
            and (not t.custody_from or custody in t.custody_from)
            and ("flight_id" not in t.params or set(refs.flights) - self.flown)
            and ("travel_document_id" not in t.params or refs.travel_documents)
        ]
        if roll < 7:
            offered = self._offered(case_id)
            fresh = offered - self._pending(case_id)
            here = [t for t in here if t.name in (fresh or offered)] or here
        pursued = [
            t.name
            for t in here
            if t.name in TOWARDS_REMOVAL
            and not (t.name == "request_travel_document" and refs.travel_documents)
        ]
        if roll < 4 and pursued:
            return TABLE.transitions[data.draw(st.sampled_from(pursued), label="transition")]
        if not here:
            return TABLE.transitions[data.draw(st.sampled_from(NAMES), label="transition")]
        weighted = [t.name for t in here for _ in range(_weight(t))]
        return TABLE.transitions[data.draw(st.sampled_from(weighted), label="transition")]

    def _offered(self, case_id: str) -> set[str]:
        """What the planner allows on the case now, parameters aside (a step blocked only by
        guards that read its parameters counts as allowed). Kept while nothing the planner
        reads changed: the person's cases, documents (approvals sign them), the world, time."""
        person = self.person_of[case_id]
        key = (
            tuple(sorted((c, v) for c, v in self.version.items() if self.person_of[c] == person)),
            len(self.seen_approvals),
            self.world_version,
            self.desk.now,
        )
        cached = self.offered.get(case_id)
        if cached and cached[0] == key:
            return cached[1]

        def plans(gw: Gateway) -> set[str]:
            found = options(gather(gw, case_id), self.desk.now)
            return {
                p.transition.name
                for p in found
                if p.transition.kind != "computed"
                and all(c.guard in PARAMETER_GUARDS for c in p.blocked_by)
            }

        names: set[str] = self.desk.run("system", plans)
        self.offered[case_id] = (key, names)
        return names

    def _requests_of(self, case_id: str, status: str = "pending") -> list[str]:
        return [
            r
            for r, (_, case) in self.request_action.items()
            if case == case_id and self.request_status.get(r) == status
        ]

    def _pending(self, case_id: str) -> set[str]:
        """Actions already requested on the case and not yet decided."""
        return {self.request_action[r][0] for r in self._requests_of(case_id)}

    def _audit_head(self) -> int:
        with self.runtime.engine.connect() as conn:
            return int(conn.scalar(select(AuditHead.__table__.c.seq)) or 0)

    def _user(self, data: st.DataObject, roles: tuple[str, ...]) -> str:
        """Mostly a user of one of ``roles``; sometimes anybody."""
        fitting = [u for u in USERS if _role(self, u) in roles]
        return data.draw(st.sampled_from(fitting * 8 + list(USERS)), label="user")

    def _watch(self, case_id: str, action: str) -> None:
        """Keep a snapshot of the case for the oracle to judge the step about to happen."""
        if action not in JUDGED:
            return
        with self.runtime.engine.connect() as conn:
            self.snapshots[case_id] = snapshot(conn, case_id, self.desk.now)

    # -- set-up ----------------------------------------------------------------------------

    @initialize(profiles=st.lists(st.sampled_from(PROFILES), min_size=1, max_size=3))
    def persons_and_cases(self, profiles: list[str]) -> None:
        for profile in ("plain", *profiles):
            self._open(self._person(profile), "officer.miami")

    def _person(self, profile: str) -> str:
        """A person of the index with the profile's status, benefit or evidence on file."""
        i = len(self.persons)
        pid = f"per-{i}-{profile}"
        citizen = "citizen" if profile == "citizen" else "unknown"
        golden = {"a_number": {"value": f"A2000000{i:02d}", "source_id": "court",
                               "record_key": f"IC{i}", "observed_on": "2025-01-01"}}  # fmt: skip
        self.desk.person(pid, golden=golden, citizenship_status=citizen)
        self.persons.append(pid)
        form = {"asylum": "I-589", "tps": "I-821", "daca": "I-821D", "u_visa": "I-918"}
        if profile in form:
            self._benefit(pid, form[profile], 120 + 90 * i)
        if profile == "evidence":
            self._link_evidence(pid)
        return pid

    def _open(self, person_id: str, username: str) -> str | None:
        def go(gw: Gateway) -> str:
            return lc.open_case(gw, person_id, office="Miami", reason="stateful test lead").id

        case_id: str | None = self._attempt(username, go)
        if case_id:
            self.cases.append(case_id)
        return case_id

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
        self.seed.stats["steps"] += 1
        self.seed.stats[f"step {kind}"] += 1
        getattr(self, f"_{kind}" if kind != "open" else "_open_case")(data)

    def _kinds(self) -> list[str]:
        """Kinds of step, weighted; the first one is the likeliest useful (hypothesis favours
        small indexes when it replays parts of earlier examples)."""
        open_ = [c for c in self.cases if self.state.get(c) not in TABLE.terminal]
        kinds = ["act"] * 8 if open_ else []
        if len(open_) < 2 and len(self.cases) < MAX_CASES:
            kinds = ["open"] * (2 if open_ else 8) + kinds
        kinds += ["tick"] * 2 + ["world"]
        statuses = Counter(self.request_status.values())
        kinds += ["decide"] * min(2 * statuses["pending"], 6)
        kinds += ["execute"] * min(3 * statuses["approved"], 6)
        return kinds

    def _usual_persons(self) -> list[str]:
        """Persons with no citizenship status or evidence on file (a new one if none is left:
        a citizen's cases go straight into review and out again)."""
        flagged = {p for p, status in self.citizenship.items() if status in ("citizen", "claimed")}
        usual = [p for p in self.persons if p not in flagged | self.evidence]
        if not usual and len(self.persons) < MAX_PERSONS:
            usual = [self._person("plain")]
        return usual

    def _open_case(self, data: st.DataObject) -> None:
        """A new case, mostly for a person with no citizenship status or evidence on file: such
        a person's cases go straight into review and out again."""
        usual = self._usual_persons()
        weighted = [p for p in usual for _ in range(8)] + [
            p for p in self.persons if p not in usual
        ]
        person = data.draw(st.sampled_from(weighted), label="person")
        self._open(person, data.draw(st.sampled_from(USERS), label="user"))

    def _act(self, data: st.DataObject) -> None:
        """Take a step on a case: performed, or requested when it needs approval (and now and
        then the wrong one of the two, which the service must refuse)."""
        case_id = self._case(data)
        approved = self._requests_of(case_id, "approved")
        if approved and data.draw(st.integers(0, 3), label="not the approved one") < 3:
            self._execute_request(data, approved[0])
            return
        refs = self._refs(case_id)
        t = self._transition(data, case_id, refs)
        roles = ("system",) if t.kind == "system" else tuple(r.value for r in t.by)
        user = self._user(data, roles)
        params = data.draw(params_strategy(t, refs), label="params")
        variant = data.draw(st.integers(0, 24), label="variant")
        params = _corrupt(params, variant)
        as_request = t.needs_approval != (variant == MISROUTE)
        waiting = [r for r in self._requests_of(case_id) if self.request_action[r][0] == t.name]
        if as_request and waiting:
            self._decide_request(data, waiting[0])
            return
        if not as_request:
            self._watch(case_id, t.name)
            self._attempt(user, lc.perform, case_id, t.name, params)
            return
        why = data.draw(st.sampled_from(JUSTIFICATIONS), label="justification")
        request = self._attempt(user, lc.request_action, case_id, t.name, params, why)
        if request is not None:
            self.requests.append(request.id)
            self.request_action[request.id] = (t.name, case_id)
            self.requester[request.id] = user

    def _pick_request(self, data: st.DataObject, status: str) -> str:
        """Mostly a request in ``status``; sometimes a recent one, or one that does not exist."""
        wanted = [r for r in self.requests if self.request_status.get(r) == status]
        recent = self.requests[-4:]
        return data.draw(st.sampled_from(wanted * 4 + [*recent, "req-missing"]), label="request")

    def _decide(self, data: st.DataObject) -> None:
        self._decide_request(data, self._pick_request(data, "pending"))

    def _decide_request(self, data: st.DataObject, request_id: str) -> None:
        """Approve or refuse, mostly as a user of an approving role (the requester included)."""
        action, _ = self.request_action.get(request_id, ("arrest", ""))
        spec = TABLE.transitions[action].approval
        assert spec is not None
        requester = self.requester.get(request_id, "")
        entitled = [
            u
            for u in USERS
            if _role(self, u) in spec.approvers
            and u != requester
            and not (spec.joint and _role(self, u) == _role(self, requester))
        ]
        approvers = [u for u in USERS if _role(self, u) in spec.approvers]
        user = data.draw(st.sampled_from(entitled * 3 + approvers + list(USERS)), label="decider")
        approve = data.draw(st.integers(0, 3), label="refuse") < 3
        why = data.draw(st.sampled_from(JUSTIFICATIONS), label="justification")
        self._attempt(user, lc.decide, request_id, approve, why)

    def _execute(self, data: st.DataObject) -> None:
        self._execute_request(data, self._pick_request(data, "approved"))

    def _execute_request(self, data: st.DataObject, request_id: str) -> None:
        action, case_id = self.request_action.get(request_id, ("arrest", ""))
        user = self._user(data, (*(r.value for r in TABLE.transitions[action].by), "system"))
        if case_id:
            self._watch(case_id, action)
        self._attempt(user, lc.execute, request_id)

    def _tick(self, data: st.DataObject) -> None:
        """Move the clock by hours to months and run the scheduler, sometimes twice."""
        hours = data.draw(st.sampled_from(HOURS).flatmap(lambda r: st.integers(*r)), label="hours")
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
        assert not (second.deadlines_applied or second.steps), (first.as_dict(), second.as_dict())
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
        """Something outside the lifecycle: a new case, a flight planned or leaving, a benefit
        filed or denied, citizenship evidence linked by entity resolution, a case fast-tracked."""
        change = data.draw(st.sampled_from(WORLD_CHANGES), label="change")
        self.world_version += 1
        person = data.draw(st.sampled_from(self.persons), label="person")
        if change == "open case" and len(self.cases) < MAX_CASES:
            self._open(person, data.draw(st.sampled_from(USERS), label="user"))
        elif change == "flight" and len(self.flights) < 4 + len(self.flown):
            self._flight(data)
        elif change == "departure":
            self._depart(data)
        elif change == "fast-tracked case":
            self._fast_track(data, FAST_TRACK, depart=True)
        elif change == "detainer":
            self._fast_track(data, DETAINER_TRACK, depart=False)
        elif change == "benefit" and len(self.benefits) < 8:
            form = data.draw(st.sampled_from(("I-589", "I-918", "I-821", "I-821D")), label="form")
            self._benefit(person, form, data.draw(st.integers(-10, 300), label="valid days"))
        elif change == "deny benefit" and self.benefits:
            self._deny(data.draw(st.sampled_from(self.benefits), label="benefit"))
        elif (
            change == "citizenship evidence"
            and len(self.evidence) < 2
            and person not in self.evidence
        ):
            self._link_evidence(person)

    def _fast_track(
        self, data: st.DataObject, track: tuple[tuple[str, dict[str, Any]], ...], depart: bool
    ) -> None:
        """A new case driven along a usual path (through the service, checked after each step)
        to a drawn depth. The expedited path: encountered, final order, warrant and travel
        document, seat on a flight, and one further, the flight leaves at once. The detainer
        path: encountered, arrested on a warrant, detainer lodged. The walk then goes on from
        there; these paths make sure every example can reach the steps that matter most."""
        usual = self._usual_persons()
        if not usual or len(self.cases) >= MAX_CASES:
            return
        person = data.draw(st.sampled_from(usual), label="person")
        depth = data.draw(st.integers(1, len(track) + depart), label="depth")
        case_id = self._open(person, "officer.miami")
        for name, params in track[:depth]:
            self.check()
            if not case_id or not self._fast_step(case_id, name, params):
                return
        if depart and depth > len(track) and case_id:
            self.check()
            self._depart_flight(self._seat_of(case_id))

    def _seat_of(self, case_id: str) -> str | None:
        seat = FlightSeat.__table__
        with self.runtime.engine.connect() as conn:
            return conn.scalar(
                select(seat.c.flight_id).where(
                    seat.c.case_id == case_id, seat.c.status == "assigned"
                )
            )

    def _fast_step(self, case_id: str, name: str, params: dict[str, Any]) -> bool:
        """One step of the fast track as an officer (a supervisor approves); False if refused."""
        params = dict(params)
        if name == "record_travel_document":
            refs = self._refs(case_id)
            if not refs.travel_documents:
                return False
            params["travel_document_id"] = refs.travel_documents[0]
        if name == "schedule_removal":
            params["flight_id"] = self._plan_flight("MEX", days=10, capacity=2)
        if name == "lodge_detainer":
            params["release_at"] = (self.desk.now + timedelta(days=2)).isoformat()
        if not TABLE.transitions[name].needs_approval:
            self._watch(case_id, name)
            return self._attempt("officer.miami", lc.perform, case_id, name, params) is not None
        request = self._attempt(
            "officer.miami", lc.request_action, case_id, name, params, JUSTIFICATIONS[0]
        )
        if request is None:
            return False
        self.requests.append(request.id)
        self.request_action[request.id] = (name, case_id)
        self.requester[request.id] = "officer.miami"
        if (
            self._attempt("supervisor.miami", lc.decide, request.id, True, JUSTIFICATIONS[1])
            is None
        ):
            return False
        self.check()
        self._watch(case_id, name)
        return self._attempt("officer.miami", lc.execute, request.id) is not None

    def _flight(self, data: st.DataObject) -> None:
        destination = data.draw(st.sampled_from(COUNTRIES[:-1]), label="destination")
        days = data.draw(st.integers(1, 60), label="days")
        self._plan_flight(destination, days, data.draw(st.integers(1, 3), label="capacity"))

    def _plan_flight(self, destination: str, days: int, capacity: int) -> str:
        n = len(self.flights)

        def plan(gw: Gateway) -> str:
            return logistics.create_flight(
                gw, kind="charter", carrier="Test Air", flight_no=f"TA{n}", origin="AEX",
                destination=destination, departs_at=self.desk.now + timedelta(days=days),
                capacity=capacity,
            ).id  # fmt: skip

        flight_id: str = self.desk.run("system", plan)
        self.flights.append(flight_id)
        self.flight_to[flight_id] = destination
        return flight_id

    def _depart(self, data: st.DataObject) -> None:
        """A planned flight leaves: the manifest re-checks everyone, the cleared are removed."""
        planned = [f for f in self.flights if f not in self.flown]
        if not planned:
            return
        self._depart_flight(data.draw(st.sampled_from(planned), label="flight"))

    def _depart_flight(self, flight_id: str | None) -> None:
        if flight_id is None or flight_id in self.flown:
            return
        seat = FlightSeat.__table__
        with self.runtime.engine.connect() as conn:
            seated = conn.scalars(
                select(seat.c.case_id).where(
                    seat.c.flight_id == flight_id, seat.c.status == "assigned"
                )
            ).all()
        for case_id in seated:
            self._watch(case_id, "removal_verified")
        if self._attempt("system", logistics.depart, flight_id, self.desk.now) is not None:
            self.flown.add(flight_id)

    def _deny(self, benefit_id: str) -> None:
        def deny(gw: Gateway) -> None:
            gw.update(gw.get(BenefitApplication, benefit_id), status="denied")

        self.desk.run("system", deny)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def store_is_consistent(self) -> None:
        self.check()

    def check(self) -> None:
        """Every invariant, on what was written since the last check."""
        snapshots, self.snapshots = self.snapshots, {}
        head = self._audit_head()
        if head == self.checked_at:
            return  # nothing was written since the last check
        self.checked_at = head
        with self.runtime.engine.connect() as conn:
            events = self._new_events(conn)
            if events:  # cases and deadlines change only together with an event
                self._cases(conn)
                for event in events:
                    self._event(conn, event, snapshots.get(event.case_id))
                self._deadlines(conn)
            req = ActionRequest.__table__
            self.request_status = _pairs(conn, select(req.c.id, req.c.status))
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
                cases.c.id,
                cases.c.person_id,
                cases.c.state,
                cases.c.version,
                cases.c.custody,
                cases.c.closed_at,
                stats,
                ev.c.to_state,
            )
            .join(stats, stats.c.case_id == cases.c.id, isouter=True)
            .join(ev, (ev.c.case_id == cases.c.id) & (ev.c.seq == cases.c.version), isouter=True)
        ).all()
        for (
            case_id,
            person,
            state,
            version,
            custody,
            closed_at,
            _,
            n,
            first,
            last,
            last_state,
        ) in rows:
            assert (first, last) == (1, n), f"{case_id}: seq {first}..{last} for {n} events"
            assert version == last, f"{case_id}: version {version}, last seq {last}"
            assert last_state == state, f"{case_id}: state {state}, last event {last_state}"
            if state in TABLE.terminal:
                assert closed_at is not None, f"{case_id}: {state} without closed_at"
            self.state[case_id], self.custody[case_id] = state, custody
            self.version[case_id], self.person_of[case_id] = version, person
        person_table = Person.__table__
        self.citizenship = _pairs(
            conn, select(person_table.c.id, person_table.c.citizenship_status)
        )
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

    def _event(self, conn: Connection, e: Row[Any], snap: Snapshot | None) -> None:
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
            missing = sorted(REMOVAL_GUARDS - set(checks))
            step = f"{e.action} ({e.from_state}→{e.to_state}) on {e.case_id}"
            assert not missing, f"{step} without checking {missing}"
        if e.to_state == "FINAL_ORDER" and e.from_state != "FINAL_ORDER":
            returned = TABLE.transitions[e.action].to == REMEMBERED
            assert e.action in FINAL_ORDER_ENTRIES or returned, f"{e.action} entered FINAL_ORDER"
            assert "final_order_holds" in checks, (
                f"{e.action} ({e.from_state}→FINAL_ORDER) on {e.case_id} without checking "
                "final_order_holds"
            )
        self._taken_by_the_right_people(conn, e)
        if snap and e.kind != "computed":
            self._oracle(e, snap)

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
        applied = _pairs(
            conn, select(ddl.c.id, ddl.c.applied_event_id).where(ddl.c.status == "applied")
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


def _weight(t: TransitionSpec) -> int:
    return 8 if t.name in TOWARDS_REMOVAL else 1 if t.from_ == OPEN else 3


def _role(machine: LifecycleMachine, username: str) -> str:
    if username not in machine.desk.actors:
        return "system" if username == "system" else ""
    return str(machine.desk.actors[username].role.value)


# -- the test -------------------------------------------------------------------------------


@pytest.mark.slow
def test_lifecycle_invariants_hold_under_random_use(
    sqlite_template: Path,
    tmp_path: Path,
    cheap_password_hashing: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert MIN_STEPS <= EXAMPLES * STEPS_PER_EXAMPLE
    monkeypatch.setattr(ids, "uuid", IDS)
    # Hypothesis now and then draws a constant found in the source of the modules loaded
    # (any of ours): with those, any change to a number or string anywhere in the project
    # changed the derandomized walk (a constant 256 made 1,024 once cost 2,000 of its steps).
    # Without them the walk depends on this test and the engine alone.
    monkeypatch.setattr(providers, "_get_local_constants", Constants)
    monkeypatch.setattr(providers, "CONSTANTS_CACHE", LRUCache(1024))
    seed = _seed(sqlite_template, tmp_path)

    class OnTheSeed(LifecycleMachine):
        def __init__(self) -> None:
            super().__init__(seed)

    run_state_machine_as_test(
        OnTheSeed,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            derandomize=True,
            database=None,
            # No shrinking: on a store-backed machine of 200-step examples it runs for minutes
            # and seldom gets far. A failure prints every step of the failing example instead.
            phases=[Phase.explicit, Phase.reuse, Phase.generate],
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        ),
    )
    stats = seed.stats
    print(dict(sorted(stats.items())))
    assert stats["steps"] >= MIN_STEPS, f"only {stats['steps']} steps ran: raise EXAMPLES"
    if IN_CI:
        missing = [name for name in REACHED_IN_CI if not stats[f"event {name}"]]
        assert not missing, f"the walk no longer reaches {missing}"


# -- regressions found by the machine -------------------------------------------------------
# A claim of citizenship on a case with a final order (or a seat on a flight), rejected: the
# case went back to FINAL_ORDER (or REMOVAL_SCHEDULED, seat and all, past an asylum application
# filed meanwhile) with no guard checked. Fixed in cfe39c1; these keep it fixed.


def _expedited_final_order(desk: Desk) -> str:
    """A case with a final expedited removal order to Mexico (no fear expressed)."""
    a_number = {"value": "A200000001", "source_id": "court", "record_key": "IC1",
                "observed_on": "2025-01-01"}  # fmt: skip
    pid = desk.person(golden={"a_number": a_number})
    case: str = desk.run(
        "officer.miami", lambda gw: lc.open_case(gw, pid, office="Miami", reason="lead").id
    )
    for name, params in FAST_TRACK[:2]:
        _take(desk, case, name, params)
    return case


def _take(desk: Desk, case: str, name: str, params: dict[str, Any]) -> None:
    """A step as an officer; one that needs approval is approved by a supervisor first."""
    if not TABLE.transitions[name].needs_approval:
        desk.run("officer.miami", lc.perform, case, name, params)
        return
    request = desk.run("officer.miami", lc.request_action, case, name, params, JUSTIFICATIONS[0])
    desk.run("supervisor.miami", lc.decide, request.id, True, JUSTIFICATIONS[1])
    desk.run("officer.miami", lc.execute, request.id)


def _reject_claim(desk: Desk, case: str) -> None:
    """Claim citizenship, then a supervisor and counsel reject the claim."""
    claim = {"basis": "claim-by-person", "details": "Says he was born in Texas."}
    desk.run("officer.miami", lc.perform, case, "claim_citizenship", claim)
    evidence = {"evidence": "No Texas birth record; entry documents show birth in Mexico."}
    request = desk.run(
        "supervisor.miami", lc.request_action, case, "reject_citizenship_claim", evidence,
        JUSTIFICATIONS[0],
    )  # fmt: skip
    desk.run("counsel", lc.decide, request.id, True, JUSTIFICATIONS[6])
    with contextlib.suppress(*EXPECTED):
        desk.run("supervisor.miami", lc.execute, request.id)


def _entries(desk: Desk, case: str, state: str) -> list[Row[Any]]:
    ev = CaseEvent.__table__
    with desk.runtime.engine.connect() as conn:
        return list(
            conn.execute(
                select(ev).where(
                    ev.c.case_id == case, ev.c.to_state == state, ev.c.from_state != state
                )
            )
        )


def test_a_rejected_citizenship_claim_returns_to_a_final_order_only_through_its_guard(
    desk: Desk,
) -> None:
    """Invariant 7: FINAL_ORDER is entered only with the final_order_holds check, also when
    a rejected citizenship claim returns the case to the state the claim interrupted."""
    case = _expedited_final_order(desk)
    _reject_claim(desk, case)
    for entry in _entries(desk, case, "FINAL_ORDER"):
        checks = _checks(entry)
        assert checks.get("final_order_holds", {}).get("ok"), (entry.action, list(checks))


def test_a_rejected_citizenship_claim_returns_to_a_removal_seat_only_through_its_guards(
    desk: Desk,
) -> None:
    """Invariant 2: nothing enters REMOVAL_SCHEDULED without the removal guards, also when
    a rejected citizenship claim returns the case there after an asylum application was
    filed during the review."""
    case = _expedited_final_order(desk)
    for name, params in FAST_TRACK[2:]:
        if name == "record_travel_document":
            params = {**params, "travel_document_id": _travel_document(desk, case)}
        if name == "schedule_removal":
            params = {**params, "flight_id": _flight(desk)}
        _take(desk, case, name, params)
    asylum = BenefitApplication(
        id="ben-asylum", person_id=_person_of(desk, case), receipt_no="ZLA2600000001",
        form="I-589", status="pending", filed_on=desk.now.date(),
    )  # fmt: skip
    desk.run("system", lambda gw: gw.add(asylum))
    _reject_claim(desk, case)
    for entry in _entries(desk, case, "REMOVAL_SCHEDULED"):
        checks = _checks(entry)
        ok = {g for g, c in checks.items() if c["ok"]}
        assert ok >= REMOVAL_GUARDS, (entry.action, sorted(REMOVAL_GUARDS - ok))
        assert all(c["ok"] for c in checks.values()), (entry.action, checks)


def _travel_document(desk: Desk, case: str) -> str:
    trd = TravelDocument.__table__
    with desk.runtime.engine.connect() as conn:
        return str(conn.scalar(select(trd.c.id).where(trd.c.case_id == case)))


def _person_of(desk: Desk, case: str) -> str:
    cases = EnforcementCase.__table__
    with desk.runtime.engine.connect() as conn:
        return str(conn.scalar(select(cases.c.person_id).where(cases.c.id == case)))


def _flight(desk: Desk) -> str:
    def plan(gw: Gateway) -> str:
        return logistics.create_flight(
            gw, kind="charter", carrier="Test Air", flight_no="TA1", origin="AEX",
            destination="MEX", departs_at=desk.now + timedelta(days=10), capacity=2,
        ).id  # fmt: skip

    return str(desk.run("system", plan))
