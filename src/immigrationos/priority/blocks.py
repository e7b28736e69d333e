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
from typing import Any

from sqlalchemy import select

from immigrationos.core.clock import UTC
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle import facts as lifecycle_facts
from immigrationos.lifecycle.facts import CaseFacts, Condition
from immigrationos.lifecycle.guards import GUARDS, Check, Step
from immigrationos.lifecycle.models import CaseCondition, EnforcementCase
from immigrationos.lifecycle.table import load_table

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
    got = gw.bundle(
        {
            **lifecycle_facts.file_queries("", person_id),  # the person-level parts
            "open": (
                select(CaseCondition)
                .join(EnforcementCase, EnforcementCase.id == CaseCondition.case_id)
                .where(
                    EnforcementCase.person_id == person_id,
                    EnforcementCase.closed_at.is_(None),
                ),
                CaseCondition,
            ),
            "holds": (
                select(EnforcementCase.identity_hold).where(
                    EnforcementCase.person_id == person_id,
                    EnforcementCase.closed_at.is_(None),
                    EnforcementCase.identity_hold.is_not(None),
                ),
                EnforcementCase,
            ),
        },
        params={"file": "person_file", "person": person_id},
    )
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
