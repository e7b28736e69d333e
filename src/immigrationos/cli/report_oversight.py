"""``immos report oversight``: the oversight report (HTML or JSON), as an auditor asks for it."""

from __future__ import annotations

from pathlib import Path

import typer

from immigrationos.cli.common import PASSWORD, console, friendly_errors, runtime, signed_in
from immigrationos.gateway.purposes import Purpose
from immigrationos.oversight import render
from immigrationos.oversight.service import oversight_report
from immigrationos.store.engine import transaction

FORMATS = ("html", "json")


def oversight_cmd(
    username: str = typer.Option(..., "--as", help="Who asks (username; an auditor)."),
    password: str | None = PASSWORD,
    out: Path = typer.Option(Path("oversight-report.html"), "--out", "-o", help="File to write."),
    fmt: str = typer.Option("html", "--format", help="html (charts and tables) or json."),
    why: str = typer.Option(
        "oversight report", "--why", help="Justification recorded with the report."
    ),
) -> None:
    """Write the oversight report: enforcement actions by tier, nationality, office and month;
    overrides; due-process blocks by guard; citizenship reviews; match review outcomes and the
    estimated false-match rate; departures verified and overstay revisions; data access by
    purpose and role; refused accesses; access-anomaly alerts. Counts only (audited)."""
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r}: choose one of {', '.join(FORMATS)}", param_hint="--format"
        )
    ctx = signed_in(username, password, Purpose.OVERSIGHT_AUDIT, why)
    with runtime() as rt, transaction(rt.sessions) as session:
        report = oversight_report(session, ctx, fmt)
    text = report.model_dump_json(indent=2) if fmt == "json" else render.render_html(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    console.print(
        f"oversight report written to {out}: {report.audit_entries} audit entries, "
        f"{report.enforcement.total} enforcement actions, {report.refused} refused accesses"
    )


def register(app: typer.Typer) -> None:
    """Add this report's command to the ``immos report`` group."""
    app.command("oversight")(friendly_errors(oversight_cmd))
