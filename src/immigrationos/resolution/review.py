"""The match review queue, person-index events, and reading a person's resolution.

A reviewer sees two records side by side with each comparison's contribution to the match
weight, and decides: ``match`` (they are one person: a must-link on every later run),
``non-match`` (a cannot-link) or ``unsure`` (left to the model). Decisions are audited and
never overwritten silently: deciding again records the new decision and its reason, and the
audit keeps both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from immigrationos.audit.chain import emit
from immigrationos.audit.events import MatchReviewed, PersonEventReviewed
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.models import EnforcementCase
from immigrationos.persons.models import Person, RecordLink
from immigrationos.resolution.model import ModelDoc, Parameters, expand
from immigrationos.resolution.models import MatchReview, PersonEvent, ResolutionModel
from immigrationos.sources.models import SourceRecord

DECISIONS = ("match", "non-match", "unsure")
#: Fields shown side by side (the person attributes every source maps to).
SHOWN_FIELDS = (
    "given_name",
    "middle_name",
    "family_name",
    "birth_date",
    "sex",
    "nationality",
    "citizenship",
    "a_number",
    "passport_no",
    "passport_country",
    "document_no",
    "document_country",
    "fin",
    "itin",
    "state_id",
)


def open_reviews(gateway: Gateway, limit: int = 50, status: str = "open") -> list[MatchReview]:
    """Reviews in ``status``, the most uncertain first (weights nearest the middle of the band)."""
    stmt = (
        select(MatchReview)
        .where(MatchReview.status == status)
        .order_by(MatchReview.match_weight.desc(), MatchReview.id)
        .limit(limit)
    )
    return list(gateway.select(stmt, MatchReview, params={"status": status, "limit": limit}))


@dataclass
class ReviewView:
    """A review with both records' fields, side by side, and the contributions."""

    review: MatchReview
    left: SourceRecord
    right: SourceRecord
    contributions: list[dict[str, Any]]

    def rows(self) -> list[tuple[str, Any, Any]]:
        keys = [k for k in SHOWN_FIELDS if k in self.left.payload or k in self.right.payload]
        return [(k, self.left.payload.get(k), self.right.payload.get(k)) for k in keys]

    def to_json(self) -> dict[str, Any]:
        r = self.review
        return {
            "id": r.id,
            "status": r.status,
            "decision": r.decision,
            "reason": r.reason,
            "match_weight": r.match_weight,
            "match_probability": r.explanation.get("match_probability"),
            "contributions": self.contributions,
            "left": _record_json(self.left),
            "right": _record_json(self.right),
            "fields": [{"field": k, "left": a, "right": b} for k, a, b in self.rows()],
        }


def _record_json(record: SourceRecord) -> dict[str, Any]:
    return {
        "record_id": record.id,
        "source_id": record.source_id,
        "record_key": record.record_key,
        "hidden_fields": getattr(record, "hidden_fields", {}),
    }


def show(gateway: Gateway, review_id: str) -> ReviewView:
    review = gateway.get(MatchReview, review_id)
    left = gateway.get(SourceRecord, review.record_l)
    right = gateway.get(SourceRecord, review.record_r)
    parts = _contributions(gateway, review.model_id, review.explanation)
    return ReviewView(review, left, right, parts)


def _contributions(
    gateway: Gateway, model_id: str | None, explanation: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each comparison's level and weight, labelled from the model that scored the pair."""
    if not model_id or "weights" not in explanation:
        return list(explanation.get("contributions", []))
    params = _PARAMETERS.get(model_id)
    if params is None:
        stored = gateway.session.get(ResolutionModel, model_id)
        if stored is None:
            weights = explanation["weights"].items()
            return [{"comparison": k, "level": "?", "weight": v} for k, v in weights]
        params = _PARAMETERS[model_id] = Parameters(ModelDoc.from_json(stored.document))
    return expand(params, explanation)


#: Parameters per model version; a version's parameters never change (content-derived id).
_PARAMETERS: dict[str, Parameters] = {}


def decide(gateway: Gateway, review_id: str, decision: str, reason: str) -> MatchReview:
    """Record a human decision; it binds every later resolution run."""
    if decision not in DECISIONS:
        raise ValidationFailed(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if len(reason.strip()) < 5:
        raise ValidationFailed("give a reason for the decision (at least a few words)")
    review = gateway.get(MatchReview, review_id)
    gateway.update(
        review,
        status="decided",
        decision=decision,
        reason=reason.strip(),
        decided_by=gateway.ctx.actor.user_id,
        decided_at=utcnow(),
    )
    emit(
        gateway.session,
        MatchReviewed(object_type="match_reviews", object_ids=[review_id], decision=decision),
        gateway.ctx,
    )
    return review


def events(gateway: Gateway, needs_review: bool = False, limit: int = 100) -> list[PersonEvent]:
    stmt = select(PersonEvent).order_by(PersonEvent.at.desc(), PersonEvent.id).limit(limit)
    if needs_review:
        stmt = stmt.where(PersonEvent.needs_review.is_(True), PersonEvent.reviewed_at.is_(None))
    return list(gateway.select(stmt, PersonEvent, params={"needs_review": needs_review}))


def review_event(gateway: Gateway, event_id: str) -> int:
    """Mark a split reviewed and lift the identity hold it put on cases; returns cases released."""
    event = gateway.get(PersonEvent, event_id)
    if not event.needs_review or event.reviewed_at is not None:
        raise ValidationFailed(f"person event {event_id} is not waiting for review")
    gateway.update(event, reviewed_by=gateway.ctx.actor.user_id, reviewed_at=utcnow())
    released = 0
    if event.case_ids:
        released = gateway.execute(
            update(EnforcementCase)
            .where(EnforcementCase.id.in_(event.case_ids))
            .values(identity_hold=None),
            EnforcementCase,
            params={"identity_hold_lifted": event_id},
        )
    emit(
        gateway.session,
        PersonEventReviewed(
            object_type="person_events", object_ids=[event_id], cases_released=released
        ),
        gateway.ctx,
    )
    return released


def resolve_person_id(gateway: Gateway, person_id: str) -> Person:
    """The active person for ``person_id``, following merge redirects (old id → new id)."""
    seen: list[str] = []
    person = gateway.get(Person, person_id)
    while person.merged_into_id and person.merged_into_id not in seen:
        seen.append(person.id)
        person = gateway.get(Person, person.merged_into_id)
    return person


def person_view(gateway: Gateway, person_id: str) -> dict[str, Any]:
    """A person's golden record (each value with provenance and conflicts) and linked records."""
    person = resolve_person_id(gateway, person_id)
    links = gateway.select(
        select(RecordLink)
        .where(RecordLink.person_id == person.id, RecordLink.unlinked_at.is_(None))
        .order_by(RecordLink.source_record_id),
        RecordLink,
        params={"person_id": person.id},
    )
    if not links and person.status != "active":
        raise NotFound(f"person {person_id} has no records")
    return {
        "person_id": person.id,
        "requested_id": person_id,
        "redirected": person.id != person_id,
        "status": person.status,
        "index_version": person.index_version,
        "golden": person.golden,
        "links": [
            {
                "record_id": link.source_record_id,
                "method": link.method,
                "match_weight": link.match_weight,
                "model_version": link.model_version,
                "explanation": {
                    **{k: v for k, v in link.explanation.items() if k not in ("weights", "tf")},
                    "contributions": _contributions(gateway, link.model_version, link.explanation),
                },
                "linked_at": link.linked_at.isoformat() if link.linked_at else None,
            }
            for link in links
        ],
    }
