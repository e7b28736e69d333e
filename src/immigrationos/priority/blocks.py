"""Whether action on a person is possible now, asked of the lifecycle's own guards.

A priority is never an action: a lead only lets an officer open an encounter. What the officer
sees beside it is the answer the lifecycle would give today: the guards that stand in front of
every enforcement step (citizenship, citizenship review, identity hold, undecided victim
petitions) and the protections that bar removal (a pending asylum or fear claim, TPS, deferred
action, a stay), each checked on the person's file across all their open cases, plus a
departure recorded after the last entry. :mod:`immigrationos.priority.features` computes the
same blocks for the whole index in one query; a test holds the two equal.
"""

from __future__ import annotations

from datetime import date, datetime, time
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, select

from immigrationos.core.clock import UTC
from immigrationos.facts.models import Admission, BenefitApplication
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import facts as lifecycle_facts
from immigrationos.lifecycle.facts import CITIZENSHIP_SOURCES, CaseFacts, Condition
from immigrationos.lifecycle.guards import GUARDS, Check, Step
from immigrationos.lifecycle.models import CaseCondition, EnforcementCase
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import Person, RecordLink
from immigrationos.sources.models import SourceRecord
from immigrationos.store.sql import one_of

ACTION_GUARDS = (
    "not_a_citizen",
    "not_in_citizenship_review",
    "no_identity_hold",
    "victim_petitions_decided",
    "no_pending_protection_claim",
    "tps_not_valid",
    "deferred_action_not_in_effect",
    "no_stay",
)
"""The lifecycle guards a lead is checked against (the enforcement set and the protections)."""
NO_CASE = "NO_CASE"


def person_facts(gw: Gateway, person_id: str) -> CaseFacts:
    """The person's file as the guards read it: every open case's conditions together."""
    return persons_facts(gw, [person_id])[person_id]


def persons_facts(gw: Gateway, person_ids: list[str]) -> dict[str, CaseFacts]:
    """Each person's file as :func:`person_facts` reads it, for several persons in one read.

    The selects are the person-level parts of :func:`immigrationos.lifecycle.facts.file_queries`
    widened to many persons (a worklist page re-checks its 25 leads with one audited read, not
    25); the case-level parts are empty here, as they are there for a person without a case.
    """
    dialect = gw.session.get_bind().dialect.name
    got = gw.bundle(_file_queries(dialect), params={"file": "person_file", "persons": person_ids},
                    values={"persons": person_ids})  # fmt: skip
    files: dict[str, dict[str, list[Any]]] = {
        p: {"conditions": [], "deadlines": [], "documents": [], "travel": [], "seats": [],
            "person": [], "evidence": [], "benefits": [], "admissions": [], "cases": [],
            "open": [], "holds": []}
        for p in person_ids
    }  # fmt: skip
    for name, rows in got.items():
        for person_id, *rest in rows:
            files[person_id][name].append(tuple(rest))
    return {p: _facts(p, file) for p, file in files.items()}


@cache
def _file_queries(dialect: str) -> dict[str, tuple[Any, Any]]:
    """The person-level selects of a file, each row led by its person's id, for the persons
    bound as ``persons`` when they run (built once per process and backend)."""
    link, rec, case, cond = RecordLink, SourceRecord, EnforcementCase, CaseCondition

    def ids(column: Any) -> ColumnElement[bool]:
        return one_of(column, dialect, name="persons")

    is_open = (ids(case.person_id), case.closed_at.is_(None))
    return {
        "person": (select(Person.id, Person.citizenship_status).where(ids(Person.id)), Person),
        "evidence": (
            select(link.person_id, rec.id).join(link, link.source_record_id == rec.id)
            .where(ids(link.person_id), link.unlinked_at.is_(None),
                   one_of(rec.source_id, dialect, values=CITIZENSHIP_SOURCES)).order_by(rec.id),
            SourceRecord,
        ),
        "benefits": (
            select(BenefitApplication.person_id, BenefitApplication)
            .where(ids(BenefitApplication.person_id)).order_by(BenefitApplication.id),
            BenefitApplication,
        ),
        "admissions": (
            select(Admission.person_id, Admission.class_of_admission)
            .where(ids(Admission.person_id)),
            Admission,
        ),
        "cases": (
            select(case.person_id, case.id, case.state).where(ids(case.person_id))
            .order_by(case.id),
            EnforcementCase,
        ),
        "open": (
            select(case.person_id, cond).join(case, case.id == cond.case_id).where(*is_open)
            .order_by(cond.id),
            CaseCondition,
        ),
        "holds": (
            select(case.person_id, case.identity_hold)
            .where(*is_open, case.identity_hold.is_not(None)).order_by(case.id),
            EnforcementCase,
        ),
    }  # fmt: skip


def _facts(person_id: str, got: dict[str, list[Any]]) -> CaseFacts:
    holds = [h for (h,) in got.pop("holds")]
    facts = CaseFacts(
        case_id="", person_id=person_id, state=NO_CASE, custody="not-detained", track="",
        office=None, version=0, remembered_state=None, identity_hold=holds[0] if holds else None,
    )  # fmt: skip
    open_conditions = got.pop("open")
    lifecycle_facts.fill(facts, got)
    facts.conditions = [
        Condition(c.id, c.kind, c.status, c.country, c.form, c.opened_at, c.ended_at, c.params)
        for (c,) in open_conditions
    ]
    return facts


def check(facts: CaseFacts, on: date, departed: dict[str, Any] | None) -> list[Check]:
    """Every action guard's answer for the person on ``on``, plus the departure check."""
    step = Step(load_table().transitions["arrest"], {}, datetime.combine(on, time(12), UTC))
    checks = [GUARDS[name].check(facts, step) for name in ACTION_GUARDS]
    if departed:
        message = f"departed on {departed['on']}, after the last entry on record"
        checks.append(Check("not_departed", False, message, [departed]))
    else:
        checks.append(Check("not_departed", True, "No departure after the last entry."))
    return checks


def blocking(checks: list[Check]) -> list[dict[str, str]]:
    """The checks that block, as the worklist and explanation show them."""
    return [{"guard": c.guard, "message": c.message} for c in checks if not c.ok]
