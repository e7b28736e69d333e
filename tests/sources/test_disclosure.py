"""The tax-address rule (26 U.S.C. 6103(i)(2)): bulk use is refused with the reason; a
well-formed single request lets only its officer read only its taxpayer, for its case."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.roles import Role
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused
from immigrationos.gateway.context import AccessContext, Actor, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Identifier
from immigrationos.runtime import Runtime
from immigrationos.sources.disclosure import RequestForm, request_disclosure
from immigrationos.sources.models import SourceRecord
from immigrationos.store.engine import transaction

OFFICER = Actor("usr-o1", "officer.one", Role.OFFICER, "Miami")
OTHER = Actor("usr-o2", "officer.two", Role.OFFICER, "Miami")


@pytest.fixture(autouse=True)
def officers(world_runtime: Runtime) -> None:
    """The two officers exist as accounts (requests name their requester)."""
    with transaction(world_runtime.sessions) as session:
        for actor in (OFFICER, OTHER):
            if session.get(User, actor.user_id) is None:
                session.add(
                    User(
                        id=actor.user_id,
                        username=actor.username,
                        display_name=actor.username,
                        role=actor.role.value,
                        office=actor.office,
                    )
                )


CASE = "CI-2026-0042"
AUTHORITY = "26 U.S.C. 6103(i)(2)"
REASON = (
    "The taxpayer is a named subject in a document-fraud investigation; the address is "
    "needed to serve a grand-jury subpoena."
)


def _investigating(
    actor: Actor = OFFICER, case: str | None = CASE, request_id: str | None = None
) -> AccessContext:
    return AccessContext(actor, Purpose.CRIMINAL_INVESTIGATION, "investigation", case, request_id)


def _taxpayer(runtime: Runtime) -> dict[str, Any]:
    with unit_of_work(runtime.sessions, system_context(Purpose.DATA_INTEGRATION, "t")) as gw:
        records = gw.search(
            SourceRecord, SourceRecord.source_id == "tax_addresses", params={}, limit=200
        )
    record = next(
        r
        for r in records
        if r.payload.get("family_name")
        and r.payload.get("given_name")
        and r.payload.get("address_line")
    )
    return record.payload


def _form(payload: dict[str, Any], **changes: Any) -> RequestForm:
    fields = {
        "investigation": CASE,
        "subjects": [{k: payload[k] for k in ("family_name", "given_name", "address_line")}],
        "periods": [payload["tax_year"]],
        "statutory_authority": AUTHORITY,
        "reason": REASON,
    }
    return RequestForm(**(fields | changes))


def _request(runtime: Runtime, form: RequestForm, actor: Actor = OFFICER) -> str:
    with unit_of_work(runtime.sessions, _investigating(actor)) as gw:
        return request_disclosure(gw, form).id


def test_a_bulk_request_is_refused_with_the_reason(world_runtime: Runtime) -> None:
    payload = _taxpayer(world_runtime)
    names = [
        {"family_name": f"Name{i}", "given_name": "X", "address_line": "1 Main St"}
        for i in range(40)
    ]
    with pytest.raises(AccessRefused, match=r"names 40 people .*bulk or name-list requests"):
        _request(world_runtime, _form(payload, subjects=names))
    with transaction(world_runtime.sessions) as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
    assert entry is not None and entry.action == "access.refused"


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"subjects": [{"family_name": "A", "given_name": "B"}]}, "address"),
        ({"periods": []}, "tax periods"),
        ({"statutory_authority": ""}, "statutory authority"),
        ({"reason": "needed"}, "specific reason"),
    ],
)
def test_an_incomplete_request_is_refused(
    world_runtime: Runtime, change: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(AccessRefused, match=complaint):
        _request(world_runtime, _form(_taxpayer(world_runtime), **change))


def test_tax_data_is_unreadable_without_a_request(world_runtime: Runtime) -> None:
    with (
        pytest.raises(AccessRefused, match="requires a disclosure request"),
        unit_of_work(world_runtime.sessions, _investigating()) as gw,
    ):
        gw.require_source("tax_addresses")


def test_a_well_formed_request_reads_only_its_taxpayer(world_runtime: Runtime) -> None:
    payload = _taxpayer(world_runtime)
    request_id = _request(world_runtime, _form(payload))
    ctx = _investigating(request_id=request_id)
    with unit_of_work(world_runtime.sessions, ctx) as gw:
        gw.require_source("tax_addresses")
        records = gw.search(
            SourceRecord,
            SourceRecord.source_id == "tax_addresses",
            params={"taxpayer": "named in request"},
            limit=1000,
        )
        itins = gw.search(
            Identifier,
            Identifier.source_id == "tax_addresses",
            Identifier.kind == "itin",
            params={},
            limit=1000,
        )
    assert records, "the named taxpayer's record is readable"
    for record in records:
        assert record.payload["family_name"].lower() == payload["family_name"].lower()
        assert record.payload["address_line"].lower() == payload["address_line"].lower()
        assert record.payload["tax_year"] == payload["tax_year"]
    assert {i.value for i in itins} == {r.payload["itin"] for r in records}


@pytest.mark.parametrize("who", ["another officer", "another case", "no case"])
def test_a_request_serves_only_its_officer_and_investigation(
    world_runtime: Runtime, who: str
) -> None:
    request_id = _request(world_runtime, _form(_taxpayer(world_runtime)))
    ctx = {
        "another officer": _investigating(OTHER, request_id=request_id),
        "another case": _investigating(case="CI-other", request_id=request_id),
        "no case": _investigating(case=None, request_id=request_id),
    }[who]
    with (
        pytest.raises(AccessRefused, match="disclosure request"),
        unit_of_work(world_runtime.sessions, ctx) as gw,
    ):
        gw.search(SourceRecord, SourceRecord.source_id == "tax_addresses", params={})


def test_a_record_outside_the_request_is_refused(world_runtime: Runtime) -> None:
    payload = _taxpayer(world_runtime)
    request_id = _request(world_runtime, _form(payload))
    with unit_of_work(world_runtime.sessions, system_context(Purpose.DATA_INTEGRATION, "t")) as gw:
        others = gw.search(
            SourceRecord, SourceRecord.source_id == "tax_addresses", params={}, limit=500
        )
    other = next(r for r in others if r.payload.get("address_line") != payload["address_line"])
    with (
        pytest.raises(AccessRefused, match="outside what the disclosure request names"),
        unit_of_work(world_runtime.sessions, _investigating(request_id=request_id)) as gw,
    ):
        gw.get(SourceRecord, other.id)
