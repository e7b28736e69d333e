"""``immos anomalies``: detect access anomalies and review the alerts (auditors)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Detect unusual access to personal data; review the alerts.", no_args_is_help=True
)
