"""Redress filing: the public side of a correction request (step 1 of :mod:`.redress`).

An outside party with no account gives their name, contact and authority, the person's
identifying details, the disputed facts with the claimed correct values and the evidence, and a
statement (:class:`Filing`, :func:`file_request`). They get a reference and a one-time tracking
code (only its SHA-256 is kept) to follow the request (:func:`find_by_code`,
:func:`public_view`), which never shows more than they filed plus the decision.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select

from immigrationos.audit.chain import emit
from immigrationos.audit.events import RedressFiled
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import NotFound
from immigrationos.core.ids import new_id, sha256_hex
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight.models import RedressLetter, RedressRequest

# -- what can be filed (the domain as data) ------------------------------------------------------

#: What a requester may dispute, in their words.
FILED_KINDS: dict[str, str] = {
    "identity": "Records that are not this person (“these records are not me”)",
    "birth_date": "The birth date",
    "name": "The name",
    "conviction": "A conviction",
    "status": "The immigration status or an admission",
    "address": "An address",
    "other": "Something else",
}
FiledKind = Literal["identity", "birth_date", "name", "conviction", "status", "address", "other"]
DECISIONS = ("accepted", "rejected", "partially_accepted")
#: Decision words as a letter and a status page say them.
DECISION_WORDS = {
    "accepted": "accepted",
    "rejected": "rejected",
    "partially_accepted": "partially accepted",
}
_A_NUMBER = re.compile(r"^A?\d{8,9}$")
INTAKE = "redress intake"


# -- filing ------------------------------------------------------------------------------------


class FiledItem(BaseModel):
    """One disputed fact as the requester describes it."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    kind: FiledKind = Field(description="What is disputed: " + "; ".join(FILED_KINDS))
    current_value: str | None = Field(
        default=None, max_length=200, description="What the record says, as far as known."
    )
    claimed_value: str | None = Field(
        default=None, max_length=200, description="The correct value (empty: not mine at all)."
    )
    evidence: str | None = Field(
        default=None, max_length=1000, description="The evidence offered, described."
    )


class Filing(BaseModel):
    """A correction request as filed (API body, page form, CLI)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    requester_name: str = Field(min_length=2, max_length=200)
    requester_contact: str = Field(
        min_length=3, max_length=200, description="Postal or e-mail address for the letter."
    )
    authority: str = Field(
        min_length=3,
        max_length=200,
        description="Who the requester is to the person (the person, attorney, accredited "
        "representative, guardian…).",
    )
    a_number: str | None = Field(default=None, max_length=16)
    given_name: str | None = Field(default=None, max_length=200)
    family_name: str | None = Field(default=None, max_length=200)
    birth_date: date | None = None
    items: list[FiledItem] = Field(min_length=1, max_length=10)
    statement: str = Field(min_length=10, max_length=5000)

    @field_validator("a_number")
    @classmethod
    def _a_number(cls, value: str | None) -> str | None:
        if not value:
            return None
        text = "".join(ch for ch in value.upper() if ch.isalnum())
        if not _A_NUMBER.match(text):
            raise ValueError("an A-number is A followed by 8 or 9 digits")
        digits = text.lstrip("A")
        return f"A{digits.zfill(9)}"

    @model_validator(mode="after")
    def _identifies(self) -> Filing:
        if not self.a_number and not (self.family_name and self.birth_date):
            raise ValueError("identify the person by A-number, or by family name and birth date")
        return self

    def subject(self) -> dict[str, Any]:
        """The person's identifying details as filed."""
        found = {
            "a_number": self.a_number,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "birth_date": self.birth_date.isoformat() if self.birth_date else None,
        }
        return {k: v for k, v in found.items() if v}


def intake_context(what: str) -> AccessContext:
    """The public intake channel: the system account writes what an outside party files
    (under data integration: records received from outside), and the filing's own audit
    event names no actor."""
    return system_context(Purpose.DATA_INTEGRATION, f"{INTAKE}: {what}")


def tracking_code() -> str:
    """A one-time tracking code: 100 random bits as five groups of four letters and digits."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    chars = [secrets.choice(alphabet) for _ in range(20)]
    return "-".join("".join(chars[i : i + 4]) for i in range(0, 20, 4))


def code_hash(reference: str, code: str) -> str:
    """What is kept of a tracking code: its SHA-256 with the reference (typing aside)."""
    typed = "".join(ch for ch in code.upper() if ch.isalnum())
    return sha256_hex(f"{reference}:{typed}")


@dataclass(frozen=True)
class Filed:
    """What the requester is told: the reference and the tracking code (shown once)."""

    reference: str
    tracking_code: str


def file_request(gw: Gateway, filing: Filing, channel: str) -> Filed:
    """Store a filed request (through the intake context's gateway) and audit the filing
    as anonymous, with the kinds disputed and no values."""
    code = tracking_code()
    reference = new_id("rdr")
    request = RedressRequest(
        id=reference,
        person_id=None,
        requester_name=filing.requester_name,
        requester_contact=filing.requester_contact,
        requester_authority=filing.authority,
        subject=filing.subject(),
        disputed=[item.model_dump(mode="json") for item in filing.items],
        claim=filing.statement,
        status="filed",
        filed_at=utcnow(),
        tracking_hash=code_hash(reference, code),
        decision_plan={},
    )
    gw.add(request)
    kinds = sorted({item.kind for item in filing.items})
    filed = RedressFiled(
        object_type="redress_requests", object_ids=[reference], channel=channel, kinds=kinds
    )
    emit(gw.session, filed, None)
    return Filed(reference, code)


# -- the requester's view -------------------------------------------------------------------------


def find_by_code(gw: Gateway, reference: str, code: str) -> RedressRequest | None:
    """The request if ``code`` is its tracking code (compared in constant time), else None."""
    try:
        request = gw.get(RedressRequest, reference.strip())
    except NotFound:
        return None
    expected = request.tracking_hash or ""
    return request if secrets.compare_digest(expected, code_hash(request.id, code)) else None


def public_view(gw: Gateway, request: RedressRequest) -> dict[str, Any]:
    """What the requester may see: what they filed, where it stands, the decision and its
    reasons, and whether a letter is ready. Nothing about the person beyond what they gave."""
    letter = latest_letter(gw, request.id)
    decided = request.status == "decided"
    return {
        "reference": request.id,
        "filed_at": request.filed_at.isoformat(),
        "status": request.status,
        "status_words": _status_words(request),
        "subject": request.subject,
        "items": [
            {**item, "kind_label": FILED_KINDS.get(str(item.get("kind")), item.get("kind"))}
            for item in request.disputed
        ],
        "decision": request.decision if decided else None,
        "decision_words": DECISION_WORDS.get(request.decision or "") if decided else None,
        "decided_at": request.decided_at.isoformat() if decided and request.decided_at else None,
        "reasons": request.decision_reasons if decided else None,
        "letter": {"version": letter.version, "created_at": letter.created_at.isoformat()}
        if letter
        else None,
    }


def _status_words(request: RedressRequest) -> str:
    if request.status == "decided":
        return f"decided: {DECISION_WORDS.get(request.decision or '', request.decision)}"
    if request.status == "in_review":
        return "being reviewed by the privacy office"
    return "received, waiting for review"


def latest_letter(gw: Gateway, request_id: str) -> RedressLetter | None:
    """The newest letter version of a request, if any."""
    rows = gw.select(
        select(RedressLetter)
        .where(RedressLetter.request_id == request_id)
        .order_by(RedressLetter.version.desc())
        .limit(1),
        RedressLetter,
        params={"request": request_id, "letter": "latest"},
    )
    return rows[0] if rows else None
