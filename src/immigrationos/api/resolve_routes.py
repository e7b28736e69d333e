"""API routes of entity resolution: runs, models, the review queue, events, persons, linking.

Analysts work under ``identity-resolution``; every read of records goes through the gateway
and is audited, and a review decision is recorded under the signed-in analyst's name.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.core.heap import settle_heap
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.resolution import review, service
from immigrationos.resolution.models import ResolutionModel

router = APIRouter(prefix="/api/resolution", tags=["resolution"])
persons_router = APIRouter(prefix="/api/persons", tags=["resolution"])
SessionDep = Annotated[Session, Depends(db_session)]
Analyst = Annotated[
    AccessContext, Depends(access(Role.ANALYST, purposes=(Purpose.IDENTITY_RESOLUTION,)))
]
_index_lock = threading.Lock()


class RunIn(BaseModel):
    retrain: bool = Field(default=False, description="Train a new model first.")
    backend: Literal["duckdb", "spark"] | None = None


class DecisionIn(BaseModel):
    decision: Literal["match", "non-match", "unsure"]
    reason: str = Field(min_length=5, description="Why; kept with the decision.")


@router.post("/runs", status_code=201)
def start_run(request: Request, ctx: Analyst, session: SessionDep, body: RunIn) -> dict[str, Any]:
    """Resolve every person-bearing record into a new version of the person index."""
    settings = request.app.state.runtime.settings
    report = service.run(
        Gateway(session, ctx),
        backend_name=body.backend or settings.resolution_backend,
        spark_master=settings.spark_master,
        retrain=body.retrain,
    )
    request.app.state.link_index = None
    return report.summary() | {"seconds_by_step": report.seconds}


@router.get("/runs")
def list_runs(ctx: Analyst, session: SessionDep) -> list[dict[str, Any]]:
    """Recent runs: each is a version of the person index, with the model it used."""
    return service.recent_runs(Gateway(session, ctx))


@router.get("/models")
def list_models(ctx: Analyst, session: SessionDep) -> list[dict[str, Any]]:
    """Stored models with their training record and blocking analysis."""
    rows = session.scalars(select(ResolutionModel).order_by(ResolutionModel.trained_at.desc()))
    return [
        {
            "id": m.id,
            "origin": m.origin,
            "trained_at": m.trained_at,
            "link_weight": m.document.get("link_weight"),
            "review_weight": m.document.get("review_weight"),
            "training": m.document.get("training", {}),
            "blocking_analysis": m.document.get("blocking_analysis", []),
        }
        for m in rows
    ]


@router.get("/reviews")
def list_reviews(
    ctx: Analyst,
    session: SessionDep,
    status: Literal["open", "decided"] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[dict[str, Any]]:
    """Pairs in the uncertain band (or decided ones)."""
    return [
        {
            "id": r.id,
            "record_l": r.record_l,
            "record_r": r.record_r,
            "match_weight": r.match_weight,
            "status": r.status,
            "decision": r.decision,
        }
        for r in review.open_reviews(Gateway(session, ctx), limit, status)
    ]


@router.get("/reviews/{review_id}")
def get_review(review_id: str, ctx: Analyst, session: SessionDep) -> dict[str, Any]:
    """Both records side by side with each comparison's contribution to the match weight."""
    return review.show(Gateway(session, ctx), review_id).to_json()


@router.post("/reviews/{review_id}/decision")
def decide_review(
    review_id: str, ctx: Analyst, session: SessionDep, body: DecisionIn
) -> dict[str, Any]:
    """Decide a pair: ``match`` and ``non-match`` bind every later run."""
    decided = review.decide(Gateway(session, ctx), review_id, body.decision, body.reason)
    return {"id": decided.id, "status": decided.status, "decision": decided.decision}


@router.get("/events")
def list_events(
    ctx: Analyst, session: SessionDep, needs_review: bool = False
) -> list[dict[str, Any]]:
    """Created, merged and split persons; splits that hold cases first with needs_review."""
    return [
        {
            "id": e.id,
            "kind": e.kind,
            "person_id": e.person_id,
            "related_ids": e.related_ids,
            "case_ids": e.case_ids,
            "needs_review": e.needs_review and e.reviewed_at is None,
            "details": e.details,
            "at": e.at,
        }
        for e in review.events(Gateway(session, ctx), needs_review)
    ]


@router.post("/events/{event_id}/review")
def review_person_event(event_id: str, ctx: Analyst, session: SessionDep) -> dict[str, Any]:
    """Mark a split reviewed; the identity hold on its cases is lifted."""
    released = review.review_event(Gateway(session, ctx), event_id)
    return {"id": event_id, "cases_released": released}


@router.post("/link")
def link(
    request: Request,
    ctx: Analyst,
    session: SessionDep,
    record: Annotated[dict[str, Any], Body(description="Person attributes, or a record_id.")],
) -> dict[str, Any]:
    """Link one record to the index without a full run (the index is kept in memory)."""
    gateway = Gateway(session, ctx)
    with _index_lock:
        index = getattr(request.app.state, "link_index", None)
        if index is None:
            index = service.build_link_index(gateway)
            # Long-lived and large: kept out of the collector's generations, or a full
            # collection stalls a link call by a few hundred milliseconds.
            settle_heap()
            request.app.state.link_index = index
        return service.link_record(gateway, record, index)


@router.get("/export", response_class=PlainTextResponse)
def export(ctx: Analyst, session: SessionDep) -> str:
    """CSV of every resolved record: source, record_key, person_id."""
    lines = ["source,record_key,person_id"]
    for _record, source, key, person in service.export_rows(Gateway(session, ctx)):
        lines.append(f"{source},{_csv(key)},{person}")
    return "\n".join(lines) + "\n"


def _csv(value: str) -> str:
    return f'"{value.replace(chr(34), chr(34) * 2)}"' if any(c in value for c in ',"\n') else value


@persons_router.get("/{person_id}/resolution")
def person_resolution(person_id: str, ctx: Analyst, session: SessionDep) -> dict[str, Any]:
    """A person's golden record (values with provenance and conflicts) and linked records.

    A retired id (merged into another person) redirects to the surviving person.
    """
    return review.person_view(Gateway(session, ctx), person_id)
