"""``immos retention``: purge source records past their agreement's retention.

The plan is made and printed in one transaction and applied in another, after confirmation,
so no transaction (and no audit-head lock) stays open while a person reads the plan. That is
safe because a plan is criteria, not ids: records ingested meanwhile are younger than its
cutoffs and are left alone.
"""

from __future__ import annotations

import typer

from immigrationos.cli.common import console, friendly_errors, runtime
from immigrationos.gateway.context import system_context
from immigrationos.gateway.core import unit_of_work
from immigrationos.gateway.purposes import Purpose
from immigrationos.sources.retention import apply_retention, plan_retention

app = typer.Typer(
    help="Purge source records past their agreement's retention, leaving tombstones.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Purge source records past their agreement's retention, leaving tombstones."""


@app.command("run")
@friendly_errors
def run_cmd(
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only; purge nothing."),
    source: str | None = typer.Option(
        None, "--source", metavar="ID", help="Only this source (default: every source)."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Purge without asking for confirmation."),
) -> None:
    """Purge records past retention with what derives only from them; print the plan first."""
    ctx = system_context(Purpose.DATA_INTEGRATION, "immos retention run")
    with runtime() as rt:
        with unit_of_work(rt.sessions, ctx) as gw:
            plan = plan_retention(gw, source_id=source)
        console.print(plan.describe(), highlight=False, soft_wrap=True)
        if dry_run or plan.empty:
            console.print("dry run: nothing purged" if dry_run else "nothing to purge")
            return
        if not yes and not typer.confirm("Purge these records now?"):
            console.print("cancelled: nothing purged")
            raise typer.Exit(1)
        with unit_of_work(rt.sessions, ctx) as gw:
            result = apply_retention(gw, plan)
    console.print(result.describe(), highlight=False, soft_wrap=True)
