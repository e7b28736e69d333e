"""``immos bench NAME``: run a benchmark from ``benchmarks/`` and print and save its report."""

from __future__ import annotations

import os

import typer
from rich.table import Table

from immigrationos import bench
from immigrationos.cli.common import console, friendly_errors

#: Benchmarks that read ``--sizes`` (passed as ``IMMOS_BENCH_SIZES``, which their measurement
#: subprocesses inherit).
SIZED = ("priority", "departures", "web")
#: Benchmarks that also read ``--backend`` (``IMMOS_BENCH_BACKEND``).
BACKENDS = ("priority",)


@friendly_errors
def bench_cmd(
    name: str | None = typer.Argument(None, help="Benchmark to run (omit to list them)."),
    quick: bool = typer.Option(False, "--quick", help="Smaller sizes, for a smoke run."),
    sizes: str | None = typer.Option(
        None,
        "--sizes",
        help=f"Comma-separated sizes, e.g. 100000,1000000 (benchmarks: {', '.join(SIZED)}).",
    ),
    backend: str | None = typer.Option(
        None,
        "--backend",
        help="sqlite, postgresql or both (PostgreSQL when reachable; benchmarks: "
        f"{', '.join(BACKENDS)}).",
    ),
) -> None:
    """Run benchmark NAME beside its peer; print a table and write JSON to benchmarks/results/.

    Without NAME, list the available benchmarks.
    """
    if name is None:
        for available in bench.available():
            console.print(available)
        return
    if sizes and name not in SIZED:
        raise typer.BadParameter(f"--sizes applies to: {', '.join(SIZED)}")
    if backend and name not in BACKENDS:
        raise typer.BadParameter(f"--backend applies to: {', '.join(BACKENDS)}")
    if backend and backend not in ("sqlite", "postgresql", "both"):
        raise typer.BadParameter("--backend is sqlite, postgresql or both")
    if sizes:
        try:
            parsed = [int(s.strip().replace("_", "")) for s in sizes.split(",") if s.strip()]
        except ValueError:
            raise typer.BadParameter(f"--sizes takes whole numbers, not {sizes!r}") from None
        if not parsed or min(parsed) < 1:
            raise typer.BadParameter("--sizes takes positive whole numbers")
        os.environ["IMMOS_BENCH_SIZES"] = ",".join(str(s) for s in parsed)
    if backend:
        os.environ["IMMOS_BENCH_BACKEND"] = backend
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
