"""``immos report transparency``: the public transparency report.

An analyst (``--as``; password prompted or ``IMMOS_PASSWORD``) generates it under the
``statistics`` purpose: aggregate counts of the period with small cells withheld, written as
HTML (with charts), PDF and CSV. The generation is audited and kept as the period's
published copy, which auditors read over the API.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.markup import escape

from immigrationos.cli.common import (
    PASSWORD,
    console,
    friendly_errors,
    parse_date,
    runtime,
    signed_in,
)
from immigrationos.core.errors import ValidationFailed
from immigrationos.gateway.core import unit_of_work
from immigrationos.oversight import transparency, transparency_render
from immigrationos.oversight.transparency import Period


def _period(period: str | None, start: date | None, end: date | None) -> Period:
    if period and (start or end):
        raise ValidationFailed("give either --period or --from and --to, not both")
    if period:
        return Period.parse(period)
    if start and end:
        return Period.between(start, end)
    raise ValidationFailed(
        "give --period (2026, 2026-Q3 or 2026-07), or both --from and --to (YYYY-MM-DD)"
    )


def register(app: typer.Typer) -> None:
    """Add this report's command to the ``immos report`` group."""

    @app.command("transparency")
    @friendly_errors
    def transparency_cmd(
        out: Path = typer.Option(..., "--out", help="Directory to write the files to."),
        period: str | None = typer.Option(
            None, "--period", help="A year (2026), a quarter (2026-Q3) or a month (2026-07)."
        ),
        start: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD)."),
        end: str | None = typer.Option(None, "--to", help="Last day, included (YYYY-MM-DD)."),
        formats: str = typer.Option(
            "html,pdf,csv", "--format", help="Comma-separated: html, pdf, csv, json."
        ),
        username: str = typer.Option(..., "--as", help="Who generates it (an analyst)."),
        password: str | None = PASSWORD,
        why: str = typer.Option(
            "transparency report", "--why", help="Justification recorded with every read."
        ),
    ) -> None:
        """Aggregate counts of a period, small cells withheld (and cells that would reveal
        them), as HTML with charts, PDF and CSV; audited and kept as the published copy."""
        chosen = _period(period, parse_date(start), parse_date(end))
        kinds = transparency_render.parse_formats(formats)
        ctx = signed_in(username, password, transparency.PURPOSE, why)
        with runtime() as rt:
            with unit_of_work(rt.sessions, ctx) as gw:
                report = transparency.generate(gw, chosen, kinds)
            kept = transparency.publish(report, rt.settings.data_dir)
        with console.status("writing…"):
            paths = transparency_render.write(report, out, kinds)
        console.print(f"[bold]Transparency report {report.period}[/] ({report.start} to "
                      f"{report.end}); counts under {report.threshold} withheld")  # fmt: skip
        for key, info in transparency_render.summary(report).items():
            shape, total = f"{info['rows']}×{info['columns']}", escape(info["total"])
            console.print(f"  {key}: {shape}, total {total}, {info['withheld']} withheld")
        for path in paths:
            console.print(f"wrote {path}")
        console.print(f"[dim]published copy: {kept}[/]")
