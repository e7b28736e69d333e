"""Fixtures of the redress tests: a private copy per test of the session's demo world, the
demo users, an application with API tokens, and a person worth correcting.

The world is what ``immos demo`` builds (``demo_build``, tests/shared_demo.py: 400 synthetic
persons, seed 3: resolution, cases with documents, the 2021 policy adopted and run,
departures), so a correction meets every part it must reach. Imported by ``test_redress.py``
and ``test_redress_pages.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from tests.shared_demo import DemoBuild

from immigrationos.accounts import sessions
from immigrationos.accounts.models import User
from immigrationos.accounts.service import actor_of
from immigrationos.api.app import create_app
from immigrationos.core.errors import ValidationFailed
from immigrationos.core.settings import Settings
from immigrationos.facts.models import Conviction
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import Gateway, unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.models import Document
from immigrationos.oversight.models import RedressRequest
from immigrationos.persons.models import Person, RecordLink
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.models import SourceRecord
from immigrationos.store.engine import transaction

USERS = ("officer.miami", "supervisor.miami", "analyst", "privacy", "auditor", "admin")


@dataclass
class World:
    """A private copy of the demo world, and ways to act in it."""

    runtime: Runtime
    data: Path

    def actors(self) -> dict[str, Any]:
        with transaction(self.runtime.sessions) as session:
            return {u.username: actor_of(u) for u in session.scalars(select(User))}

    @contextmanager
    def acting(self, username: str, purpose: Purpose) -> Iterator[Gateway]:
        """A unit of work as ``username`` (or ``system``) under ``purpose``."""
        ctx = (
            system_context(purpose, "redress test")
            if username == "system"
            else AccessContext(self.actors()[username], purpose, "redress test")
        )
        with unit_of_work(self.runtime.sessions, ctx) as gw:
            yield gw

    def tokens(self) -> dict[str, str]:
        made = {}
        with transaction(self.runtime.sessions) as session:
            for username in USERS:
                user = session.scalar(select(User).where(User.username == username))
                assert user is not None
                made[username], _ = sessions.create_token(session, user, "redress test", 1)
        return made

    def client(self) -> TestClient:
        return TestClient(create_app(self.runtime), raise_server_exceptions=False)


def world_settings(data: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mode": "demo",
        "data_dir": data,
        "lifecycle_tick_seconds": 0,
        "sign_in_attempts_per_minute": 100_000,
        "redress_filings_per_hour": 1000,
        "redress_status_checks_per_minute": 1000,
        "documents_pdf": True,
    }
    return Settings(**{**values, **overrides})


@pytest.fixture
def world(demo_build: DemoBuild, tmp_path: Path) -> Iterator[World]:
    """A copy of the demo world for one test (tests change it)."""
    data = demo_build.copy(tmp_path / "data")
    runtime = open_runtime(world_settings(data))
    try:
        yield World(runtime, data)
    finally:
        runtime.engine.dispose()


@dataclass(frozen=True)
class Subject:
    """A person worth correcting: a conviction record, documents, and the records carrying
    one of their passports (all of them: "the travel records under this passport are not
    mine"), with other records left over."""

    person_id: str
    conviction_record: str
    passport_records: tuple[str, ...]
    records: tuple[str, ...]

    @property
    def passport_record(self) -> str:
        return self.passport_records[0]


def pick_subject(world: World) -> Subject:
    """The first person with a conviction, case documents, at least four linked records and
    a passport not carried by all of them, and none of the demo's sample requests (read as
    the system, audited)."""
    with world.acting("system", Purpose.CASE_PROCESSING) as gw:
        convicted = {r[0] for r in gw.rows(
            select(Conviction.person_id).where(Conviction.person_id.is_not(None)), Conviction,
            params={"test": "subject"})}  # fmt: skip
        documented = {r[0] for r in gw.rows(select(Document.person_id), Document,
                                            params={"test": "subject"})}  # fmt: skip
        links = gw.rows(
            select(RecordLink.person_id, SourceRecord.id, SourceRecord.source_id)
            .join(SourceRecord, SourceRecord.id == RecordLink.source_record_id)
            .where(RecordLink.unlinked_at.is_(None))
            .order_by(RecordLink.person_id, SourceRecord.id),
            RecordLink,
            params={"test": "subject"},
        )
        active = {r[0] for r in gw.rows(select(Person.id).where(Person.status == "active"),
                                        Person, params={"test": "subject"})}  # fmt: skip
        # the demo files sample requests of its own: leave their persons to it
        sampled = {r[0] for r in gw.rows(select(RedressRequest.person_id), RedressRequest,
                                         params={"test": "subject"})}  # fmt: skip
    by_person: dict[str, list[tuple[str, str]]] = {}
    for person, record, source in links:
        by_person.setdefault(person, []).append((record, source))
    for person in sorted((convicted & documented & active) - sampled):
        records = by_person.get(person, [])
        convictions = [r for r, s in records if s == "convictions"]
        if len(records) >= 4 and convictions:
            travel = _passport_records(world, [r for r, _ in records])
            if travel and len(travel) <= len(records) - 2 and convictions[0] not in travel:
                ids = tuple(r for r, _ in records)
                return Subject(person, convictions[0], travel, ids)
    raise AssertionError("the demo world has no person to correct")


def _passport_records(world: World, record_ids: list[str]) -> tuple[str, ...]:
    """The records carrying the person's most common passport number, the first of them
    with a birth date (a departure built from it is found by its document)."""
    from immigrationos.resolution import records

    with world.acting("system", Purpose.IDENTITY_RESOLUTION) as gw:
        raws = []
        for record_id in record_ids:
            try:
                raws.append(records.raw_of(gw, gw.get(SourceRecord, record_id)))
            except ValidationFailed:  # a source without person attributes
                continue
    numbers = [r["passport_no"] for r in raws if r.get("passport_no")]
    if not numbers:
        return ()
    common = max(sorted(set(numbers)), key=numbers.count)
    carrying = [r for r in raws if r.get("passport_no") == common]
    dated = [r for r in carrying if r.get("birth_date") and r.get("family_name")]
    if not dated:
        return ()
    first = str(dated[0]["unique_id"])
    return (first, *sorted(str(r["unique_id"]) for r in carrying if r["unique_id"] != first))


def count(world: World, model: Any, *where: Any) -> int:
    with world.acting("system", Purpose.OVERSIGHT_AUDIT) as gw:
        return int(gw.rows(select(func.count()).select_from(model).where(*where), model,
                           params={"test": "count"})[0][0])  # fmt: skip
