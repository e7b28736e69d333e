"""The letter that tells a requester what was decided on their correction request.

One Jinja2 template (``templates/redress_letter.html.j2``, its style in
``redress_letter.css``) filled from the request as filed and its decided facts, printed to
PDF by WeasyPrint as the lifecycle's documents are (:func:`immigrationos.lifecycle.render`),
and stored as versions (:class:`~immigrationos.oversight.models.RedressLetter`), each with
the hash of its content and of the template files it was made from.

The letter says what was asked, the decision and its reasons, what changed for each item,
and how to ask for reconsideration. It repeats only what the requester filed and what was
decided about it: no value from the agency's records beyond what they gave, so it may be
handed out through the public status page.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from sqlalchemy import select

from immigrationos.audit.chain import emit
from immigrationos.audit.events import RedressLetterIssued
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound, ValidationFailed
from immigrationos.core.ids import new_id
from immigrationos.core.templating import environment
from immigrationos.gateway.core import Gateway
from immigrationos.oversight.models import DisputedFact, RedressLetter, RedressRequest

TEMPLATE_DIR = Path(__file__).with_name("templates")
FILES = ("redress_letter.html.j2", "redress_letter.css")
#: How long a requester has to ask for reconsideration, and where (synthetic office).
RECONSIDERATION_DAYS = 30
OFFICE = "Privacy Office (Redress), ImmigrationOS demonstration agency"
SUBJECT_FIELDS = ("given_name", "family_name", "a_number", "birth_date")

#: What an accepted fact of each kind did, in the letter's words.
ACCEPTED_WORDS = {
    "record_link": "the record was separated from the person's file and will not be linked "
    "to it again",
    "identifier": "the identifier is no longer used for the person",
    "attribute": "the value was corrected",
    "conviction": "the conviction is no longer attributed to the person",
    "admission": "the admission record is no longer used",
    "encounter": "the encounter record is no longer used",
    "benefit": "the application record is no longer used",
    "court_case": "the court record is no longer used",
    "departure": "the departure record is no longer used",
    "address": "the address is no longer used",
    "status": "the status record is no longer used",
}
REJECTED_WORDS = "the record stays as it is"


@dataclass(frozen=True)
class LetterInput:
    """Everything a letter shows."""

    request: RedressRequest
    outcomes: list[dict[str, Any]]
    version: int
    generated_at: datetime


def template_version() -> str:
    """``redress_letter@hash`` of the files a letter is made from."""
    digest = hashlib.sha256()
    for name in FILES:
        digest.update((TEMPLATE_DIR / name).read_bytes())
    return f"redress_letter@{digest.hexdigest()[:12]}"


def _environment() -> jinja2.Environment:
    return environment(TEMPLATE_DIR)


def outcomes(request: RedressRequest, facts: list[DisputedFact]) -> list[dict[str, Any]]:
    """Per filed item: what was asked and what became of it (pure).

    A fact marked without naming an item is reported under "other facts reviewed". A
    corrected value is shown only when it is the value the requester gave.
    """
    out: list[dict[str, Any]] = []
    for i, item in enumerate(request.disputed):
        mine = [f for f in facts if f.item == i]
        out.append({**_item(item), "results": _grouped([_result(f, item) for f in mine])})
    loose = [f for f in facts if f.item is None or f.item >= len(request.disputed)]
    if loose:
        out.append(
            {
                "label": "Other facts reviewed for this request",
                "claimed_value": None,
                "current_value": None,
                "results": _grouped([_result(f, {}) for f in loose]),
            }
        )
    return out


def _grouped(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Equal results once, with how many records they concern (a value on several records)."""
    counts: dict[tuple[Any, str], int] = {}
    for r in results:
        key = (r["accepted"], r["words"])
        counts[key] = counts.get(key, 0) + 1
    return [{"accepted": a, "words": w, "records": n} for (a, w), n in counts.items()]


def _item(item: dict[str, Any]) -> dict[str, Any]:
    from immigrationos.oversight.redress_filing import FILED_KINDS

    return {
        "label": FILED_KINDS.get(str(item.get("kind")), str(item.get("kind"))),
        "claimed_value": item.get("claimed_value"),
        "current_value": item.get("current_value"),
    }


def _result(fact: DisputedFact, item: dict[str, Any]) -> dict[str, Any]:
    if fact.status == "accepted":
        words = ACCEPTED_WORDS.get(fact.kind, "accepted")
        if fact.kind in ("attribute", "identifier") and fact.corrected_value:
            given = fact.corrected_value == item.get("claimed_value")
            words = (
                f"corrected to {fact.corrected_value}, as you asked"
                if given
                else "corrected to the value the evidence establishes"
            )
        elif fact.kind in ("attribute", "identifier"):
            words = "the value is no longer used"
        return {"accepted": True, "words": words}
    if fact.status == "rejected":
        return {"accepted": False, "words": REJECTED_WORDS}
    return {"accepted": None, "words": "still under review"}


def render_html(letter: LetterInput) -> str:
    """The letter as HTML (autoescaped; the template is strict about missing values)."""
    request = letter.request
    return (
        _environment()
        .get_template("redress_letter.html.j2")
        .render(
            r=request,
            subject={k: (request.subject or {}).get(k) for k in SUBJECT_FIELDS},
            items=letter.outcomes,
            version=letter.version,
            template_version=template_version(),
            generated=f"{letter.generated_at:%d %B %Y, %H:%M} UTC",
            decided=f"{request.decided_at:%d %B %Y}" if request.decided_at else None,
            decision_words=_decision_words(request.decision),
            days=RECONSIDERATION_DAYS,
            office=OFFICE,
        )
    )


def _decision_words(decision: str | None) -> str:
    from immigrationos.oversight.redress_filing import DECISION_WORDS

    return DECISION_WORDS.get(decision or "", "not yet decided")


def render_pdf(html: str) -> bytes:
    """Print the letter (WeasyPrint imported late: slow to load, needs Pango)."""
    import weasyprint

    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")  # same input, same bytes (see render.py)
    return bytes(weasyprint.HTML(string=html, base_url=str(TEMPLATE_DIR)).write_pdf())


def issue(gw: Gateway, request: RedressRequest, *, pdf: bool = True) -> RedressLetter:
    """Generate and store a new letter version for a decided request; audited."""
    if request.status != "decided":
        raise ValidationFailed(f"request {request.id} is not decided: no letter yet")
    facts = gw.select(
        select(DisputedFact)
        .where(DisputedFact.request_id == request.id)
        .order_by(DisputedFact.marked_at, DisputedFact.id),
        DisputedFact,
        params={"request": request.id, "letter": "facts"},
    )
    previous = gw.rows(
        select(RedressLetter.version)
        .where(RedressLetter.request_id == request.id)
        .order_by(RedressLetter.version.desc())
        .limit(1),
        RedressLetter,
        params={"request": request.id, "letter": "versions"},
    )
    version = previous[0][0] + 1 if previous else 1
    now = utcnow()
    html = render_html(LetterInput(request, outcomes(request, facts), version, now))
    data = render_pdf(html) if pdf else None
    letter = RedressLetter(
        id=new_id("rlt"),
        request_id=request.id,
        version=version,
        template_version=template_version(),
        html=html,
        pdf=data,
        content_sha256=hashlib.sha256(data if data is not None else html.encode()).hexdigest(),
        created_by=gw.ctx.actor.user_id,
        created_at=now,
    )
    gw.add(letter)
    emit(
        gw.session,
        RedressLetterIssued(
            object_type="redress_letters",
            object_ids=[letter.id, request.id],
            version=version,
            sha256=letter.content_sha256,
        ),
        gw.ctx,
    )
    return letter


def latest(gw: Gateway, request_id: str) -> RedressLetter:
    """The newest letter of a request, or :class:`NotFound`."""
    from immigrationos.oversight.redress_filing import latest_letter

    letter = latest_letter(gw, request_id)
    if letter is None:
        raise NotFound(f"request {request_id} has no letter yet (it is decided first)")
    return letter
