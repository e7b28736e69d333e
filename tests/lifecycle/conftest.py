"""Fixtures of the lifecycle tests: a migrated store with the demo accounts and persons."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.core.clock import frozen_at
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime
from immigrationos.store.engine import transaction

T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
"""A Monday; tests move the clock from here."""


@dataclass
class Desk:
    """Acting as the demo users on one store, at a controllable time."""

    runtime: Runtime
    actors: dict[str, Any]
    now: datetime = T0
    persons: int = 0

    def ctx(self, username: str) -> AccessContext:
        if username == "system":
            return system_context(Purpose.CASE_PROCESSING, "test")
        return AccessContext(self.actors[username], Purpose.CASE_PROCESSING, "test")

    def run(self, username: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(gateway, *args)`` as ``username`` in one transaction at ``self.now``."""
        with frozen_at(self.now), unit_of_work(self.runtime.sessions, self.ctx(username)) as gw:
            return fn(gw, *args, **kwargs)

    def person(self, pid: str | None = None, **fields: Any) -> str:
        """Add a person (a fresh id unless one is given)."""
        self.persons += 1
        pid = pid or f"per-test-{self.persons}"
        values = {"given_name": "Ana", "family_name": "Lopez", "birth_date": date(1990, 5, 1),
                  "nationality": "MEX", "golden": {}} | fields  # fmt: skip

        def add(gw: Gateway) -> None:
            gw.add(Person(id=pid, **values))

        self.run("system", add)
        return pid


@pytest.fixture
def desk(runtime: Runtime) -> Iterator[Desk]:
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        users = session.scalars(select(User)).all()
        actors = {u.username: actor_of(u) for u in users}
    yield Desk(runtime, actors)
