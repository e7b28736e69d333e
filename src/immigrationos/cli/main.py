"""The ``immos`` command: every area of the platform as a command or command group."""

from __future__ import annotations

import typer

from immigrationos import __version__
from immigrationos.cli import (
    anomalies,
    audit,
    cases,
    db,
    departures,
    lineage,
    priority,
    redress,
    report,
    resolve,
    retention,
    sources,
    users,
)
from immigrationos.cli.bench import bench_cmd
from immigrationos.cli.demo import demo_cmd
from immigrationos.cli.serve import serve_cmd
from immigrationos.cli.synth import synth

app = typer.Typer(
    name="immos",
    help="ImmigrationOS: integrate records lawfully, resolve persons, run cases with due "
    "process enforced, and audit everything. Only synthetic people in the demo.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("demo")(demo_cmd)
app.command("serve")(serve_cmd)
app.command("synth")(synth)
app.command("bench")(bench_cmd)
app.add_typer(sources.app, name="sources")
app.add_typer(resolve.app, name="resolve")
app.add_typer(cases.app, name="cases")
app.add_typer(cases.lifecycle_app, name="lifecycle")
app.add_typer(cases.removal_app, name="removal")
app.add_typer(cases.operations_app, name="operations")
app.add_typer(priority.app, name="priority")
app.add_typer(departures.app, name="departures")
app.add_typer(lineage.app, name="lineage")
app.add_typer(retention.app, name="retention")
app.add_typer(audit.app, name="audit")
app.add_typer(report.app, name="report")
app.add_typer(anomalies.app, name="anomalies")
app.add_typer(redress.app, name="redress")
app.add_typer(users.app, name="users")
app.add_typer(db.app, name="db")


@app.command("version")
def version_cmd() -> None:
    """Print the ImmigrationOS version."""
    typer.echo(__version__)
