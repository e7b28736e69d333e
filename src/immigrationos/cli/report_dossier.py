"""``immos report dossier``: the system dossier for inspectors."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this report's command to the ``immos report`` group."""
