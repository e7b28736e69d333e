"""``immos bench NAME``: run a benchmark from ``benchmarks/`` and print and save its report."""

from __future__ import annotations

import typer
from rich.table import Table

from immigrationos import bench
from immigrationos.cli.common import console, friendly_errors


@friendly_errors
def bench_cmd(
    name: str | None = typer.Argument(None, help="Benchmark to run (omit to list them)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller sizes, for a smoke run."),
) -> None:
    """Run benchmark NAME beside its peer; print a table and write JSON to benchmarks/results/.

    Without NAME, list the available benchmarks.
    """
    if name is None:
        for available in bench.available():
            console.print(available)
        return
    report, path = bench.run(name, quick=quick)
    table = Table(*report.columns, title=report.title)
    for row in report.rows:
        table.add_row(*(str(row.get(c, "")) for c in report.columns))
    console.print(table)
    for target in report.targets:
        mark = "[green]met[/]" if target.met else "[red]missed[/]"
        console.print(f"target: {target.description}: {mark} ({target.observed})")
    for note in report.notes:
        console.print(f"note: {note}")
    console.print(f"results written to {path}")
