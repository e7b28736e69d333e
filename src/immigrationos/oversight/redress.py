"""Redress: a person's representative asks for a correction, and the correction propagates.

The path, in four steps, each a function taking a gateway (actor, purpose, audit) and never
committing (the CLI command or the request owns the transaction):

1. **Filing** (:mod:`.redress_filing`): an outside party with no account files the request
   and follows it with a one-time tracking code.
2. **Triage** (:mod:`.redress_triage`, privacy officer, purpose ``redress``): ``link`` ties the
   request to a person of the index; ``dispute`` marks specific facts
   (:class:`~immigrationos.oversight.models.DisputedFact`): a record link, an identifier, a
   person attribute as one record gives it, or a fact row.
3. **Exclusion** while disputed (:mod:`.disputes`): prioritization makes every feature a
   disputed fact feeds unknown, naming the request (``priority.features``); resolution runs,
   incremental linking and the departure matcher leave disputed values out and never link a
   disputed record by the model alone (``resolution.service``, ``departures.matcher``).
4. **Decision** (here: :func:`plan_decision`, pure, then :func:`apply_decision`): accepted
   facts become cannot-link decisions, corrections with provenance (source ``redress``) or
   struck facts; the person's records are re-resolved, the policy in force re-scored,
   documents showing a changed value re-issued as new versions (:mod:`.redress_propagation`),
   and a letter generated (:mod:`.letters`). Rejected facts lift their exclusion.

A correction is not an enforcement action, so one privacy officer decides (recorded by name,
with reasons, in the request and the audit log) rather than two persons. :func:`load_demo`
files and decides two sample requests on a demo world.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from immigrationos.accounts.roles import Role
from immigrationos.audit.chain import emit
from immigrationos.audit.events import RedressDecided
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import redress_propagation as propagation
from immigrationos.oversight.disputes import FACT_KINDS, ID_COLUMNS
from immigrationos.oversight.models import DisputedFact
from immigrationos.oversight.redress_filing import (
    Filed,
    FiledItem,
    Filing,
    file_request,
    intake_context,
)
from immigrationos.oversight.redress_triage import (
    Mark,
    dispute,
    facts_of,
    get_request,
    link,
    markable,
    require_privacy_officer,
)
from immigrationos.persons.models import Person, RecordLink

# -- decision ----------------------------------------------------------------------------------


class Verdict(BaseModel):
    """The decision on one marked fact."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    fact_id: str
    verdict: Literal["accept", "reject"]
    corrected_value: str | None = Field(
        default=None,
        max_length=200,
        description="For an accepted attribute or identifier: the correct value (default: the "
        "value claimed); empty strikes the value.",
    )


@dataclass
class DecisionPlan:
    """What a decision changes, worked out before anything is written."""

    request_id: str
    person_id: str | None
    decision: str
    reasons: str
    decided_by: str
    facts: list[dict[str, Any]] = field(default_factory=list)
    cannot_links: list[tuple[str, str]] = field(default_factory=list)
    reresolve: list[str] = field(default_factory=list)
    corrections: list[dict[str, Any]] = field(default_factory=list)
    document_attributes: list[str] = field(default_factory=list)
    rescore: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def audit(self) -> dict[str, Any]:
        """The plan as the audit log keeps it: ids, kinds and counts, never a value."""
        return {
            "person_id": self.person_id,
            "facts": {f["id"]: f["verdict"] for f in self.facts},
            "cannot_links": len(self.cannot_links),
            "reresolve": self.reresolve,
            "corrections": [{"fact_id": c["fact_id"], "attribute": c["attribute"]}
                            for c in self.corrections],
            "document_attributes": self.document_attributes,
            "rescore": self.rescore,
        }  # fmt: skip


def plan_decision(
    gw: Gateway, reference: str, verdicts: list[Verdict], reasons: str
) -> DecisionPlan:
    """What deciding ``reference`` would do (reads only; :func:`apply_decision` writes it)."""
    require_privacy_officer(gw)
    request = get_request(gw, reference)
    if request.status == "decided":
        raise ValidationFailed(f"request {reference} is already decided ({request.decision})")
    if len((reasons or "").strip()) < 10:
        raise ValidationFailed("a decision needs its reasons (at least 10 characters)")
    facts = [f for f in facts_of(gw, reference) if f.status == "disputed"]
    by_id = {v.fact_id: v for v in verdicts}
    unknown = sorted(set(by_id) - {f.id for f in facts})
    if unknown:
        raise ValidationFailed(f"not a disputed fact of {reference}: {', '.join(unknown)}")
    missing = [f.id for f in facts if f.id not in by_id]
    if missing:
        raise ValidationFailed(f"decide every marked fact; undecided: {', '.join(missing)}")
    plan = DecisionPlan(
        request_id=reference,
        person_id=request.person_id,
        decision=_overall([by_id[f.id].verdict for f in facts]),
        reasons=reasons.strip(),
        decided_by=gw.ctx.actor.user_id,
        rescore=bool(facts),
    )
    for f in facts:
        v = by_id[f.id]
        value = _corrected(f, v) if v.verdict == "accept" else None
        plan.facts.append({"id": f.id, "kind": f.kind, "table": f.table_name, "row_id": f.row_id,
                           "record_id": f.record_id, "field": f.field, "verdict": v.verdict,
                           "corrected_value": value})  # fmt: skip
    _plan_identity(gw, plan, facts)
    _plan_corrections(plan, facts)
    return plan


def _overall(verdicts: list[str]) -> str:
    if verdicts and all(v == "accept" for v in verdicts):
        return "accepted"
    if any(v == "accept" for v in verdicts):
        return "partially_accepted"
    return "rejected"


def _corrected(fact: DisputedFact, verdict: Verdict) -> str | None:
    """The value an accepted attribute or identifier takes (checked), or None (struck)."""
    if fact.kind not in ("attribute", "identifier"):
        return None
    value = verdict.corrected_value if verdict.corrected_value is not None else fact.claimed_value
    if not value:
        return None
    name = fact.field or ""
    if name == "birth_date":
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise ValidationFailed(f"{fact.id}: {value!r} is not a date (YYYY-MM-DD)") from None
    if name == "sex" and value.upper() not in ("F", "M", "X"):
        raise ValidationFailed(f"{fact.id}: sex is F, M or X")
    if name == "nationality" and not re.fullmatch(r"[A-Za-z]{3}", value):
        raise ValidationFailed(f"{fact.id}: nationality is a three-letter country code")
    if name == "a_number":
        try:
            return Filing._a_number(value)
        except ValueError as exc:
            raise ValidationFailed(f"{fact.id}: {exc}") from None
    return value.upper() if name in ("sex", "nationality") else value


def _plan_identity(gw: Gateway, plan: DecisionPlan, facts: list[DisputedFact]) -> None:
    """Accepted record links become cannot-links with the person's other records; any change
    to matching evidence re-resolves the persons whose records are concerned."""
    verdict = {f["id"]: f["verdict"] for f in plan.facts}
    accepted = [f for f in facts if verdict[f.id] == "accept"]
    split = {f.row_id for f in accepted if f.kind == "record_link"}
    persons: set[str] = set()
    if plan.person_id and any(FACT_KINDS[f.kind].matching for f in accepted):
        persons.add(plan.person_id)
    current = _links_of(gw, [f.row_id for f in facts if f.kind == "record_link"])
    if split and plan.person_id:
        others = [r for r in _records_of(gw, plan.person_id) if r not in split]
        plan.cannot_links = [(a, b) for a in sorted(split) for b in others]
    for f in facts:  # a rejected record link split off meanwhile goes back to its person
        if f.kind == "record_link" and verdict[f.id] == "reject":
            now_in = current.get(f.row_id)
            if now_in and now_in != plan.person_id:
                persons |= {now_in, *([plan.person_id] if plan.person_id else [])}
    plan.reresolve = sorted(persons)


def _plan_corrections(plan: DecisionPlan, facts: list[DisputedFact]) -> None:
    by_id = {f.id: f for f in facts}
    shown: set[str] = set()
    for item in plan.facts:
        f = by_id[item["id"]]
        if item["verdict"] != "accept" or f.kind not in ("attribute", "identifier"):
            continue
        attribute = f.field if f.kind == "attribute" else ID_COLUMNS.get(f.field or "", f.field)
        if item["corrected_value"]:
            plan.corrections.append({"fact_id": f.id, "attribute": attribute,
                                     "record_id": f.record_id,
                                     "value": item["corrected_value"]})  # fmt: skip
        shown.add(str(attribute))
    if any(i["verdict"] == "accept" and i["kind"] == "record_link" for i in plan.facts):
        shown |= {"family_name", "given_name", "birth_date", "nationality", "a_number", "fin"}
    plan.document_attributes = sorted(shown)


def _records_of(gw: Gateway, person_id: str) -> list[str]:
    rows = gw.rows(
        select(RecordLink.source_record_id).where(
            RecordLink.person_id == person_id, RecordLink.unlinked_at.is_(None)
        ),
        RecordLink,
        params={"person": person_id, "redress": "records of the person"},
    )
    return sorted(r[0] for r in rows)


def _links_of(gw: Gateway, record_ids: list[str]) -> dict[str, str]:
    if not record_ids:
        return {}
    rows = gw.rows(
        select(RecordLink.source_record_id, RecordLink.person_id).where(
            RecordLink.source_record_id.in_(record_ids), RecordLink.unlinked_at.is_(None)
        ),
        RecordLink,
        params={"records": len(record_ids), "redress": "where the records are"},
    )
    return {r[0]: r[1] for r in rows}


def apply_decision(gw: Gateway, plan: DecisionPlan) -> dict[str, Any]:
    """Write a decision and propagate it: facts, request, cannot-links, re-resolution,
    re-scoring, documents and the letter, in the caller's transaction; audited with the plan."""
    require_privacy_officer(gw)
    request = get_request(gw, plan.request_id)
    now = utcnow()
    _decide_facts(gw, plan, now)
    gw.update(request, status="decided", decision=plan.decision, decision_reasons=plan.reasons,
              decided_by=gw.ctx.actor.user_id, decided_at=now,
              decision_plan=plan.to_json())  # fmt: skip
    applied: dict[str, Any] = {
        "cannot_links": propagation.cannot_links(
            gw, plan.request_id, plan.reasons, plan.cannot_links, now
        )
    }
    before = {p: propagation.shown(gw, p) for p in _document_persons(plan)}
    if plan.reresolve:
        applied["resolution_run"] = propagation.reresolve(gw, plan.request_id, plan.reresolve)
    applied["documents"] = propagation.reissue_documents(gw, plan.request_id, before, now)
    applied["priority"] = (
        propagation.rescore(gw, plan.request_id) if plan.rescore else {"skipped": "no facts"}
    )
    from immigrationos.oversight import letters

    letter = letters.issue(gw, request)
    applied["letter"] = {"id": letter.id, "version": letter.version}
    emit(
        gw.session,
        RedressDecided(object_type="redress_requests", object_ids=[request.id],
                       decision=plan.decision, plan=plan.audit(), applied=applied),
        gw.ctx,
    )  # fmt: skip
    gw.update(request, decision_plan={**plan.to_json(), "applied": applied})
    return applied


def decide(gw: Gateway, reference: str, verdicts: list[Verdict], reasons: str) -> dict[str, Any]:
    """Plan and apply a decision (the boundary's one call); returns the plan and what was done."""
    plan = plan_decision(gw, reference, verdicts, reasons)
    return {"plan": plan.to_json(), "applied": apply_decision(gw, plan)}


def _decide_facts(gw: Gateway, plan: DecisionPlan, now: datetime) -> None:
    rows = [
        {"id": f["id"], "status": "accepted" if f["verdict"] == "accept" else "rejected",
         "corrected_value": f["corrected_value"], "decided_at": now}
        for f in plan.facts
    ]  # fmt: skip
    gw.update_rows(DisputedFact, rows)


def _document_persons(plan: DecisionPlan) -> list[str]:
    return [plan.person_id] if plan.person_id and plan.document_attributes else []


# -- the demo ---------------------------------------------------------------------------------


@dataclass
class DemoRedress:
    """What :func:`load_demo` filed: one request in review, one decided (with its letter)."""

    in_review: Filed
    decided: Filed
    persons: list[str]


def load_demo(runtime: Any) -> DemoRedress:
    """Two sample requests on a loaded demo world, each in its own transaction.

    In review: "this conviction record is not me" about the first person with a conviction
    record among at least three linked records, marked disputed (the explanation shows the
    criminal-history features unavailable). Decided: a birth-date correction about the next
    person with case documents, accepted (golden record corrected, documents re-issued,
    priorities re-scored, letter issued). Returns the references and tracking codes, so the
    demo can print one to try ``/redress/status``.
    """
    from immigrationos.gateway.core import unit_of_work
    from immigrationos.lifecycle.models import Document

    with unit_of_work(runtime.sessions, intake_context("demo: choosing persons")) as gw:
        convicted, documented = _demo_persons(gw, Document)
    first = convicted[0]
    second = next(p for p in documented if p != first)
    disputed = _demo_file(runtime, first, "identity", None)
    corrected = _demo_file(runtime, second, "birth_date", "1980-07-04")
    privacy = _demo_privacy_officer(runtime)
    with unit_of_work(runtime.sessions, privacy) as gw:
        link(gw, disputed.reference, first)
        records_ = [
            r for r in markable(gw, first)["record_link"] if r["source_id"] == "convictions"
        ]
        dispute(gw, disputed.reference, [Mark(kind="record_link", row_id=records_[0]["row_id"],
                                              item=0)])  # fmt: skip
    with unit_of_work(runtime.sessions, privacy) as gw:
        link(gw, corrected.reference, second)
        dispute(gw, corrected.reference, [Mark(kind="attribute", field="birth_date", item=0)])
    with unit_of_work(runtime.sessions, privacy) as gw:
        verdicts = [
            Verdict(fact_id=f.id, verdict="accept") for f in facts_of(gw, corrected.reference)
        ]
        reasons = "The birth certificate filed with the request is genuine and matches."
        decide(gw, corrected.reference, verdicts, reasons)
    return DemoRedress(disputed, corrected, [first, second])


def _demo_persons(gw: Gateway, document_model: Any) -> tuple[list[str], list[str]]:
    from immigrationos.facts.models import Conviction

    linked = gw.rows(
        select(RecordLink.person_id).where(RecordLink.unlinked_at.is_(None)),
        RecordLink,
        params={"demo": "redress persons"},
    )
    sizes: dict[str, int] = defaultdict(int)
    for (person,) in linked:
        sizes[person] += 1
    convicted = gw.rows(select(Conviction.person_id).where(Conviction.source_id == "convictions"),
                        Conviction, params={"demo": "redress persons"})  # fmt: skip
    documented = gw.rows(select(document_model.person_id), document_model,
                         params={"demo": "redress persons"})  # fmt: skip
    with_convictions = sorted({p for (p,) in convicted if p and sizes.get(p, 0) >= 3})
    with_documents = sorted({p for (p,) in documented if p and sizes.get(p, 0) >= 2})
    if not with_convictions or len(with_documents) < 2:
        raise ValidationFailed("the demo world has no persons for the redress samples")
    return with_convictions, with_documents


def _demo_file(runtime: Any, person_id: str, kind: str, claimed: str | None) -> Filed:
    from immigrationos.gateway.core import unit_of_work

    with unit_of_work(runtime.sessions, intake_context("demo: sample filing")) as gw:
        person = gw.get(Person, person_id)
        filing = Filing(
            requester_name="Sample Representative", requester_contact="1 Demo Street, Miami",
            authority="accredited representative", given_name=person.given_name,
            family_name=person.family_name or "Unknown",
            birth_date=person.birth_date or date(1980, 1, 1),
            items=[FiledItem(kind=kind, claimed_value=claimed,
                             evidence="documents enclosed with the request")],
            statement="A sample request filed by the demo: the record is wrong.",
        )  # fmt: skip
        return file_request(gw, filing, "demo")


def _demo_privacy_officer(runtime: Any) -> AccessContext:
    from immigrationos.accounts.models import User
    from immigrationos.accounts.service import actor_of
    from immigrationos.store.engine import transaction

    with transaction(runtime.sessions) as session:
        user = session.scalar(select(User).where(User.role == Role.PRIVACY_OFFICER.value))
        if user is None:
            raise ValidationFailed("no privacy officer account: the demo accounts come first")
        return AccessContext(actor_of(user), Purpose.REDRESS, "demo: sample redress requests")
