"""``immos sources``: register sources with their agreements, list them, ingest files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from immigrationos.cli.common import console, friendly_errors, progress_bar, runtime
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources.definition import load_definition
from immigrationos.sources.ingest import BatchReport, ingest_file
from immigrationos.sources.models import IngestBatch, Source
from immigrationos.sources.registry import agreement_in_force, register
from immigrationos.store.engine import transaction

app = typer.Typer(
    help="Register sources and their data-sharing agreements; ingest files.", no_args_is_help=True
)


@app.command("register")
@friendly_errors
def register_cmd(
    files: list[Path] = typer.Argument(..., help="Source definition YAML files.", exists=True),
) -> None:
    """Register (or revise) sources from definition files; a changed agreement gets a version."""
    with runtime() as rt, transaction(rt.sessions) as session:
        ctx = system_context(Purpose.DATA_INTEGRATION, "immos sources register")
        for path in files:
            source = register(session, load_definition(path), ctx)
            agreement = agreement_in_force(session, source.id)
            assert agreement is not None
            console.print(f"registered {source.id} (agreement v{agreement.version})")


@app.command("list")
@friendly_errors
def list_cmd() -> None:
    """List sources with the agreement in force: purposes, fields and retention."""
    with runtime() as rt, transaction(rt.sessions) as session:
        sources = session.scalars(select(Source).order_by(Source.id)).all()
        table = Table(
            "source", "format", "agreement", "permitted purposes", "fields", "retention (days)"
        )
        for s in sources:
            a = agreement_in_force(session, s.id)
            table.add_row(
                s.id,
                s.format,
                f"v{a.version}" if a else "none",
                ", ".join(a.permitted_purposes) if a else "",
                str(len(a.allowed_fields)) if a else "",
                str(a.retention_days) if a else "",
            )
    console.print(table)


def print_report(report: BatchReport) -> None:
    """Print a batch report, reconciled."""
    reasons = ", ".join(f"{k}: {v}" for k, v in report.quarantine_reasons.items()) or "none"
    dropped = ", ".join(f"{k}: {v}" for k, v in report.dropped_fields.items()) or "none"
    console.print(
        f"{report.source_id}: read {report.read} = loaded {report.loaded} + unchanged "
        f"{report.unchanged} + quarantined {report.quarantined} (reasons: {reasons}; "
        f"fields dropped by the agreement: {dropped})"
    )


@app.command("ingest")
@friendly_errors
def ingest_cmd(
    source: str = typer.Argument(..., help="Registered source id."),
    path: Path = typer.Argument(..., help="Input file.", exists=True, dir_okay=False),
) -> None:
    """Ingest a file into a source: idempotent, versioned, with a reconciled batch report."""
    with runtime() as rt, progress_bar() as bar:
        task = bar.add_task(f"ingest {source}", total=None)
        ctx = system_context(Purpose.DATA_INTEGRATION, f"immos sources ingest {source}")
        with unit_of_work(rt.sessions, ctx) as gw:
            report = ingest_file(
                gw.session, gw, source, path, progress=lambda n: bar.advance(task, n)
            )
    print_report(report)


@app.command("batches")
@friendly_errors
def batches_cmd(limit: int = typer.Option(20, "--limit", "-n", min=1)) -> None:
    """List recent ingest batches with their reconciled counts."""
    with runtime() as rt, transaction(rt.sessions) as session:
        rows = session.scalars(
            select(IngestBatch).order_by(IngestBatch.started_at.desc()).limit(limit)
        ).all()
    table = Table("batch", "source", "status", "read", "loaded", "unchanged", "quarantined")
    for b in rows:
        table.add_row(
            b.id,
            b.source_id,
            b.status,
            str(b.read_count),
            str(b.loaded_count),
            str(b.unchanged_count),
            str(b.quarantined_count),
        )
    console.print(table)
