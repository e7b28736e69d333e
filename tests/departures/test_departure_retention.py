"""Retention and the departure tables: purging a source takes what was computed from its
facts with it (an overstay assessment of a purged admission), and the streamed departures
are records of the departures source like any other."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from tests.departures.conftest import World

from immigrationos.core.clock import utcnow
from immigrationos.departures import overstays
from immigrationos.departures.models import Departure, OverstayAssessment
from immigrationos.departures.service import Processor, received
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.runtime import Runtime
from immigrationos.sources.models import SourceRecord
from immigrationos.sources.retention import apply_retention, plan_retention


def _count(rt: Runtime, table: object) -> int:
    with rt.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(table)) or 0)


def test_purging_arrivals_takes_their_overstay_assessments_and_streamed_events_purge_too(
    processor: Processor, departure_world: World, world_store: Runtime
) -> None:
    processor.process([received(line) for line in departure_world.lines()[:50]])
    stats = system_context(Purpose.STATISTICS, "retention test")
    with unit_of_work(world_store.sessions, stats) as gw:
        overstays.assess(gw, utcnow().date())
    assert _count(world_store, OverstayAssessment.__table__) > 0
    later = utcnow() + timedelta(days=365 * 200)
    ctx = system_context(Purpose.DATA_INTEGRATION, "retention test")
    for source in ("arrivals", "departures"):
        with unit_of_work(world_store.sessions, ctx) as gw:
            apply_retention(gw, plan_retention(gw, now=later, source_id=source))
    assert _count(world_store, OverstayAssessment.__table__) == 0
    assert _count(world_store, Departure.__table__) == 0
    with world_store.engine.connect() as conn:
        left = conn.scalar(
            select(func.count())
            .select_from(SourceRecord.__table__)
            .where(SourceRecord.__table__.c.source_id.in_(["arrivals", "departures"]))
        )
    assert left == 0
