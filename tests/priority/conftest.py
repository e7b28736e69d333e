"""Fixtures of the prioritization tests: a store with the shipped sources and demo accounts,
and a way to add hand-built persons with the facts a policy reads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pytest
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.core.clock import frozen_at
from immigrationos.facts.models import (
    Admission,
    BenefitApplication,
    Conviction,
    CourtCase,
    CourtDecision,
    Encounter,
    Proceeding,
)
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.priority import features
from immigrationos.runtime import Runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

AS_OF = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
PRIORITIZING = Purpose.ENFORCEMENT_PRIORITIZATION


@dataclass
class Agency:
    """Acting as the demo users on one store with the shipped sources registered."""

    runtime: Runtime
    actors: dict[str, Any]
    count: int = 0
    facts: int = field(default=0)

    def ctx(self, username: str, purpose: Purpose = PRIORITIZING) -> AccessContext:
        if username == "system":
            return system_context(purpose, "test")
        return AccessContext(self.actors[username], purpose, "test")

    def run(self, username: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with frozen_at(NOW), unit_of_work(self.runtime.sessions, self.ctx(username)) as gw:
            return fn(gw, *args, **kwargs)

    def person(
        self, born: date = date(1985, 5, 1), pid: str | None = None, **facts: list[dict[str, Any]]
    ) -> str:
        """A person with facts: convictions, admissions, encounters, benefits, orders."""
        self.count += 1
        pid = pid or f"per-test-{self.count:04d}"

        def add(gw: Gateway) -> None:
            gw.add(Person(id=pid, given_name="Ana", family_name=f"Test{self.count}",
                          birth_date=born, nationality="MEX", golden={}))  # fmt: skip
            gw.session.flush()
            for kind, rows in facts.items():
                for row in rows:
                    for obj in self._fact(pid, kind, row):  # parents before children
                        gw.add(obj)
                        gw.session.flush()

        with unit_of_work(self.runtime.sessions, system_context(Purpose.DATA_INTEGRATION)) as gw:
            add(gw)
        return pid

    def _fact(self, pid: str, kind: str, row: dict[str, Any]) -> list[Any]:
        self.facts += 1
        n = f"f{self.facts:05d}"
        base = {"id": n, "person_id": pid}
        if kind == "convictions":
            return [Conviction(**base | {"source_id": "convictions", "disposition_id": n,
                                         "offense_level": "misdemeanor", "sentence_days": 0}
                               | row)]  # fmt: skip
        if kind == "admissions":
            return [Admission(**base | {"source_id": "arrivals", "admission_no": n,
                                        "class_of_admission": "B2"} | row)]  # fmt: skip
        if kind == "encounters":
            return [Encounter(**base | {"source_id": "encounters", "encounter_no": n,
                                        "office": "Miami", "disposition": "NTA issued"}
                              | row)]  # fmt: skip
        if kind == "benefits":
            return [BenefitApplication(**base | {"source_id": "benefits", "receipt_no": n} | row)]
        if kind == "orders":  # a removal order: {decided_on, decision_type, kind?, nta?, charge?}
            court, proc = f"{n}c", f"{n}p"
            return [
                CourtCase(id=court, person_id=pid, source_id="court", case_no=court,
                          charge=row.get("charge", "237(a)(1)(B)"),
                          nta_served_on=row.get("nta", row["decided_on"])),
                Proceeding(id=proc, court_case_id=court, source_id="court",
                           kind=row.get("kind", "removal-240"), opened_on=row.get("nta")),
                CourtDecision(id=f"{n}d", proceeding_id=proc, source_id="court",
                              decision_type=row.get("decision_type", "removal-ordered"),
                              decided_on=row["decided_on"], details={}),
            ]  # fmt: skip
        raise ValueError(kind)

    def features(self, person_ids: list[str] | None = None) -> pa.Table:
        return self.run(
            "analyst", lambda gw: features.compute(features.read(gw, person_ids), AS_OF)
        )


def _agency(runtime: Runtime) -> Agency:
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        ctx = system_context(Purpose.DATA_INTEGRATION, "test: register shipped sources")
        for definition in shipped_definitions():
            register(session, definition, ctx)
        users = session.scalars(select(User)).all()
        actors = {u.username: actor_of(u) for u in users}
    return Agency(runtime, actors)


@pytest.fixture
def agency(runtime: Runtime) -> Iterator[Agency]:
    yield _agency(runtime)
