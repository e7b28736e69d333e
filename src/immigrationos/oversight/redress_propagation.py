"""Redress propagation: what a decision (or a new dispute) causes elsewhere in the system.

Each step runs on the caller's transaction as the system account, under the purpose of the
part it touches, with the request named (:func:`system_gateway`): cannot-link decisions bind
later resolution runs (:func:`cannot_links`), the person's records are re-resolved
(:func:`reresolve`), documents printing a changed value are re-issued as new versions
(:func:`reissue_documents`) and the policy in force is run again (:func:`rescore`). The
decision that calls them is in :mod:`.redress`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from immigrationos.audit.chain import emit
from immigrationos.audit.events import DocumentRendered, MatchReviewed
from immigrationos.core.errors import NotFound
from immigrationos.core.ids import content_id
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.resolution.models import MatchReview


def system_gateway(gw: Gateway, purpose: Purpose, reference: str, what: str) -> Gateway:
    """The system account's gateway on the same transaction, for a step the decision causes
    (each is audited under its own purpose, with the request named)."""
    return Gateway(gw.session, system_context(purpose, f"redress request {reference}: {what}"))


def cannot_links(
    gw: Gateway, reference: str, reasons: str, pairs: list[tuple[str, str]], now: datetime
) -> int:
    """Each accepted "not me" record becomes a non-match decision with every other record of
    the person, binding every later resolution run (an earlier decision is overridden)."""
    if not pairs:
        return 0
    reason = f"redress request {reference}: {reasons}"[:2000]
    ids = {content_id("rev", *sorted(pair)): pair for pair in pairs}
    stmt = select(MatchReview).where(MatchReview.id.in_(list(ids)))
    known = {r.id for r in gw.select(stmt, MatchReview, params={"redress": reference})}
    decided = {"status": "decided", "decision": "non-match", "reason": reason,
               "decided_by": gw.ctx.actor.user_id, "decided_at": now}  # fmt: skip
    gw.update_rows(MatchReview, [{"id": i, **decided} for i in ids if i in known])
    fresh = [
        {"id": i, "record_l": a, "record_r": b, "match_weight": 0.0,
         "explanation": {"redress_request": reference}, "created_at": now, **decided}
        for i, (a, b) in ((i, sorted(p)) for i, p in ids.items()) if i not in known
    ]  # fmt: skip
    gw.insert_rows(MatchReview, fresh)
    emit(gw.session, MatchReviewed(object_type="match_reviews", object_ids=sorted(ids),
                                   decision="non-match"), gw.ctx)  # fmt: skip
    return len(ids)


def reresolve(gw: Gateway, reference: str, persons: list[str]) -> dict[str, Any]:
    """Re-resolve the records of ``persons`` (the system account, under identity resolution)."""
    from immigrationos.resolution import service as resolution

    sys = system_gateway(gw, Purpose.IDENTITY_RESOLUTION, reference, "re-resolve")
    report = resolution.reresolve(sys, persons, reason=f"redress {reference}")
    return {"run_id": report.run_id, "persons": report.persons,
            "created": report.plan.created, "splits": report.plan.splits,
            "cases_held": report.cases_held}  # fmt: skip


def shown(gw: Gateway, person_id: str) -> dict[str, Any]:
    """The person values documents print (from the golden record)."""
    from immigrationos.lifecycle.documents import PERSON_FIELDS

    golden = gw.get(Person, person_id).golden or {}
    return {a: (golden.get(a) or {}).get("value") for a in PERSON_FIELDS}


def reissue_documents(
    gw: Gateway, reference: str, before: dict[str, dict[str, Any]], now: datetime
) -> dict[str, Any]:
    """Re-issue, as new versions, the newest documents that print a value that changed."""
    from immigrationos.lifecycle import documents
    from immigrationos.lifecycle.render import DocumentRefused

    sys = system_gateway(gw, Purpose.CASE_PROCESSING, reference, "documents re-issued")
    pdf = bool(gw.session.info.get("immos.documents_pdf", True))
    out: dict[str, Any] = {"regenerated": [], "refused": {}}
    for person_id, was in before.items():
        changed = {a for a, v in shown(gw, person_id).items() if was.get(a) != v}
        for doc in documents.latest_versions(sys, person_id) if changed else []:
            if not documents.shows(doc.kind, changed):
                continue
            try:
                new = documents.regenerate(sys, doc, at=now, pdf=pdf)
            except DocumentRefused as exc:
                out["refused"][doc.id] = str(exc)
                continue
            emit(gw.session, DocumentRendered(object_type="documents", object_ids=[new.id, doc.id],
                 kind=new.kind, status=new.status, template_version=new.template_version,
                 sha256=new.content_sha256), sys.ctx)  # fmt: skip
            out["regenerated"].append({"id": new.id, "supersedes": doc.id, "kind": new.kind,
                                       "version": new.version})  # fmt: skip
    return out


def rescore(gw: Gateway, reference: str) -> dict[str, Any]:
    """Run the policy in force again over the index (the system account, under the
    prioritization purpose), so stored scores and worklists follow the disputes."""
    from immigrationos.priority import service as priority

    sys = system_gateway(gw, Purpose.ENFORCEMENT_PRIORITIZATION, reference, "re-score")
    try:
        policy = priority.in_force(sys)
    except NotFound as exc:
        return {"skipped": str(exc)}
    run = priority.run(sys, policy.id)
    return {"run_id": run.id, "policy": policy.id}
