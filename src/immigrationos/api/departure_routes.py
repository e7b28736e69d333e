"""API routes of departure tracking, under the ``departure-verification`` purpose.

``POST /api/departures/events`` is the embedded transport's HTTP endpoint: one event or a
list, processed at once by the same processor as the stream replay and NATS (exactly once:
a repeated event comes back as a duplicate). The review queue lists departures the matcher
left for a person; a decision moves the cases as a verified departure would. ``/metrics``
(in app.py) serves the monitor's figures to Prometheus.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.departures import monitor, service
from immigrationos.departures.events import json_schema
from immigrationos.departures.models import Departure
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime

router = APIRouter(prefix="/api/departures", tags=["departures"])
SessionDep = Annotated[Session, Depends(db_session)]
_P = (Purpose.DEPARTURE_VERIFICATION,)
Reader = Annotated[
    AccessContext,
    Depends(access(Role.ANALYST, Role.OFFICER, Role.SUPERVISOR, Role.SYSTEM, purposes=_P)),
]
Reviewer = Annotated[
    AccessContext, Depends(access(Role.ANALYST, Role.OFFICER, Role.SUPERVISOR, purposes=_P))
]
Producer = Annotated[AccessContext, Depends(access(Role.SYSTEM, Role.ANALYST, purposes=_P))]
_LOCK = threading.Lock()


class ReviewIn(BaseModel):
    same_person: bool = Field(description="True: the departure is this person's.")
    reason: str = Field(min_length=10, description="Why (kept with the decision).")
    person_id: str | None = Field(None, description="Another person than the one proposed.")


def _processor(request: Request) -> service.Processor:
    """The app's processor for the HTTP transport (built on first use, then kept)."""
    with _LOCK:
        processor = getattr(request.app.state, "departures", None)
        if processor is None:
            runtime: Runtime = request.app.state.runtime
            processor = service.Processor(runtime, "http", long_lived=True)
            request.app.state.departures = processor
        return processor


@router.get("/schema")
def schema() -> dict[str, Any]:
    """The departure event schema (JSON Schema, version 1)."""
    return json_schema()


@router.post("/events")
def events(
    ctx: Producer,
    request: Request,
    body: Annotated[Any, Body(description="One event (an object) or a list of events.")],
) -> dict[str, Any]:
    """Process departure events now; returns each event's outcome (applied with its band,
    duplicate, or dead-letter with the reason)."""
    items = body if isinstance(body, list) else [body]
    processor = _processor(request)
    with _LOCK:
        outcomes = processor.process([service.received(orjson.dumps(i)) for i in items])
    return {"outcomes": [o.to_json() for o in outcomes]}


@router.get("/monitor")
def monitor_figures(ctx: Reader, session: SessionDep) -> dict[str, Any]:
    """Events per minute by channel, matching lag, review queue, verified today."""
    return monitor.snapshot(Gateway(session, ctx))


@router.get("/review")
def review(
    ctx: Reviewer,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Departures waiting for a person's decision, oldest first, with the explanation."""
    return service.review_queue(Gateway(session, ctx), limit, offset)


@router.post("/review/{departure_id}")
def decide(ctx: Reviewer, session: SessionDep, departure_id: str, body: ReviewIn) -> dict[str, Any]:
    """Decide a departure in review (audited); the same person's cases then move."""
    return service.decide_review(
        Gateway(session, ctx), departure_id, body.same_person, body.reason, body.person_id
    )


@router.get("/dead-letters")
def dead_letters(
    ctx: Reader, session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """Events that could not be read, with the reason and the bytes as received."""
    return service.dead_letters(Gateway(session, ctx), limit)


@router.get("/{departure_id}")
def departure(ctx: Reader, session: SessionDep, departure_id: str) -> dict[str, Any]:
    """One departure with its match band and explanation."""
    return service.departure_json(Gateway(session, ctx).get(Departure, departure_id))
