"""Build and load the demo: a synthetic world, every source registered and ingested.

Kept apart from the CLI so tests (and later issues' demo steps) can call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import orjson
from rich.progress import Progress
from rich.table import Table

from immigrationos.accounts.service import DemoAccount, ensure_demo_accounts
from immigrationos.audit.chain import emit, verify
from immigrationos.audit.events import DemoLoaded
from immigrationos.core.clock import utcnow
from immigrationos.core.errors import ConfigurationError
from immigrationos.departures import overstays
from immigrationos.departures.replay import ReplayReport, lines_of, replay
from immigrationos.departures.service import Processor
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.lifecycle.load import LoadReport, load_cases
from immigrationos.oversight import redress, transparency
from immigrationos.oversight.activity import Evaluation, GroundTruth, plant_and_scan
from immigrationos.oversight.anomalies import ScanReport
from immigrationos.oversight.redress import DemoRedress
from immigrationos.priority.demo import PriorityLoad, load_priorities
from immigrationos.resolution import service as resolution_service
from immigrationos.resolution.service import RunReport
from immigrationos.runtime import Runtime, open_runtime
from immigrationos.sources.definition import shipped_definitions
from immigrationos.sources.ingest import ingest_file
from immigrationos.sources.plan import BatchReport
from immigrationos.sources.registry import register
from immigrationos.store import bulk
from immigrationos.store.engine import transaction
from immigrationos.synth import NoiseConfig, WorldConfig, generate_world


@dataclass
class DemoResult:
    """What the demo built: the runtime to serve, the accounts, and the batch reports."""

    runtime: Runtime
    accounts: list[DemoAccount]
    reports: list[BatchReport] = field(default_factory=list)
    resolution: RunReport | None = None
    cases: LoadReport | None = None
    priorities: PriorityLoad | None = None
    departures: DepartureLoad | None = None
    oversight: OversightLoad | None = None
    audit_message: str = ""

    def summary_table(self) -> Table:
        """The per-source load report as a table."""
        table = Table(
            "source", "read", "loaded", "unchanged", "quarantined", title="Demo world loaded"
        )
        for r in self.reports:
            table.add_row(
                r.source_id, str(r.read), str(r.loaded), str(r.unchanged), str(r.quarantined)
            )
        return table


#: The last five years of the world's departure stream are replayed live; the rest is history.
LIVE_DAYS = 5 * 365


def load_demo(world: Path, persons: int, seed: int, bar: Progress | None = None) -> DemoResult:
    """Generate the world into ``world``, open a fresh runtime and load every source."""
    runtime = open_runtime()
    if not runtime.settings.is_demo:
        raise ConfigurationError("the demo loads only in demo mode (IMMOS_MODE=demo)")
    task = bar.add_task("generate world", total=None) if bar else None

    def on_progress(_stage: str, done: int, total: int) -> None:
        if bar is not None and task is not None:
            bar.update(task, completed=done, total=total)

    config = WorldConfig(persons=persons, seed=seed, noise=NoiseConfig())
    generate_world(config, world, progress=on_progress)
    with transaction(runtime.sessions) as session:
        accounts = ensure_demo_accounts(session)
        ctx = system_context(Purpose.DATA_INTEGRATION, "demo: register shipped sources")
        definitions = shipped_definitions()
        for definition in definitions:
            register(session, definition, ctx)
    result = DemoResult(runtime, accounts)
    cutoff = config.as_of_date - timedelta(days=LIVE_DAYS)
    history, live = split_stream(world / "sources" / "departures.jsonl", world / "stream", cutoff)
    for definition in definitions:
        path = world / "sources" / (definition.file or "")
        if not definition.file or not path.exists():
            continue
        if definition.id == "departures":
            path = history
        result.reports.append(_ingest(runtime, definition.id, path, bar))
    result.resolution = _resolve(runtime, bar)
    result.cases = _cases(runtime, bar)
    result.priorities = _priorities(runtime, bar)
    result.departures = _departures(runtime, live, bar)
    result.oversight = _oversight(runtime, bar)
    with runtime.engine.begin() as connection:  # cases, departures, audit: all new since
        bulk.analyze(connection)
    with transaction(runtime.sessions) as session:
        emit(
            session,
            DemoLoaded(persons=persons, seed=seed),
            system_context(Purpose.DATA_INTEGRATION, "demo loaded"),
        )
        result.audit_message = verify(session).describe()
    return result


def _resolve(runtime: Runtime, bar: Progress | None) -> RunReport:
    """Build the person index from everything just ingested (the shipped model)."""
    task = bar.add_task("resolve persons", total=None) if bar else None
    ctx = system_context(Purpose.IDENTITY_RESOLUTION, "demo: build the person index")
    with unit_of_work(runtime.sessions, ctx) as gateway:

        def stage(name: str) -> None:
            if bar is not None and task is not None:
                bar.update(task, description=f"resolve persons: {name}")

        report = resolution_service.run(
            gateway,
            backend_name=runtime.settings.resolution_backend,
            spark_master=runtime.settings.spark_master,
            progress=stage,
        )
    if bar is not None and task is not None:
        bar.update(task, total=1, completed=1, description="resolve persons")
    return report


def _cases(runtime: Runtime, bar: Progress | None) -> LoadReport:
    """Replay the resolved histories into cases, and show a case in every lifecycle state."""
    task = bar.add_task("load cases", total=None) if bar else None

    def advance(done: int, total: int) -> None:
        if bar is not None and task is not None:
            bar.update(task, completed=done, total=total)

    return load_cases(runtime, progress=advance)


def split_stream(stream: Path, folder: Path, cutoff: date) -> tuple[Path, Path]:
    """Split the world's departure stream at ``cutoff``: the history (ingested in batch, as
    the records of past years are) and the live tail (replayed through the stream)."""
    folder.mkdir(parents=True, exist_ok=True)
    history, live = folder / "departures-history.jsonl", folder / "departures-live.jsonl"
    mark = cutoff.isoformat()
    with stream.open("rb") as src, history.open("wb") as old, live.open("wb") as new:
        for line in src:
            at = orjson.loads(line).get("occurred_at") or ""
            (old if at[:10] < mark else new).write(line)
    return history, live


@dataclass
class DepartureLoad:
    """The live tail of the stream, replayed; overstays assessed before and after it."""

    replay: ReplayReport
    overstays_before: dict[str, int]
    overstays_after: dict[str, int]


def _departures(runtime: Runtime, live: Path, bar: Progress | None) -> DepartureLoad:
    """Assess overstays with the history known, replay the last five years' departures through
    the processor (matching, case effects), and assess again: the departures the stream
    recorded revise the figures, and the overstay history keeps both."""
    ctx = system_context(Purpose.STATISTICS, "demo: overstays")
    today = utcnow().date()
    with unit_of_work(runtime.sessions, ctx) as gw:
        before = overstays.assess(gw, today)
    task = bar.add_task("replay departures", total=None) if bar else None
    processor = Processor(runtime, "replay")
    report = replay(
        processor,
        lines_of(live),
        progress=lambda n: bar.advance(task, n) if bar is not None and task is not None else None,
    )
    with unit_of_work(runtime.sessions, ctx) as gw:
        after = overstays.assess(gw, today)
    return DepartureLoad(report, before.outcomes, after.outcomes)


@dataclass
class OversightLoad:
    """What the demo gave oversight: simulated staff activity with planted misuse, scanned."""

    truth: GroundTruth
    scan: ScanReport
    evaluation: Evaluation
    transparency_period: str
    redress: DemoRedress


def _oversight(runtime: Runtime, bar: Progress | None) -> OversightLoad:
    """Two sample correction requests (one decided, with its letter; one in review), two
    weeks of synthetic staff activity with four planted misuses, scanned by the
    access-anomaly rules (the ground truth is kept beside the database for the evaluation);
    then this year's transparency report, published so the auditor can read it."""
    task = bar.add_task("staff activity and anomaly scan", total=1) if bar else None
    sample = redress.load_demo(runtime)
    truth, scan, evaluation = plant_and_scan(runtime)
    period = transparency.Period.parse(str(utcnow().year))
    ctx = system_context(Purpose.STATISTICS, "demo: publish this year's transparency report")
    with unit_of_work(runtime.sessions, ctx) as gw:
        report = transparency.generate(gw, period, ["json"])
    transparency.publish(report, runtime.settings.data_dir)
    if bar is not None and task is not None:
        bar.update(task, completed=1)
    return OversightLoad(
        truth=truth,
        scan=scan,
        evaluation=evaluation,
        transparency_period=period.label,
        redress=sample,
    )


def _priorities(runtime: Runtime, bar: Progress | None) -> PriorityLoad:
    """Publish the example policies, adopt the 2021 one, run it and the 2025 one."""
    task = bar.add_task("prioritize", total=1) if bar else None
    loaded = load_priorities(runtime)
    if bar is not None and task is not None:
        bar.update(task, completed=1)
    return loaded


def _ingest(runtime: Runtime, source_id: str, path: Path, bar: Progress | None) -> BatchReport:
    task = bar.add_task(f"ingest {source_id}", total=None) if bar else None
    ctx = system_context(Purpose.DATA_INTEGRATION, f"demo: ingest {source_id}")
    with unit_of_work(runtime.sessions, ctx) as gateway:

        def advance(n: int) -> None:
            if bar is not None and task is not None:
                bar.advance(task, n)

        return ingest_file(gateway.session, gateway, source_id, path, progress=advance)
