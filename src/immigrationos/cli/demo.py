"""``immos demo``: build a synthetic world, load it, and serve it, printing the demo accounts.

The demo runs in demo mode (the published demo secret and accounts are allowed) under its own
data folder, and starts fresh each time so what it shows matches what it prints.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import typer
from rich.table import Table

from immigrationos.cli.common import console, friendly_errors, progress_bar


def _prepare_environment(data_dir: Path) -> None:
    os.environ.setdefault("IMMOS_MODE", "demo")
    os.environ.setdefault("IMMOS_DATA_DIR", str(data_dir))
    from immigrationos.core.settings import get_settings

    get_settings.cache_clear()


def _reset(data_dir: Path) -> None:
    """Remove the previous demo database (the world is regenerated deterministically)."""
    from immigrationos.core.settings import get_settings
    from immigrationos.store import migrate
    from immigrationos.store.engine import make_engine

    settings = get_settings()
    if settings.database_url:
        engine = make_engine(settings.database_url)
        migrate.downgrade(engine, "base")
        engine.dispose()
        return
    for suffix in ("", "-wal", "-shm"):
        (data_dir / f"immos.db{suffix}").unlink(missing_ok=True)


def _print_accounts(accounts: list[object]) -> None:
    table = Table("username", "password", "role", "office", title="Demo accounts")
    for a in accounts:
        table.add_row(a.username, a.password, a.role.value, a.office or "")  # type: ignore[attr-defined]
    console.print(table)


@friendly_errors
def demo_cmd(
    persons: int = typer.Option(3000, "--persons", min=100, help="Synthetic persons to build."),
    seed: int = typer.Option(42, "--seed", help="World seed (same seed, same world)."),
    data_dir: Path = typer.Option(
        Path("var/demo"), "--data-dir", help="Folder for the demo database, keys and world."
    ),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Serve after loading."),
    host: str = typer.Option("127.0.0.1", help="Bind address."),
    port: int = typer.Option(8000, help="Port."),
) -> None:
    """Build a synthetic world, load every source into a fresh database, and serve it."""
    _prepare_environment(data_dir)
    from immigrationos.cli.serve import run_server
    from immigrationos.core.errors import ConfigurationError
    from immigrationos.core.settings import get_settings

    if not get_settings().is_demo:  # never reset a production database
        raise ConfigurationError("immos demo runs only in demo mode (IMMOS_MODE=demo)")
    from immigrationos.demo import load_demo

    _reset(data_dir)
    world = data_dir / "world"
    shutil.rmtree(world, ignore_errors=True)
    with progress_bar() as bar:
        result = load_demo(world, persons, seed, bar)
    console.print(result.summary_table())
    if result.resolution is not None:
        r = result.resolution
        console.print(
            f"person index {r.run_id}: {r.records:,} records → {r.persons:,} persons "
            f"({r.reviews_queued:,} uncertain pairs queued for review; model {r.model_id})"
        )
    if result.cases is not None:
        c = result.cases
        states = ", ".join(f"{k} {v}" for k, v in sorted(c.by_state.items()) if v)
        console.print(
            f"cases: {c.cases_opened:,} opened from court and encounter histories "
            f"({c.steps_applied:,} steps through the engine); by state: {states}"
        )
    if result.priorities is not None:
        p = result.priorities
        console.print(
            f"priorities: {p.in_force} in force; runs {', '.join(p.runs.values())}; "
            f"{p.actionable:,} actionable leads (`immos priority worklist --as officer.miami`)"
        )
    if result.departures is not None:
        d = result.departures
        bands = ", ".join(f"{k} {v}" for k, v in sorted(d.replay.bands.items()))
        steps = ", ".join(f"{k} {v}" for k, v in sorted(d.replay.steps.items())) or "none"
        console.print(
            f"departures: the last five years' {d.replay.events:,} events replayed through the "
            f"stream ({bands}); case steps: {steps} (`immos departures monitor`, "
            "`immos departures review list`)"
        )
        console.print(
            "overstays before the replay: "
            + ", ".join(f"{k} {v}" for k, v in sorted(d.overstays_before.items()))
            + "; after: "
            + ", ".join(f"{k} {v}" for k, v in sorted(d.overstays_after.items()))
            + " (`immos departures overstays report --as analyst`)"
        )
    if result.oversight is not None:
        o = result.oversight
        console.print(
            f"oversight: two weeks of synthetic staff activity with planted misuse; "
            f"{len(o.scan.raised)} access alerts (recall {o.evaluation.recall:.0%}, clean "
            f"users flagged {o.evaluation.false_positive_rate:.0%}; `immos anomalies list`, "
            "/oversight); "
            f"transparency report {o.transparency_period} published "
            "(`immos report transparency --period …`)"
        )
        sample = o.redress
        console.print(
            f"redress: request {sample.decided.reference} decided (follow it at /redress/status "
            f"with tracking code {sample.decided.tracking_code}); {sample.in_review.reference} "
            "in review "
            "(`immos redress list --as privacy`, /redress)"
        )
    console.print(f"[green]{result.audit_message}[/]")
    _print_accounts(list(result.accounts))
    if serve:
        run_server(result.runtime, host, port)
    else:
        result.runtime.close()
