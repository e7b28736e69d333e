"""The gateway is the only way to personal data, and every pass through it is audited."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from immigrationos.accounts.roles import Role
from immigrationos.audit.models import AuditEntry
from immigrationos.core.errors import AccessRefused, NotFound
from immigrationos.gateway.context import AccessContext, Actor, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

OFFICER = Actor("usr-o", "officer.test", Role.OFFICER, "Miami")
ADMIN = Actor("usr-a", "admin.test", Role.ADMINISTRATOR)
CASEWORK = AccessContext(OFFICER, Purpose.CASE_PROCESSING, "case C-1 review", "C-1")


def _entries(runtime: Runtime) -> list[AuditEntry]:
    with transaction(runtime.sessions) as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))


def _person(pid: str = "P-1") -> Person:
    return Person(
        id=pid,
        given_name="Ana",
        family_name="García López",
        birth_date=date(1990, 5, 17),
        sex="F",
        nationality="MEX",
    )


def test_create_read_search_update_delete_are_each_audited(runtime: Runtime) -> None:
    with unit_of_work(runtime.sessions, CASEWORK) as gw:
        gw.add(_person())
    with unit_of_work(runtime.sessions, CASEWORK) as gw:
        person = gw.get(Person, "P-1")
        found = gw.search(
            Person, Person.family_name.like("García%"), params={"family_name": "García*"}
        )
        gw.update(person, given_name="Ana María", sex="F")
        gw.delete([person])
    assert [p.id for p in found] == ["P-1"]
    entries = _entries(runtime)
    assert [e.action for e in entries] == [
        "record.created",
        "record.read",
        "records.searched",
        "record.updated",
        "record.deleted",
    ]
    search = entries[2]
    assert search.search_params == {"family_name": "García*"} and search.result_count == 1
    assert entries[3].details["fields"] == ["given_name"]  # unchanged sex is not listed
    for entry in entries:
        assert (entry.actor_name, entry.actor_role, entry.purpose) == (
            "officer.test",
            "officer",
            "case-processing",
        )
        assert entry.justification == "case C-1 review"
        assert entry.details.get("case_id") == "C-1"
    assert "Ana" not in str([e.details for e in entries])  # values never enter the log


def test_audit_entry_rolls_back_with_the_change(runtime: Runtime) -> None:
    with pytest.raises(RuntimeError), unit_of_work(runtime.sessions, CASEWORK) as gw:
        gw.add(_person())
        raise RuntimeError("boom")
    assert _entries(runtime) == []


def test_direct_orm_access_to_personal_data_is_refused(runtime: Runtime) -> None:
    with pytest.raises(AccessRefused, match="gateway"), transaction(runtime.sessions) as session:
        session.add(_person())
    with pytest.raises(AccessRefused, match="gateway"), transaction(runtime.sessions) as session:
        session.scalars(select(Person)).all()
    with pytest.raises(AccessRefused, match="gateway"), transaction(runtime.sessions) as session:
        session.execute(select(Person.family_name)).all()


def test_administrator_reads_no_personal_data_and_the_refusal_is_audited(
    runtime: Runtime,
) -> None:
    with unit_of_work(runtime.sessions, CASEWORK) as gw:
        gw.add(_person())
    admin = AccessContext(ADMIN, Purpose.SYSTEM_ADMINISTRATION)
    with (
        pytest.raises(AccessRefused, match="separation of duties"),
        unit_of_work(runtime.sessions, admin) as gw,
    ):
        gw.get(Person, "P-1")
    refusal = _entries(runtime)[-1]
    assert (refusal.action, refusal.outcome, refusal.actor_role) == (
        "access.refused",
        "refused",
        "administrator",
    )
    assert "separation of duties" in refusal.details["reason"]


def test_a_role_cannot_declare_a_purpose_it_does_not_have() -> None:
    with pytest.raises(AccessRefused, match="may not work under purpose"):
        AccessContext(OFFICER, Purpose.STATISTICS)


def test_reading_a_missing_row_is_not_found(runtime: Runtime) -> None:
    with pytest.raises(NotFound), unit_of_work(runtime.sessions, CASEWORK) as gw:
        gw.get(Person, "P-missing")


def test_count_is_audited_as_a_search(runtime: Runtime) -> None:
    ctx = system_context(Purpose.STATISTICS, "monthly totals")
    with unit_of_work(runtime.sessions, CASEWORK) as gw:
        gw.add(_person("P-1"), _person("P-2"))
    with unit_of_work(runtime.sessions, ctx) as gw:
        assert gw.count(Person, params={"all": True}) == 2
    last = _entries(runtime)[-1]
    assert (last.action, last.result_count, last.purpose) == ("records.searched", 2, "statistics")


def test_reads_of_plain_values_see_the_work_not_yet_flushed(runtime: Runtime) -> None:
    """Rows of plain values are read on the session's connection, past the ORM: the session's
    pending changes are flushed first, as the ORM's own reads would."""
    with unit_of_work(runtime.sessions, CASEWORK) as gw:
        gw.add(_person("P-1"))
    with unit_of_work(runtime.sessions, CASEWORK) as gw:
        person = gw.get(Person, "P-1")
        person.family_name = "García"  # changed in the session, not yet written
        rows = gw.rows(select(Person.id, Person.family_name), Person, params={"all": True})
        person.given_name = "Ana María"
        filed = gw.bundle(
            {"persons": (select(Person.given_name).where(Person.id == "P-1"), Person)},
            params={"file": "test"},
        )
    assert [tuple(r) for r in rows] == [("P-1", "García")]
    assert [tuple(r) for r in filed["persons"]] == [("Ana María",)]
