"""``immos redress``: correction requests about a person's record, their decision, letters."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="File, triage and decide correction (redress) requests.", no_args_is_help=True
)
