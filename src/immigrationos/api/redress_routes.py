"""API routes of redress: filing, status, triage and decision.

Filing (``POST /api/redress``) and the status check (``GET /api/redress/status``, with the
tracking code in the ``X-Immos-Tracking-Code`` header so it never sits in a URL or a log)
are public: a person's representative has no account. Both are throttled per client address
(``IMMOS_REDRESS_FILINGS_PER_HOUR``, ``IMMOS_REDRESS_STATUS_CHECKS_PER_MINUTE``) and
audited with no actor. A JSON API needs no CSRF token: it carries no cookie-borne
authority. Everything else is the privacy officer's, under the purpose ``redress``. The
pages (:mod:`immigrationos.web.redress_pages`) call the same functions.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from immigrationos.accounts.roles import Role
from immigrationos.accounts.sessions import Throttle
from immigrationos.api.deps import access, db_session, get_runtime
from immigrationos.audit.chain import emit
from immigrationos.audit.events import AccessDenied, RedressStatusChecked, RedressStatusRefused
from immigrationos.core.errors import AccessRefused
from immigrationos.gateway.context import AccessContext
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import letters, redress, redress_filing, redress_triage
from immigrationos.oversight.models import RedressLetter
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

router = APIRouter(prefix="/api", tags=["redress"])
SessionDep = Annotated[Session, Depends(db_session)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrivacyOfficer = Annotated[
    AccessContext, Depends(access(Role.PRIVACY_OFFICER, purposes=(Purpose.REDRESS,)))
]
CODE_HEADER = "X-Immos-Tracking-Code"
WRONG_CODE = "unknown reference or wrong tracking code"
LetterFormat = Literal["pdf", "html"]


# -- throttling and the public boundary (shared with the pages) ---------------------------------


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def throttle(request: Request, kind: Literal["filing", "status"]) -> Throttle:
    """The application's throttle for public filings or status checks (made on first use)."""
    settings = request.app.state.runtime.settings
    name = f"redress_{kind}_throttle"
    found: Throttle | None = getattr(request.app.state, name, None)
    if found is None:
        found = (
            Throttle(settings.redress_filings_per_hour, 3600.0)
            if kind == "filing"
            else Throttle(settings.redress_status_checks_per_minute, 60.0)
        )
        setattr(request.app.state, name, found)
    return found


def check_throttle(request: Request, kind: Literal["filing", "status"]) -> None:
    """Refuse (HTTP 429, audited with no actor) a client past its allowance."""
    wait = throttle(request, kind).allow(client_of(request))
    if not wait:
        return
    runtime: Runtime = request.app.state.runtime
    with transaction(runtime.sessions) as session:
        emit(session, AccessDenied(operation=f"redress {kind}", reason="throttled"), None)
    raise HTTPException(
        429,
        f"too many redress {kind} requests from this address; try again in {int(wait) + 1} s",
        {"Retry-After": str(int(wait) + 1)},
    )


def file_public(
    runtime: Runtime, filing: redress_filing.Filing, channel: str
) -> redress_filing.Filed:
    """File a request through the intake channel, in its own transaction."""
    with unit_of_work(runtime.sessions, redress_filing.intake_context(f"filing ({channel})")) as gw:
        return redress_filing.file_request(gw, filing, channel)


def status_public(
    runtime: Runtime, reference: str, code: str, what: str = "status"
) -> tuple[dict[str, Any], RedressLetter | None]:
    """The requester's view of their request (and its newest letter); a wrong reference or
    code is refused with one message for both, and the refusal audited."""
    with unit_of_work(
        runtime.sessions, redress_filing.intake_context(f"status check ({what})")
    ) as gw:
        request = redress_filing.find_by_code(gw, reference, code)
        if request is not None:
            emit(
                gw.session,
                RedressStatusChecked(
                    object_type="redress_requests", object_ids=[request.id], what=what
                ),
                None,
            )
            view = redress_filing.public_view(gw, request)
            letter = redress_filing.latest_letter(gw, request.id) if what == "letter" else None
            return view, letter
    with transaction(runtime.sessions) as session:
        emit(session, RedressStatusRefused(object_type="redress_requests", reason=WRONG_CODE), None)
    raise AccessRefused(WRONG_CODE)


def letter_response(letter: RedressLetter | None, fmt: LetterFormat) -> Response:
    """A letter as a download (PDF) or a page (HTML)."""
    if letter is None:
        raise HTTPException(404, "no letter yet: the request is not decided")
    name = f"redress-{letter.request_id}-v{letter.version}"
    if fmt == "pdf" and letter.pdf is not None:
        disposition = {"Content-Disposition": f'attachment; filename="{name}.pdf"'}
        return Response(bytes(letter.pdf), media_type="application/pdf", headers=disposition)
    return Response(letter.html, media_type="text/html")


# -- public -------------------------------------------------------------------------------------


@router.post("/redress", status_code=201)
def file_request(
    request: Request, runtime: RuntimeDep, filing: redress_filing.Filing
) -> dict[str, Any]:
    """File a correction request about a person's record (no account needed).

    The answer holds the reference and a one-time tracking code: keep both, the code is
    never shown again (only its hash is stored). Check progress with
    ``GET /api/redress/status``.
    """
    check_throttle(request, "filing")
    filed = file_public(runtime, filing, "api")
    return {
        "reference": filed.reference,
        "tracking_code": filed.tracking_code,
        "status": "filed",
        "status_url": "/api/redress/status?reference=" + filed.reference,
        "note": f"Send the tracking code in the {CODE_HEADER} header; it is shown only once.",
    }


@router.get("/redress/status")
def request_status(
    request: Request,
    runtime: RuntimeDep,
    reference: Annotated[str, Query(min_length=4, max_length=40)],
    code: Annotated[str, Header(alias=CODE_HEADER, min_length=4, max_length=40)],
) -> dict[str, Any]:
    """Where a request stands, the decision and its reasons (reference and tracking code)."""
    check_throttle(request, "status")
    view, _ = status_public(runtime, reference, code)
    return view


@router.get("/redress/status/letter", response_class=Response)
def request_letter(
    request: Request,
    runtime: RuntimeDep,
    reference: Annotated[str, Query(min_length=4, max_length=40)],
    code: Annotated[str, Header(alias=CODE_HEADER, min_length=4, max_length=40)],
    format: LetterFormat = "pdf",
) -> Response:
    """The decision letter (PDF, or HTML with ``format=html``), with the tracking code."""
    check_throttle(request, "status")
    _, letter = status_public(runtime, reference, code, "letter")
    return letter_response(letter, format)


# -- the privacy officer ----------------------------------------------------------------------


class LinkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    person_id: str = Field(min_length=3, max_length=40)


class DisputeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    marks: list[redress_triage.Mark] = Field(min_length=1, max_length=100)


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reasons: str = Field(min_length=10, max_length=5000, description="Why; sent to the requester.")
    verdicts: list[redress.Verdict] = Field(default_factory=list, max_length=200)
    all: Literal["accept", "reject"] | None = Field(
        default=None, description="The verdict for every marked fact not listed in verdicts."
    )


@router.get("/redress/requests")
def list_requests(
    ctx: PrivacyOfficer,
    session: SessionDep,
    status: Literal["filed", "in_review", "decided"] | None = None,
) -> list[dict[str, Any]]:
    """The redress queue, oldest first (optionally one status)."""
    return redress_triage.queue(Gateway(session, ctx), status)


@router.get("/redress/requests/{reference}")
def get_request(reference: str, ctx: PrivacyOfficer, session: SessionDep) -> dict[str, Any]:
    """A request: the filing, the facts marked, the decision, letters, candidate persons."""
    return redress_triage.detail(Gateway(session, ctx), reference)


@router.post("/redress/requests/{reference}/link")
def link_request(
    reference: str, body: LinkIn, ctx: PrivacyOfficer, session: SessionDep
) -> dict[str, Any]:
    """Link the request to a person of the index (it is then in review)."""
    gw = Gateway(session, ctx)
    redress_triage.link(gw, reference, body.person_id)
    return redress_triage.detail(gw, reference)


@router.get("/redress/requests/{reference}/facts")
def markable_facts(
    reference: str, ctx: PrivacyOfficer, session: SessionDep
) -> dict[str, list[dict[str, Any]]]:
    """The linked person's facts a mark can name, by kind."""
    gw = Gateway(session, ctx)
    request = redress_triage.get_request(gw, reference)
    if not request.person_id:
        raise HTTPException(409, f"request {reference} is not linked to a person yet")
    return redress_triage.markable(gw, request.person_id)


@router.post("/redress/requests/{reference}/disputes", status_code=201)
def mark_disputed(
    reference: str, body: DisputeIn, ctx: PrivacyOfficer, session: SessionDep
) -> dict[str, Any]:
    """Mark facts disputed: left out of prioritization and automated matching until decided."""
    marked = redress_triage.dispute(Gateway(session, ctx), reference, body.marks)
    return {"facts": marked.facts, "rescored": marked.rescored}


def verdicts(gw: Gateway, reference: str, body: DecisionIn) -> list[redress.Verdict]:
    """The listed verdicts, and ``all`` for every other fact still disputed."""
    given = {v.fact_id for v in body.verdicts}
    rest = [
        redress.Verdict(fact_id=f.id, verdict=body.all)
        for f in redress_triage.facts_of(gw, reference)
        if body.all and f.status == "disputed" and f.id not in given
    ]
    return [*body.verdicts, *rest]


@router.post("/redress/requests/{reference}/decision/plan")
def preview_decision(
    reference: str, body: DecisionIn, ctx: PrivacyOfficer, session: SessionDep
) -> dict[str, Any]:
    """What the decision would change, without changing anything."""
    gw = Gateway(session, ctx)
    return redress.plan_decision(
        gw, reference, verdicts(gw, reference, body), body.reasons
    ).to_json()


@router.post("/redress/requests/{reference}/decision")
def decide_request(
    reference: str, body: DecisionIn, ctx: PrivacyOfficer, session: SessionDep
) -> dict[str, Any]:
    """Decide with reasons; an accepted correction propagates and a letter is generated."""
    gw = Gateway(session, ctx)
    return redress.decide(gw, reference, verdicts(gw, reference, body), body.reasons)


@router.get("/redress/requests/{reference}/letter", response_class=Response)
def get_letter(
    reference: str, ctx: PrivacyOfficer, session: SessionDep, format: LetterFormat = "pdf"
) -> Response:
    """The newest letter to the requester (PDF, or HTML with ``format=html``)."""
    return letter_response(letters.latest(Gateway(session, ctx), reference), format)


@router.post("/redress/requests/{reference}/letter", status_code=201)
def reissue_letter(reference: str, ctx: PrivacyOfficer, session: SessionDep) -> dict[str, Any]:
    """Generate the letter again as a new version (after a template change, say)."""
    gw = Gateway(session, ctx)
    letter = letters.issue(gw, redress_triage.get_request(gw, reference))
    return {"id": letter.id, "version": letter.version, "sha256": letter.content_sha256}
