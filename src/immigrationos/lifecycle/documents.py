"""Documents of a case: filled from the ontology with each value's source, stored immutably.

:mod:`.render` turns values into HTML and PDF; this module chooses the values (the person's
golden record with its provenance, the step's parameters with who entered them, the case's
conditions) and stores every rendering as a new version identified by its hash. A draft is
superseded by the approved version; nothing is edited in place.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway
from immigrationos.lifecycle.facts import CaseFacts
from immigrationos.lifecycle.models import Document
from immigrationos.lifecycle.render import (
    DETAINER_BASES,
    TEMPLATES,
    DocumentInput,
    Value,
    missing,
    render,
)
from immigrationos.lifecycle.table import load_table
from immigrationos.persons.models import Person

#: Parameter names a document field is filled from, when they differ.
_FROM_PARAMS: dict[str, str] = {
    "probable_cause": "probable_cause",
    "probable_cause_basis": "probable_cause_basis",
    "hearing_date": "hearing_at",
    "hearing_time": "hearing_at",
    "hearing_place": "hearing_place",
    "departure_deadline": "departure_deadline",
    "destination_country": "destination",
    "encounter_date": "encounter_date",
}
#: The table's detainer basis choices, in the order of the form's four boxes.
_DETAINER_CHOICES = (
    "final-order-of-removal",
    "pending-removal-proceedings",
    "biometric-match-and-records-indicate-removable",
    "statements-to-officer-indicate-removable",
)
_STATUS_WORDS = {
    "LEAD": "We have information about you, but no action has been taken.",
    "ENCOUNTERED": "An officer met you and wrote down what happened.",
    "IN_PROCEEDINGS": "Your case is before an immigration judge.",
    "FINAL_ORDER": "A judge's order to leave the United States is final.",
}


def _person_values(person: Person) -> dict[str, Value]:
    golden = person.golden or {}
    out: dict[str, Value] = {}
    labels = {
        "family_name": "Family name",
        "given_name": "Given name",
        "birth_date": "Date of birth",
        "nationality": "Citizenship",
        "a_number": "A-number",
        "fin": "FIN",
    }
    for name, label in labels.items():
        entry = golden.get(name)
        if entry:
            source = (
                f"{entry.get('source_id')} record "
                f"{entry.get('record_key') or entry.get('record_id')}"
                f" (seen {str(entry.get('observed_on') or 'undated')[:10]})"
            )
            out[name] = Value(label, entry.get("value"), source)
        elif getattr(person, name, None):
            out[name] = Value(label, getattr(person, name), "person index")
    return out


def _param_values(params: dict[str, Any], entered_by: str, at: datetime) -> dict[str, Value]:
    source = f"entered by {entered_by}, {at:%Y-%m-%d}"
    out = {k: Value(k.replace("_", " ").capitalize(), v, source) for k, v in params.items()}
    if "hearing_at" in params:
        moment = datetime.fromisoformat(str(params["hearing_at"]))
        out["hearing_date"] = Value("Hearing date", moment.date(), source)
        out["hearing_time"] = Value("Hearing time", f"{moment:%H:%M} UTC", source)
    for field_name, param in _FROM_PARAMS.items():
        if param in params and field_name not in out:
            out[field_name] = Value(
                field_name.replace("_", " ").capitalize(), params[param], source
            )
    return out


def _case_values(facts: CaseFacts, kind: str, actor: str, at: datetime) -> dict[str, Value]:
    table = load_table()
    source = f"case {facts.case_id}"
    out: dict[str, Value] = {
        "officer": Value("Officer", actor, None),
        "requested_by": Value("Requested by", actor, None),
        "case_state_description": Value(
            "Where your case is",
            _STATUS_WORDS.get(facts.state, table.states[facts.state].description),
            source,
        ),
        "next_step": Value("What happens next", _next_step(facts), source),
    }
    final = facts.active("final_order")
    if final:
        evidence = final[-1].params.get("evidence", [{}])
        basis = next((e.get("basis") for e in evidence if e.get("basis")), "final order")
        out["final_order_basis"] = Value("Final order basis", basis, source)
        out["final_order_date"] = Value("Final since", final[-1].opened_at.date(), source)
    warrants = [d for d in facts.documents if d[0] in ("arrest_warrant", "warrant_of_removal")]
    if warrants:
        out["warrant_reference"] = Value("Warrant", f"{warrants[-1][0]} {warrants[-1][2]}", source)
    open_deadlines = sorted(d.due_at for d in facts.deadlines if d.status == "open")
    if open_deadlines:
        out["next_deadline"] = Value("Next deadline", open_deadlines[0], source)
    return out


def _next_step(facts: CaseFacts) -> str:
    deadlines = sorted((d.due_at, d.kind) for d in facts.deadlines if d.status == "open")
    if deadlines:
        label = load_table().deadlines[deadlines[0][1]].label
        return f"{label}: {deadlines[0][0]:%d %B %Y}."
    return "An officer will contact you in writing before anything else happens."


def values_for(
    gw: Gateway, facts: CaseFacts, kind: str, params: dict[str, Any], actor: str, at: datetime
) -> dict[str, Value]:
    """Every value a document of ``kind`` can use, each with its source."""
    person = gw.get(Person, facts.person_id)
    values = _case_values(facts, kind, actor, at)
    values.update(_person_values(person))
    values.update(_param_values(params, actor, at))
    if kind == "encounter_record":
        values.setdefault("encounter_date", Value("Encounter date", at.date(), None))
    if kind == "detainer" and "probable_cause_basis" in params:
        basis = DETAINER_BASES[_DETAINER_CHOICES.index(str(params["probable_cause_basis"]))]
        values["probable_cause_basis"] = Value(
            "Probable cause", basis, values["probable_cause_basis"].source
        )
        values["release_date"] = Value("Scheduled release", params.get("release_at"), None)
    if kind == "departure_verification":
        values["evidence"] = Value(
            "Evidence", f"departure record {params.get('departure_id')}", "departure verification"
        )
    return values


def missing_for(
    gw: Gateway, facts: CaseFacts, kind: str, params: dict[str, Any], actor: str, at: datetime
) -> list[str]:
    """Fields a document of ``kind`` still lacks."""
    return missing(kind, values_for(gw, facts, kind, params, actor, at))


def store(
    gw: Gateway,
    facts: CaseFacts,
    kind: str,
    params: dict[str, Any],
    *,
    actor: str,
    at: datetime,
    draft: bool,
    approved_by: str | None = None,
    pdf: bool = True,
) -> Document:
    """Render a document version and store it, superseding the case's previous one."""
    values = values_for(gw, facts, kind, params, actor, at)
    doc_in = DocumentInput(
        kind, facts.case_id, facts.person_id, values, draft, at, actor, approved_by
    )
    rendered = render(doc_in, pdf=pdf)
    previous = gw.rows(
        select(Document.id, Document.version)
        .where(Document.case_id == facts.case_id, Document.kind == kind)
        .order_by(Document.version.desc())
        .limit(1),
        Document,
        params={"case": facts.case_id, "kind": kind},
    )
    document = Document(
        id=new_id("doc"),
        case_id=facts.case_id,
        person_id=facts.person_id,
        kind=kind,
        version=(previous[0][1] + 1) if previous else 1,
        template_version=rendered.template_version,
        status="draft" if draft else "final",
        content_sha256=rendered.sha256,
        html=rendered.html,
        pdf=rendered.pdf,
        supersedes_id=previous[0][0] if previous else None,
        created_by=gw.ctx.actor.user_id,
        created_at=at,
    )
    gw.add(document)
    facts.documents = [d for d in facts.documents if d[0] != kind] + [
        (kind, document.status, document.id)
    ]
    return document


# -- new versions after a correction ------------------------------------------------------------

#: The person values (golden-record attributes) each document can show.
PERSON_FIELDS = ("family_name", "given_name", "birth_date", "nationality", "a_number", "fin")


def shows(kind: str, attributes: set[str]) -> bool:
    """Whether a document of ``kind`` prints any of the person ``attributes``."""
    spec = TEMPLATES.get(kind)
    return spec is not None and bool(attributes & {*spec.required, *spec.optional})


def latest_versions(gw: Gateway, person_id: str) -> list[Document]:
    """The newest version of each (case, kind) document of the person's cases."""
    rows = gw.select(
        select(Document)
        .where(Document.person_id == person_id, Document.case_id.is_not(None))
        .order_by(Document.case_id, Document.kind, Document.version.desc()),
        Document,
        params={"person": person_id, "documents": "latest versions"},
    )
    newest: dict[tuple[str | None, str], Document] = {}
    for doc in rows:
        newest.setdefault((doc.case_id, doc.kind), doc)
    return list(newest.values())


def origin(gw: Gateway, document: Document) -> tuple[dict[str, Any], str, str | None]:
    """The step parameters a version was made from, who issued it and who approved it.

    A requested action keeps its parameters and document ids on the request (and the
    approval names the approver); a step taken directly keeps them on its case event, written
    at the same moment as the document.
    """
    from immigrationos.accounts.models import User
    from immigrationos.lifecycle.models import ActionRequest, Approval, CaseEvent

    def username(user_id: str | None) -> str:
        user = gw.session.get(User, user_id) if user_id else None
        return user.username if user else "system"

    requests = gw.select(
        select(ActionRequest).where(ActionRequest.case_id == document.case_id),
        ActionRequest,
        params={"case": document.case_id, "documents": "origin"},
    )
    for request in requests:
        if document.id in (request.document_ids or []):
            approvals = gw.select(
                select(Approval).where(
                    Approval.request_id == request.id, Approval.decision == "approved"
                ),
                Approval,
                params={"request": request.id, "documents": "origin"},
            )
            approver = username(approvals[0].decided_by) if approvals else None
            return dict(request.params), username(request.requested_by), approver
    events = gw.select(
        select(CaseEvent).where(
            CaseEvent.case_id == document.case_id, CaseEvent.at == document.created_at
        ),
        CaseEvent,
        params={"case": document.case_id, "documents": "origin"},
    )
    if events:
        return dict(events[0].params), username(events[0].actor_id), None
    return {}, username(document.created_by), None


def regenerate(gw: Gateway, previous: Document, *, at: datetime, pdf: bool = True) -> Document:
    """A new version of ``previous`` with today's person values (a correction), superseding it.

    The step's own parameters, issuer and approver are those of the version it replaces and
    the values are filled as of that version's date; only what the person index now says
    (the golden record) differs. The renderer still refuses a version missing a required
    field (:class:`~immigrationos.lifecycle.render.DocumentRefused`).
    """
    from immigrationos.lifecycle.facts import gather

    assert previous.case_id is not None
    facts = gather(gw, previous.case_id)
    params, actor, approver = origin(gw, previous)
    values = values_for(gw, facts, previous.kind, params, actor, previous.created_at)
    draft = previous.status == "draft"
    doc_in = DocumentInput(
        previous.kind, previous.case_id, facts.person_id, values, draft, at, actor, approver
    )
    rendered = render(doc_in, pdf=pdf)
    document = Document(
        id=new_id("doc"),
        case_id=previous.case_id,
        person_id=facts.person_id,
        kind=previous.kind,
        version=previous.version + 1,
        template_version=rendered.template_version,
        status=previous.status,
        content_sha256=rendered.sha256,
        html=rendered.html,
        pdf=rendered.pdf,
        supersedes_id=previous.id,
        created_by=gw.ctx.actor.user_id,
        created_at=at,
    )
    gw.add(document)
    return document
