"""Disclosure requests: the per-request authorization some agreements demand (tax data).

26 U.S.C. 6103(i)(2) (``shared/domain.md`` §6) allows taxpayer address information to be
disclosed only on a written request naming the taxpayer AND their address, the tax periods,
the statutory authority, and the specific reason the information is relevant to a non-tax
criminal investigation, for use only by officers personally engaged in it. Bulk name lists do
not qualify. The tax source's agreement encodes this as ``prerequisites``; this module checks
a request against them before it exists, and the gateway checks every read against it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from immigrationos.core.clock import utcnow
from immigrationos.core.ids import new_id
from immigrationos.gateway.core import Gateway, Refused
from immigrationos.sources.models import DisclosureRequest
from immigrationos.sources.registry import agreement_in_force

#: How long a request stays usable before a new one must be made.
VALID_FOR = timedelta(days=90)
MIN_REASON = 40


class Subject(BaseModel):
    """The one taxpayer a request names (other keys a form may carry are ignored)."""

    model_config = ConfigDict(extra="ignore")

    family_name: str = Field(min_length=1)
    given_name: str = Field(min_length=1)
    address_line: str = Field(min_length=3)
    city: str | None = None
    postcode: str | None = None


class RequestForm(BaseModel):
    """What an officer submits. ``subjects`` is a list only so that bulk requests can be
    recognised and refused with the reason, rather than failing as malformed input."""

    model_config = ConfigDict(extra="forbid")

    source_id: str = "tax_addresses"
    investigation: str = Field(min_length=3, description="The criminal investigation (case) id.")
    subjects: list[dict[str, Any]] = Field(min_length=1)
    periods: list[int] = Field(default_factory=list, description="Tax years requested.")
    statutory_authority: str = ""
    reason: str = ""


def _problems(form: RequestForm, prerequisites: dict[str, Any]) -> list[str]:
    must_name = set(prerequisites.get("request_must_name", []))
    limit = int(prerequisites.get("max_persons_per_request", 1))
    problems = []
    if len(form.subjects) > limit:
        problems.append(f"it names {len(form.subjects)} people (a request may name {limit})")
    subject = form.subjects[0]
    if "taxpayer_name" in must_name and not (
        subject.get("family_name") and subject.get("given_name")
    ):
        problems.append("it does not name the taxpayer (family and given name)")
    if "taxpayer_address" in must_name and not subject.get("address_line"):
        problems.append("it does not name the taxpayer's address")
    if "tax_periods" in must_name and not form.periods:
        problems.append("it names no tax periods")
    if "statutory_authority" in must_name and len(form.statutory_authority.strip()) < 5:
        problems.append("it cites no statutory authority")
    if "reason" in must_name and len(form.reason.strip()) < MIN_REASON:
        problems.append(
            f"it gives no specific reason (at least {MIN_REASON} characters on why "
            "the information is relevant to the investigation)"
        )
    return problems


def request_disclosure(gateway: Gateway, form: RequestForm) -> DisclosureRequest:
    """Record a disclosure request if it meets the agreement's prerequisites; else refuse why.

    The request belongs to the officer making it, for the purpose declared now; only they may
    use it, and only for the investigation it names.
    """
    ctx = gateway.ctx
    agreement = agreement_in_force(gateway.session, form.source_id)
    if agreement is None:
        raise Refused(f"source {form.source_id!r} has no agreement in force", "disclosure", ctx=ctx)
    prerequisites = agreement.prerequisites or {}
    if not prerequisites.get("per_request"):
        raise Refused(
            f"source {form.source_id!r} needs no disclosure request", "disclosure", ctx=ctx
        )
    if ctx.purpose.value not in agreement.permitted_purposes:
        raise Refused(
            f"agreement {agreement.id} (v{agreement.version}) does not permit purpose "
            f"{ctx.purpose.value!r}",
            "disclosure",
            ctx=ctx,
        )
    problems = _problems(form, prerequisites)
    if problems:
        message = prerequisites.get("refusal_message", "the request does not qualify")
        raise Refused(
            f"refused: {'; '.join(problems)}. {message}",
            "disclosure",
            "disclosure_requests",
            ctx=ctx,
        )
    request = DisclosureRequest(
        id=new_id("dsr"),
        source_id=form.source_id,
        agreement_id=agreement.id,
        purpose=ctx.purpose.value,
        requested_by=ctx.actor.user_id,
        investigation=form.investigation,
        subject=Subject.model_validate(form.subjects[0]).model_dump(exclude_none=True),
        periods=sorted(set(form.periods)),
        statutory_authority=form.statutory_authority.strip(),
        reason=form.reason.strip(),
        status="active",
        expires_at=utcnow() + VALID_FOR,
    )
    gateway.add(request)
    return request
