"""Redress triage: a privacy officer's queue, linking a request to a person, and marking facts
disputed (steps 2 and 3 of :mod:`.redress`).

Every function takes a gateway under the purpose ``redress`` held by a privacy officer
(:func:`require_privacy_officer`) and never commits. :func:`link` ties a request to a person of
the index; :func:`markable` lists the person's facts by kind; :func:`plan_marks` (pure) checks
what the marks would create and :func:`dispute` writes it, audited, then re-scores so stored
scores leave the disputed facts out (:mod:`.disputes` says what is kept out).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from immigrationos.accounts.roles import Role
from immigrationos.audit.chain import emit
from immigrationos.audit.events import FactsDisputed, RedressLinked
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import AccessRefused, NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight.disputes import ATTRIBUTES, FACT_KINDS, FactKind
from immigrationos.oversight.models import DisputedFact, RedressLetter, RedressRequest
from immigrationos.oversight.redress_propagation import rescore
from immigrationos.persons.models import Person, RecordLink
from immigrationos.sources.models import SourceRecord


def require_privacy_officer(gw: Gateway) -> None:
    """Redress is handled by a privacy officer under the ``redress`` purpose."""
    if gw.ctx.actor.role is not Role.PRIVACY_OFFICER:
        raise AccessRefused(
            f"role {gw.ctx.actor.role.value!r} does not handle redress requests "
            "(a privacy officer does)"
        )
    if gw.ctx.purpose is not Purpose.REDRESS:
        raise AccessRefused(f"redress is handled under the purpose 'redress', not {gw.ctx.purpose}")


def get_request(gw: Gateway, reference: str) -> RedressRequest:
    try:
        return gw.get(RedressRequest, reference)
    except NotFound:
        raise NotFound(f"no redress request {reference!r}") from None


def queue(gw: Gateway, status: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Requests, oldest waiting first (all statuses unless one is named)."""
    require_privacy_officer(gw)
    stmt = select(RedressRequest).order_by(RedressRequest.filed_at).limit(limit)
    if status:
        stmt = stmt.where(RedressRequest.status == status)
    rows = gw.select(stmt, RedressRequest, params={"queue": status or "all"})
    return [_summary(r) for r in rows]


def _summary(r: RedressRequest) -> dict[str, Any]:
    return {
        "id": r.id,
        "filed_at": r.filed_at.isoformat(),
        "status": r.status,
        "decision": r.decision,
        "person_id": r.person_id,
        "requester_name": r.requester_name,
        "authority": r.requester_authority,
        "kinds": sorted({str(i.get("kind")) for i in r.disputed}),
    }


def detail(gw: Gateway, reference: str) -> dict[str, Any]:
    """Everything the privacy officer works from: the filing, the marked facts, the decision,
    the letters, and candidate persons while the request is not linked."""
    require_privacy_officer(gw)
    r = get_request(gw, reference)
    facts = facts_of(gw, r.id)
    letters = gw.rows(
        select(RedressLetter.id, RedressLetter.version, RedressLetter.created_at)
        .where(RedressLetter.request_id == r.id)
        .order_by(RedressLetter.version),
        RedressLetter,
        params={"request": r.id, "letters": "list"},
    )
    return {
        **_summary(r),
        "requester_contact": r.requester_contact,
        "subject": r.subject,
        "items": r.disputed,
        "statement": r.claim,
        "facts": [_fact_json(f) for f in facts],
        "decided_at": r.decided_at.isoformat() if r.decided_at else None,
        "decided_by": r.decided_by,
        "reasons": r.decision_reasons,
        "plan": r.decision_plan,
        "letters": [{"id": i, "version": v, "created_at": at.isoformat()} for i, v, at in letters],
        "candidates": candidates(gw, r) if r.person_id is None else [],
    }


def _fact_json(f: DisputedFact) -> dict[str, Any]:
    return {
        "id": f.id,
        "kind": f.kind,
        "table": f.table_name,
        "row_id": f.row_id,
        "record_id": f.record_id,
        "source_id": f.source_id,
        "field": f.field,
        "disputed_value": f.disputed_value,
        "claimed_value": f.claimed_value,
        "corrected_value": f.corrected_value,
        "item": f.item,
        "status": f.status,
    }


def facts_of(gw: Gateway, request_id: str) -> list[DisputedFact]:
    return gw.select(
        select(DisputedFact)
        .where(DisputedFact.request_id == request_id)
        .order_by(DisputedFact.marked_at, DisputedFact.id),
        DisputedFact,
        params={"request": request_id, "facts": "marked"},
    )


def candidates(gw: Gateway, request: RedressRequest) -> list[dict[str, Any]]:
    """Persons of the index the filed details point to: by A-number, then by name."""
    from immigrationos.persons.views import SearchQuery, search

    subject = request.subject or {}
    found: dict[str, dict[str, Any]] = {}
    if subject.get("a_number"):
        for p in search(gw, SearchQuery(identifier=subject["a_number"], limit=10))["results"]:
            found[p["id"]] = {**p, "why": "A-number"}
    name = " ".join(v for v in (subject.get("given_name"), subject.get("family_name")) if v)
    if name:
        for p in search(gw, SearchQuery(name=name, limit=10))["results"]:
            same_birth = p.get("birth_date") == subject.get("birth_date")
            if p["id"] not in found and (same_birth or not subject.get("birth_date")):
                found[p["id"]] = {**p, "why": "name and birth date" if same_birth else "name"}
    return list(found.values())


def link(gw: Gateway, reference: str, person_id: str) -> RedressRequest:
    """Tie a request to a person of the index (it is then in review)."""
    require_privacy_officer(gw)
    request = get_request(gw, reference)
    if request.status == "decided":
        raise ValidationFailed(f"request {reference} is decided; it cannot be re-linked")
    if request.person_id and request.person_id != person_id:
        open_facts = [f for f in facts_of(gw, reference) if f.status == "disputed"]
        if open_facts:
            raise ValidationFailed(
                f"request {reference} has {len(open_facts)} facts marked on person "
                f"{request.person_id}; decide them before linking another person"
            )
    person = _active_person(gw, person_id)
    gw.update(
        request,
        person_id=person.id,
        status="in_review",
        linked_by=gw.ctx.actor.user_id,
        linked_at=utcnow(),
    )
    emit(
        gw.session,
        RedressLinked(object_type="redress_requests", object_ids=[reference], person_id=person.id),
        gw.ctx,
    )
    return request


def _active_person(gw: Gateway, person_id: str) -> Person:
    try:
        person = gw.get(Person, person_id)
    except NotFound:
        raise NotFound(f"no person {person_id!r}") from None
    if person.status != "active":
        target = f"; it now redirects to {person.merged_into_id}" if person.merged_into_id else ""
        raise ValidationFailed(f"person {person_id} is {person.status}{target}")
    return person


# -- the facts a privacy officer can mark --------------------------------------------------------


def markable(gw: Gateway, person_id: str) -> dict[str, list[dict[str, Any]]]:
    """The person's facts by kind, each with the row id a mark names (read under redress)."""
    from immigrationos.resolution import records

    link_rows = gw.select(
        select(SourceRecord)
        .join(RecordLink, RecordLink.source_record_id == SourceRecord.id)
        .where(RecordLink.person_id == person_id, RecordLink.unlinked_at.is_(None))
        .order_by(SourceRecord.source_id, SourceRecord.record_key),
        SourceRecord,
        params={"person": person_id, "redress": "linked records"},
    )
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in link_rows:
        out["record_link"].append(
            {"row_id": record.id, "source_id": record.source_id, "label": record.record_key}
        )
        try:
            raw = records.raw_of(gw, record)
        except ValidationFailed:
            continue
        for attribute in ATTRIBUTES:
            if raw.get(attribute):
                out["attribute"].append(
                    {"row_id": record.id, "field": attribute, "value": raw[attribute],
                     "source_id": record.source_id, "label": f"{record.record_key}"}
                )  # fmt: skip
    for kind in FACT_KINDS.values():
        if kind.model is SourceRecord:
            continue
        for row in _rows_of(gw, kind, person_id):
            out[kind.kind].append(row)
    return dict(out)


def _rows_of(gw: Gateway, kind: FactKind, person_id: str) -> list[dict[str, Any]]:
    model: Any = kind.model
    rows = gw.select(
        select(model).where(model.person_id == person_id).order_by(model.id),
        model,
        params={"person": person_id, "redress": kind.kind},
    )
    return [_row_json(kind.kind, r) for r in rows]


#: The columns that describe a fact row of each kind (what the privacy officer sees).
_DESCRIBE: dict[str, tuple[str, ...]] = {
    "identifier": ("kind", "value"),
    "conviction": ("conviction_date", "offense_category", "offense_level"),
    "admission": ("admitted_on", "class_of_admission", "admitted_until"),
    "encounter": ("occurred_on", "office", "disposition"),
    "benefit": ("filed_on", "form", "status"),
    "court_case": ("case_no", "charge"),
    "departure": ("occurred_at", "channel", "port"),
    "address": ("line", "city", "state"),
    "status": ("status", "started_on", "ended_on"),
}


def _row_json(kind: str, row: Any) -> dict[str, Any]:
    values = [getattr(row, c, None) for c in _DESCRIBE[kind]]
    label = " · ".join(str(v.isoformat() if hasattr(v, "isoformat") else v) for v in values if v)
    return {
        "row_id": row.id,
        "record_id": getattr(row, "source_record_id", None),
        "source_id": getattr(row, "source_id", None),
        "field": row.kind if kind == "identifier" else None,
        "value": row.value if kind == "identifier" else None,
        "label": label,
    }


# -- marking disputed facts ----------------------------------------------------------------------


class Mark(BaseModel):
    """A privacy officer's mark: this fact of the person is disputed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: str
    row_id: str | None = Field(
        default=None,
        description="The row (record id for record_link and attribute); for an attribute, "
        "empty means every linked record giving the disputed value.",
    )
    field: str | None = Field(default=None, description="The attribute, for kind attribute.")
    claimed_value: str | None = Field(default=None, max_length=200)
    item: int | None = Field(default=None, ge=0, description="The filed item it answers.")


def plan_marks(
    request: RedressRequest,
    available: Mapping[str, list[dict[str, Any]]],
    marks: Iterable[Mark],
    already: Iterable[DisputedFact] = (),
) -> list[dict[str, Any]]:
    """The disputed-fact rows ``marks`` would create (pure): each checked against the
    person's facts, refused with a reason when it names nothing of theirs."""
    if request.status != "in_review" or not request.person_id:
        raise ValidationFailed(
            f"request {request.id} is {request.status}: link it to a person first"
        )
    taken = {(f.kind, f.row_id, f.field) for f in already if f.status == "disputed"}
    rows: list[dict[str, Any]] = []
    for i, mark in enumerate(marks):
        for found in _matches(mark, available, i):
            key = (mark.kind, found["row_id"], found.get("field"))
            if key in taken:
                raise ValidationFailed(
                    f"mark {i + 1}: {mark.kind} {found['row_id']} is already disputed"
                )
            taken.add(key)
            rows.append(_fact_row(request, mark, found))
    if not rows:
        raise ValidationFailed("mark at least one fact")
    return rows


def _matches(
    mark: Mark, available: Mapping[str, list[dict[str, Any]]], i: int
) -> list[dict[str, Any]]:
    where = f"mark {i + 1}"
    if mark.kind not in FACT_KINDS:
        raise ValidationFailed(
            f"{where}: unknown kind {mark.kind!r} (one of {', '.join(FACT_KINDS)})"
        )
    if mark.item is not None and mark.item < 0:
        raise ValidationFailed(f"{where}: item must be 0 or more")
    rows = available.get(mark.kind, [])
    if mark.kind == "attribute":
        if mark.field not in ATTRIBUTES:
            raise ValidationFailed(f"{where}: an attribute is one of {', '.join(ATTRIBUTES)}")
        rows = [r for r in rows if r["field"] == mark.field]
        if mark.row_id:
            rows = [r for r in rows if r["row_id"] == mark.row_id]
        else:  # every record giving the value the person's record shows (the disputed one)
            rows = _giving_shown(rows, mark.field, available.get("shown", []))
        if not rows:
            raise ValidationFailed(f"{where}: no linked record of this person gives a {mark.field}")
        return rows
    if not mark.row_id:
        raise ValidationFailed(f"{where}: name the row ({mark.kind}) that is disputed")
    chosen = [r for r in rows if r["row_id"] == mark.row_id]
    if not chosen:
        raise ValidationFailed(
            f"{where}: {mark.kind} {mark.row_id!r} is not one of this person's facts"
        )
    return chosen


def _giving_shown(
    rows: list[dict[str, Any]], attribute: str, shown: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The rows whose value is the one the golden record shows (all rows if none is)."""
    from immigrationos.resolution.golden import ATTRIBUTES as NORMALISE

    value = next((s["value"] for s in shown if s["field"] == attribute), None)
    if not value:
        return rows
    norm = NORMALISE[attribute]
    same = [r for r in rows if norm(str(r["value"])) == norm(str(value))]
    return same or rows


def _fact_row(request: RedressRequest, mark: Mark, found: Mapping[str, Any]) -> dict[str, Any]:
    kind = FACT_KINDS[mark.kind]
    record = found["row_id"] if kind.model is SourceRecord else found.get("record_id")
    claimed = mark.claimed_value
    if claimed is None and mark.item is not None and mark.item < len(request.disputed):
        claimed = request.disputed[mark.item].get("claimed_value")
    return {
        "kind": mark.kind,
        "table_name": kind.model.__tablename__,
        "row_id": found["row_id"],
        "record_id": record,
        "source_id": found.get("source_id"),
        "field": mark.field if mark.kind == "attribute" else found.get("field"),
        "disputed_value": _short(found.get("value")),
        "claimed_value": _short(claimed),
        "item": mark.item,
    }


def _short(value: Any) -> str | None:
    return None if value in (None, "") else str(value)[:200]


@dataclass
class Marked:
    """What marking did: the facts created, and the re-scoring that keeps them out."""

    facts: list[str]
    rescored: dict[str, Any]


def dispute(gw: Gateway, reference: str, marks: list[Mark]) -> Marked:
    """Mark facts of the linked person disputed, audited; then re-score the policy in force so
    that the stored scores leave them out too (the explanation always does)."""
    require_privacy_officer(gw)
    request = get_request(gw, reference)
    if not request.person_id:
        raise ValidationFailed(f"request {reference} is not linked to a person yet")
    available = markable(gw, request.person_id)
    golden = gw.get(Person, request.person_id).golden or {}
    available["shown"] = [
        {"field": a, "value": golden[a].get("value")} for a in ATTRIBUTES if golden.get(a)
    ]
    rows = plan_marks(request, available, marks, facts_of(gw, reference))
    now = utcnow()
    facts = [
        DisputedFact(id=new_id("dsp"), request_id=request.id, person_id=request.person_id,
                     status="disputed", marked_by=gw.ctx.actor.user_id, marked_at=now, **row)
        for row in rows
    ]  # fmt: skip
    gw.add(*facts)
    emit(
        gw.session,
        FactsDisputed(
            object_type="disputed_facts",
            object_ids=[f.id for f in facts],
            person_id=request.person_id,
            kinds=sorted({f.kind for f in facts}),
        ),
        gw.ctx,
    )
    return Marked([f.id for f in facts], rescore(gw, reference))
