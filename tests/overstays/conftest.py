"""Fixtures of the overstay tests: a store with the shipped sources and the demo accounts, and
a way to add hand-built persons, admissions, departures and filings, each with the time the
system recorded it.

Most tests run on SQLite (``database_url`` below); ``test_overstay_backends`` runs the story
of a late record on SQLite and on PostgreSQL with the same body (``any_agency``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of, ensure_demo_accounts
from immigrationos.core.clock import frozen_at
from immigrationos.core.settings import Settings
from immigrationos.departures import overstays
from immigrationos.departures.models import Departure, OverstayAssessment
from immigrationos.facts.models import Admission, BenefitApplication
from immigrationos.gateway.context import AccessContext, Actor, system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.persons.models import Person
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.registry import register
from immigrationos.store.engine import transaction

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
STATS = Purpose.STATISTICS


def at(day: date, hour: int = 12) -> datetime:
    """A UTC time on ``day``."""
    return datetime.combine(day, time(hour), UTC)


@dataclass
class Agency:
    """One store with the shipped sources registered, acting as the demo users."""

    runtime: Runtime
    actors: dict[str, Actor]
    count: int = 0

    def ctx(self, username: str = "analyst", purpose: Purpose = STATS) -> AccessContext:
        if username == "system":
            return system_context(purpose, "test")
        return AccessContext(self.actors[username], purpose, "test")

    def run(self, fn: Any, *args: Any, username: str = "analyst", purpose: Purpose = STATS,
            now: datetime = NOW) -> Any:  # fmt: skip
        with frozen_at(now), unit_of_work(self.runtime.sessions, self.ctx(username, purpose)) as gw:
            return fn(gw, *args)

    def load(self, fn: Any) -> Any:
        """Write hand-built rows as the system's data integration would."""
        ctx = system_context(Purpose.DATA_INTEGRATION, "test data")
        with unit_of_work(self.runtime.sessions, ctx) as gw:
            return fn(gw)

    def _next(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count:04d}"

    def person(self, nationality: str | None = "MEX") -> str:
        pid = self._next("per")
        self.load(lambda gw: gw.add(Person(id=pid, given_name="Ana", family_name=pid,
                                           nationality=nationality, golden={})))  # fmt: skip
        return pid

    def admission(self, person: str | None, on: date, until: date | None, klass: str = "B2",
                  mode: str = "air", suffix: str = "") -> str:  # fmt: skip
        aid = self._next("adm") + suffix
        self.load(lambda gw: gw.add(Admission(id=aid, person_id=person, source_id="arrivals",
                                              admission_no=aid, class_of_admission=klass,
                                              mode=mode, admitted_on=on,
                                              admitted_until=until)))  # fmt: skip
        return aid

    def departure(self, person: str | None, on: date, recorded: datetime, *,
                  channel: str = "manifest", band: str = "unmatched",
                  confirms: str | None = None) -> str:  # fmt: skip
        did = self._next("dep")
        row = Departure(id=did, event_id=f"ev-{did}", person_id=person, source_id="departures",
                        channel=channel, occurred_at=at(on, 9), match_band=band,
                        confirms_id=confirms, recorded_at=recorded)  # fmt: skip
        self.load(lambda gw: gw.add(row))
        return did

    def filing(self, person: str, form: str, filed_on: date, status: str = "pending") -> str:
        bid = self._next("ben")
        self.load(lambda gw: gw.add(BenefitApplication(id=bid, person_id=person,
                                                       source_id="benefits", receipt_no=bid,
                                                       form=form, status=status,
                                                       filed_on=filed_on)))  # fmt: skip
        return bid

    def change(self, model: type[Any], object_id: str, **values: Any) -> None:
        self.load(lambda gw: gw.update(gw.get(model, object_id), **values))

    def assess(self, as_of: date, now: datetime = NOW) -> overstays.AssessReport:
        result: overstays.AssessReport = self.run(overstays.assess, as_of, now=now)
        return result

    def report(self, fiscal_year: int | None = None, as_of: date | None = None) -> Any:
        return self.run(overstays.report, fiscal_year, as_of)

    def history(self, admission_id: str) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.run(overstays.history, admission_id)
        return rows

    def outcome(self, admission_id: str) -> str:
        return str(self.history(admission_id)[-1]["outcome"])


def make_agency(runtime: Runtime) -> Agency:
    with transaction(runtime.sessions) as session:
        ensure_demo_accounts(session)
        ctx = system_context(Purpose.DATA_INTEGRATION, "test: register shipped sources")
        for definition in shipped_definitions():
            register(session, definition, ctx)
        actors = {u.username: actor_of(u) for u in session.scalars(select(User))}
    return Agency(runtime, actors)


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """SQLite for these tests (the backend test below runs on both)."""
    target = tmp_path / "immos.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def agency(runtime: Runtime) -> Agency:
    return make_agency(runtime)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_agency(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Agency]:
    """An agency on each backend (the PostgreSQL one skips with a reason when absent)."""
    if request.param == "sqlite":
        url = request.getfixturevalue("database_url")
    else:
        url = request.getfixturevalue("pg_database_url")
    rt = open_runtime(Settings(mode="demo", data_dir=tmp_path, database_url=url))
    try:
        yield make_agency(rt)
    finally:
        rt.close()


def count_rows(gw: Gateway) -> int:
    """How many assessments are kept (standing or superseded)."""
    return gw.count(OverstayAssessment, params={"test": "count"})
