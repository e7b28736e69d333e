"""API routes of the case lifecycle: cases, steps, requests and approvals, documents,
deadlines, removal flights and enforcement operations.

Officers, supervisors and counsel work under ``case-processing``; the engine checks each
step's roles, guards and the two-person rule, so the routes only translate HTTP.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import PlainTextResponse, Response
from pydantic import AwareDatetime, BaseModel, Field
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.api.deps import access, db_session
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle import diagram, logistics, operations, scheduler, service, views
from immigrationos.lifecycle.facts import check_office
from immigrationos.lifecycle.models import Document, EnforcementCase
from immigrationos.lifecycle.table import load_table
from immigrationos.runtime import Runtime

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["lifecycle"])
SessionDep = Annotated[Session, Depends(db_session)]
Caseworker = Annotated[
    AccessContext,
    Depends(
        access(Role.OFFICER, Role.SUPERVISOR, Role.COUNSEL, purposes=(Purpose.CASE_PROCESSING,))
    ),
]
Supervisor = Annotated[
    AccessContext, Depends(access(Role.SUPERVISOR, purposes=(Purpose.CASE_PROCESSING,)))
]


class CaseIn(BaseModel):
    person_id: str
    office: str
    reason: str = Field(min_length=5, description="The lead: why the case is opened.")


class StepIn(BaseModel):
    action: str = Field(description="A transition of the lifecycle table.")
    params: dict[str, Any] = Field(default_factory=dict)


class RequestIn(StepIn):
    justification: str = Field(min_length=10)


class DecisionIn(BaseModel):
    approve: bool
    justification: str = Field(min_length=5)


class FlightIn(BaseModel):
    kind: str = Field(pattern="^(charter|commercial)$")
    carrier: str
    flight_no: str
    origin: str
    destination: str = Field(pattern="^[A-Z]{3}$")
    departs_at: AwareDatetime
    capacity: int = Field(ge=1)


class OperationIn(BaseModel):
    name: str
    office: str | None = None
    planned_for: AwareDatetime
    justification: str = Field(min_length=10)
    targets: list[StepIn] = Field(min_length=1)
    case_ids: list[str] = Field(min_length=1, description="The case of each target, in order.")


@router.get("/lifecycle/table")
def lifecycle_table(ctx: Caseworker) -> dict[str, Any]:
    """The lifecycle table: states, transitions, deadlines (the declared law of the engine)."""
    return load_table().model_dump(mode="json", by_alias=True)


@router.get("/lifecycle/diagram", response_class=PlainTextResponse)
def lifecycle_diagram(ctx: Caseworker) -> str:
    """The state diagram (Mermaid), generated from the table."""
    return diagram.mermaid()


@router.post("/cases", status_code=201)
def open_case(ctx: Caseworker, session: SessionDep, body: CaseIn) -> dict[str, Any]:
    """Open a case (LEAD) for a person of the index."""
    gw = Gateway(session, ctx)
    case = service.open_case(gw, body.person_id, office=body.office, reason=body.reason)
    return views.case_page(gw, case.id)


@router.get("/cases")
def list_cases(
    ctx: Caseworker,
    session: SessionDep,
    state: str | None = None,
    office: str | None = None,
    person_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Cases, newest first."""
    return views.list_cases(
        Gateway(session, ctx),
        state=state,
        office=office,
        person_id=person_id,
        limit=limit,
        offset=offset,
    )


@router.get("/cases/counts")
def case_counts(ctx: Caseworker, session: SessionDep) -> dict[str, int]:
    """How many cases are in each state."""
    return views.state_counts(Gateway(session, ctx))


@router.get("/cases/{case_id}")
def case_page(
    ctx: Caseworker, session: SessionDep, case_id: str, all_options: bool = False
) -> dict[str, Any]:
    """A case with its conditions, deadlines, events, documents and what can happen next."""
    return views.case_page(Gateway(session, ctx), case_id, all_options=all_options)


@router.post("/cases/{case_id}/preview")
def preview(ctx: Caseworker, session: SessionDep, case_id: str, body: StepIn) -> dict[str, Any]:
    """What a step would do now and which guards would block it, without doing it."""
    return service.preview(Gateway(session, ctx), case_id, body.action, body.params).as_dict()


@router.post("/cases/{case_id}/steps", status_code=201)
def perform(ctx: Caseworker, session: SessionDep, case_id: str, body: StepIn) -> dict[str, Any]:
    """Take a step that needs no approval; 409 with the blocking guards when one blocks."""
    return service.perform(Gateway(session, ctx), case_id, body.action, body.params).as_dict()


@router.post("/cases/{case_id}/requests", status_code=201)
def request_action(
    ctx: Caseworker, session: SessionDep, case_id: str, body: RequestIn
) -> dict[str, Any]:
    """Request an action that a second person must approve (documents drafted)."""
    gw = Gateway(session, ctx)
    req = service.request_action(gw, case_id, body.action, body.params, body.justification)
    return views.request_dict(req)


@router.get("/requests")
def pending_requests(
    ctx: Caseworker, session: SessionDep, office: str | None = None
) -> list[dict[str, Any]]:
    """Requests waiting for a decision, oldest first."""
    return views.pending_requests(Gateway(session, ctx), office)


@router.post("/requests/{request_id}/decision")
def decide(
    ctx: Caseworker, session: SessionDep, request_id: str, body: DecisionIn
) -> dict[str, Any]:
    """Approve (guards re-checked, documents finalised) or refuse someone else's request."""
    approval = service.decide(Gateway(session, ctx), request_id, body.approve, body.justification)
    return {
        "request_id": request_id,
        "decision": approval.decision,
        "expires_at": approval.expires_at.isoformat() if approval.expires_at else None,
        "guard_checks": approval.guard_checks,
    }


@router.post("/requests/{request_id}/execution")
def execute(ctx: Caseworker, session: SessionDep, request_id: str) -> dict[str, Any]:
    """Carry out an approved request (approval valid, guards re-checked now)."""
    return service.execute(Gateway(session, ctx), request_id).as_dict()


@router.get("/documents/{document_id}")
def document(ctx: Caseworker, session: SessionDep, document_id: str, format: str = "json") -> Any:
    """A stored document version: metadata (json), or its ``pdf`` or ``html``."""
    gw = Gateway(session, ctx)
    doc = gw.get(Document, document_id)
    if doc.case_id:
        check_office(gw, gw.get(EnforcementCase, doc.case_id))
    if format == "pdf" and doc.pdf is not None:
        return Response(bytes(doc.pdf), media_type="application/pdf")
    if format == "html":
        return Response(doc.html, media_type="text/html")
    return {
        "id": doc.id,
        "case_id": doc.case_id,
        "kind": doc.kind,
        "version": doc.version,
        "status": doc.status,
        "template_version": doc.template_version,
        "sha256": doc.content_sha256,
        "supersedes_id": doc.supersedes_id,
        "created_at": doc.created_at.isoformat(),
        "has_pdf": doc.pdf is not None,
    }


@router.get("/overdue")
def overdue(
    ctx: Caseworker, session: SessionDep, office: str | None = None
) -> list[dict[str, Any]]:
    """Deadlines past due that need a person, by office."""
    return scheduler.overdue(Gateway(session, ctx), office=office)


@router.post("/flights", status_code=201)
def create_flight(ctx: Caseworker, session: SessionDep, body: FlightIn) -> dict[str, Any]:
    """Plan a removal flight."""
    f = logistics.create_flight(Gateway(session, ctx), **body.model_dump())
    return {"id": f.id, "status": f.status}


@router.get("/flights")
def flights(ctx: Caseworker, session: SessionDep) -> list[dict[str, Any]]:
    """Removal flights."""
    return [
        {
            "id": f.id,
            "kind": f.kind,
            "carrier": f.carrier,
            "flight_no": f.flight_no,
            "origin": f.origin,
            "destination": f.destination,
            "departs_at": f.departs_at.isoformat(),
            "capacity": f.capacity,
            "status": f.status,
        }
        for f in logistics.list_flights(Gateway(session, ctx))
    ]


@router.get("/flights/{flight_id}/manifest")
def manifest(ctx: Caseworker, session: SessionDep, flight_id: str) -> list[dict[str, Any]]:
    """The manifest with every passenger re-checked now."""
    return [line.as_dict() for line in logistics.manifest(Gateway(session, ctx), flight_id)]


@router.post("/flights/{flight_id}/departure")
def depart(ctx: Supervisor, session: SessionDep, flight_id: str) -> dict[str, Any]:
    """Record the flight's departure: passengers re-checked, the rest verified as removed."""
    return logistics.depart(Gateway(session, ctx), flight_id)


@router.post("/operations", status_code=201)
def create_operation(ctx: Caseworker, session: SessionDep, body: OperationIn) -> dict[str, Any]:
    """Plan an enforcement operation: one request per target, each guard-checked."""
    if len(body.case_ids) != len(body.targets):
        raise ValidationFailed("give one case id per target")
    targets = [
        {"case_id": cid, "action": t.action, "params": t.params}
        for cid, t in zip(body.case_ids, body.targets, strict=True)
    ]
    op, refused = operations.create(
        Gateway(session, ctx),
        name=body.name,
        office=body.office,
        planned_for=body.planned_for,
        justification=body.justification,
        targets=targets,
    )
    return {"id": op.id, "status": op.status, "refused": refused}


@router.post("/operations/{operation_id}/decision")
def decide_operation(
    ctx: Supervisor, session: SessionDep, operation_id: str, body: DecisionIn
) -> dict[str, Any]:
    """A different supervisor approves (each target re-checked) or refuses."""
    dropped = operations.decide(
        Gateway(session, ctx), operation_id, body.approve, body.justification
    )
    return {"operation": operation_id, "dropped": dropped}


@router.post("/operations/{operation_id}/execution")
def execute_operation(ctx: Caseworker, session: SessionDep, operation_id: str) -> dict[str, Any]:
    """Carry out an approved operation; blocked targets drop out with the reason."""
    return operations.execute(Gateway(session, ctx), operation_id)


def start_scheduler(app: FastAPI, runtime: Runtime) -> None:
    """Run the lifecycle tick in the background every ``lifecycle_tick_seconds``."""
    every = runtime.settings.lifecycle_tick_seconds
    if every <= 0:
        return

    async def loop() -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await asyncio.to_thread(scheduler.tick, runtime.sessions)
            except Exception:  # the loop must outlive one bad pass; the log says why
                log.exception("lifecycle tick failed")

    async def startup() -> None:
        app.state.scheduler_task = asyncio.create_task(loop())

    async def shutdown() -> None:
        task = getattr(app.state, "scheduler_task", None)
        if task is not None:
            task.cancel()

    app.router.on_startup.append(startup)
    app.router.on_shutdown.append(shutdown)
