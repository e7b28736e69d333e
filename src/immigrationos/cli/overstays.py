"""``immos departures overstays``: assess every admission's overstay outcome, report the
figures by nationality and class of admission with their history, and show one admission's.

Every command is a person's (``--as USER``; password prompted or ``IMMOS_PASSWORD``) working
under the ``statistics`` purpose, which the arrivals, departures and benefits agreements
permit (the analyst's role). An overstay figure is a revisable inference as of its date: a
flag is a lead, never an action.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table

from immigrationos.cli.common import (
    JSON_OUT,
    PASSWORD,
    console,
    friendly_errors,
    parse_date,
    print_json,
    run_as,
    signed_in,
)
from immigrationos.core.clock import utcnow
from immigrationos.departures import overstays
from immigrationos.gateway.context import AccessContext

app = typer.Typer(
    help="Overstays: each admission's outcome as of a date, figures by nationality and class "
    "of admission, and how late records revised them.",
    no_args_is_help=True,
)
AS = typer.Option(..., "--as", help="Who is working (username; an analyst).")
WHY = typer.Option("overstay statistics", "--why", help="Justification recorded with every read.")
SHOWN = ("departed-on-time", "departed-late", "no-departure-record", "not-an-overstay",
         "in-status")  # fmt: skip


def _ctx(username: str, password: str | None, why: str) -> AccessContext:
    ctx: AccessContext = signed_in(username, password, overstays.PURPOSE, why)
    return ctx


@app.command("assess")
@friendly_errors
def assess_cmd(
    as_of: str | None = typer.Option(None, "--as-of", help="Date assessed (default today)."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Assess every admission as of a date; only changed outcomes are written (history kept)."""
    ctx = _ctx(username, password, why)
    on = parse_date(as_of) or utcnow().date()
    with console.status(f"assessing admissions as of {on}…"):
        result = run_as(ctx, overstays.assess, on)
    if json_out:
        return print_json(result.to_dict())
    console.print(f"run [bold]{result.run_id}[/] as of {result.as_of}: {result.admissions} "
                  f"admissions in {result.seconds} s; {result.written} assessments written, "
                  f"{result.superseded} superseded, {result.unchanged} unchanged")  # fmt: skip
    table = Table("outcome", "admissions", "meaning", title="Outcomes now standing")
    for outcome, n in result.outcomes.items():
        table.add_row(outcome, str(n), overstays.OUTCOMES[outcome])
    console.print(table)
    for reason, n in result.exclusions.items():
        console.print(f"[dim]excluded[/] {reason}: {n}")
    console.print(f"[dim]{overstays.NOTE}[/]")


@app.command("report")
@friendly_errors
def report_cmd(
    fiscal_year: int | None = typer.Option(
        None, "--fiscal-year", min=1900, max=2200, help="Stays ending in this FY (Oct–Sep)."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of", help="The figures as they stood on this date (default: now)."
    ),
    limit: int = typer.Option(15, "--limit", min=1, help="Rows per breakdown shown."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Figures by outcome, nationality and class of admission, and their revision history."""
    ctx = _ctx(username, password, why)
    data = run_as(ctx, overstays.report, fiscal_year, parse_date(as_of))
    if json_out:
        return print_json(data)
    _print_report(data, limit)


def _figures_table(title: str, key: str | None, rows: list[dict[str, Any]]) -> Table:
    table = Table(*([key] if key else []), *SHOWN, "expected", "overstay %", "in-country %",
                  title=title)  # fmt: skip
    for r in rows:
        cells = [str(r[o]) for o in SHOWN]
        rates = [_pct(r["overstay_rate_pct"]), _pct(r["in_country_rate_pct"])]
        table.add_row(*([str(r[key])] if key else []), *cells, str(r["expected_departures"]),
                      *rates)  # fmt: skip
    return table


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _print_report(d: dict[str, Any], limit: int) -> None:
    year = f"FY{d['fiscal_year']}" if d["fiscal_year"] else "all fiscal years"
    console.print(f"[bold]Overstays, {year}[/], as of {d['as_of'] or 'no assessment yet'}")
    console.print(_figures_table("Totals", None, [d["totals"]]))
    console.print(_figures_table("By class of admission", "class_of_admission",
                                 d["by_class"][:limit]))  # fmt: skip
    console.print(_figures_table("By nationality", "nationality", d["by_nationality"][:limit]))
    if not d["fiscal_year"]:
        console.print(_figures_table("By fiscal year", "fiscal_year", d["by_fiscal_year"]))
    runs = [h | {"as of (run)": f"{h['as_of']} ({h['assessed_at']:%H:%M})"} for h in d["history"]]
    console.print(_figures_table("As the figures stood after each run", "as of (run)", runs))
    cov = d["coverage"]
    console.print(f"in scope now: {cov['in_scope_now']}; assessed: {cov['assessed']}")
    for reason, e in d["exclusions"].items():
        console.print(f"[dim]excluded[/] {reason}: {e['count']} ({e['why']})")
    console.print(f"[dim]{d['method']}[/]")
    console.print(f"[dim]{d['note']}[/]")


@app.command("history")
@friendly_errors
def history_cmd(
    admission_id: str = typer.Argument(..., help="The admission's id."),
    username: str = AS,
    password: str | None = PASSWORD,
    why: str = WHY,
    json_out: bool = JSON_OUT,
) -> None:
    """Every assessment of one admission, oldest first, with what revised it."""
    ctx = _ctx(username, password, why)
    rows = run_as(ctx, overstays.history, admission_id)
    if json_out:
        return print_json(rows)
    table = Table("as of", "outcome", "FY", "departed", "days over", "filing", "assessed",
                  "superseded", title=f"Admission {admission_id}")  # fmt: skip
    for r in rows:
        table.add_row(*_history_cells(r))
    console.print(table)
    console.print(f"[dim]{overstays.NOTE}[/]")


def _history_cells(r: dict[str, Any]) -> list[str]:
    filing = (r["basis"] or {}).get("filing") or {}
    ended = r["superseded_at"]
    return [
        str(r["as_of"]), r["outcome"], str(r["fiscal_year"] or "—"),
        str(r["departed_on"] or "—"), str(r["days_over"] or "—"),
        f"{filing['form']} {filing['filed_on']}" if filing else "—",
        f"{r['assessed_at']:%Y-%m-%d %H:%M}",
        f"{ended:%Y-%m-%d %H:%M}" if ended else "standing",
    ]  # fmt: skip
