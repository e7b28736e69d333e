"""``immos report``: the oversight report, the public transparency report and the system dossier."""

from __future__ import annotations

import typer

from immigrationos.cli import report_dossier, report_oversight, report_transparency

app = typer.Typer(
    help="Oversight, transparency and inspection reports generated from the running system.",
    no_args_is_help=True,
)
report_oversight.register(app)
report_transparency.register(app)
report_dossier.register(app)
