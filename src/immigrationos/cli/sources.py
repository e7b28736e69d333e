"""``immos sources``: register sources with their agreements, list them, ingest files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy import select

from immigrationos.cli.common import console, friendly_errors, progress_bar, runtime
from immigrationos.gateway.context import AccessContext, system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources import quarantine
from immigrationos.sources.definition import load_definition
from immigrationos.sources.ingest import definition_of, ingest_file
from immigrationos.sources.mapping import fact_statements
from immigrationos.sources.models import IngestBatch, Source
from immigrationos.sources.plan import BatchReport
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
    flagged = ", ".join(f"{k}: {v}" for k, v in report.flagged.items()) or "none"
    derived = ", ".join(f"{k}: {v}" for k, v in report.derived.items()) or "none"
    console.print(
        f"{report.source_id}: read {report.read} = loaded {report.loaded} + unchanged "
        f"{report.unchanged} + quarantined {report.quarantined} (reasons: {reasons}; "
        f"fields dropped by the agreement: {dropped}; placeholders flagged: {flagged})"
    )
    console.print(f"  facts derived: {derived}")


@app.command("ingest")
@friendly_errors
def ingest_cmd(
    source: str = typer.Argument(..., help="Registered source id."),
    location: str = typer.Argument(
        ..., help="Input file, or for a postgresql source the database URL (DSN)."
    ),
) -> None:
    """Ingest a file (or a PostgreSQL table or query) into a source.

    Idempotent and versioned; bad rows are quarantined with a reason; the batch report
    reconciles (read = loaded + unchanged + quarantined).
    """
    with runtime() as rt, progress_bar() as bar:
        task = bar.add_task(f"ingest {source}", total=None)
        ctx = system_context(Purpose.DATA_INTEGRATION, f"immos sources ingest {source}")
        with unit_of_work(rt.sessions, ctx) as gw:
            report = ingest_file(
                gw.session, gw, source, location, progress=lambda n: bar.advance(task, n)
            )
    print_report(report)


quarantine_app = typer.Typer(
    help="Rows that could not be loaded: list, explain, re-run.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine")


def _ctx(what: str) -> AccessContext:
    return system_context(Purpose.DATA_INTEGRATION, f"immos sources {what}")


@quarantine_app.command("list")
@friendly_errors
def quarantine_list(
    source: str | None = typer.Option(None, "--source", help="Only this source."),
    status: str = typer.Option("open", "--status", help="open, resolved, retried or all."),
    limit: int = typer.Option(50, "--limit", "-n", min=1),
) -> None:
    """List quarantined rows with their reason and message (newest first)."""
    with runtime() as rt, unit_of_work(rt.sessions, _ctx("quarantine list")) as gw:
        rows = quarantine.list_rows(gw, source, None if status == "all" else status, limit)
        table = Table("id", "source", "row", "field", "reason", "status", "message")
        for r in rows:
            table.add_row(
                r.id,
                r.source_id,
                str(r.row_number or ""),
                r.field or "",
                r.reason,
                r.status,
                r.message,
            )
    console.print(table)


@quarantine_app.command("explain")
@friendly_errors
def quarantine_explain(row_id: str = typer.Argument(..., help="Quarantined row id.")) -> None:
    """Explain one quarantined row: what its reason means, and its original bytes."""
    with runtime() as rt, unit_of_work(rt.sessions, _ctx("quarantine explain")) as gw:
        explained = quarantine.explain(gw, row_id).as_dict()
    for key, value in explained.items():
        console.print(f"[bold]{key}[/]: {value}", markup=True, highlight=False)


@quarantine_app.command("rerun")
@friendly_errors
def quarantine_rerun(
    source: str = typer.Argument(..., help="Source whose rows to re-run."),
) -> None:
    """Re-validate a source's open quarantined rows under its current (fixed) definition."""
    with runtime() as rt, unit_of_work(rt.sessions, _ctx("quarantine rerun")) as gw:
        result = quarantine.rerun(gw.session, gw, source)
    for report in result.reports:
        print_report(report)
    console.print(f"resolved {result.resolved}; still failing {result.still_failing}")


@app.command("plan")
@friendly_errors
def plan_cmd(source: str = typer.Argument(..., help="Registered source id.")) -> None:
    """Show the SQL each of a source's fact mappings runs per batch (nothing is executed)."""
    with runtime() as rt, transaction(rt.sessions) as session:
        definition, _ = definition_of(session, source)
        dialect = session.get_bind().dialect
        for mapping, stmt in fact_statements(definition, dialect.name, ":batch_id"):
            console.print(f"[bold]-- {mapping.suffix} → {mapping.table}[/]")
            console.print(str(stmt.compile(dialect=dialect)), highlight=False, markup=False)
        for mapping in definition.facts:
            if mapping.deriver:
                console.print(f"[bold]-- {mapping.suffix}: Python deriver {mapping.deriver!r}[/]")


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
