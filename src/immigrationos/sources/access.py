"""Purpose enforcement: a source's data is served only for purposes its agreement permits.

The gateway consults an :class:`AgreementIndex` on every read of source records and of facts
(every fact carries the ``source_id`` it was derived from):

- a read for a purpose the agreement does not permit is refused, naming the agreement, its
  version and the purpose (the refusal is audited by the unit of work);
- a search silently scoped to permitted sources would hide that anything was withheld, so the
  scope applied is recorded in the audit entry (``withheld_sources``);
- ``purpose_fields`` narrows which payload fields a purpose may see; the others are hidden and
  each says which agreement and purpose hide it;
- a source whose agreement demands a per-request authorization (tax data under 26 U.S.C.
  6103(i)(2)) is readable only under an active :class:`DisclosureRequest` made by the reader,
  and only for the one taxpayer, address and periods it names.

Receiving and maintaining a source's records is itself permitted for the system account under
``data-integration`` (ingest, retention): that serves no record to a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, select, true
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources.models import DataSharingAgreement, DisclosureRequest, SourceRecord


@dataclass(frozen=True)
class Terms:
    """The terms of one source's agreement in force, as reads need them."""

    source_id: str
    agreement_id: str
    version: int
    purposes: frozenset[str]
    purpose_fields: dict[str, list[str]]
    per_request: bool
    refusal_message: str | None

    def label(self) -> str:
        """How refusals name the agreement."""
        return f"agreement {self.agreement_id} (v{self.version}) for source {self.source_id!r}"


@dataclass
class Decision:
    """What a purpose may see of one source: everything, some fields, or nothing (and why)."""

    allowed: bool
    reason: str = ""
    hidden_fields: dict[str, str] = field(default_factory=dict)


@cache
def _in_force() -> Select[Any]:
    """Each source's newest agreement: the columns reads need (built once per process)."""
    a = DataSharingAgreement
    newest = select(a.source_id, func.max(a.version).label("v")).group_by(a.source_id).subquery()
    return select(
        a.source_id, a.id, a.version, a.permitted_purposes, a.purpose_fields, a.prerequisites
    ).join(newest, and_(a.source_id == newest.c.source_id, a.version == newest.c.v))


def _newest_agreements(session: Session) -> list[Any]:
    """Each source's agreement in force (its newest version), as rows: every unit of work
    that reads sourced data loads these."""
    return list(session.execute(_in_force()))


class AgreementIndex:
    """Every source's agreement in force, loaded once per unit of work."""

    def __init__(self, session: Session) -> None:
        self.terms: dict[str, Terms] = {}
        for a in _newest_agreements(session):
            prerequisites = a.prerequisites or {}
            self.terms[a.source_id] = Terms(
                a.source_id,
                a.id,
                a.version,
                frozenset(a.permitted_purposes),
                dict(a.purpose_fields or {}),
                bool(prerequisites.get("per_request")),
                prerequisites.get("refusal_message"),
            )

    def decide(self, source_id: str, ctx: AccessContext) -> Decision:
        """Whether ``ctx`` may read ``source_id``'s data, and which fields it may not see."""
        terms = self.terms.get(source_id)
        if terms is None:
            return Decision(False, f"source {source_id!r} has no agreement in force")
        if _maintenance(ctx):
            return Decision(True)
        if ctx.purpose.value not in terms.purposes:
            return Decision(
                False,
                f"{terms.label()} does not permit purpose "
                f"{ctx.purpose.value!r} (permitted: "
                f"{', '.join(sorted(terms.purposes))})",
            )
        if terms.per_request and not ctx.request_id:
            return Decision(
                False,
                f"{terms.label()} requires a disclosure request for each "
                f"use: {terms.refusal_message or 'none given'}",
            )
        visible = terms.purpose_fields.get(ctx.purpose.value)
        hidden = {}
        if visible is not None:
            hidden = {
                "*": f"{terms.label()} limits purpose {ctx.purpose.value!r} to the "
                f"fields {', '.join(visible)}"
            }
        return Decision(True, hidden_fields=hidden)

    def permitted_sources(self, ctx: AccessContext) -> tuple[list[str], dict[str, str]]:
        """Sources ``ctx`` may read, and those withheld with the reason for each."""
        allowed, withheld = [], {}
        for source_id in sorted(self.terms):
            decision = self.decide(source_id, ctx)
            if decision.allowed:
                allowed.append(source_id)
            else:
                withheld[source_id] = decision.reason
        return allowed, withheld

    def visible_payload(
        self, record: SourceRecord, ctx: AccessContext
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The payload fields the purpose may see, and each hidden field with why."""
        terms = self.terms.get(record.source_id)
        visible = terms.purpose_fields.get(ctx.purpose.value) if terms else None
        if visible is None or _maintenance(ctx) or terms is None:
            return dict(record.payload), {}
        reason = (
            f"hidden by {terms.label()}: purpose {ctx.purpose.value!r} may see only "
            f"{', '.join(visible)}"
        )
        shown = {k: v for k, v in record.payload.items() if k in visible}
        return shown, {k: reason for k in record.payload if k not in visible}


def _maintenance(ctx: AccessContext) -> bool:
    return ctx.actor.role is Role.SYSTEM and ctx.purpose is Purpose.DATA_INTEGRATION


def subject_filter(request: DisclosureRequest) -> ColumnElement[bool]:
    """The records a disclosure request covers: its one taxpayer, address and periods."""
    subject = request.subject
    payload = SourceRecord.payload
    clauses = [
        func.lower(payload["family_name"].as_string()) == subject["family_name"].lower(),
        func.lower(payload["given_name"].as_string()) == subject["given_name"].lower(),
        func.lower(payload["address_line"].as_string()) == subject["address_line"].lower(),
    ]
    if request.periods:
        clauses.append(payload["tax_year"].as_integer().in_([int(p) for p in request.periods]))
    return and_(true(), *clauses)
