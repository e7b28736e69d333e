"""``immos synth``: generate a synthetic world from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from immigrationos.synth import NoiseConfig, WorldConfig, WorldSummary, generate_world


def _noise(base: NoiseConfig, pairs: list[str]) -> NoiseConfig:
    """``base`` with the ``KEY=VALUE`` overrides applied (a clear error names a bad key)."""
    rates: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--noise")
        try:
            rates[key.strip().replace("-", "_")] = float(value)
        except ValueError as exc:
            raise typer.BadParameter(
                f"{key}: not a number: {value!r}", param_hint="--noise"
            ) from exc
    try:
        return base.with_rates(**rates)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--noise") from exc


def _table(summary: WorldSummary) -> Table:
    table = Table(title=f"Synthetic world: {summary.persons:,} persons, seed {summary.seed}")
    table.add_column("file")
    table.add_column("format")
    table.add_column("rows", justify="right")
    table.add_column("bytes", justify="right")
    for f in summary.files:
        table.add_row(f.path, f.format, f"{f.rows:,}", f"{f.bytes:,}")
    table.add_row("total", "", f"{summary.total_rows:,}", f"{summary.total_bytes:,}", style="bold")
    return table


def synth(
    persons: int = typer.Option(10_000, "--persons", "-n", min=1, help="Number of persons."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (same seed, same bytes)."),
    out: Path = typer.Option(Path("synth-world"), "--out", "-o", help="Output directory."),
    noise: list[str] = typer.Option(
        [], "--noise", help="Override a noise rate, KEY=VALUE (repeatable), e.g. typo=0.1."
    ),
    no_noise: bool = typer.Option(False, "--no-noise", help="Set every noise rate to 0."),
    workers: int = typer.Option(0, "--workers", min=0, help="Worker processes (0: automatic)."),
) -> None:
    """Generate a synthetic world: noisy source files plus the ground truth.

    Writes one file per source system to OUT/sources (CSV, JSON Lines, Parquet),
    the ground truth to OUT/truth (persons.parquet, records.parquet) and
    OUT/manifest.json (config, row counts, sizes, SHA-256 digests).

    Only synthetic people are generated. The same persons, seed and noise rates
    always give byte-identical files.

    Noise keys for --noise KEY=VALUE: typo, accent_drop, name_order_swap,
    one_surname, nickname, transliteration, middle_in_given, dob_day_month_swap,
    dob_jan1, placeholder, missing_document, passport_renewed,
    duplicate_a_number, missing_a_number, address_reuse
    (meanings and defaults: docs/synthetic-world.md).
    """
    rates = _noise(NoiseConfig.none() if no_noise else NoiseConfig(), noise)
    config = WorldConfig(persons=persons, seed=seed, noise=rates)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        summary = generate_world(config, out, report, workers=workers or None)
    Console().print(_table(summary))
